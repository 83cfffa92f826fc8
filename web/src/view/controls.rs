//! The control bar: population, policy, seed, play/pause, step, reset and the slot counter.

use mec::PolicyKind;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::model::{MAX_POPULATION, MIN_POPULATION};

/// Population presets marked on the slider.
const PRESETS: [usize; 4] = [10, 20, 50, 100];

/// Properties of [`Controls`].
#[derive(Debug, Properties, PartialEq)]
pub struct ControlsProps {
    pub population: usize,
    pub policy: PolicyKind,
    pub seed_text: AttrValue,
    pub seed_valid: bool,
    pub playing: bool,
    pub slot: usize,
    pub slots: usize,
    pub episode: u64,
    pub on_population: Callback<usize>,
    pub on_policy: Callback<PolicyKind>,
    pub on_seed: Callback<String>,
    pub on_toggle: Callback<()>,
    pub on_step: Callback<()>,
    pub on_reset: Callback<()>,
}

/// A human label for a baseline policy.
pub fn policy_label(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::AlwaysLocal => "Always local",
        PolicyKind::AlwaysOffload => "Always offload",
        PolicyKind::Random => "Random",
        PolicyKind::Greedy => "Greedy",
        PolicyKind::Oracle => "Oracle (bound)",
    }
}

#[component]
pub fn Controls(props: &ControlsProps) -> Html {
    let on_population = {
        let cb = props.on_population.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Ok(n) = input.value().parse::<usize>() {
                cb.emit(n);
            }
        })
    };
    let on_population_input = {
        let cb = on_population.clone();
        Callback::from(move |e: InputEvent| cb.emit(e.into()))
    };
    let on_policy = {
        let cb = props.on_policy.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            if let Ok(kind) = select.value().parse::<PolicyKind>() {
                cb.emit(kind);
            }
        })
    };
    let on_seed = {
        let cb = props.on_seed.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            cb.emit(input.value());
        })
    };
    let on_toggle = props.on_toggle.reform(|_: MouseEvent| ());
    let on_step = props.on_step.reform(|_: MouseEvent| ());
    let on_reset = props.on_reset.reform(|_: MouseEvent| ());

    let seed_class = classes!("seed", (!props.seed_valid).then_some("invalid"));
    html! {
        <div class="controls" role="group" aria-label="Simulation controls">
            <label class="control control-population">
                <span class="control-label">
                    { "Devices " }<output for="population">{ props.population }</output>
                </span>
                <input type="range" id="population" name="population"
                    min={MIN_POPULATION.to_string()} max={MAX_POPULATION.to_string()} step="5"
                    list="population-presets"
                    value={props.population.to_string()}
                    oninput={on_population_input} onchange={on_population} />
                <datalist id="population-presets">
                    { for PRESETS.iter().map(|p| html! { <option value={p.to_string()} /> }) }
                </datalist>
            </label>
            <label class="control">
                <span class="control-label">{ "Policy" }</span>
                <select id="policy" name="policy" onchange={on_policy}>
                    { for PolicyKind::ALL.iter().map(|&kind| html! {
                        <option value={kind.to_string()} selected={kind == props.policy}>
                            { policy_label(kind) }
                        </option>
                    }) }
                </select>
            </label>
            <label class="control control-seed">
                <span class="control-label">{ "Seed" }</span>
                <input type="text" id="seed" name="seed" class={seed_class}
                    inputmode="numeric" autocomplete="off" spellcheck="false"
                    aria-invalid={(!props.seed_valid).to_string()}
                    title="A whole number from 0 to 18446744073709551615"
                    value={props.seed_text.clone()} oninput={on_seed} />
            </label>
            <div class="control buttons">
                <button type="button" id="play" class="primary" onclick={on_toggle}
                    aria-pressed={(!props.playing).to_string()}>
                    { if props.playing { "Pause" } else { "Play" } }
                </button>
                <button type="button" id="step" onclick={on_step} disabled={props.playing}>
                    { "Step" }
                </button>
                <button type="button" id="reset" onclick={on_reset}>{ "Reset" }</button>
            </div>
            <p class="clock" aria-live="off">
                { "Episode " }{ props.episode }{ " · slot " }
                <span id="slot-counter">{ props.slot }</span>
                <span class="muted">{ format!(" / {}", props.slots) }</span>
            </p>
        </div>
    }
}
