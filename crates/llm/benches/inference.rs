//! Prefill and decode speed on the shipped model (`cargo xtask setup` first).
//!
//! candle sizes its CPU thread pool once per process from `RAYON_NUM_THREADS` (or
//! `CANDLE_NUM_THREADS`), so compare thread counts with separate runs:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench -p edgewise-llm --bench inference
//! RAYON_NUM_THREADS=2 cargo bench -p edgewise-llm --bench inference
//! ```
//!
//! Throughput is reported in elements = tokens per second.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgewise_llm::{Device, Engine, model_cache};

const PREFILL_TOKENS: usize = 512;
const DECODE_CONTEXT: usize = 64;
const DECODE_TOKENS: usize = 64;

fn engine() -> Engine {
    let path = model_cache::default_model_path().unwrap_or_else(|e| panic!("{e}"));
    Engine::from_path(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
}

fn prompt(e: &Engine, n: usize) -> Vec<u32> {
    let text = "Mobile edge computing lets phones offload language-model queries to a nearby \
                server when the radio channel is good, and answer locally otherwise. ";
    let ids = e
        .tokenizer
        .encode(&text.repeat(n / 8 + 1), false)
        .expect("encode");
    ids[..n].to_vec()
}

fn bench(c: &mut Criterion) {
    let e = engine();
    let threads = candle_core::utils::get_num_threads();
    let mut g = c.benchmark_group(format!("smollm2-135m-q4_1/threads={threads}"));
    g.sample_size(10).warm_up_time(Duration::from_secs(2));

    let long = prompt(&e, PREFILL_TOKENS);
    g.throughput(Throughput::Elements(PREFILL_TOKENS as u64));
    g.measurement_time(Duration::from_secs(20));
    g.bench_function(format!("prefill/{PREFILL_TOKENS}"), |b| {
        b.iter(|| {
            let mut cache = e.model.new_cache();
            e.model.forward(&long, &mut cache).expect("forward")
        });
    });

    let ctx = prompt(&e, DECODE_CONTEXT);
    let mut base = e.model.new_cache();
    let first = e.model.forward(&ctx, &mut base).expect("prefill");
    let first = edgewise_llm::model::argmax(&first).expect("argmax");
    g.throughput(Throughput::Elements(DECODE_TOKENS as u64));
    g.measurement_time(Duration::from_secs(15));
    g.bench_function(
        format!("decode/{DECODE_TOKENS}-after-{DECODE_CONTEXT}"),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut cache = base.clone();
                    let mut next = first;
                    let start = Instant::now();
                    for _ in 0..DECODE_TOKENS {
                        let logits = e.model.forward(&[next], &mut cache).expect("decode");
                        next = edgewise_llm::model::argmax(&logits).expect("argmax");
                    }
                    total += start.elapsed();
                }
                total
            });
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
