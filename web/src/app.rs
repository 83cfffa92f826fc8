//! The page's state and everything it can be asked to do: the root component [`App`]
//! (its update and view are in [`crate::root`], so the views can read this without
//! importing what imports them) and its messages [`Msg`].

use yew::html::Scope;

use crate::channel::Received;
use crate::entrants::Entrant;
use crate::scenario::{PageState, Scenario};
use crate::simulation::page::Simulation;
use crate::simulation::protocol::FromSimulation;
use crate::simulation::race::SlotRow;
use crate::simulation::this_device::ThisDevice;
use crate::training::page::{TrainMsg, TrainState};

/// Everything the page can ask the root component to do.
#[derive(Debug)]
pub enum Msg {
    /// A message (or a failure) from the simulation worker.
    Simulation(Received<FromSimulation>),
    /// The shipped policy files were fetched (and notes on what was missing).
    PoliciesFetched(Vec<(Entrant, String)>, Vec<String>),
    /// A scenario slider moved (not applied until released): knob key and value.
    Draft(&'static str, f64),
    /// A slider was released: apply the draft scenario.
    Commit,
    /// A preset was picked (its key).
    Preset(String),
    /// The seed field changed.
    SeedText(String),
    /// Slots per second.
    Speed(u32),
    TogglePlay,
    Step,
    Restart,
    /// Show or hide an entrant in the charts.
    ToggleLane(Entrant),
    /// Draw this entrant's network.
    Focus(Entrant),
    /// Hovered device (or none).
    Hover(Option<usize>),
    /// Tapped/clicked device: keep it inspected.
    Pin(usize),
    /// Tour step (none = closed).
    Tour(Option<usize>),
    ExportCsv,
    CopyLink,
    DismissNotes,
    /// The training race panel.
    Train(TrainMsg),
    /// Race the visitor's measured device as an extra class (`None`: remove it).
    ThisDevice(Option<ThisDevice>),
}

/// Root component of the page.
#[derive(Debug)]
pub struct App {
    /// What the URL holds.
    pub state: PageState,
    /// The scenario as the sliders show it (applied on release).
    pub draft: Scenario,
    /// The seed field's text (may be invalid while typed).
    pub seed_text: String,
    /// Notes on the URL or missing files (dismissable).
    pub notes: Vec<String>,
    /// The simulation race.
    pub sim: Simulation,
    /// Entrants hidden from the charts.
    pub hidden: Vec<Entrant>,
    /// Hovered device.
    pub hover: Option<usize>,
    /// Pinned device.
    pub pinned: Option<usize>,
    /// Tour step shown.
    pub tour: Option<usize>,
    /// The last problem (shown at the top).
    pub error: Option<String>,
    /// Whether "Copy link" was used.
    pub copied: bool,
    /// The training race.
    pub training: TrainState,
}

impl App {
    /// The page on `state`, its worker reporting to `link`.
    pub fn new(state: PageState, notes: Vec<String>, link: &Scope<Self>) -> Self {
        let link = link.clone();
        let (sim, error) = Simulation::spawn(move |m| link.send_message(Msg::Simulation(m)));
        Self {
            state,
            draft: state.scenario,
            seed_text: state.scenario.seed.to_string(),
            notes,
            sim,
            hidden: Entrant::ALL
                .into_iter()
                .filter(|p| !p.shown_by_default())
                .collect(),
            hover: None,
            pinned: None,
            tour: None,
            error,
            copied: false,
            training: TrainState::default(),
        }
    }

    /// Lanes drawn in the charts, in legend order.
    pub fn visible(&self) -> Vec<(Entrant, &[SlotRow])> {
        self.sim.visible(&self.hidden)
    }

    /// The device shown in the inspector.
    pub fn inspected(&self) -> Option<usize> {
        self.hover.or(self.pinned)
    }
}
