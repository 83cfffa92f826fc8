//! The Q8_0 matrix–vector product of the wasm32 `simd128` build: the shipped model's LM
//! head (49152 × 576, a fifth of a decode step's multiply-adds).
//!
//! candle multiplies Q8_0 one weight row at a time in wasm, widening the f16 scales in
//! scalar code (twice per block, the activation's included) and re-widening the same
//! activation bytes for every row. This kernel takes four weight rows per pass (the
//! activation block loaded once for all four, the four weight scales widened in one vector)
//! and keeps **candle's bits** (`candle_core::quantized::simd128::vec_dot_q8_0_q8_0`), so
//! the page's logits do not move:
//!
//! * activations are quantized to Q8_0 as candle does ([`super::quantize_row_q8_0`]);
//! * each row keeps candle's four `i32` partial sums per block — lane `k` sums the
//!   products at positions `8c + 2k` and `8c + 2k + 1` of the block's four 8-byte chunks
//!   `c`, exact integers however they are grouped (here: two products per `i16` lane,
//!   then pairs widened; |q| ≤ 127 for activations, so no `i16` overflows);
//! * each row's four `f32` accumulators add `sum · (dw·dx)` block after block, and the
//!   lanes are summed last as `((l0 + l1) + l2) + l3`.
//!
//! Natively candle's AVX path (another summation order) stays in use; native tests check
//! this kernel on emulated lanes against a scalar transcription of candle's wasm code.

use candle_core::Tensor;
use candle_core::quantized::{GgmlDType, QTensor};
use zerocopy::{FromBytes, FromZeros, Immutable, KnownLayout};

use super::simd128::Lanes;
use super::{BlockQ80, QK, quantize_row_q8_0};
use crate::error::{Error, Result};

/// A Q8_0 weight block as stored in GGUF: `x = d·q`.
#[derive(Clone, Copy, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(super) struct BlockQ80Weight {
    d: [u8; 2],
    qs: [i8; QK],
}

impl BlockQ80Weight {
    /// The quantized values as two 16-byte halves.
    fn halves(&self) -> [[u8; QK / 2]; 2] {
        zerocopy::transmute!(self.qs)
    }
}

/// Four weight rows (`4 × kb` blocks, row after row) · one activation row (`kb` blocks):
/// `out[i]` = row `i` · `y`, with candle's wasm bits.
#[inline(always)]
pub(super) fn dot4<L: Lanes>(w: &[BlockQ80Weight], y: &[BlockQ80], out: &mut [f32; 4]) {
    let kb = y.len();
    let mut acc = [L::f32_splat(0.0); 4];
    for (b, yb) in y.iter().enumerate() {
        let blocks = [0, 1, 2, 3].map(|i| &w[i * kb + b]);
        // candle's `f16::to_f32(x.d) * f16::to_f32(y.d)`, four rows at once.
        let d = L::f32_from_f16(blocks.map(|blk| blk.d))
            .f32_mul(L::f32_splat(yb.d))
            .f32_lanes();
        let [a_lo, a_hi]: [[u8; QK / 2]; 2] = zerocopy::transmute!(yb.qs);
        let (a_lo, a_hi) = (L::bytes(a_lo), L::bytes(a_hi));
        for ((acc, blk), d) in acc.iter_mut().zip(blocks).zip(d) {
            let [x_lo, x_hi] = blk.halves();
            let (p0, p1) = L::bytes(x_lo).extmul_i8(a_lo);
            let (p2, p3) = L::bytes(x_hi).extmul_i8(a_hi);
            let sum = p0
                .add_i16(p1)
                .sum_pairs_i16()
                .add_i32(p2.add_i16(p3).sum_pairs_i16());
            *acc = acc.f32_add(sum.f32_from_i32().f32_mul(L::f32_splat(d)));
        }
    }
    for (o, acc) in out.iter_mut().zip(acc) {
        let [l0, l1, l2, l3] = acc.f32_lanes();
        *o = l0 + l1 + l2 + l3;
    }
}

/// All rows of `w` (`n × kb` blocks) · `y`: groups of four through [`dot4`], the last
/// one to three rows through it too, on a zero-padded copy.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
pub(super) fn rows<L: Lanes>(w: &[BlockQ80Weight], y: &[BlockQ80], out: &mut [f32]) {
    let kb = y.len();
    let mut groups = out.chunks_exact_mut(4);
    let mut at = 0;
    let mut four = [0f32; 4];
    for o in &mut groups {
        dot4::<L>(&w[at..at + 4 * kb], y, &mut four);
        o.copy_from_slice(&four);
        at += 4 * kb;
    }
    let rest = groups.into_remainder();
    if !rest.is_empty() {
        // Padding rows of zeros: their sums are discarded.
        let mut padded = vec![BlockQ80Weight::new_zeroed(); 4 * kb];
        padded[..w.len() - at].copy_from_slice(&w[at..]);
        dot4::<L>(&padded, y, &mut four);
        rest.copy_from_slice(&four[..rest.len()]);
    }
}

