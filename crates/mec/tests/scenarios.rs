//! The scenario presets and processes of issue 16 (bursts, background edge load, long
//! tight budgets, per-query difficulty): validated field by field, deterministic, drawn
//! exogenously (the same for every policy), and off by default without changing anything.

use mec::{Action, Catalogue, Policy, PolicyKind, SimConfig, Simulator};

fn short(mut c: SimConfig, devices: usize) -> SimConfig {
    c.devices = devices;
    c.slots = 80;
    c
}

#[test]
fn presets_are_valid_named_and_distinct() {
    let all = mec::presets();
    assert_eq!(all[0].name, "default");
    assert_eq!(all[0].config, SimConfig::default());
    for (i, p) in all.iter().enumerate() {
        p.config
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        assert!(!p.description.is_empty());
        assert_eq!(mec::preset(p.name).unwrap(), p.config);
        for q in &all[..i] {
            assert_ne!(q.name, p.name);
            assert_ne!(q.config, p.config, "{} and {} are the same", q.name, p.name);
        }
        // Every preset round-trips through TOML (the web and files can carry it).
        let text = toml::to_string(&p.config).unwrap();
        assert_eq!(
            SimConfig::from_toml_str(&text).unwrap(),
            p.config,
            "{}",
            p.name
        );
    }
    let e = mec::preset("calm").unwrap_err().to_string();
    assert!(
        e.contains("calm") && e.contains("bursty") && e.contains("foresight"),
        "{e}"
    );
}

#[test]
fn new_fields_are_validated_by_name() {
    let cases: [(&str, &str, &str); 9] = [
        ("[bursts]\nfactor = 0.5\n", "bursts.factor", "[1, 100]"),
        (
            "[bursts]\nfactor = 3.0\nenter_prob = 1.5\n",
            "bursts.enter_prob",
            "[0, 1]",
        ),
        (
            "[bursts]\nfactor = 3.0\nexit_prob = 0.0\n",
            "bursts.exit_prob",
            "(0, 1]",
        ),
        (
            "arrival_rate = 20.0\n[bursts]\nfactor = 50.0\nenter_prob = 0.1\nexit_prob = 0.9\n",
            "bursts.factor",
            "≤ 30",
        ),
        (
            "[edge]\nbackground_load = 0.95\n",
            "edge.background_load",
            "[0, 0.9]",
        ),
        (
            "[edge]\nbackground_load_sigma = -0.1\n",
            "edge.background_load_sigma",
            "[0, 0.5]",
        ),
        (
            "[edge]\nbackground_load_correlation = 1.0\n",
            "edge.background_load_correlation",
            "[0, 1)",
        ),
        (
            "[query]\ndifficulty_sigma = 9.0\n",
            "query.difficulty_sigma",
            "[0, 5]",
        ),
        ("[bursts]\nfactr = 2.0\n", "factr", ""),
    ];
    for (text, field, expected) in cases {
        let e = SimConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains(expected), "{text:?}: {e}");
    }
    // NaN is out of range too.
    let mut c = SimConfig::default();
    c.edge.background_load = f64::NAN;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("edge.background_load")
    );
}

#[test]
fn every_preset_is_deterministic() {
    for p in mec::presets() {
        let cfg = short(p.config.clone(), 25);
        let run = |seed| {
            let mut sim =
                Simulator::new(cfg.clone(), Catalogue::default_catalogue(), seed).unwrap();
            let mut pol = mec::scenario_baseline(PolicyKind::Greedy, seed);
            mec::trajectory_digest(&mut sim, pol.as_mut())
        };
        assert_eq!(run(3), run(3), "{}", p.name);
        assert_ne!(run(3), run(4), "{}", p.name);
    }
}

