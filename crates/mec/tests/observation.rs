//! The observation is fit for a learner trained at one population and run at another
//! (issue 16): no feature is constant within a run, every feature covers overlapping
//! ranges at 10, 20, 50 and 100 devices, the greedy rule's inputs are exact, and
//! announcements made earlier in a slot reach the devices deciding after them.

use mec::{
    Action, Catalogue, OBS_DIM, OBS_FEATURES, PolicyKind, SimConfig, Simulator, symexp, symlog,
};

const POPULATIONS: [usize; 4] = [10, 20, 50, 100];

fn feature(name_start: &str) -> usize {
    OBS_FEATURES
        .iter()
        .position(|f| f.starts_with(name_start))
        .unwrap_or_else(|| panic!("no feature named {name_start:?}"))
}

/// Observations of the deciding devices over a few episodes at population `n`, decided
/// sequentially in broadcast order with the greedy baseline's choices announced in turn
/// (so the "announced this slot" features move too), one `Vec` per feature.
fn active_rows(n: usize) -> Vec<Vec<f32>> {
    let mut per_feature = vec![Vec::new(); OBS_DIM];
    for seed in 0..3u64 {
        let cfg = SimConfig {
            devices: n,
            slots: 120,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), 100 + seed).unwrap();
        let mut greedy = mec::baseline(PolicyKind::Greedy, 0);
        let mut actions = vec![Action::Local; n];
        let mut order = Vec::new();
        let mut row = [0f32; OBS_DIM];
        while !sim.done() {
            greedy.decide(&sim, &mut actions);
            sim.broadcast_order(&mut order);
            for &u in &order {
                sim.observe_device(u, &mut row);
                for (f, &x) in row.iter().enumerate() {
                    per_feature[f].push(x);
                }
                sim.commit(u, actions[u]);
            }
            sim.step(&actions);
        }
    }
    per_feature
}

fn quantile(v: &[f32], q: f64) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn no_feature_is_constant_and_ranges_overlap_across_populations() {
    let rows: Vec<Vec<Vec<f32>>> = POPULATIONS.iter().map(|&n| active_rows(n)).collect();
    for f in 0..OBS_DIM {
        let mut ranges = Vec::new();
        for (p, &n) in POPULATIONS.iter().enumerate() {
            let v = &rows[p][f];
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{} at N={n}",
                OBS_FEATURES[f]
            );
            let (lo, hi) = (quantile(v, 0.0), quantile(v, 1.0));
            // Compressive transforms keep every feature within a few units.
            assert!(
                lo >= -6.0 && hi <= 6.0,
                "feature {f} ({}) spans [{lo}, {hi}] at N={n}",
                OBS_FEATURES[f]
            );
            ranges.push((lo, hi, n));
        }
        // A feature may rest at one population (the edge never queues at N=10) but it
        // must carry information somewhere.
        assert!(
            ranges.iter().any(|r| r.1 - r.0 > 1e-4),
            "feature {f} ({}) is constant at every population: {ranges:?}",
            OBS_FEATURES[f]
        );
        // Today's defect was `N / 100`: constant within a run and different at every
        // population, so a normaliser fitted at one N maps it out of range at another.
        // Every population's values must overlap every other's.
        for a in &ranges {
            for b in &ranges {
                assert!(
                    a.0 <= b.1 && b.0 <= a.1,
                    "feature {f} ({}): N={} covers [{}, {}] but N={} covers [{}, {}]",
                    OBS_FEATURES[f],
                    a.2,
                    a.0,
                    a.1,
                    b.2,
                    b.0,
                    b.1
                );
            }
        }
    }
}

