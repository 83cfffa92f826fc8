//! The training race panel: start PPO vs WM-PPO learning the current scenario in the
//! trainer worker, watch both learning curves and a progress bar, then run the learned
//! policies in the simulation race.

use std::fmt::Write as _;

use web_sys::HtmlSelectElement;
use yew::html::Scope;
use yew::prelude::*;

use super::curve::{CurvePoint, IMPROVEMENT_WINDOW};
use super::page::{LaneView, Phase, TrainMsg, TrainState};
use super::protocol::Algo;
use super::race::{BUDGETS, DEFAULT_BUDGET};
use crate::app::{App, Msg};
use crate::format::{fixed, fmt, legend_item, nice_range};

const W: f64 = 640.0;
const H: f64 = 240.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 36.0;
/// Episodes in the moving average drawn as each learner's line.
const SMOOTH: usize = 5;

fn css(algo: Algo) -> String {
    algo.entrant().css()
}

/// Render the panel.
pub fn view(app: &App, link: &Scope<App>) -> Html {
    let t = &app.training;
    let busy = matches!(t.phase, Phase::Loading | Phase::Running);
    let on_budget = link.callback(|e: Event| {
        let v = e
            .target_unchecked_into::<HtmlSelectElement>()
            .value()
            .parse()
            .unwrap_or(DEFAULT_BUDGET);
        Msg::Train(TrainMsg::Budget(v))
    });
    let (done, total) = t.progress();
    let s = t.scenario.unwrap_or(app.state.scenario);
    let status = match t.phase {
        Phase::Idle => {
            "Not started. Training runs in its own worker, loaded on first start.".to_owned()
        }
        Phase::Loading => "Loading the trainer (burn, compiled to WebAssembly)…".to_owned(),
        Phase::Running => format!(
            "Training on {} devices, seed {}: {done} of {total} real environment steps \
             (both learners){}",
            s.devices(),
            s.seed,
            t.load_ms.map_or_else(String::new, |ms| format!(
                " · trainer loaded in {:.1} s",
                ms / 1000.0
            ))
        ),
        Phase::Finished => {
            let each = t.lanes.iter().map(|l| l.env_steps).min().unwrap_or(0);
            format!(
                "{}: {each} real environment steps each, on {} devices, seed {}.",
                if t.stopped { "Stopped" } else { "Finished" },
                s.devices(),
                s.seed
            )
        }
    };
    let mut attrs = String::new();
    for algo in Algo::ALL {
        let lane = t.lane(algo);
        let _ = write!(attrs, "{}:{} ", algo.key(), lane.env_steps);
    }
    html! {
        <section id="panel-training" class="panel panel-training" aria-labelledby="training-title"
            data-phase={t.phase.key()} data-steps={attrs.trim_end().to_owned()}
            data-load-ms={t.load_ms.map(|ms| format!("{ms:.0}"))}>
            <div class="panel-head">
                <h2 id="training-title">{ "Training race: PPO vs WM-PPO, live" }</h2>
            </div>
            <p class="panel-sub">
                { "Both learn the scenario above from scratch in a web worker: the same seed, \
                   the same simulators and the same number of real environment steps. WM-PPO \
                   also learns a world model of the cell and trains on what it imagines." }
            </p>
            <div class="train-controls">
                <label class="control">
                    <span>{ "Budget (real env steps each)" }</span>
                    <select id="train-budget" onchange={on_budget} disabled={busy}>
                        { for BUDGETS.iter().map(|b| html! {
                            <option value={b.to_string()} selected={*b == t.budget}>{ b.to_string() }</option>
                        }) }
                    </select>
                </label>
                <div class="buttons">
                    <button type="button" id="train-start" class="primary" disabled={busy}
                        onclick={link.callback(|_| Msg::Train(TrainMsg::Start))}>
                        { if t.phase == Phase::Idle { "Start training" } else { "Train again" } }
                    </button>
                    <button type="button" id="train-stop" disabled={t.phase != Phase::Running}
                        onclick={link.callback(|_| Msg::Train(TrainMsg::Stop))}>
                        { "Stop" }
                    </button>
                    <button type="button" id="train-use" disabled={t.policies.is_none() || t.used}
                        title="Replace the PPO and WM-PPO lanes of the simulation with these policies"
                        onclick={link.callback(|_| Msg::Train(TrainMsg::Use))}>
                        { if t.used { "In the simulation ✓" } else { "Use these policies in the simulation" } }
                    </button>
                </div>
            </div>
            <div class="train-progress">
                <progress id="train-progress" max={total.max(1).to_string()} value={done.to_string()}
                    aria-label="Training progress"></progress>
                <span id="train-status" role="status">{ status }</span>
            </div>
            if let Some(e) = &t.error {
                <p class="error" role="alert" id="train-error">{ e }</p>
            }
            <div class="train-body">
                { curve_chart(t) }
                <div class="train-side">
                    <div class="train-table-wrap">{ table(t) }</div>
                    if t.phase != Phase::Idle && t.lane(Algo::WmPpo).wm_trust <= 0.0 {
                        <p class="panel-sub" id="train-wm-note">
                            { "WM-PPO uses its world model only once the model predicts new                                rollouts well enough (trust above 0); until then it takes                                exactly PPO's steps, so the two curves coincide." }
                        </p>
                    }
                </div>
            </div>
        </section>
    }
}

