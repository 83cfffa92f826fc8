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

/// Latency of every offloaded query in the last slot, and the edge work left at the
/// start of the next one: what one device's leftover work can change in a later slot.
fn edge_cost(sim: &Simulator) -> f64 {
    let offloaded: f64 = sim
        .last_events()
        .iter()
        .filter(|e| e.action == Action::Offload)
        .map(|e| e.latency_s)
        .sum();
    let now = sim.now_s();
    offloaded
        + sim
            .edge_free_at()
            .iter()
            .map(|&f| (f - now).max(0.0))
            .sum::<f64>()
}

fn backlog(sim: &Simulator) -> f64 {
    let now = sim.now_s();
    sim.edge_free_at().iter().map(|&f| (f - now).max(0.0)).sum()
}

#[test]
fn next_slot_settlement_refunds_the_estimate_and_charges_the_delay_caused() {
    let credit = 0.7;
    let cat = Catalogue::default_catalogue();
    let mut slot_end = Simulator::new(config(credit), cat.clone(), 11).unwrap();
    let mut settled_cfg = config(credit);
    settled_cfg.reward.externality_settlement = mec::ExternalitySettlement::NextSlot;
    let mut settled = Simulator::new(settled_cfg, cat, 11).unwrap();
    let scale = settled.config().reward.latency_scale_s;
    let mut rng = Rng::new(3);
    // Per offloader of the previous slot: the world had it stayed away, and the
    // leftover-work estimate it was charged.
    let mut open: Vec<(usize, Simulator, f64)> = Vec::new();
    let (mut settled_count, mut refunded) = (0, 0);
    while !settled.done() {
        // Offload often enough to load the edge, but not always, so that some leftover
        // work meets no one.
        let p = 3 + (settled.slot() % 7) as u64;
        let actions: Vec<Action> = (0..settled.num_devices())
            .map(|_| {
                if rng.next_u64() % 10 < p {
                    Action::Offload
                } else {
                    Action::Local
                }
            })
            .collect();
        let before = settled.clone();
        let a = slot_end.step(&actions);
        let b = settled.step(&actions);
        assert_eq!(a, b, "settlement never changes the slot itself");
        assert_eq!(
            slot_end.agent_rewards(),
            settled.agent_rewards(),
            "the slot's own charges are the same estimate"
        );
        let mut late = vec![0.0; settled.num_devices()];
        for (u, mut without, carry) in open.drain(..) {
            without.step(&actions);
            let caused = edge_cost(&settled) - edge_cost(&without);
            late[u] = -credit * (caused - carry) / scale;
            settled_count += 1;
            refunded += usize::from(caused < carry - 1e-9);
        }
        for (u, (&got, &want)) in settled.late_rewards().iter().zip(&late).enumerate() {
            assert!(
                (got - want).abs() <= 1e-9 * (1.0 + want.abs()),
                "slot {} device {u}: late reward {got}, want {want}",
                before.slot()
            );
        }
        for u in 0..settled.num_devices() {
            if actions[u] == Action::Offload && before.devices()[u].pending > 0 {
                let mut without = before.clone();
                let mut alt = actions.clone();
                alt[u] = Action::Local;
                without.step(&alt);
                let carry = backlog(&settled) - backlog(&without);
                open.push((u, without, carry));
            }
        }
    }
    assert!(
        slot_end.late_rewards().iter().all(|&r| r == 0.0),
        "slot-end settlement has no late rewards"
    );
    assert!(
        settled_count > 100,
        "only {settled_count} settlements were checked"
    );
    assert!(
        refunded > 0,
        "some leftover work should delay the next slot less than the estimate"
    );
}

#[test]
fn the_batch_reports_each_simulators_late_rewards_even_across_an_episode_end() {
    use edgewise_env::VecEnv;
    let mut cfg = config(1.0);
    cfg.slots = 4;
    let cat = Catalogue::default_catalogue();
    let plain = mec::MecVecEnv::new(&cfg, &cat, 2, 1).unwrap();
    let mut late = vec![1.0; 2 * 60];
    assert!(
        !plain.late_rewards(&mut late),
        "slot-end settles nothing late"
    );
    assert!(late.iter().all(|&l| l == 0.0));

    cfg.reward.externality_settlement = mec::ExternalitySettlement::NextSlot;
    let mut env = mec::MecVecEnv::new(&cfg, &cat, 2, 1).unwrap();
    let n = 60;
    let mut obs = vec![0.0; 2 * n * env.obs_dim()];
    env.reset(5, &mut obs);
    let (mut rewards, mut dones) = (vec![0.0; 2 * n], vec![false; 2]);
    let actions = vec![1u32; 2 * n];
    let (mut ends, mut nonzero) = (0, 0);
    for _ in 0..10 {
        let mut twins: Vec<Simulator> = env.sims().to_vec();
        env.step(&actions, &mut obs, &mut rewards, &mut dones);
        assert!(env.late_rewards(&mut late));
        for (i, twin) in twins.iter_mut().enumerate() {
            twin.step(&vec![Action::Offload; n]);
            let want: Vec<f32> = twin.late_rewards().iter().map(|&l| l as f32).collect();
            assert_eq!(&late[i * n..(i + 1) * n], &want[..], "environment {i}");
            nonzero += want.iter().filter(|&&l| l != 0.0).count();
        }
        ends += dones.iter().filter(|&&d| d).count();
    }
    assert!(ends >= 4, "episodes should end within the run: {ends}");
    assert!(nonzero > 0, "a loaded edge should settle something");
}
