//! The four live charts, one line per visible policy over the current episode: latency,
//! energy against the budget, accuracy and hallucination against their constraints.

use std::fmt::Write as _;

use yew::prelude::*;

use crate::app::App;
use crate::format::{fmt, legend_item, nice_range, percent_bound};
use crate::simulation::race::{LATENCY_WINDOW, SlotRow};

const W: f64 = 300.0;
const H: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 34.0;

/// Which side of a reference line breaks the constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    Above,
    Below,
}

struct Spec {
    id: &'static str,
    title: &'static str,
    note: String,
    axis: &'static str,
    percent: bool,
    value: fn(&SlotRow) -> Option<f64>,
    reference: Option<(f64, String, Bad)>,
    /// The y range always includes these values.
    include: (f64, f64),
}

/// Render the chart grid.
pub fn view(app: &App, tour_target: Option<&str>) -> Html {
    let qos = app.state.scenario.config().qos;
    let specs = [
        Spec {
            id: "chart-latency",
            title: "Latency",
            note: format!("mean over the last {LATENCY_WINDOW} slots"),
            axis: "seconds",
            percent: false,
            value: |r| r.latency_avg_s,
            reference: None,
            include: (0.0, 1.0),
        },
        Spec {
            id: "chart-energy",
            title: "Energy vs budget",
            note: "share of the window's budget used, mean device".to_owned(),
            axis: "% of budget",
            percent: true,
            value: |r| Some(r.energy_frac),
            reference: Some((1.0, "budget".to_owned(), Bad::Above)),
            include: (0.0, 1.1),
        },
        Spec {
            id: "chart-accuracy",
            title: "Accuracy",
            note: "episode so far".to_owned(),
            axis: "accuracy",
            percent: true,
            value: |r| r.accuracy,
            reference: Some((
                qos.min_accuracy,
                format!("min {}", percent_bound(qos.min_accuracy)),
                Bad::Below,
            )),
            include: (qos.min_accuracy - 0.05, qos.min_accuracy + 0.05),
        },
        Spec {
            id: "chart-hallucination",
            title: "Hallucination",
            note: "episode so far".to_owned(),
            axis: "rate",
            percent: true,
            value: |r| r.hallucination,
            reference: Some((
                qos.max_hallucination,
                format!("max {}", percent_bound(qos.max_hallucination)),
                Bad::Above,
            )),
            include: (0.0, qos.max_hallucination + 0.03),
        },
    ];
    let slots = app.sim.info.as_ref().map_or(200, |i| i.slots);
    let lanes = app.visible();
    html! {
        <div class="charts">
            { for specs.iter().map(|s| chart(s, &lanes, slots, tour_target)) }
        </div>
    }
}

