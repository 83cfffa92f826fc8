//! The page's layout: the masthead, notes, every feature's panels in order, the tour card
//! and the footer. Views turn the [`App`] state into markup and hold no state of their
//! own (the chat panel, a component, excepted). Colours are CSS classes defined in
//! `www/style.css`: an entrant has one colour (`entrant-<key>`) on every chart, chip,
//! table row and the network title; an action has one colour (teal = answered on the
//! device, amber = offloaded) in the network view.

use yew::html::Scope;
use yew::prelude::*;

use crate::app::{App, Msg};
use crate::chat::panel::ChatPanel;
use crate::simulation::view::{charts, controls, entrants, network, scores};
use crate::tour;
use crate::training;

/// The whole page.
pub fn page(app: &App, link: &Scope<App>) -> Html {
    let tour_step = app.tour.and_then(|s| tour::STEPS.get(s).map(|t| (s, t)));
    let target = tour_step.map(|(_, t)| t.target);
    let panel = |id: &'static str, extra: &'static str| {
        classes!("panel", extra, (target == Some(id)).then_some("tour-focus"))
    };
    html! {
        <div class={classes!("app", tour_step.is_some().then_some("touring"))}
            data-frames={app.sim.perf.frames.to_string()}
            data-worker-ms={format!("{:.2}", app.sim.perf.worker_busy_ms)}>
            { header(link) }
            if !app.notes.is_empty() {
                <div class="notes" role="status" id="notes">
                    <ul>{ for app.notes.iter().map(|n| html! { <li>{ n }</li> }) }</ul>
                    <button type="button" class="link-button" onclick={link.callback(|_| Msg::DismissNotes)}>
                        { "Dismiss" }
                    </button>
                </div>
            }
            if let Some(error) = &app.error {
                <p class="error" role="alert">{ error }</p>
            }
            <section id="panel-controls" class={panel("panel-controls", "panel-controls")}
                aria-label="Scenario and simulation controls">
                { controls::view(app, link) }
            </section>
            <section id="panel-policies" class={panel("panel-policies", "panel-policies")}
                aria-labelledby="policies-title">
                { entrants::view(app, link) }
            </section>
            <main class="panels">
                <section id="panel-network" class={panel("panel-network", "panel-network")}
                    aria-labelledby="network-title">
                    { network::view(app, link) }
                </section>
                <section id="panel-scores" class={panel("panel-scores", "panel-scores")}
                    aria-labelledby="scores-title">
                    { scores::view(app) }
                </section>
                <section id="panel-inspector" class="panel-inspector" aria-label="Device inspector">
                    { network::inspector_panel(app) }
                </section>
                <section id="panel-charts" class="panel-charts" aria-label="Live charts">
                    { charts::view(app, target) }
                </section>
            </main>
            { training::view::view(app, link) }
            <ChatPanel on_add_device={link.callback(|d| Msg::ThisDevice(Some(d)))}
                in_simulation={app.sim.this_device.is_some()} />
            if let Some((i, step)) = tour_step {
                { tour_card(i, step, link) }
            }
            <footer class="footer">
                { "Simulated in your browser (in a web worker) with the edgewise MEC model: \
                   1-second slots, a Shannon uplink with time-correlated fading, a FIFO edge \
                   server with parallel model instances. Trained policies run as small neural \
                   networks on each device's observation. No data leaves the page." }
            </footer>
        </div>
    }
}

fn header(link: &Scope<App>) -> Html {
    html! {
        <header class="masthead">
            <div class="masthead-text">
                <h1><span class="brand">{ "edgewise" }</span>
                    <span class="tagline">{ " — offloading LLM queries at the mobile edge" }</span></h1>
                <p class="lede">
                    { "Phones and laptops answer questions with a compact on-device language \
                       model or send them to the full model on an edge server. A policy trained \
                       with a world model (WM-PPO) races plain PPO and simple rules on the same \
                       simulated cell: watch latency, battery and answer quality trade off." }
                </p>
            </div>
            <button type="button" id="tour-start" class="tour-button"
                onclick={link.callback(|_| Msg::Tour(Some(0)))}>
                { "Take the tour" }
            </button>
        </header>
    }
}

fn tour_card(i: usize, step: &tour::Step, link: &Scope<App>) -> Html {
    let n = tour::STEPS.len();
    let prev = link.callback(move |_| Msg::Tour(i.checked_sub(1)));
    let next = link.callback(move |_| Msg::Tour((i + 1 < n).then_some(i + 1)));
    html! {
        <aside class="tour-card" role="dialog" aria-live="polite" aria-labelledby="tour-title" id="tour">
            <p class="tour-progress">{ format!("Guided tour · {} of {n}", i + 1) }</p>
            <h2 id="tour-title">{ step.title }</h2>
            <p>{ step.text }</p>
            <div class="tour-actions">
                <button type="button" onclick={link.callback(|_| Msg::Tour(None))}>{ "Close" }</button>
                <span class="spacer"></span>
                <button type="button" onclick={prev} disabled={i == 0}>{ "Back" }</button>
                <button type="button" id="tour-next" class="primary" onclick={next}>
                    { if i + 1 < n { "Next" } else { "Finish" } }
                </button>
            </div>
        </aside>
    }
}
