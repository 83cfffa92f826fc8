//! The scoreboard: every running policy's episode so far against the constraints.

use yew::prelude::*;

use crate::app::App;
use crate::format::{fixed, percent_bound};

/// Render the scoreboard.
pub fn view(app: &App) -> Html {
    let qos = app.state.scenario.config().qos;
    let rows = app.sim.metrics.iter().map(|(id, m)| {
        let any = m.queries > 0;
        let dash = || "–".to_owned();
        // Units live in the column headers, so eight columns fit beside the network view.
        let pct = |x: f64, decimals: usize| fixed(100.0 * x, decimals);
        let verdict = |ok: bool| {
            if !any {
                html! {}
            } else if ok {
                html! { <span class="badge met" title="meets the constraint">{ "✓" }</span> }
            } else {
                html! { <span class="badge missed" title="misses the constraint">{ "✗" }</span> }
            }
        };
        html! {
            <tr class={classes!(id.css(), app.hidden.contains(id).then_some("hidden-lane"))}
                id={format!("score-{}", id.key())}>
                <th scope="row"><span class="swatch line" aria-hidden="true"></span>{ id.label() }</th>
                <td class="num">{ if any { fixed(m.mean_latency_s, 2) } else { dash() } }</td>
                <td class="num">{ if any { fixed(m.p95_latency_s, 1) } else { dash() } }</td>
                <td class="num">{ if any { pct(m.offload_fraction, 0) } else { dash() } }</td>
                <td class={classes!("num", (m.energy_violation_rate > 0.0).then_some("bad"))}>
                    { pct(m.energy_violation_rate, 1) }
                </td>
                <td class="num">{ if any { pct(m.accuracy, 1) } else { dash() } }{ " " }{ verdict(m.accuracy_ok) }</td>
                <td class="num">{ if any { pct(m.hallucination_rate, 1) } else { dash() } }{ " " }{ verdict(m.hallucination_ok) }</td>
                <td class="num">{ format!("{} / {}", m.dropped, m.queries) }</td>
            </tr>
        }
    });
    html! {
        <>
            <h2 id="scores-title">{ "Episode so far" }</h2>
            <p class="panel-sub">
                { format!("Constraints: accuracy ≥ {}, hallucination ≤ {}, \
                           energy within each device's budget per window.",
                    percent_bound(qos.min_accuracy), percent_bound(qos.max_hallucination)) }
            </p>
            <div class="table-scroll">
                <table class="scores">
                    <thead>
                        <tr>
                            <th scope="col">{ "policy" }</th>
                            <th scope="col" title="mean latency per question, seconds">{ "latency (s)" }</th>
                            <th scope="col" title="95th-percentile latency, seconds">{ "p95 (s)" }</th>
                            <th scope="col" title="share of questions sent to the edge, %">{ "offload %" }</th>
                            <th scope="col" title="device energy windows over their budget, %">{ "over budget %" }</th>
                            <th scope="col" title="answers judged correct, %">{ "accuracy %" }</th>
                            <th scope="col" title="answers judged hallucinated, %">{ "halluc. %" }</th>
                            <th scope="col" title="dropped (over the latency cap) / questions">{ "dropped" }</th>
                        </tr>
                    </thead>
                    <tbody>{ for rows }</tbody>
                </table>
            </div>
        </>
    }
}