fn table(t: &TrainState) -> Html {
    let rows = Algo::ALL.into_iter().map(|algo| {
        let lane = t.lane(algo);
        let (first, last) = lane.improvement().unwrap_or((f64::NAN, f64::NAN));
        html! {
            <tr class={css(algo)} id={format!("train-{}", algo.key())}
                data-first={format!("{first}")} data-last={format!("{last}")}
                data-episodes={lane.curve.len().to_string()}
                data-steps-per-s={format!("{:.1}", lane.steps_per_s().unwrap_or(0.0))}>
                <th scope="row"><span class="swatch line" aria-hidden="true"></span>{ algo.label() }</th>
                <td class="num">{ lane.env_steps }</td>
                <td class="num">{ lane.steps_per_s().map_or_else(|| "–".to_owned(), |v| format!("{v:.0}")) }</td>
                <td class="num">{ lane.curve.len() }</td>
                <td class="num">{ fixed(first, 3) }</td>
                <td class="num">{ fixed(last, 3) }</td>
                <td class="num">{ match (algo, lane.wm_error) {
                    (Algo::WmPpo, Some(e)) => format!("{} / {}", fixed(e, 2), fixed(lane.wm_trust, 2)),
                    _ => "–".to_owned(),
                } }</td>
            </tr>
        }
    });
    html! {
        <table class="scores train-table">
            <thead>
                <tr>
                    <th scope="col">{ "learner" }</th>
                    <th scope="col" class="num">{ "env steps" }</th>
                    <th scope="col" class="num" title="real environment steps per second of the learner's own computation">{ "steps/s" }</th>
                    <th scope="col" class="num">{ "episodes" }</th>
                    <th scope="col" class="num" title={format!("mean reward per slot of the first {IMPROVEMENT_WINDOW} episodes")}>{ "first" }</th>
                    <th scope="col" class="num" title={format!("mean reward per slot of the last {IMPROVEMENT_WINDOW} episodes")}>{ "last" }</th>
                    <th scope="col" class="num" title="WM-PPO's world model: validation error on the newest rollout, and the trust derived from it (0–1; at 0 WM-PPO learns exactly like PPO)">{ "model err / trust" }</th>
                </tr>
            </thead>
            <tbody>{ for rows }</tbody>
        </table>
    }
}