/// Everything exogenous a policy faces each slot: arrivals with their sizes and
/// difficulty, channels, the burst state and the edge's background load.
fn exogenous_trace(cfg: &SimConfig, policy: &mut dyn Policy) -> Vec<u64> {
    let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), 17).unwrap();
    let mut actions = vec![Action::Local; cfg.devices];
    let mut trace = Vec::new();
    while !sim.done() {
        for q in sim.pending_queries() {
            trace.extend([
                u64::from(q.device),
                u64::from(q.input_tokens),
                u64::from(q.output_tokens),
                q.uplink_bits.to_bits(),
                q.difficulty.to_bits(),
            ]);
        }
        for d in sim.devices() {
            trace.push(d.channel_gain_db.to_bits());
        }
        trace.push(u64::from(sim.in_burst()));
        trace.push(sim.background_load().to_bits());
        policy.decide(&sim, &mut actions);
        sim.step(&actions);
    }
    trace
}

#[test]
fn exogenous_draws_are_the_same_whatever_the_policy() {
    for p in mec::presets() {
        let cfg = short(p.config.clone(), 30);
        let traces: Vec<Vec<u64>> = PolicyKind::ALL
            .iter()
            .map(|&k| exogenous_trace(&cfg, mec::baseline(k, 5).as_mut()))
            .collect();
        for (k, t) in PolicyKind::ALL.iter().zip(&traces).skip(1) {
            assert!(*t == traces[0], "{}: {k} faced another future", p.name);
        }
    }
}

#[test]
fn scenario_processes_show_up_where_they_are_on() {
    let get = |name: &str| short(mec::preset(name).unwrap(), 30);
    let mut pol = mec::baseline(PolicyKind::Greedy, 0);
    let summarise = |cfg: &SimConfig, pol: &mut dyn Policy| {
        let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), 2).unwrap();
        let (mut bursts, mut load, mut hard) = (0, 0.0f64, 0usize);
        let mut actions = vec![Action::Local; cfg.devices];
        while !sim.done() {
            bursts += usize::from(sim.in_burst());
            load = load.max(sim.background_load());
            hard += sim
                .pending_queries()
                .iter()
                .filter(|q| q.difficulty != 0.0)
                .count();
            pol.decide(&sim, &mut actions);
            sim.step(&actions);
        }
        (bursts, load, hard)
    };
    assert_eq!(summarise(&get("default"), pol.as_mut()), (0, 0.0, 0));
    assert!(summarise(&get("bursty"), pol.as_mut()).0 > 0);
    assert!(summarise(&get("edge-load"), pol.as_mut()).1 > 0.2);
    assert!(summarise(&get("hard-queries"), pol.as_mut()).2 > 0);
    let f = summarise(&get("foresight"), pol.as_mut());
    assert!(f.0 > 0 && f.1 > 0.2 && f.2 > 0, "{f:?}");
}

#[test]
fn background_load_slows_the_edge_and_difficulty_moves_accuracy() {
    let mut cfg = short(SimConfig::default(), 10);
    cfg.edge.background_load = 0.5;
    let sim = Simulator::new(cfg, Catalogue::default_catalogue(), 1).unwrap();
    let plain = Simulator::new(
        short(SimConfig::default(), 10),
        Catalogue::default_catalogue(),
        1,
    )
    .unwrap();
    assert!((sim.edge_service_s(100, 50) - 2.0 * plain.edge_service_s(100, 50)).abs() < 1e-9);

    // With difficulty, the accuracy the episode records is the per-query expectation.
    let cfg = short(mec::preset("hard-queries").unwrap(), 20);
    let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), 6).unwrap();
    let (edge_acc, _) = sim.edge_quality();
    let mut expected = 0.0;
    while !sim.done() {
        for q in sim.pending_queries() {
            expected += mec::query_accuracy(edge_acc, q.difficulty);
        }
        sim.step(&[Action::Offload; 20]);
    }
    let m = sim.metrics();
    let dropped = m.dropped;
    assert_eq!(dropped, 0);
    assert!(
        (m.accuracy * m.queries as f64 - expected).abs() < 1e-6,
        "{} vs {expected}",
        m.accuracy * m.queries as f64
    );
    assert!((m.accuracy - edge_acc).abs() > 1e-3);
}
