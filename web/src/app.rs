//! The root component: owns the [`Demo`] model and the timer that ticks it.

use gloo::timers::callback::Interval;
use mec::PolicyKind;
use yew::prelude::*;

use crate::model::{Demo, Scenario, parse_seed};
use crate::view::controls::Controls;
use crate::view::{chart, metrics, network};

/// Milliseconds between simulated slots (10 slots per second).
const TICK_MS: u32 = 100;

/// Everything the page can ask the root component to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// The timer fired: simulate one slot.
    Tick,
    /// Simulate one slot by hand (while paused).
    Step,
    /// Pause or resume the timer.
    TogglePlay,
    /// Restart the current scenario.
    Reset,
    /// The population slider moved.
    SetPopulation(usize),
    /// Another baseline policy was picked.
    SetPolicy(PolicyKind),
    /// The seed field changed (raw text; ignored unless it is a valid seed).
    SetSeedText(String),
}

/// Root component of the page.
pub struct App {
    demo: Option<Demo>,
    scenario: Scenario,
    seed_text: String,
    error: Option<String>,
    timer: Option<Interval>,
}

impl App {
    fn start_timer(&mut self, ctx: &Context<Self>) {
        let link = ctx.link().clone();
        self.timer = Some(Interval::new(TICK_MS, move || link.send_message(Msg::Tick)));
    }

    /// Switch to `scenario`; on failure keep the running one and show why.
    fn apply(&mut self, scenario: Scenario) -> bool {
        if self.demo.is_some() && scenario == self.scenario {
            return false;
        }
        match Demo::new(scenario) {
            Ok(demo) => {
                self.scenario = demo.scenario();
                self.demo = Some(demo);
                self.error = None;
            }
            Err(e) => self.error = Some(format!("The simulator rejected this scenario: {e}")),
        }
        true
    }

    fn seed_valid(&self) -> bool {
        parse_seed(&self.seed_text).is_some()
    }
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let scenario = Scenario::default();
        let (demo, error) = match Demo::new(scenario) {
            Ok(demo) => (Some(demo), None),
            Err(e) => (None, Some(format!("The simulator could not start: {e}"))),
        };
        let mut app = Self {
            demo,
            scenario,
            seed_text: scenario.seed.to_string(),
            error,
            timer: None,
        };
        if app.demo.is_some() {
            app.start_timer(ctx);
        }
        app
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Self::Message) -> bool {
        match msg {
            Msg::Tick | Msg::Step => match &mut self.demo {
                Some(demo) => {
                    demo.tick();
                    true
                }
                None => false,
            },
            Msg::TogglePlay => {
                if self.timer.take().is_none() && self.demo.is_some() {
                    self.start_timer(ctx);
                }
                true
            }
            Msg::Reset => {
                if let Some(demo) = &mut self.demo {
                    demo.reset();
                }
                true
            }
            Msg::SetPopulation(population) => self.apply(Scenario {
                population,
                ..self.scenario
            }),
            Msg::SetPolicy(policy) => self.apply(Scenario {
                policy,
                ..self.scenario
            }),
            Msg::SetSeedText(text) => {
                self.seed_text = text;
                if let Some(seed) = parse_seed(&self.seed_text) {
                    self.apply(Scenario {
                        seed,
                        ..self.scenario
                    });
                }
                true
            }
        }
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let (slot, slots, episode) = self.demo.as_ref().map_or((0, 0, 1), |d| {
            (d.sim().slot(), d.config().slots, d.episode())
        });
        html! {
            <div class="app">
                { header() }
                <Controls
                    population={self.scenario.population}
                    policy={self.scenario.policy}
                    seed_text={AttrValue::from(self.seed_text.clone())}
                    seed_valid={self.seed_valid()}
                    playing={self.timer.is_some()}
                    {slot}
                    {slots}
                    {episode}
                    on_population={link.callback(Msg::SetPopulation)}
                    on_policy={link.callback(Msg::SetPolicy)}
                    on_seed={link.callback(Msg::SetSeedText)}
                    on_toggle={link.callback(|()| Msg::TogglePlay)}
                    on_step={link.callback(|()| Msg::Step)}
                    on_reset={link.callback(|()| Msg::Reset)}
                />
                if let Some(error) = &self.error {
                    <p class="error" role="alert">{ error }</p>
                }
                if let Some(demo) = &self.demo {
                    <main class="panels">
                        <section class="panel panel-network" aria-labelledby="network-title">
                            <h2 id="network-title">{ "Network" }</h2>
                            { network::view(demo) }
                        </section>
                        <section class="panel panel-chart" aria-labelledby="chart-title">
                            <h2 id="chart-title">{ "Latency per slot" }</h2>
                            { chart::view(demo) }
                        </section>
                        <section class="panel panel-metrics" aria-labelledby="metrics-title">
                            <h2 id="metrics-title">{ "Episode so far" }</h2>
                            { metrics::view(demo) }
                        </section>
                    </main>
                }
                <footer class="footer">
                    { "Simulated in your browser with the edgewise MEC model: 1-second slots, \
                       Shannon uplink with time-correlated fading, a FIFO edge server. \
                       No data leaves the page." }
                </footer>
            </div>
        }
    }
}

fn header() -> Html {
    html! {
        <header class="masthead">
            <h1><span class="brand">{ "edgewise" }</span>
                <span class="tagline">{ " — offloading LLM queries at the mobile edge" }</span></h1>
            <p class="lede">
                { "Phones and laptops answer questions with a compact on-device language model \
                   or send them to the full model on an edge server. Pick a policy and watch \
                   latency, energy and answer quality trade off, one slot at a time." }
            </p>
        </header>
    }
}