#[test]
fn expected_local_latency_is_what_running_locally_takes() {
    let cfg = SimConfig {
        devices: 30,
        slots: 40,
        arrival_rate: 0.4,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), 7).unwrap();
    let local = feature("expected local latency");
    let mut obs = vec![0f32; 30 * OBS_DIM];
    let mut checked = 0;
    while !sim.done() {
        sim.observe(&mut obs);
        let expected: Vec<f64> = (0..30)
            .map(|u| symexp(f64::from(obs[u * OBS_DIM + local])))
            .collect();
        sim.step(&[Action::Local; 30]);
        for (u, &exp) in expected.iter().enumerate() {
            let worst = sim
                .last_events()
                .iter()
                .filter(|e| e.device as usize == u && !e.dropped)
                .map(|e| e.latency_s)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            if let Some(w) = worst {
                assert!(
                    (w - exp).abs() <= 1e-5 * w.max(1.0),
                    "device {u}: ran {w} s, expected {exp} s"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} devices checked");
}

#[test]
fn expected_offload_latency_includes_the_own_edge_service() {
    let cfg = SimConfig {
        devices: 20,
        slots: 30,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), 3).unwrap();
    let (off, up, wait, service) = (
        feature("expected offload latency"),
        feature("expected uplink time"),
        feature("edge wait"),
        feature("edge service time of pending"),
    );
    let mut obs = vec![0f32; 20 * OBS_DIM];
    let mut checked = 0;
    while !sim.done() {
        sim.observe(&mut obs);
        for u in 0..20 {
            if sim.devices()[u].pending != 1 {
                continue;
            }
            let o = &obs[u * OBS_DIM..(u + 1) * OBS_DIM];
            let x = |i: usize| symexp(f64::from(o[i]));
            // One query: uplink while waiting for a worker, then its own service, then
            // the (short) downlink.
            let q = sim.pending_of(u)[0];
            let parts = x(up).max(x(wait)) + x(service) + sim.downlink_s(q.output_tokens);
            assert!(
                (x(off) - parts).abs() <= 1e-4 * parts.max(1.0) + 1e-5,
                "{} vs {parts}",
                x(off)
            );
            checked += 1;
        }
        sim.step(&[Action::Offload; 20]);
    }
    assert!(checked > 20, "only {checked} devices checked");
}

#[test]
fn an_announced_offload_reaches_the_next_device() {
    let cfg = SimConfig {
        devices: 40,
        slots: 10,
        arrival_rate: 0.5,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), 5).unwrap();
    let mut order = Vec::new();
    sim.broadcast_order(&mut order);
    assert!(order.len() >= 2, "{order:?}");
    let (first, second) = (order[0], order[1]);
    let (announced, work, off) = (
        feature("offloads announced"),
        feature("edge work announced"),
        feature("expected offload latency"),
    );
    let mut before = [0f32; OBS_DIM];
    let mut after = [0f32; OBS_DIM];
    sim.observe_device(second, &mut before);
    assert_eq!(before[announced], 0.0);
    assert_eq!(before[work], 0.0);
    // A local announcement claims nothing on the shared side.
    sim.commit(first, Action::Local);
    sim.observe_device(second, &mut after);
    assert_eq!(before, after);
    // An offload claims uplink share and edge work.
    let mut sim2 = Simulator::new(sim.config().clone(), Catalogue::default_catalogue(), 5).unwrap();
    sim2.commit(first, Action::Offload);
    sim2.observe_device(second, &mut after);
    assert!((after[announced] - 1.0 / 40.0).abs() < 1e-6);
    let q_work: f64 = sim2
        .pending_of(first)
        .iter()
        .map(|q| sim2.edge_service_s(q.input_tokens, q.output_tokens))
        .sum();
    assert!((f64::from(after[work]) - symlog(q_work / 6.0)).abs() < 1e-5);
    assert!(
        after[off] >= before[off],
        "{} < {}",
        after[off],
        before[off]
    );
    assert_eq!(sim2.commitments().offloaders, 1);
    // The plain observation of the same state shows the announcement too, and a step
    // forgets it.
    let mut all = vec![0f32; 40 * OBS_DIM];
    sim2.observe(&mut all);
    assert_eq!(&all[second * OBS_DIM..(second + 1) * OBS_DIM], &after[..]);
    sim2.step(&[Action::Local; 40]);
    assert!(sim2.commitments().is_empty());
}

#[test]
fn broadcast_order_is_a_fair_permutation_independent_of_actions() {
    let cfg = SimConfig {
        devices: 30,
        slots: 50,
        arrival_rate: 0.5,
        ..SimConfig::default()
    };
    let run = |action: Action| {
        let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), 9).unwrap();
        let mut orders = Vec::new();
        let mut firsts = [0usize; 30];
        while !sim.done() {
            let mut o = Vec::new();
            sim.broadcast_order(&mut o);
            let mut sorted = o.clone();
            sorted.sort_unstable();
            let active: Vec<usize> = (0..30).filter(|&u| sim.devices()[u].pending > 0).collect();
            assert_eq!(sorted, active);
            if let Some(&f) = o.first() {
                firsts[f] += 1;
            }
            orders.push(o);
            sim.step(&[action; 30]);
        }
        (orders, firsts)
    };
    let (a, firsts) = run(Action::Local);
    let (b, _) = run(Action::Offload);
    assert_eq!(a, b);
    // Not index order: many different devices get to decide first.
    assert!(firsts.iter().filter(|&&c| c > 0).count() > 10, "{firsts:?}");
}