/// `x Wᵀ` for a Q8_0 weight `W (n, k)` and one row of f32 activations `x (1, k)` in the
/// wasm `simd128` build, or `None` where candle's own path runs (natively, other shapes).
///
/// # Errors
/// Shape mismatches and tensor errors.
pub fn matmul_q8_0(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    if !cfg!(all(target_arch = "wasm32", target_feature = "simd128"))
        || w.dtype() != GgmlDType::Q8_0
        || !w.device().is_cpu()
        || !x.device().is_cpu()
        || x.dtype() != candle_core::DType::F32
    {
        return Ok(None);
    }
    let (n, k) = w.shape().dims2()?;
    let dims = x.dims();
    let m: usize = dims.iter().rev().skip(1).product();
    if m != 1 || dims.last() != Some(&k) || !k.is_multiple_of(QK) {
        return Ok(None);
    }
    let kb = k / QK;
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let mut y = vec![BlockQ80::new_zeroed(); kb];
    quantize_row_q8_0(&xs, &mut y);
    let data = w.data()?;
    let blocks = <[BlockQ80Weight]>::ref_from_bytes(&data).map_err(|_| {
        Error::InvalidArgument(format!(
            "Q8_0 weight {n}x{k}: {} bytes is not a whole number of 34-byte blocks",
            data.len()
        ))
    })?;
    if blocks.len() != n * kb {
        return Err(Error::InvalidArgument(format!(
            "Q8_0 weight {n}x{k}: {} blocks, expected {}",
            blocks.len(),
            n * kb
        )));
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let dst = {
        let mut dst = vec![0f32; n];
        rows::<super::simd128::wasm::V>(blocks, &y, &mut dst);
        dst
    };
    // Not reached: this build returned `None` above.
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let dst = {
        let _ = (blocks, y);
        vec![0f32; n]
    };
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = n;
    }
    Ok(Some(Tensor::from_vec(
        dst,
        out_dims,
        &candle_core::Device::Cpu,
    )?))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use half::f16;
    use rand_core::{RngCore, SeedableRng};

    use super::super::simd128::emulated::E;
    use super::*;

    /// candle 0.11's `simd128::vec_dot_q8_0_q8_0`, transcribed lane by lane in scalar code.
    fn candle_wasm_row(w: &[BlockQ80Weight], y: &[BlockQ80]) -> f32 {
        let mut acc = [0f32; 4];
        for (x, y) in w.iter().zip(y) {
            let mut sum = [0i32; 4];
            for c in 0..4 {
                for (k, s) in sum.iter_mut().enumerate() {
                    for e in [8 * c + 2 * k, 8 * c + 2 * k + 1] {
                        *s += i32::from(x.qs[e]) * i32::from(y.qs[e]);
                    }
                }
            }
            let d = f16::from_bits(u16::from_le_bytes(x.d)).to_f32() * y.d;
            for (a, s) in acc.iter_mut().zip(sum) {
                #[allow(clippy::cast_precision_loss)]
                let s = s as f32;
                *a += s * d;
            }
        }
        acc[0] + acc[1] + acc[2] + acc[3]
    }

    /// The four-row lane kernel (on emulated lanes) gives the transcription's bits, for
    /// row counts with and without a remainder and for blocks with a zero scale.
    #[test]
    fn lane_kernel_has_candles_wasm_bits() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        for &(n, kb) in &[(4, 1), (13, 18), (30, 7)] {
            let k = kb * QK;
            let uniform = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus, scale: f32| {
                #[allow(clippy::cast_precision_loss)]
                let u = (rng.next_u32() >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0;
                u * scale
            };
            let wf: Vec<f32> = (0..n * k).map(|_| uniform(&mut rng, 0.7)).collect();
            let wt = Tensor::from_vec(wf, (n, k), &Device::Cpu).unwrap();
            let qw = QTensor::quantize(&wt, GgmlDType::Q8_0).unwrap();
            let data = qw.data().unwrap();
            let w = <[BlockQ80Weight]>::ref_from_bytes(&data).unwrap();
            let mut xs: Vec<f32> = (0..k).map(|_| uniform(&mut rng, 3.0)).collect();
            if kb > 1 {
                // A block with a zero scale.
                xs[..QK].iter_mut().for_each(|v| *v = 0.0);
            }
            let mut y = vec![BlockQ80::new_zeroed(); kb];
            quantize_row_q8_0(&xs, &mut y);
            let want: Vec<u32> = w
                .chunks_exact(kb)
                .map(|row| candle_wasm_row(row, &y).to_bits())
                .collect();
            let mut got = vec![0f32; n];
            rows::<E>(w, &y, &mut got);
            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "n={n} kb={kb}");
            assert!(want.iter().any(|&b| f32::from_bits(b) != 0.0));
        }
    }

    /// The activation quantizer is candle's: its Q8_0 product through `QMatMul`
    /// (natively, its AVX order) agrees with the transcription to rounding.
    #[test]
    fn transcription_agrees_with_candle_to_rounding() {
        use candle_core::Module;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let (n, kb) = (9, 18);
        let k = kb * QK;
        #[allow(clippy::cast_precision_loss)]
        let mut draw = || (rng.next_u32() >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0;
        let wf: Vec<f32> = (0..n * k).map(|_| draw()).collect();
        let xs: Vec<f32> = (0..k).map(|_| 2.0 * draw()).collect();
        let qw = QTensor::quantize(
            &Tensor::from_vec(wf, (n, k), &Device::Cpu).unwrap(),
            GgmlDType::Q8_0,
        )
        .unwrap();
        let data = qw.data().unwrap().into_owned();
        let mm = candle_core::quantized::QMatMul::from_qtensor(qw).unwrap();
        let theirs: Vec<f32> = mm
            .forward(&Tensor::from_vec(xs.clone(), (1, k), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let w = <[BlockQ80Weight]>::ref_from_bytes(&data).unwrap();
        let mut y = vec![BlockQ80::new_zeroed(); kb];
        quantize_row_q8_0(&xs, &mut y);
        for (row, t) in w.chunks_exact(kb).zip(theirs) {
            let ours = candle_wasm_row(row, &y);
            assert!((ours - t).abs() <= 1e-4 * t.abs().max(1.0), "{ours} vs {t}");
        }
    }
}
