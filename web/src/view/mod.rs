//! Rendering: each module turns the [`App`] state into markup and holds no state of its
//! own. Colours are CSS classes defined in `www/style.css`: a policy has one colour
//! (`policy-<key>`) on every chart, chip, table row and the network title; an action has
//! one colour (teal = answered on the device, amber = offloaded) in the network view.

pub mod charts;
pub mod chat;
pub mod controls;
pub mod network;
pub mod scores;
pub mod training;

use edgewise_web::policies::PolicyId;
use yew::html::Scope;
use yew::prelude::*;

use crate::app::{App, Msg};
use crate::tour;

/// The whole page.
pub fn page(app: &App, link: &Scope<App>) -> Html {
    let tour_step = app.tour.and_then(|s| tour::STEPS.get(s).map(|t| (s, t)));
    let target = tour_step.map(|(_, t)| t.target);
    let panel = |id: &'static str, extra: &'static str| {
        classes!("panel", extra, (target == Some(id)).then_some("tour-focus"))
    };
    html! {
        <div class={classes!("app", tour_step.is_some().then_some("touring"))}
            data-frames={app.perf.frames.to_string()}
            data-worker-ms={format!("{:.2}", app.perf.worker_busy_ms)}>
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
                { policy_strip(app, link) }
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
            { training::view(app, link) }
            <chat::ChatPanel />
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

fn policy_strip(app: &App, link: &Scope<App>) -> Html {
    let lanes = app
        .info
        .as_ref()
        .map(|i| i.lanes.clone())
        .unwrap_or_default();
    let chips = PolicyId::ALL.into_iter().map(|id| {
        let status = lanes.iter().find(|l| l.id == id);
        let running = status.is_some_and(|s| s.running);
        let shown = running && !app.hidden.contains(&id);
        let note = status.and_then(|s| s.note.clone());
        let title = match &note {
            Some(n) => format!("{} — {n}", id.blurb()),
            None => id.blurb().to_owned(),
        };
        html! {
            <li>
                <button type="button"
                    class={classes!("chip", id.css(), shown.then_some("on"), (!running).then_some("absent"))}
                    id={format!("chip-{}", id.key())}
                    aria-pressed={shown.to_string()} disabled={!running} title={title}
                    onclick={link.callback(move |_| Msg::ToggleLane(id))}>
                    <span class="swatch line" aria-hidden="true"></span>
                    { id.label() }
                    if !running && status.is_some() {
                        <span class="chip-note">{ " · not available" }</span>
                    }
                </button>
            </li>
        }
    });
    let missing: Vec<Html> = lanes
        .iter()
        .filter(|l| !l.running)
        .filter_map(|l| {
            l.note
                .as_ref()
                .map(|n| html! { <li class={l.id.css()}>{ n.clone() }</li> })
        })
        .collect();
    html! {
        <>
            <h2 id="policies-title" class="visually-hidden">{ "Policies" }</h2>
            <ul class="chips" aria-label="Policies: click to show or hide">{ for chips }</ul>
            if !missing.is_empty() {
                <ul class="policy-notes" id="policy-notes">
                    { for missing }
                    <li class="muted">{ "The race goes on with the policies that are here." }</li>
                </ul>
            }
        </>
    }
}

/// A legend entry: a swatch drawn with `swatch` classes, then a label.
pub fn legend_item(swatch: &'static str, extra: Classes, label: &str) -> Html {
    html! {
        <li class="legend-item">
            <span class={classes!("swatch", swatch, extra)} aria-hidden="true"></span>
            { label.to_owned() }
        </li>
    }
}

/// Format a quantity with a fixed number of decimals, or a dash when it is not a number.
pub fn fixed(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "–".to_owned()
    }
}

/// Format a fraction as a percentage.
pub fn percent(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{:.decimals$} %", x * 100.0)
    } else {
        "–".to_owned()
    }
}

/// Format a bound given as a fraction as a percentage with at most one decimal
/// (`0.63` → `63 %`, `0.115` → `11.5 %`).
pub fn percent_bound(x: f64) -> String {
    if !x.is_finite() {
        return "–".to_owned();
    }
    let text = format!("{:.1}", x * 100.0);
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} %")
}

/// An SVG coordinate.
pub fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(percent_bound(0.63), "63 %");
        assert_eq!(percent_bound(0.115), "11.5 %");
        assert_eq!(percent_bound(f64::NAN), "–");
        assert_eq!(percent(0.5, 0), "50 %");
        assert_eq!(fixed(f64::INFINITY, 2), "–");
        assert_eq!(fixed(1.234, 2), "1.23");
    }
}
