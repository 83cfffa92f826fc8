//! The control bar: the scenario (a preset, one slider per knob of `mec::KNOBS`, the
//! seed), the clock (play/pause, step, restart, speed) and sharing (link, CSV export).

use mec::Knob;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::html::Scope;
use yew::prelude::*;

use crate::app::{App, Msg};
use crate::format::knob_value;
use crate::scenario::{PRESETS, SPEEDS, num};

/// Render the control bar.
pub fn view(app: &App, link: &Scope<App>) -> Html {
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
    let info = app.sim.info.as_ref();
    let episode = info.map_or(1, |i| i.episode + 1);
    let slots = info.map_or(0, |i| i.slots);
    html! {
        <div class="controls">
            <div class="control-group scenario" role="group" aria-label="Scenario">
                <label class="control control-preset">
                    <span class="control-label">{ "Scenario" }</span>
                    <select id="preset" name="preset" onchange={on_preset}>
                        { for PRESETS.iter().map(|p| html! {
                            <option value={p.key} selected={preset.is_some_and(|s| s.key == p.key)}>{ p.label }</option>
                        }) }
                        <option value="custom" selected={preset.is_none()} disabled=true>{ "Custom" }</option>
                    </select>
                </label>
                { for app.draft.knobs().map(|(knob, value)| slider(link, knob, value)) }
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
                        aria-pressed={(!app.sim.playing).to_string()}>
                        { if app.sim.playing { "Pause" } else { "Play" } }
                    </button>
                    <button type="button" id="step" onclick={link.callback(|_| Msg::Step)}
                        disabled={app.sim.playing} title="Simulate one slot">
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
                    <span id="slot-counter">{ app.sim.slot }</span>
                    <span class="muted">{ format!(" / {slots}") }</span>
                    if app.sim.done {
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

/// The slider of `knob`, showing `value`; it edits the draft while dragged and applies
/// it when released.
fn slider(link: &Scope<App>, knob: &'static Knob, value: f64) -> Html {
    let key = knob.key;
    let on_input = link.batch_callback(move |e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        input
            .value()
            .parse::<f64>()
            .ok()
            .map(|v| Msg::Draft(key, v))
    });
    let on_change = link.batch_callback(move |e: Event| {
        let input: HtmlInputElement = e.target_unchecked_into();
        input
            .value()
            .parse::<f64>()
            .ok()
            .map(|v| vec![Msg::Draft(key, v), Msg::Commit])
            .unwrap_or_default()
    });
    html! {
        <label class="control control-slider" title={knob.help}>
            <span class="control-label">{ knob.label }{ " " }<output for={key}>{ knob_value(knob, value) }</output></span>
            <input type="range" id={key} name={key}
                min={num(knob.min)} max={num(knob.max)} step={num(knob.step)}
                value={num(value)} oninput={on_input} onchange={on_change} />
        </label>
    }
}