fn curve_chart(t: &TrainState) -> Html {
    let total = t.total.max(1);
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for lane in &t.lanes {
        for p in lane.curve.iter().filter(|p| p.reward.is_finite()) {
            lo = lo.min(p.reward);
            hi = hi.max(p.reward);
        }
    }
    let (y0, y1, step) = nice_range(lo, hi);
    #[allow(clippy::cast_precision_loss)]
    let x = |steps: u64| LEFT + (steps as f64 / total as f64).clamp(0.0, 1.0) * (W - LEFT - RIGHT);
    let y = |v: f64| {
        let span = (y1 - y0).max(1e-12);
        H - BOTTOM - ((v - y0) / span).clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    };
    let decimals = if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else if step >= 0.01 {
        2
    } else {
        3
    };
    let y_ticks = (0..=20)
        .map(|k| y0 + f64::from(k) * step)
        .take_while(|v| *v <= y1 + step * 1e-6)
        .map(|v| {
            let yy = y(v);
            html! {
                <g class="tick">
                    <line class="grid" x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(yy)} y2={fmt(yy)} />
                    <text class="y-label" x={fmt(LEFT - 5.0)} y={fmt(yy + 3.5)}>{ format!("{v:.decimals$}") }</text>
                </g>
            }
        });
    let x_ticks = (0..=4).map(|k| {
        let s = total * k / 4;
        let xx = x(s);
        html! {
            <g class="tick">
                <line class="axis" x1={fmt(xx)} x2={fmt(xx)} y1={fmt(H - BOTTOM)} y2={fmt(H - BOTTOM + 3.0)} />
                <text class="x-label" x={fmt(xx)} y={fmt(H - BOTTOM + 15.0)}>{ s }</text>
            </g>
        }
    });
    let series = Algo::ALL.into_iter().map(|algo| {
        let lane: &LaneView = t.lane(algo);
        let dots = lane.curve.iter().filter(|p| p.reward.is_finite()).map(|p| {
            html! { <circle class={classes!("dot", css(algo))} cx={fmt(x(p.env_steps))} cy={fmt(y(p.reward))} r="1.8" /> }
        });
        html! {
            <g>
                <g class="dots">{ for dots }</g>
                <path class={classes!("series", css(algo))} d={smoothed_path(&lane.curve, &x, &y)} />
            </g>
        }
    });
    let empty = t.lanes.iter().all(|l| l.curve.is_empty());
    html! {
        <figure class="chart train-chart" id="chart-training">
            <figcaption>
                <ul class="legend">
                    { for Algo::ALL.into_iter().map(|a| legend_item("line", classes!(css(a)), a.label())) }
                    <li class="legend-item muted">{ format!("dots: episodes · lines: mean of the last {SMOOTH}") }</li>
                </ul>
            </figcaption>
            <svg viewBox={format!("0 0 {W} {H}")} role="img"
                aria-label="Learning curves: episode reward per slot against real environment steps, per learner">
                { for y_ticks }
                { for x_ticks }
                <line class="axis" x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(H - BOTTOM)} y2={fmt(H - BOTTOM)} />
                <line class="axis" x1={fmt(LEFT)} x2={fmt(LEFT)} y1={fmt(TOP)} y2={fmt(H - BOTTOM)} />
                <text class="axis-title" x={fmt(LEFT + (W - LEFT - RIGHT) / 2.0)} y={fmt(H - 3.0)}>
                    { "real environment steps" }
                </text>
                <text class="axis-title" transform={format!("translate(12 {}) rotate(-90)", fmt(TOP + (H - TOP - BOTTOM) / 2.0))}>
                    { "reward per slot" }
                </text>
                <g class="lines">{ for series }</g>
                if empty {
                    <text class="empty" x={fmt(LEFT + (W - LEFT - RIGHT) / 2.0)} y={fmt(H / 2.0)}>
                        { if t.phase == Phase::Idle { "start training to draw the learning curves" } else { "waiting for the first episodes…" } }
                    </text>
                }
            </svg>
        </figure>
    }
}

/// The moving average of the last [`SMOOTH`] episodes, as an SVG path with one vertex
/// per iteration (episodes ending in the same iteration share its step count).
fn smoothed_path(curve: &[CurvePoint], x: &impl Fn(u64) -> f64, y: &impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let finite: Vec<&CurvePoint> = curve.iter().filter(|p| p.reward.is_finite()).collect();
    for (i, p) in finite.iter().enumerate() {
        if finite
            .get(i + 1)
            .is_some_and(|q| q.env_steps == p.env_steps)
        {
            continue;
        }
        let from = (i + 1).saturating_sub(SMOOTH);
        let window = &finite[from..=i];
        #[allow(clippy::cast_precision_loss)]
        let mean = window.iter().map(|q| q.reward).sum::<f64>() / window.len() as f64;
        let cmd = if d.is_empty() { 'M' } else { 'L' };
        let _ = write!(d, "{cmd}{:.1} {:.1}", x(p.env_steps), y(mean));
        if cmd == 'M' {
            // A single vertex still shows as a dot with round caps.
            let _ = write!(d, "h0.01");
        }
    }
    d
}