fn chart(
    spec: &Spec,
    lanes: &[(crate::entrants::Entrant, &[SlotRow])],
    slots: u32,
    tour_target: Option<&str>,
) -> Html {
    let mut lo = spec.include.0;
    let mut hi = spec.include.1;
    for (_, rows) in lanes {
        for v in rows.iter().filter_map(spec.value).filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let (y0, y1, step) = nice_range(lo.max(0.0), hi);
    let frame = Frame {
        slots: f64::from(slots.max(1)),
        y0,
        y1,
    };
    let label = |v: f64| {
        if spec.percent {
            let d = if step * 100.0 >= 1.0 { 0 } else { 1 };
            format!("{:.d$}", v * 100.0)
        } else {
            let d = if step >= 1.0 {
                0
            } else if step >= 0.1 {
                1
            } else {
                2
            };
            format!("{v:.d$}")
        }
    };
    let y_ticks = (0..=20)
        .map(|k| y0 + f64::from(k) * step)
        .take_while(|v| *v <= y1 + step * 1e-6)
        .map(|v| {
            let y = frame.y(v);
            html! {
                <g class="tick">
                    <line class="grid" x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(y)} y2={fmt(y)} />
                    <text class="y-label" x={fmt(LEFT - 5.0)} y={fmt(y + 3.5)}>{ label(v) }</text>
                </g>
            }
        });
    let x_step = if slots > 100 { 50 } else { 20 };
    let x_ticks = (0..=slots).step_by(x_step as usize).map(|s| {
        let x = frame.x(f64::from(s));
        html! {
            <g class="tick">
                <line class="axis" x1={fmt(x)} x2={fmt(x)} y1={fmt(H - BOTTOM)} y2={fmt(H - BOTTOM + 3.0)} />
                <text class="x-label" x={fmt(x)} y={fmt(H - BOTTOM + 15.0)}>{ s }</text>
            </g>
        }
    });
    let reference = spec.reference.as_ref().map(|(v, text, bad)| {
        let y = frame.y(*v);
        let (band_y, band_h) = match bad {
            Bad::Above => (TOP, (y - TOP).max(0.0)),
            Bad::Below => (y, (H - BOTTOM - y).max(0.0)),
        };
        let text_y = match bad {
            Bad::Above => y - 4.0,
            Bad::Below => y + 11.0,
        };
        html! {
            <g class="reference">
                <rect class="violation" x={fmt(LEFT)} y={fmt(band_y)} width={fmt(W - LEFT - RIGHT)} height={fmt(band_h)} />
                <line x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(y)} y2={fmt(y)} />
                <text x={fmt(W - RIGHT - 3.0)} y={fmt(text_y)}>{ text.clone() }</text>
            </g>
        }
    });
    let series = lanes.iter().map(|(id, rows)| {
        html! { <path class={classes!("series", id.css())} d={frame.path(rows, spec.value)} /> }
    });
    let empty = lanes.iter().all(|(_, rows)| rows.is_empty());
    let focus = (tour_target == Some(spec.id)).then_some("tour-focus");
    html! {
        <figure class={classes!("panel", "chart", focus)} id={spec.id}>
            <figcaption>
                <h2>{ spec.title }<span class="chart-note">{ format!(" · {}", spec.note) }</span></h2>
                if let Some((_, _, bad)) = &spec.reference {
                    <ul class="legend">
                        { legend_item("line", classes!("dashed"), "constraint") }
                        { legend_item("bar", classes!("violation"), match bad {
                            Bad::Above => "above breaks it",
                            Bad::Below => "below breaks it",
                        }) }
                    </ul>
                }
            </figcaption>
            <svg viewBox={format!("0 0 {W} {H}")} role="img"
                aria-label={format!("{} per policy over the episode ({})", spec.title, spec.axis)}>
                { for y_ticks }
                { for x_ticks }
                { for reference }
                <line class="axis" x1={fmt(LEFT)} x2={fmt(W - RIGHT)} y1={fmt(H - BOTTOM)} y2={fmt(H - BOTTOM)} />
                <line class="axis" x1={fmt(LEFT)} x2={fmt(LEFT)} y1={fmt(TOP)} y2={fmt(H - BOTTOM)} />
                <text class="axis-title" x={fmt(LEFT + (W - LEFT - RIGHT) / 2.0)} y={fmt(H - 3.0)}>
                    { "slot (1 slot = 1 s)" }
                </text>
                <text class="axis-title" transform={format!("translate(11 {}) rotate(-90)", fmt(TOP + (H - TOP - BOTTOM) / 2.0))}>
                    { if spec.percent { format!("{} (%)", spec.axis) } else { format!("latency ({})", spec.axis) } }
                </text>
                <g class="lines">{ for series }</g>
                if empty {
                    <text class="empty" x={fmt(LEFT + (W - LEFT - RIGHT) / 2.0)} y={fmt(H / 2.0)}>
                        { "waiting for the first slot…" }
                    </text>
                }
            </svg>
        </figure>
    }
}

struct Frame {
    slots: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, slot: f64) -> f64 {
        LEFT + (slot / self.slots).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        let span = (self.y1 - self.y0).max(1e-12);
        H - BOTTOM - ((v - self.y0) / span).clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    }

    /// An SVG path through the rows, broken wherever a row has no value.
    fn path(&self, rows: &[SlotRow], value: fn(&SlotRow) -> Option<f64>) -> String {
        let mut d = String::with_capacity(rows.len() * 12);
        let mut pen_down = false;
        for r in rows {
            match value(r).filter(|v| v.is_finite()) {
                Some(v) => {
                    let (x, y) = (self.x(f64::from(r.slot)), self.y(v));
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
