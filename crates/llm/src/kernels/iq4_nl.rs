//! The IQ4_NL × Q8_0 matrix product (candle has no IQ4_NL type, so nothing to match bit
//! for bit: this module is its own reference, and every path gives the portable path's
//! bits).
//!
//! * Activations are quantized to Q8_0 blocks as ggml does: `d = amax / 127` stored as
//!   f16, `q = round(x / d)`.
//! * Each block's `Σ CODEBOOK[idx]·q` is an exact integer (|·| ≤ 32·127·127), however the
//!   SIMD paths group it.
//! * Blocks are combined in order, `acc + (dw·dx)·sumᵢ`, with no fused multiply-add, one
//!   weight row per lane.
//!
//! Paths: portable; AVX2 chosen at run time (`pshufb` looks the indices up in the
//! codebook, the signed×signed products go through `maddubs` with the sign moved onto the
//! activations); and the wasm `simd128` lane kernel over [`Lanes`] (its `lookup` is
//! `i8x16_swizzle`), which native tests run on the emulated lanes. Rows are split over
//! candle's thread pool by the Q4_1 kernel's [`gemm`].

use candle_core::{Device, Tensor};
use zerocopy::FromZeros;

use super::simd128::Lanes;
use super::{BlockQ80, Dot8, QK, gemm, quantize_row_q8_0};
use crate::error::{Error, Result};
use crate::iq4_nl::{BlockIq4Nl, CODEBOOK, Iq4NlMatrix};

/// `Σ CODEBOOK[idx]·q` over one block pair, exact.
fn block_dot(w: &BlockIq4Nl, y: &BlockQ80) -> i32 {
    let (lo, hi) = y.qs.split_at(QK / 2);
    let mut s = 0i32;
    for ((&q, &a), &b) in w.qs.iter().zip(lo).zip(hi) {
        s += i32::from(CODEBOOK[usize::from(q & 0x0F)]) * i32::from(a)
            + i32::from(CODEBOOK[usize::from(q >> 4)]) * i32::from(b);
    }
    s
}

/// One block's contribution: `acc + (dw·dx)·sumi`.
#[inline]
fn combine(acc: f32, sumi: i32, w: &BlockIq4Nl, y: &BlockQ80) -> f32 {
    #[allow(clippy::cast_precision_loss)]
    let t = w.scale() * y.d * sumi as f32;
    acc + t
}

fn row_dot_portable(w: &[BlockIq4Nl], y: &[BlockQ80]) -> f32 {
    w.iter()
        .zip(y)
        .fold(0f32, |acc, (w, y)| combine(acc, block_dot(w, y), w, y))
}

