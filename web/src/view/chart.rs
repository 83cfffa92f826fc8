//! The live latency chart: mean latency of the queries answered in each slot over a
//! rolling window, split into on-device and offloaded queries.

use std::fmt::Write as _;

use yew::prelude::*;

use super::{fixed, legend_item};
use crate::model::{Demo, HISTORY_SLOTS, SlotSample};

const W: f64 = 480.0;
const H: f64 = 240.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 38.0;

/// Render the chart panel of `demo`.
pub fn view(demo: &Demo) -> Html {
    let history = demo.history();
    let last = history.back().map_or(0, |s| s.slot);
    let x0 = last.saturating_sub(HISTORY_SLOTS);
    let x1 = x0 + HISTORY_SLOTS;
    let peak = history
        .iter()
        .flat_map(|s| [s.mean_s, s.local_s, s.offload_s])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (y_max, y_step) = nice_axis(peak);
    let frame = Frame { x0, x1, y_max };

    let y_ticks = (0..)
        .map(|k| f64::from(k) * y_step)
        .take_while(|v| *v <= y_max + y_step * 1e-6)
        .map(|v| {
            let y = frame.y(v);
            html! {
                <g class="tick">
                    <line class="grid" x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(y)} y2={fmt(y)} />
                    <text class="y-label" x={fmt(LEFT - 6.0)} y={fmt(y + 4.0)}>{ tick_label(v, y_step) }</text>
                </g>
            }
        });
    let x_ticks = (x0..=x1).filter(|s| s % 20 == 0).map(|s| {
        let x = frame.x(s);
        html! {
            <g class="tick">
                <line class="axis" x1={fmt(x)} x2={fmt(x)} y1={fmt(H - BOTTOM)} y2={fmt(H - BOTTOM + 4.0)} />
                <text class="x-label" x={fmt(x)} y={fmt(H - BOTTOM + 16.0)}>{ s }</text>
            </g>
        }
    });
    let episode_mean = demo.metrics().mean_latency_s;
    let mean_line = (demo.metrics().queries > 0 && episode_mean.is_finite()).then(|| {
        let y = frame.y(episode_mean.min(y_max));
        html! {
            <g class="episode-mean">
                <line x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(y)} y2={fmt(y)} />
                <text x={fmt(W - RIGHT - 2.0)} y={fmt(y - 4.0)}>
                    { format!("episode mean {} s", fixed(episode_mean, 2)) }
                </text>
            </g>
        }
    });

    html! {
        <figure class="chart">
            <figcaption>
                <ul class="legend">
                    { legend_item("line", classes!("all"), "all queries") }
                    { legend_item("line", classes!("local"), "answered on device") }
                    { legend_item("line", classes!("offload"), "offloaded to edge") }
                    { legend_item("line", classes!("dashed"), "episode mean") }
                </ul>
            </figcaption>
            <svg viewBox={format!("0 0 {W} {H}")} role="img"
                aria-label="Mean latency per slot in seconds over the last 100 slots">
                { for y_ticks }
                { for x_ticks }
                <line class="axis" x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(H - BOTTOM)} y2={fmt(H - BOTTOM)} />
                <line class="axis" x1={fmt(LEFT)} x2={fmt(LEFT)} y1={fmt(TOP)} y2={fmt(H - BOTTOM)} />
                <text class="axis-title" x={fmt(LEFT + (W - LEFT - RIGHT) / 2.0)} y={fmt(H - 4.0)}>
                    { "slot (1 slot = 1 s)" }
                </text>
                <text class="axis-title" transform={format!("translate(12 {}) rotate(-90)", fmt(TOP + (H - TOP - BOTTOM) / 2.0))}>
                    { "latency (s)" }
                </text>
                <path class="series all" d={frame.path(history.iter(), |s| s.mean_s)} />
                <path class="series local" d={frame.path(history.iter(), |s| s.local_s)} />
                <path class="series offload" d={frame.path(history.iter(), |s| s.offload_s)} />
                { for mean_line }
                if history.is_empty() {
                    <text class="empty" x={fmt(LEFT + (W - LEFT - RIGHT) / 2.0)} y={fmt(H / 2.0)}>
                        { "waiting for the first slot…" }
                    </text>
                }
            </svg>
        </figure>
    }
}

/// Maps slots and seconds to SVG coordinates.
struct Frame {
    x0: usize,
    x1: usize,
    y_max: f64,
}

impl Frame {
    #[allow(clippy::cast_precision_loss)] // slot numbers are small
    fn x(&self, slot: usize) -> f64 {
        let span = (self.x1 - self.x0).max(1) as f64;
        LEFT + (slot.saturating_sub(self.x0)) as f64 / span * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        H - BOTTOM - (v / self.y_max).clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    }

    /// An SVG path through the samples, broken wherever a slot has no value.
    /// A lone point becomes a short dash so it stays visible.
    fn path<'a>(
        &self,
        samples: impl Iterator<Item = &'a SlotSample>,
        value: impl Fn(&SlotSample) -> Option<f64>,
    ) -> String {
        let mut d = String::new();
        let mut pen_down = false;
        for s in samples {
            match value(s).filter(|v| v.is_finite()) {
                Some(v) => {
                    let (x, y) = (self.x(s.slot), self.y(v));
                    let cmd = if pen_down { 'L' } else { 'M' };
                    let _ = write!(d, "{cmd}{x:.1} {y:.1}");
                    if !pen_down {
                        let _ = write!(d, "h0.01");
                    }
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        d
    }
}

/// A round upper bound for the y axis and its tick step, for data peaking at `peak`.
fn nice_axis(peak: f64) -> (f64, f64) {
    let peak = if peak.is_finite() && peak > 0.0 {
        peak
    } else {
        1.0
    };
    let raw_step = peak / 4.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw_step)
        .unwrap_or(10.0 * magnitude);
    ((peak / step).ceil().max(1.0) * step, step)
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else {
        2
    };
    format!("{v:.decimals$}")
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_covers_the_peak_with_round_steps() {
        for peak in [0.003, 0.42, 1.0, 2.7, 13.0, 480.0] {
            let (max, step) = nice_axis(peak);
            assert!(max >= peak, "{peak}");
            assert!(max / step <= 5.0 + 1e-9, "{peak}: {max} / {step}");
        }
        assert_eq!(nice_axis(f64::NAN), nice_axis(1.0));
        assert_eq!(nice_axis(0.0), nice_axis(1.0));
    }

    #[test]
    fn paths_break_at_gaps() {
        let frame = Frame {
            x0: 0,
            x1: 100,
            y_max: 1.0,
        };
        let samples: Vec<SlotSample> = [Some(0.5), None, Some(0.2), Some(0.3)]
            .into_iter()
            .enumerate()
            .map(|(i, v)| SlotSample {
                slot: i + 1,
                mean_s: v,
                local_s: None,
                offload_s: None,
            })
            .collect();
        let d = frame.path(samples.iter(), |s| s.mean_s);
        assert_eq!(d.matches('M').count(), 2);
        assert_eq!(d.matches('L').count(), 1);
    }
}
