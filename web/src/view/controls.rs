//! The control bar: scenario (preset, population, bandwidth, energy budget, load,
//! constraints, seed), the clock (play/pause, step, restart, speed) and sharing (link,
//! CSV export).

use edgewise_web::scenario::{
    BANDWIDTH, BUDGET, LOAD, MAX_HALLUCINATION, MIN_ACCURACY, POPULATION, Param, Preset, SPEEDS,
    num,
};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::html::Scope;
use yew::prelude::*;

use super::percent_bound;
use crate::app::{App, Field, Msg};

/// Render the control bar.
pub fn view(app: &App, link: &Scope<App>) -> Html {
    let d = app.draft;
    #[allow(clippy::cast_precision_loss)]
    let population = d.population as f64;
    let preset = app.state.scenario.preset();
    let on_preset = link.callback(|e: Event| {
        let select: HtmlSelectElement = e.target_unchecked_into();
        Msg::Preset(select.value())
    });
    let on_speed = link.batch_callback(|e: Event| {
        let select: HtmlSelectElement = e.target_unchecked_into();
        select.value().parse::<u32>().ok().map(Msg::Speed)
    });
    let on_seed = link.callback(|e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        Msg::SeedText(input.value())
    });
    let seed_ok = app.seed_text.trim().parse::<u64>().is_ok();
    let info = app.info.as_ref();
    let episode = info.map_or(1, |i| i.episode + 1);
    let slots = info.map_or(0, |i| i.slots);
    html! {
        <div class="controls">
            <div class="control-group scenario" role="group" aria-label="Scenario">
                <label class="control control-preset">
                    <span class="control-label">{ "Scenario" }</span>
                    <select id="preset" name="preset" onchange={on_preset}>
                        { for Preset::ALL.iter().map(|p| html! {
                            <option value={p.key()} selected={preset == Some(*p)}>{ p.label() }</option>
                        }) }
                        <option value="custom" selected={preset.is_none()} disabled=true>{ "Custom" }</option>
                    </select>
                </label>
                { slider(link, "population", "Devices", &POPULATION, Field::Population, population,
                    format!("{}", d.population)) }
                { slider(link, "bandwidth", "Uplink", &BANDWIDTH, Field::Bandwidth, d.bandwidth_mhz,
                    format!("{} MHz", num(d.bandwidth_mhz))) }
                { slider(link, "budget", "Energy budget", &BUDGET, Field::Budget, d.budget_scale,
                    format!("{} %", num(d.budget_scale * 100.0))) }
                { slider(link, "load", "Questions", &LOAD, Field::Load, d.load,
                    format!("{}/s per device", num(d.load))) }
                { slider(link, "min-accuracy", "Min accuracy", &MIN_ACCURACY, Field::MinAccuracy,
                    d.min_accuracy, percent_bound(d.min_accuracy)) }
                { slider(link, "max-hallucination", "Max hallucination", &MAX_HALLUCINATION,
                    Field::MaxHallucination, d.max_hallucination, percent_bound(d.max_hallucination)) }
                <label class="control control-seed">
                    <span class="control-label">{ "Seed" }</span>
                    <input type="text" id="seed" name="seed"
                        class={classes!("seed", (!seed_ok).then_some("invalid"))}
                        inputmode="numeric" autocomplete="off" spellcheck="false"
                        aria-invalid={(!seed_ok).to_string()}
                        title="A whole number from 0 to 18446744073709551615"
                        value={app.seed_text.clone()} oninput={on_seed} />
                </label>
            </div>
            <div class="control-group run" role="group" aria-label="Simulation clock">
                <div class="buttons">
                    <button type="button" id="play" class="primary"
                        onclick={link.callback(|_| Msg::TogglePlay)}
                        aria-pressed={(!app.playing).to_string()}>
                        { if app.playing { "Pause" } else { "Play" } }
                    </button>
                    <button type="button" id="step" onclick={link.callback(|_| Msg::Step)}
                        disabled={app.playing} title="Simulate one slot">
                        { "Step" }
                    </button>
                    <button type="button" id="reset" onclick={link.callback(|_| Msg::Restart)}
                        title="Back to the first episode">
                        { "Restart" }
                    </button>
                </div>
                <label class="control control-speed">
                    <span class="control-label">{ "Speed" }</span>
                    <select id="speed" name="speed" onchange={on_speed}>
                        { for SPEEDS.iter().map(|s| html! {
                            <option value={s.to_string()} selected={*s == app.state.speed}>
                                { format!("{s} slots/s") }
                            </option>
                        }) }
                    </select>
                </label>
                <p class="clock" aria-live="off">
                    { format!("Episode {episode} · slot ") }
                    <span id="slot-counter">{ app.slot }</span>
                    <span class="muted">{ format!(" / {slots}") }</span>
                    if app.done {
                        <span class="done">{ " · done" }</span>
                    }
                </p>
                <div class="buttons share">
                    <button type="button" id="copy-link" onclick={link.callback(|_| Msg::CopyLink)}
                        title="Copy a link to this scenario">
                        { if app.copied { "Link copied" } else { "Copy link" } }
                    </button>
                    <button type="button" id="export-csv" onclick={link.callback(|_| Msg::ExportCsv)}
                        title="Download this episode's per-slot results">
                        { "Export CSV" }
                    </button>
                </div>
            </div>
        </div>
    }
}

#[allow(clippy::too_many_arguments)]
fn slider(
    link: &Scope<App>,
    id: &'static str,
    label: &'static str,
    param: &Param,
    field: Field,
    value: f64,
    shown: String,
) -> Html {
    let on_input = link.batch_callback(move |e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        input
            .value()
            .parse::<f64>()
            .ok()
            .map(|v| Msg::Draft(field, v))
    });
    let on_change = link.batch_callback(move |e: Event| {
        let input: HtmlInputElement = e.target_unchecked_into();
        input
            .value()
            .parse::<f64>()
            .ok()
            .map(|v| vec![Msg::Draft(field, v), Msg::Commit])
            .unwrap_or_default()
    });
    html! {
        <label class="control control-slider">
            <span class="control-label">{ label }{ " " }<output for={id}>{ shown }</output></span>
            <input type="range" {id} name={id}
                min={num(param.min)} max={num(param.max)} step={num(param.step)}
                value={num(value)} oninput={on_input} onchange={on_change} />
        </label>
    }
}