/// Eight (or fewer) weight rows `w` against activation rows `y` (`kb` blocks each):
/// `out[j·8 + i]` = row `i` · activation `j`.
fn dot8_portable(w: &[BlockIq4Nl], y: &[BlockQ80], kb: usize, out: &mut [f32]) {
    for (yr, o) in y.chunks_exact(kb).zip(out.chunks_mut(8)) {
        for (row, o) in w.chunks_exact(kb).zip(o) {
            *o = row_dot_portable(row, yr);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    #![allow(unsafe_code)]
    use std::arch::x86_64::{
        __m128i, __m256i, _mm_and_si128, _mm_set1_epi8, _mm_shuffle_epi8, _mm_srli_epi16,
        _mm256_add_epi32, _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_hadd_epi32, _mm256_madd_epi16,
        _mm256_maddubs_epi16, _mm256_mul_ps, _mm256_permute2x128_si256, _mm256_set_m128i,
        _mm256_set1_epi16, _mm256_set1_ps, _mm256_setzero_ps, _mm256_sign_epi8,
    };

    use super::super::avx2::halves;
    use super::{BlockIq4Nl, BlockQ80, CODEBOOK};

    /// A block's 32 weights as signed levels, in the order of the activation block.
    #[target_feature(enable = "avx2")]
    fn unpack(w: &BlockIq4Nl) -> __m256i {
        let table: __m128i = zerocopy::transmute!(CODEBOOK);
        let mask = _mm_set1_epi8(0x0F);
        let q: __m128i = zerocopy::transmute!(w.qs);
        let lo = _mm_and_si128(q, mask);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), mask);
        _mm256_set_m128i(_mm_shuffle_epi8(table, hi), _mm_shuffle_epi8(table, lo))
    }

    /// Lane `i` = `Σ x[i]·a` (exact): eight blocks against one activation block.
    #[target_feature(enable = "avx2")]
    fn block_sums(x: &[__m256i; 8], a: __m256i) -> __m256i {
        let ones = _mm256_set1_epi16(1);
        // maddubs wants unsigned × signed: |x| × (a with x's sign). |x|, |a| ≤ 127, so a
        // pair sums to at most 32 258: no i16 saturation.
        let v: [__m256i; 8] = std::array::from_fn(|i| {
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(x[i], x[i]), _mm256_sign_epi8(a, x[i]));
            _mm256_madd_epi16(p, ones)
        });
        let h01 = _mm256_hadd_epi32(v[0], v[1]);
        let h23 = _mm256_hadd_epi32(v[2], v[3]);
        let h45 = _mm256_hadd_epi32(v[4], v[5]);
        let h67 = _mm256_hadd_epi32(v[6], v[7]);
        let h0123 = _mm256_hadd_epi32(h01, h23);
        let h4567 = _mm256_hadd_epi32(h45, h67);
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(h0123, h4567),
            _mm256_permute2x128_si256::<0x31>(h0123, h4567),
        )
    }

    /// Rows in lanes, each doing the portable code's float operations in its order.
    #[target_feature(enable = "avx2,f16c")]
    fn dot8_avx2<const R: usize>(w: &[BlockIq4Nl], y: &[BlockQ80], kb: usize, out: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..kb {
            let r = |i: usize| &w[i * kb + b];
            let x: [__m256i; 8] = std::array::from_fn(|i| unpack(r(i)));
            let dw = halves(std::array::from_fn(|i| r(i).d));
            for (j, acc) in acc.iter_mut().enumerate() {
                let yb = &y[j * kb + b];
                let s = block_sums(&x, zerocopy::transmute!(yb.qs));
                let t = _mm256_mul_ps(
                    _mm256_mul_ps(dw, _mm256_set1_ps(yb.d)),
                    _mm256_cvtepi32_ps(s),
                );
                *acc = _mm256_add_ps(*acc, t);
            }
        }
        for (acc, o) in acc.into_iter().zip(out.chunks_exact_mut(8)) {
            let res: [f32; 8] = zerocopy::transmute!(acc);
            o.copy_from_slice(&res);
        }
    }

    /// As [`super::dot8_portable`] for exactly eight weight rows and one, four or eight
    /// activation rows (others go to the portable code).
    pub(super) fn dot8(w: &[BlockIq4Nl], y: &[BlockQ80], kb: usize, out: &mut [f32]) {
        let rows = y.len() / kb;
        assert!(
            w.len() == 8 * kb && y.len() == rows * kb && out.len() == 8 * rows,
            "dot8: 8 weight rows, {rows} activation rows, {} outputs",
            out.len()
        );
        // SAFETY: only reachable when `available()` said the CPU has AVX2 and F16C
        // (`select`); the function reads and writes nothing but its slices.
        match rows {
            1 => unsafe { dot8_avx2::<1>(w, y, kb, out) },
            4 => unsafe { dot8_avx2::<4>(w, y, kb, out) },
            8 => unsafe { dot8_avx2::<8>(w, y, kb, out) },
            _ => super::dot8_portable(w, y, kb, out),
        }
    }
}

/// The lane kernel: eight weight rows against `R` activation rows, the contract and bits
/// of [`dot8_portable`]. Rows 0..4 and 4..8 each fill one vector of four `f32` lanes.
#[inline(always)]
fn dot8_lanes<L: Lanes, const R: usize>(
    w: &[BlockIq4Nl],
    y: &[BlockQ80],
    kb: usize,
    out: &mut [f32],
) {
    let table = L::bytes(zerocopy::transmute!(CODEBOOK));
    let mut acc = [[L::f32_splat(0.0); 2]; R];
    for b in 0..kb {
        let r = |i: usize| &w[i * kb + b];
        // Each row's 32 levels as i16 lanes, in the activation block's order.
        let x: [[L; 4]; 8] = std::array::from_fn(|i| {
            let q = L::bytes(r(i).qs);
            let (x0, x1) = q.low_nibbles().lookup(table).widen_i8();
            let (x2, x3) = q.high_nibbles().lookup(table).widen_i8();
            [x0, x1, x2, x3]
        });
        let dw = [0, 1].map(|h| L::f32_from_f16(std::array::from_fn(|i| r(h * 4 + i).d)));
        for (j, acc) in acc.iter_mut().enumerate() {
            let yb = &y[j * kb + b];
            let [lo, hi]: [[u8; QK / 2]; 2] = zerocopy::transmute!(yb.qs);
            let (a0, a1) = L::bytes(lo).widen_i8();
            let (a2, a3) = L::bytes(hi).widen_i8();
            let row = |i: usize| {
                let [x0, x1, x2, x3] = x[i];
                x0.dot_i16(a0)
                    .add_i32(x1.dot_i16(a1))
                    .add_i32(x2.dot_i16(a2).add_i32(x3.dot_i16(a3)))
            };
            let dx = L::f32_splat(yb.d);
            for (h, acc) in acc.iter_mut().enumerate() {
                let s = L::sum_each(std::array::from_fn(|i| row(h * 4 + i)));
                let t = dw[h].f32_mul(dx).f32_mul(s.f32_from_i32());
                *acc = acc.f32_add(t);
            }
        }
    }
    for (acc, o) in acc.iter().zip(out.chunks_exact_mut(8)) {
        o[..4].copy_from_slice(&acc[0].f32_lanes());
        o[4..].copy_from_slice(&acc[1].f32_lanes());
    }
}

