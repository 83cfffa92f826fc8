//! Simulator throughput in device-slots per second (100 devices, one core).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mec::{Action, Catalogue, PolicyKind, SimConfig, Simulator};

fn bench(c: &mut Criterion) {
    let cfg = SimConfig {
        devices: 100,
        slots: 1000,
        ..SimConfig::default()
    };
    let cat = Catalogue::default_catalogue();
    let mut g = c.benchmark_group("simulator");
    g.throughput(Throughput::Elements((cfg.devices * cfg.slots) as u64));
    g.bench_function("step/100-devices/always-offload", |b| {
        let actions = vec![Action::Offload; cfg.devices];
        b.iter_batched(
            || Simulator::new(cfg.clone(), cat.clone(), 7).unwrap(),
            |mut sim| {
                while !sim.done() {
                    sim.step(&actions);
                }
                sim
            },
            BatchSize::LargeInput,
        );
    });
    g.bench_function("step+observe+greedy/100-devices", |b| {
        b.iter_batched(
            || {
                (
                    Simulator::new(cfg.clone(), cat.clone(), 7).unwrap(),
                    mec::baseline(PolicyKind::Greedy, 1),
                )
            },
            |(mut sim, mut pol)| {
                let mut obs = vec![0f32; cfg.devices * mec::OBS_DIM];
                let mut actions = vec![Action::Offload; cfg.devices];
                while !sim.done() {
                    sim.observe(&mut obs);
                    pol.decide(&sim, &mut actions);
                    sim.step(&actions);
                }
                sim
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
