//! CSV export of a race: one row per slot and policy.

use std::fmt::Write as _;

use crate::entrants::Entrant;
use crate::scenario::{PageState, Scenario};
use crate::simulation::race::SlotRow;

/// Header line of the export.
pub const HEADER: &str = "episode,slot,policy,queries,latency_s,latency_avg10_s,energy_budget_used,devices_over_budget,accuracy,hallucination,offloaded";

/// The CSV text of `lanes` (each lane's rows of episode `episode`), preceded by a comment
/// line that names the scenario as a URL query.
#[must_use]
pub fn export(scenario: Scenario, episode: u64, lanes: &[(Entrant, &[SlotRow])]) -> String {
    let state = PageState {
        scenario,
        ..PageState::default()
    };
    let mut out = String::new();
    let _ = writeln!(out, "# edgewise race, scenario {}", state.to_query());
    let _ = writeln!(out, "{HEADER}");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for (id, rows) in lanes {
        for r in *rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{:.6},{:.6},{},{},{}",
                episode + 1,
                r.slot,
                id.key(),
                r.queries,
                opt(r.latency_s),
                opt(r.latency_avg_s),
                r.energy_frac,
                r.over_budget,
                opt(r.accuracy),
                opt(r.hallucination),
                opt(r.offload),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_with_the_header() {
        let row = SlotRow {
            slot: 3,
            queries: 2,
            latency_s: Some(1.5),
            latency_avg_s: None,
            energy_frac: 0.25,
            over_budget: 0.0,
            accuracy: Some(0.7),
            hallucination: Some(0.1),
            offload: Some(0.5),
        };
        let text = export(Scenario::default(), 0, &[(Entrant::Greedy, &[row])]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("# edgewise"));
        assert_eq!(lines[1], HEADER);
        assert_eq!(lines[2].split(',').count(), HEADER.split(',').count());
        assert!(lines[2].starts_with("1,3,greedy,2,1.500000,,"));
    }
}