/// [`dot8_lanes`] for one, four or eight activation rows, else the portable kernel.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
fn dot8_lane_rows<L: Lanes>(w: &[BlockIq4Nl], y: &[BlockQ80], kb: usize, out: &mut [f32]) {
    let rows = y.len() / kb;
    assert!(
        w.len() == 8 * kb && y.len() == rows * kb && out.len() == 8 * rows,
        "dot8: 8 weight rows, {rows} activation rows, {} outputs",
        out.len()
    );
    match rows {
        1 => dot8_lanes::<L, 1>(w, y, kb, out),
        4 => dot8_lanes::<L, 4>(w, y, kb, out),
        8 => dot8_lanes::<L, 8>(w, y, kb, out),
        _ => dot8_portable(w, y, kb, out),
    }
}

impl Dot8<BlockIq4Nl, BlockQ80> {
    /// The IQ4_NL kernel for this CPU (or the wasm build).
    fn select_iq4_nl() -> Self {
        #[cfg(target_arch = "x86_64")]
        if super::avx2::available() {
            return Self(avx2::dot8, dot8_portable);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Self(dot8_lane_rows::<super::simd128::wasm::V>, dot8_portable);
        #[allow(unreachable_code)]
        Self(dot8_portable, dot8_portable)
    }
}

/// `x Wᵀ` for an IQ4_NL weight `W (n, k)` and f32 activations `x (…, k)` on the CPU.
///
/// # Errors
/// [`Error::InvalidArgument`] for a weight that is not a matrix, activations of another
/// width or off the CPU; tensor errors.
pub fn matmul_iq4_nl(w: &Iq4NlMatrix, x: &Tensor) -> Result<Tensor> {
    let &[n, k] = w.dims() else {
        return Err(Error::InvalidArgument(format!(
            "IQ4_NL matmul: the weight has shape {:?}, expected a matrix (out, in)",
            w.dims()
        )));
    };
    if !x.device().is_cpu() {
        return Err(Error::InvalidArgument(
            "IQ4_NL matmul runs on the CPU; the activations are on another device".into(),
        ));
    }
    let dims = x.dims();
    let Some((&xk, batch)) = dims.split_last() else {
        return Err(Error::InvalidArgument(
            "IQ4_NL matmul: scalar activations, expected (…, in)".into(),
        ));
    };
    if xk != k {
        return Err(Error::InvalidArgument(format!(
            "matmul: activations have {xk} columns, the IQ4_NL weight {n}x{k} expects {k}"
        )));
    }
    let m: usize = batch.iter().product();
    let kb = k / QK;
    let xs = x
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut xq = vec![BlockQ80::new_zeroed(); m * kb];
    for (row, q) in xs.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
        quantize_row_q8_0(row, q);
    }
    let mut dst = vec![0f32; m * n];
    gemm(Dot8::select_iq4_nl(), w.blocks(), &xq, (m, kb, n), &mut dst);
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = n;
    }
    Ok(Tensor::from_vec(dst, out_dims, &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use rand_core::{RngCore, SeedableRng};

    use super::*;

    fn random(rng: &mut rand_xoshiro::Xoshiro256PlusPlus, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                #[allow(clippy::cast_precision_loss)]
                let u = (rng.next_u32() >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0;
                u * scale
            })
            .collect()
    }

    /// IQ4_NL weights `(n, kb·32)` and Q8_0 activations `(m, kb·32)` from a seed.
    fn case(seed: u64, m: usize, kb: usize, n: usize) -> (Iq4NlMatrix, Vec<BlockQ80>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let k = kb * QK;
        let w = Iq4NlMatrix::quantize_plain(vec![n, k], &random(&mut rng, n * k, 1.0)).unwrap();
        let xs = random(&mut rng, m * k, 2.0);
        let mut y = vec![BlockQ80::new_zeroed(); m * kb];
        for (row, q) in xs.chunks_exact(k).zip(y.chunks_exact_mut(kb)) {
            quantize_row_q8_0(row, q);
        }
        (w, y)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every kernel on every eight-row group: `(portable, chosen for this CPU, the lane
    /// kernel on emulated lanes)`, each `m × n8` row-major.
    fn all_kernels(w: &Iq4NlMatrix, y: &[BlockQ80], kb: usize) -> [Vec<f32>; 3] {
        let w = w.blocks();
        let n8 = w.len() / kb / 8 * 8;
        let m = y.len() / kb;
        let kernels: [super::super::Dot8Fn<BlockIq4Nl, BlockQ80>; 3] = [
            dot8_portable,
            Dot8::select_iq4_nl().0,
            dot8_lane_rows::<super::super::simd128::emulated::E>,
        ];
        kernels.map(|k| {
            let mut out = vec![0f32; m * n8];
            for g in 0..n8 / 8 {
                let mut o = vec![0f32; 8 * m];
                k(&w[g * 8 * kb..(g + 1) * 8 * kb], y, kb, &mut o);
                for (j, o8) in o.chunks_exact(8).enumerate() {
                    out[j * n8 + g * 8..][..8].copy_from_slice(o8);
                }
            }
            out
        })
    }

    /// The integer block sum is the dot product of the decoded levels with the
    /// activations' integers.
    #[test]
    fn block_dot_is_the_dot_of_levels_and_integers() {
        let (w, y) = case(5, 1, 3, 2);
        for (wb, yb) in w.blocks().iter().zip(y.iter().cycle()) {
            let want: i32 = wb
                .indices()
                .iter()
                .zip(&yb.qs)
                .map(|(&i, &q)| i32::from(CODEBOOK[usize::from(i)]) * i32::from(q))
                .sum();
            assert_eq!(block_dot(wb, yb), want);
        }
    }

    /// The chosen (AVX2 here) and the simd128 lane kernel (emulated) give the portable
    /// kernel's bits for one, four, eight and another count of activation rows.
    #[test]
    fn simd_paths_match_portable_bit_for_bit() {
        for (seed, m) in [(1, 1), (2, 4), (3, 8), (4, 3)] {
            let (kb, n) = (18, 24);
            let (w, y) = case(seed, m, kb, n);
            let [portable, chosen, lanes] = all_kernels(&w, &y, kb);
            assert!(portable.iter().all(|v| *v != 0.0));
            assert_eq!(bits(&lanes), bits(&portable), "m={m}");
            assert_eq!(bits(&chosen), bits(&portable), "m={m}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Over shapes: all paths agree bit for bit on the groups of eight rows, and the
        /// whole product (remainder rows, thread split) is within rounding of the exact
        /// product of the decoded weights with the dequantized activations.
        #[test]
        fn kernels_agree_over_shapes(
            seed in 0u64..1_000_000,
            m in 1usize..10,
            kb in 1usize..24,
            n in 1usize..40,
        ) {
            let (w, y) = case(seed, m, kb, n);
            let [portable, chosen, lanes] = all_kernels(&w, &y, kb);
            proptest::prop_assert_eq!(bits(&chosen), bits(&portable));
            proptest::prop_assert_eq!(bits(&lanes), bits(&portable));
            // Activations exactly representable as Q8_0 (d = 1/64, integers ≤ 127) make
            // the kernel's only rounding the f32 accumulation.
            let k = kb * QK;
            let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
            let xs: Vec<f32> = (0..m * k)
                .map(|i| {
                    let q = if i % QK == 0 { 127 } else { i32::try_from(rng.next_u32() % 255).unwrap() - 127 };
                    #[allow(clippy::cast_precision_loss)]
                    let v = q as f32 / 64.0;
                    v
                })
                .collect();
            let x = Tensor::from_vec(xs.clone(), (m, k), &Device::Cpu).unwrap();
            let got: Vec<f32> = matmul_iq4_nl(&w, &x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let dense = w.to_f32_vec();
            for r in 0..m {
                for c in 0..n {
                    let terms = (0..k).map(|j| f64::from(dense[c * k + j]) * f64::from(xs[r * k + j]));
                    let want: f64 = terms.clone().sum();
                    let size: f64 = terms.map(f64::abs).sum();
                    // Two f32 roundings per block, each at most 2⁻²⁴ of a partial sum.
                    #[allow(clippy::cast_precision_loss)]
                    let tol = 1.2e-7 * (kb as f64 + 1.0) * size + 1e-12;
                    proptest::prop_assert!(
                        (f64::from(got[r * n + c]) - want).abs() < tol,
                        "({r}, {c}): {} vs {want}", got[r * n + c]
                    );
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let w = Iq4NlMatrix::quantize_plain(vec![4, 64], &[0.5; 256]).unwrap();
        let x = Tensor::zeros((1, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = matmul_iq4_nl(&w, &x).unwrap_err().to_string();
        assert!(e.contains("expects 64"), "{e}");
        let w3 = Iq4NlMatrix::quantize_plain(vec![2, 2, 64], &[0.5; 256]).unwrap();
        let x = Tensor::zeros((1, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = matmul_iq4_nl(&w3, &x).unwrap_err().to_string();
        assert!(e.contains("expected a matrix"), "{e}");
    }
}
