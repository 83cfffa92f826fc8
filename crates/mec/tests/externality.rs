//! The externality credit (`reward.externality_credit`) against a brute-force replay:
//! each offloader is charged exactly the others' extra latency plus the extra edge work
//! left for later, as found by stepping a clone of the simulator with that device kept
//! local; and nothing else about the slot changes.

use edgewise_rng::Rng;
use mec::{Action, Catalogue, SimConfig, Simulator};

fn config(credit: f64) -> SimConfig {
    let mut cfg = SimConfig {
        devices: 60,
        slots: 30,
        ..SimConfig::default()
    };
    cfg.reward.externality_credit = credit;
    cfg
}

/// Latency of the other devices' queries in the last slot, and the edge work left at the
/// start of the next one.
fn others_cost(sim: &Simulator, u: usize) -> f64 {
    let others: f64 = sim
        .last_events()
        .iter()
        .filter(|e| e.device as usize != u)
        .map(|e| e.latency_s)
        .sum();
    let now = sim.now_s();
    let backlog: f64 = sim.edge_free_at().iter().map(|&f| (f - now).max(0.0)).sum();
    others + backlog
}

#[test]
fn offloaders_pay_the_delay_they_cause_and_nothing_else_changes() {
    let credit = 0.7;
    let cat = Catalogue::default_catalogue();
    let mut plain = Simulator::new(config(0.0), cat.clone(), 5).unwrap();
    let mut credited = Simulator::new(config(credit), cat, 5).unwrap();
    let scale = credited.config().reward.latency_scale_s;
    let mut rng = Rng::new(9);
    let mut charged = 0;
    let mut positive = 0;
    while !plain.done() {
        // Mostly offload, so the edge congests and the credit has something to price.
        let actions: Vec<Action> = (0..plain.num_devices())
            .map(|_| {
                if rng.next_u64() % 10 < 8 {
                    Action::Offload
                } else {
                    Action::Local
                }
            })
            .collect();
        let before = credited.clone();
        let a = plain.step(&actions);
        let b = credited.step(&actions);
        assert_eq!(a, b, "the slot's own outcome never includes the credit");
        for u in 0..plain.num_devices() {
            let (r0, r1) = (plain.agent_rewards()[u], credited.agent_rewards()[u]);
            if actions[u] == Action::Local || before.devices()[u].pending == 0 {
                assert_eq!(r0, r1, "device {u} did not offload and pays nothing");
                continue;
            }
            let mut without = before.clone();
            let mut alt = actions.clone();
            alt[u] = Action::Local;
            without.step(&alt);
            let delay = others_cost(&credited, u) - others_cost(&without, u);
            let want = r0 - credit * delay / scale;
            assert!(
                (r1 - want).abs() <= 1e-9 * (1.0 + want.abs()),
                "slot {} device {u}: charged {} want {}",
                before.slot(),
                r0 - r1,
                r0 - want
            );
            charged += 1;
            positive += usize::from(delay > 1e-9);
        }
    }
    assert!(charged > 100, "only {charged} offloads were checked");
    assert!(
        positive * 2 > charged,
        "a congested edge should make most offloads cost the others something: {positive} of {charged}"
    );
}
