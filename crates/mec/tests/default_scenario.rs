//! The shipped scenario is tied to the shipped (measured) catalogue by documented rules;
//! these tests fail when one changes without the other.

use mec::{Catalogue, PolicyKind, SimConfig, Simulator};

/// Share-weighted accuracy and hallucination rate of the devices' installed variants.
fn local_quality(cfg: &SimConfig, cat: &Catalogue) -> (f64, f64) {
    let total: f64 = cfg.classes.iter().map(|c| c.share).sum();
    cfg.classes.iter().fold((0.0, 0.0), |(a, h), c| {
        let (_, v) = cat
            .get(&c.variant)
            .expect("installed variant in the catalogue");
        (
            a + c.share / total * v.accuracy,
            h + c.share / total * v.hallucination_rate,
        )
    })
}

#[test]
fn quality_constraints_follow_the_catalogue_rule() {
    // Rule (QosConfig docs): by quality alone, a schedule must offload at least 40 % and
    // at most 60 % of the queries.
    let cfg = SimConfig::default();
    let cat = Catalogue::default_catalogue();
    let (la, lh) = local_quality(&cfg, &cat);
    let (_, edge) = cat.get(&cfg.edge.variant).expect("edge variant");
    let a_min = la + 0.4 * (edge.accuracy - la);
    let h_max = lh + 0.6 * (edge.hallucination_rate - lh);
    assert!(
        (cfg.qos.min_accuracy - a_min).abs() < 0.005,
        "min_accuracy {} but the rule gives {a_min:.4}",
        cfg.qos.min_accuracy
    );
    assert!(
        (cfg.qos.max_hallucination - h_max).abs() < 0.005,
        "max_hallucination {} but the rule gives {h_max:.4}",
        cfg.qos.max_hallucination
    );
}

#[test]
fn energy_budgets_follow_the_catalogue_rule() {
    // Rule (DeviceClassConfig docs): 1.25 × the energy of answering a window's expected
    // queries locally with the installed variant, to two significant digits.
    let cfg = SimConfig::default();
    let cat = Catalogue::default_catalogue();
    let tokens = cfg.query.input_tokens_mean + cfg.query.output_tokens_mean;
    for c in &cfg.classes {
        let (_, v) = cat.get(&c.variant).unwrap();
        let jpt = v.per_class[&c.name].joules_per_token;
        let expected = 1.25 * cfg.arrival_rate * cfg.energy_window_slots as f64 * tokens * jpt;
        let rel = (c.energy_budget_j - expected).abs() / expected;
        assert!(
            rel < 0.05,
            "{}: budget {} J but the rule gives {expected:.3} J",
            c.name,
            c.energy_budget_j
        );
    }
}

#[test]
fn every_fixed_rule_breaks_a_constraint_and_the_oracle_does_not() {
    let cfg = SimConfig::default();
    let run = |kind| {
        let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), 10_000).unwrap();
        mec::run_episode(&mut sim, mec::scenario_baseline(kind, 10_000).as_mut())
    };
    let local = run(PolicyKind::AlwaysLocal);
    assert!(
        !local.accuracy_ok,
        "always-local should miss accuracy: {local:?}"
    );
    assert!(local.energy_violation_rate > 0.1, "{local:?}");
    let offload = run(PolicyKind::AlwaysOffload);
    assert!(
        !offload.hallucination_ok,
        "always-offload should break hallucination: {offload:?}"
    );
    let oracle = run(PolicyKind::Oracle);
    assert!(oracle.accuracy_ok && oracle.hallucination_ok, "{oracle:?}");
    assert!(oracle.reward > local.reward && oracle.reward > offload.reward);
}
