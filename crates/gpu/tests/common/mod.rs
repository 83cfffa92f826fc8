//! Shared by the GPU tests: one device per test binary, and the rule for a machine
//! without an adapter.
#![allow(dead_code)]

use std::sync::OnceLock;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};
use edgewise_gpu::kernels::Kernels;
use edgewise_gpu::{GpuContext, GpuWeights, WeightType};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Set to 1 (CI does) to make a missing adapter a failure rather than a skip.
pub const REQUIRE_GPU: &str = "EDGEWISE_REQUIRE_GPU";

/// The device and compiled kernels, or `None` (after saying so on stderr) when this
/// machine has no adapter and [`REQUIRE_GPU`] is not set.
///
/// # Panics
/// When no adapter is found and [`REQUIRE_GPU`] is 1, or the kernels do not compile.
pub fn gpu() -> Option<&'static (GpuContext, Kernels)> {
    static GPU: OnceLock<Option<(GpuContext, Kernels)>> = OnceLock::new();
    GPU.get_or_init(|| match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("GPU tests run on {} ({})", ctx.adapter(), ctx.reason());
            let k =
                Kernels::new(&ctx).unwrap_or_else(|e| panic!("the kernels do not compile: {e}"));
            Some((ctx, k))
        }
        Err(e) => {
            if std::env::var(REQUIRE_GPU).is_ok_and(|v| v == "1") {
                panic!(
                    "{REQUIRE_GPU}=1 but {e}. On Debian: apt-get install mesa-vulkan-drivers \
                     libvulkan1, and VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
                );
            }
            eprintln!("SKIPPED (no GPU adapter, {REQUIRE_GPU} unset): {e}");
            None
        }
    })
    .as_ref()
}

/// Seeded uniform values in `[-scale, scale)`.
pub fn uniform(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            #[allow(clippy::cast_precision_loss)]
            let u = (rng.next_u32() >> 8) as f32 / 16_777_216.0;
            (u * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A random `(rows, cols)` matrix quantized to `ty` by candle, re-laid for the GPU, and
/// candle's own dequantisation of it (the oracle's weights).
pub fn weights(seed: u64, ty: WeightType, rows: usize, cols: usize) -> (GpuWeights, Vec<f32>) {
    let v = uniform(seed, rows * cols, 1.0);
    let t = Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, ty.ggml()).unwrap();
    let gw = GpuWeights::from_qtensor("test", &q).unwrap();
    let deq = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    (gw, deq)
}

/// Asserts `|a - b| <= tol · (1 + |b|)` elementwise.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: element {i}: GPU {x} vs reference {y} (tolerance {tol})"
        );
    }
}
