//! The entrant chips: every entrant of the race, its colour, whether it runs (and why
//! not), and a click to show or hide it in the charts.

use yew::html::Scope;
use yew::prelude::*;

use crate::app::{App, Msg};
use crate::entrants::Entrant;

/// Render the chips and the notes on entrants that do not run.
pub fn view(app: &App, link: &Scope<App>) -> Html {
    let lanes = app
        .sim
        .info
        .as_ref()
        .map(|i| i.lanes.clone())
        .unwrap_or_default();
    let chips = Entrant::ALL.into_iter().map(|id| {
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
