//! The headroom table (issue 16): greedy, the oracle and the clairvoyant planner at 10,
//! 20, 50 and 100 devices on seeds 10000–10004, for the default scenario and the
//! presets, printed as markdown (progress on stderr).
//!
//! ```text
//! cargo run --release -p edgewise-mec --example headroom -- [PRESET ...] > table.md
//! ```
//!
//! Each run is the one `edgewise simulate --preset P --devices N --seed S --policy K`
//! makes (same baseline seeding), so any cell can be reproduced from the CLI.

use std::time::Instant;

use mec::{Catalogue, EpisodeMetrics, PolicyKind, Simulator};

const POPULATIONS: [usize; 4] = [10, 20, 50, 100];
const SEEDS: [u64; 5] = [10_000, 10_001, 10_002, 10_003, 10_004];
const KINDS: [PolicyKind; 3] = [PolicyKind::Greedy, PolicyKind::Oracle, PolicyKind::Planner];

/// Means over the seeds of one policy at one population.
#[derive(Default, Clone, Copy)]
struct Cell {
    reward: f64,
    latency: f64,
    qos_met: usize,
    energy_violation: f64,
    cpu_s: f64,
}

fn run(cfg: &mec::SimConfig, kind: PolicyKind, seed: u64) -> (EpisodeMetrics, f64) {
    let t = Instant::now();
    let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), seed)
        .expect("presets are valid");
    let mut policy = mec::scenario_baseline(kind, seed);
    let m = mec::run_episode(&mut sim, policy.as_mut());
    (m, t.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let presets: Vec<mec::Preset> = mec::presets()
        .into_iter()
        .filter(|p| args.is_empty() || args.iter().any(|a| a == p.name))
        .collect();
    if presets.is_empty() {
        eprintln!(
            "no preset matches {args:?}; known: {}",
            mec::presets()
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::process::exit(2);
    }
    let mut summary = Vec::new();
    for p in &presets {
        println!("\n### `{}`: {}\n", p.name, p.description);
        println!(
            "| N | greedy reward | oracle reward | planner reward | planner vs oracle | greedy latency (s) | oracle latency (s) | planner latency (s) | greedy QoS met | oracle QoS met | planner QoS met | greedy E viol | oracle E viol | planner E viol |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &n in &POPULATIONS {
            let mut cfg = p.config.clone();
            cfg.devices = n;
            let mut cells = [Cell::default(); 3];
            for (cell, &kind) in cells.iter_mut().zip(&KINDS) {
                for &seed in &SEEDS {
                    let (m, secs) = run(&cfg, kind, seed);
                    let k = SEEDS.len() as f64;
                    cell.reward += m.reward / k;
                    cell.latency += m.mean_latency_s / k;
                    cell.energy_violation += m.energy_violation_rate / k;
                    cell.qos_met += usize::from(m.accuracy_ok && m.hallucination_ok);
                    cell.cpu_s += secs;
                }
                eprintln!(
                    "{} N={n} {kind}: reward {:.4} ({:.1} s)",
                    p.name, cell.reward, cell.cpu_s
                );
            }
            let [g, o, pl] = cells;
            let gain = 100.0 * (pl.reward - o.reward) / o.reward.abs();
            summary.push((p.name, n, gain));
            println!(
                "| {n} | {:.4} | {:.4} | {:.4} | {:+.1}% | {:.2} | {:.2} | {:.2} | {}/{} | {}/{} | {}/{} | {:.1}% | {:.1}% | {:.1}% |",
                g.reward,
                o.reward,
                pl.reward,
                gain,
                g.latency,
                o.latency,
                pl.latency,
                g.qos_met,
                SEEDS.len(),
                o.qos_met,
                SEEDS.len(),
                pl.qos_met,
                SEEDS.len(),
                100.0 * g.energy_violation,
                100.0 * o.energy_violation,
                100.0 * pl.energy_violation,
            );
        }
    }
    println!("\n### Planner's gain over the oracle (reward per slot)\n");
    print!("| scenario |");
    for n in POPULATIONS {
        print!(" N={n} |");
    }
    println!();
    println!("|---|{}", "---:|".repeat(POPULATIONS.len()));
    for p in &presets {
        print!("| {} |", p.name);
        for &(name, n, gain) in &summary {
            if name == p.name {
                let _ = n;
                print!(" {gain:+.1}% |");
            }
        }
        println!();
    }
}
