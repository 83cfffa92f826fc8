//! The metrics panel: episode latency, energy, answer quality against the QoS constraints,
//! and how much traffic went to the edge.

use yew::prelude::*;

use super::{fixed, percent, percent_bound};
use crate::model::Demo;

/// Whether a constrained metric meets its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    Missed,
    Unknown,
}

impl Verdict {
    fn at_least(value: f64, bound: f64, any: bool) -> Self {
        Self::judge(any && value.is_finite(), value >= bound)
    }

    fn at_most(value: f64, bound: f64, any: bool) -> Self {
        Self::judge(any && value.is_finite(), value <= bound)
    }

    fn judge(known: bool, ok: bool) -> Self {
        match (known, ok) {
            (false, _) => Self::Unknown,
            (true, true) => Self::Met,
            (true, false) => Self::Missed,
        }
    }

    fn css(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "missed",
            Self::Unknown => "unknown",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Met => "meets",
            Self::Missed => "misses",
            Self::Unknown => "target",
        }
    }
}

/// Render the metrics panel of `demo`.
pub fn view(demo: &Demo) -> Html {
    let m = demo.metrics();
    let qos = &demo.config().qos;
    let any = m.queries > 0;
    let mean = if any {
        fixed(m.mean_latency_s, 2)
    } else {
        "–".to_owned()
    };
    let p95 = if any {
        fixed(m.p95_latency_s, 2)
    } else {
        "–".to_owned()
    };
    let accuracy = Verdict::at_least(m.accuracy, qos.min_accuracy, any);
    let hallucination = Verdict::at_most(m.hallucination_rate, qos.max_hallucination, any);
    html! {
        <dl class="metrics">
            <div class="metric">
                <dt>{ "Mean latency" }</dt>
                <dd><span id="mean-latency" class="value">{ mean }</span><span class="unit">{ " s" }</span></dd>
            </div>
            <div class="metric">
                <dt>{ "95th percentile" }</dt>
                <dd><span id="p95-latency" class="value">{ p95 }</span><span class="unit">{ " s" }</span></dd>
            </div>
            <div class="metric">
                <dt>{ "Offloaded" }</dt>
                <dd><span class="value">{ if any { percent(m.offload_fraction, 0) } else { "–".to_owned() } }</span></dd>
                <dd class="note">{ format!("{} queries · {} dropped", m.queries, m.dropped) }</dd>
            </div>
            <div class="metric">
                <dt>{ "Energy budget violations" }</dt>
                <dd><span class="value">{ percent(m.energy_violation_rate, 1) }</span></dd>
                <dd class="note">{ "device windows over budget" }</dd>
            </div>
            <div class={classes!("metric", accuracy.css())}>
                <dt>{ "Accuracy" }</dt>
                <dd><span class="value">{ if any { percent(m.accuracy, 1) } else { "–".to_owned() } }</span></dd>
                <dd class="note">
                    <span class="badge">{ accuracy.text() }</span>
                    { format!(" ≥ {}", percent_bound(qos.min_accuracy)) }
                </dd>
            </div>
            <div class={classes!("metric", hallucination.css())}>
                <dt>{ "Hallucination" }</dt>
                <dd><span class="value">{ if any { percent(m.hallucination_rate, 1) } else { "–".to_owned() } }</span></dd>
                <dd class="note">
                    <span class="badge">{ hallucination.text() }</span>
                    { format!(" ≤ {}", percent_bound(qos.max_hallucination)) }
                </dd>
            </div>
        </dl>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::at_least(0.5, 0.4, true), Verdict::Met);
        assert_eq!(Verdict::at_least(0.3, 0.4, true), Verdict::Missed);
        assert_eq!(Verdict::at_least(0.5, 0.4, false), Verdict::Unknown);
        assert_eq!(Verdict::at_most(f64::NAN, 0.1, true), Verdict::Unknown);
        assert_eq!(Verdict::at_most(0.05, 0.1, true), Verdict::Met);
    }
}
