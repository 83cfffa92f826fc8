//! Importance-weighted block quantization for Q4_0, Q4_1 and Q8_0 (ggml's block layouts),
//! and the entry point for IQ4_NL (its block search is [`crate::iq4_nl`]).
//!
//! ggml's reference encoders (candle's `from_float`) pick each block's scale from its
//! largest magnitude: simple, but the outlier sets the grid and every other value rounds on
//! a grid too coarse for it. Here each block of 32 tries a small grid of scales (and, for
//! Q4_1, offsets), rounds to the nearest level for each, refits the scale (and offset) by
//! weighted least squares for those levels, and keeps the candidate with the lowest
//! Σ_j imp_j·(w_j − q_j)², with the scale already rounded to f16 as it will be stored. The
//! reference scale is one of the candidates, so the result is never worse than plain
//! rounding under the same weights. `imp` is the importance matrix's row for the tensor
//! ([`crate::imatrix`]); without one every weight counts the same (plain least squares).
//!
//! Bytes are written in ggml's layout and wrapped as a candle `QTensor` (IQ4_NL: as the
//! engine's `Iq4NlMatrix`), so the engine, the GGUF writer and llama.cpp read them like any
//! other.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use half::f16;

use edgewise_llm::error::{Error, Result};
use edgewise_llm::iq4_nl::Iq4NlMatrix;
use edgewise_llm::{Weight, WeightType};

/// Values per block of the four types.
pub const BLOCK: usize = 32;

/// Types with an importance-weighted encoder here.
#[must_use]
pub fn supports(dtype: WeightType) -> bool {
    matches!(
        dtype,
        WeightType::Iq4Nl | WeightType::Ggml(GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q8_0)
    )
}

/// Candidate scales tried on each side of the reference one (steps of 0.1 level).
const STEPS: i32 = 10;

fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// A symmetric code (levels `lo..=hi`, value `d·L`), best scale for weights `w`.
/// Returns `(d, levels)` with `d` already representable in f16.
fn symmetric(x: &[f32], w: &[f32], lo: i32, hi: i32) -> (f32, [i8; BLOCK]) {
    let mut best = (f32::INFINITY, 0.0f32, [0i8; BLOCK]);
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return (0.0, [0; BLOCK]);
    }
    let eval = |d: f32, best: &mut (f32, f32, [i8; BLOCK])| {
        let d = round_f16(d);
        if d == 0.0 || !d.is_finite() {
            return;
        }
        let id = 1.0 / d;
        let mut l = [0i8; BLOCK];
        let mut err = 0.0f32;
        for j in 0..x.len() {
            #[allow(clippy::cast_possible_truncation)]
            let q = ((x[j] * id).round() as i32).clamp(lo, hi);
            #[allow(clippy::cast_possible_truncation)]
            {
                l[j] = q as i8;
            }
            #[allow(clippy::cast_precision_loss)]
            let e = x[j] - d * q as f32;
            err += w[j] * e * e;
        }
        if err < best.0 {
            *best = (err, d, l);
        }
    };
    // The reference encoders: Q4_0 maps the signed extreme to −8 (d = max / −8), Q8_0
    // maps |max| to 127.
    #[allow(clippy::cast_precision_loss)]
    let reference = if lo == -hi {
        amax / hi as f32
    } else {
        max / lo as f32
    };
    eval(reference, &mut best);
    for end in [lo, hi] {
        for is in -STEPS..=STEPS {
            #[allow(clippy::cast_precision_loss)]
            let target = end as f32 + 0.1 * is as f32 * end.signum() as f32;
            if target == 0.0 {
                continue;
            }
            let d0 = max / target;
            if d0 <= 0.0 && lo == -hi {
                continue;
            }
            // Round with d0, then refit d for those levels: d = Σw·x·L / Σw·L².
            let id = 1.0 / d0;
            let (mut num, mut den) = (0.0f32, 0.0f32);
            for j in 0..x.len() {
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let q = ((x[j] * id).round() as i32).clamp(lo, hi) as f32;
                num += w[j] * x[j] * q;
                den += w[j] * q * q;
            }
            eval(d0, &mut best);
            if den > 0.0 {
                eval(num / den, &mut best);
            }
        }
    }
    (best.1, best.2)
}

/// An affine code (levels `0..=15`, value `d·L + m`), best `(d, m)` for weights `w`, both
/// already representable in f16.
fn affine(x: &[f32], w: &[f32]) -> (f32, f32, [u8; BLOCK]) {
    const NMAX: f32 = 15.0;
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    if max == min {
        return (0.0, round_f16(min), [0; BLOCK]);
    }
    let mut best = (f32::INFINITY, 0.0f32, 0.0f32, [0u8; BLOCK]);
    let eval = |d: f32, m: f32, best: &mut (f32, f32, f32, [u8; BLOCK])| {
        let (d, m) = (round_f16(d), round_f16(m));
        if !(d.is_finite() && m.is_finite()) || d <= 0.0 {
            return;
        }
        let id = 1.0 / d;
        let mut l = [0u8; BLOCK];
        let mut err = 0.0f32;
        for j in 0..x.len() {
            let q = ((x[j] - m) * id).round().clamp(0.0, NMAX);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                l[j] = q as u8;
            }
            let e = x[j] - (d * q + m);
            err += w[j] * e * e;
        }
        if err < best.0 {
            *best = (err, d, m, l);
        }
    };
    // The reference encoder: d = (max − min)/15, m = min.
    eval((max - min) / NMAX, min, &mut best);
    for is in -STEPS..=STEPS {
        #[allow(clippy::cast_precision_loss)]
        let iscale = (NMAX + 0.1 * is as f32) / (max - min);
        let (mut d, mut m) = (1.0 / iscale, min);
        // Alternate: round to levels with (d, m), refit (d, m) by weighted least squares.
        for _ in 0..2 {
            let id = 1.0 / d;
            let (mut sw, mut sl, mut sll, mut sx, mut sxl) = (0.0f32, 0.0, 0.0, 0.0, 0.0);
            for j in 0..x.len() {
                let q = ((x[j] - m) * id).round().clamp(0.0, NMAX);
                sw += w[j];
                sl += w[j] * q;
                sll += w[j] * q * q;
                sx += w[j] * x[j];
                sxl += w[j] * x[j] * q;
            }
            let det = sw * sll - sl * sl;
            if det <= 0.0 {
                break;
            }
            let nd = (sw * sxl - sx * sl) / det;
            let nm = (sll * sx - sl * sxl) / det;
            if nd <= 0.0 {
                break;
            }
            (d, m) = (nd, nm);
            eval(d, m, &mut best);
        }
    }
    (best.1, best.2, best.3)
}

/// Encodes one row of `x` (length a multiple of [`BLOCK`]) into `out` in `dtype`'s layout.
fn encode_row(dtype: WeightType, x: &[f32], w: &[f32], out: &mut Vec<u8>) {
    let dtype = match dtype {
        WeightType::Iq4Nl => return crate::iq4_nl::encode_row(x, w, out),
        WeightType::Ggml(t) => t,
    };
    for (xb, wb) in x.chunks_exact(BLOCK).zip(w.chunks_exact(BLOCK)) {
        match dtype {
            GgmlDType::Q8_0 => {
                let (d, l) = symmetric(xb, wb, -127, 127);
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(l.iter().map(|&q| q.to_le_bytes()[0]));
            }
            GgmlDType::Q4_0 => {
                let (d, l) = symmetric(xb, wb, -8, 7);
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                for j in 0..BLOCK / 2 {
                    #[allow(clippy::cast_sign_loss)]
                    let (a, b) = ((l[j] + 8) as u8, (l[j + BLOCK / 2] + 8) as u8);
                    out.push(a | (b << 4));
                }
            }
            GgmlDType::Q4_1 => {
                let (d, m, l) = affine(xb, wb);
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(m).to_le_bytes());
                for j in 0..BLOCK / 2 {
                    out.push(l[j] | (l[j + BLOCK / 2] << 4));
                }
            }
            _ => unreachable!("encode_row is only called for supported types"),
        }
    }
}

/// Quantizes the matrix `w` `(rows, cols)` to `dtype` (Q4_0, Q4_1, Q8_0 or IQ4_NL),
/// minimising the importance-weighted squared error per block. `imp` has one non-negative
/// value per column (None: every column counts the same). Rows are split over the
/// available cores.
///
/// # Errors
/// [`Error::InvalidArgument`] for another type, a row length that is not a multiple of 32,
/// or an importance vector of the wrong length; tensor errors.
pub fn quantize_weighted(
    w: &Tensor,
    dtype: impl Into<WeightType>,
    imp: Option<&[f32]>,
) -> Result<Weight> {
    let dtype = dtype.into();
    if !supports(dtype) {
        return Err(Error::InvalidArgument(format!(
            "importance-weighted quantization supports q4_0, q4_1, q8_0 and iq4_nl, not {dtype:?}"
        )));
    }
    let (rows, cols) = w.dims2()?;
    if !cols.is_multiple_of(BLOCK) {
        return Err(Error::InvalidArgument(format!(
            "{dtype:?}: rows of {cols} values are not whole blocks of {BLOCK}"
        )));
    }
    let weights: Vec<f32> = match imp {
        Some(v) if v.len() != cols => {
            return Err(Error::InvalidArgument(format!(
                "{dtype:?}: importance vector has {} values, the matrix has {cols} columns",
                v.len()
            )));
        }
        Some(v) => {
            // A floor of 1e-3 of the mean keeps channels that never fired in calibration
            // from being ignored entirely (the text may simply have missed them).
            #[allow(clippy::cast_precision_loss)]
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / cols as f64;
            #[allow(clippy::cast_possible_truncation)]
            let floor = (mean * 1e-3) as f32;
            v.iter().map(|&x| x.max(0.0) + floor).collect()
        }
        None => vec![1.0; cols],
    };
    let data = w
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, rows.max(1));
    let per = rows.div_ceil(threads);
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = data
            .chunks(per * cols)
            .map(|chunk| {
                let weights = &weights;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for row in chunk.chunks_exact(cols) {
                        encode_row(dtype, row, weights, &mut out);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("quantization worker panicked"))
            .collect()
    });
    let bytes = parts.concat();
    Ok(match dtype {
        WeightType::Iq4Nl => Iq4NlMatrix::new(vec![rows, cols], bytes)?.into(),
        WeightType::Ggml(t) => candle_core::quantized::ggml_file::qtensor_from_ggml(
            t,
            &bytes,
            vec![rows, cols],
            &Device::Cpu,
        )?
        .into(),
    })
}

/// Σ_j imp_j·(w_ij − q_ij)² over the whole matrix (imp None: plain squared error).
///
/// # Errors
/// Shape mismatches and tensor errors.
pub fn weighted_error(w: &Tensor, q: &Weight, imp: Option<&[f32]>) -> Result<f64> {
    let deq = q.dequantize(&Device::Cpu)?;
    let (_, cols) = w.dims2()?;
    let diff = (w - deq)?.sqr()?.flatten_all()?.to_vec1::<f32>()?;
    Ok(diff
        .chunks_exact(cols)
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, &e)| f64::from(e) * f64::from(imp.map_or(1.0, |v| v[j])))
                .sum::<f64>()
        })
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use rand_core::{RngCore, SeedableRng};

    /// Heavy-tailed weights (a few outliers per row, as in real models) and importance
    /// spread over three orders of magnitude.
    fn random_case(rows: usize, cols: usize, seed: u64) -> (Tensor, Vec<f32>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        #[allow(clippy::cast_precision_loss)]
        let mut u = move || (rng.next_u32() as f32 + 0.5) / 4_294_967_296.0;
        let mut w = Vec::with_capacity(rows * cols);
        for _ in 0..rows * cols {
            // Box–Muller normal, with 2% outliers ×6.
            let n = (-2.0 * u().ln()).sqrt() * (std::f32::consts::TAU * u()).cos();
            let scale = if u() < 0.02 { 6.0 } else { 1.0 };
            w.push(0.02 * n * scale);
        }
        let imp: Vec<f32> = (0..cols).map(|_| 10f32.powf(3.0 * u() - 1.5)).collect();
        (
            Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap(),
            imp,
        )
    }

    #[test]
    fn decodes_to_the_chosen_levels() {
        // A block on an exact grid must come back exactly (levels and scales all fit).
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            #[allow(clippy::cast_precision_loss)]
            let row: Vec<f32> = if dtype == GgmlDType::Q8_0 {
                (0..64)
                    .map(|j| (127 - 4 * (j % 32)) as f32 / 64.0)
                    .collect()
            } else {
                (0..64).map(|j| ((j % 16) as f32 - 8.0) * 0.25).collect()
            };
            let w = Tensor::from_vec(row, (1, 64), &Device::Cpu).unwrap();
            let q = quantize_weighted(&w, dtype, None).unwrap();
            assert_eq!(q.dtype(), dtype);
            let err = weighted_error(&w, &q, None).unwrap();
            assert!(err < 1e-9, "{dtype:?}: {err}");
        }
    }

    #[test]
    fn weighted_error_beats_plain_rounding_on_random_tensors() {
        for (seed, dtype) in [
            (1, GgmlDType::Q4_0),
            (2, GgmlDType::Q4_1),
            (3, GgmlDType::Q8_0),
        ] {
            let (w, imp) = random_case(48, 256, seed);
            let plain = Weight::from(QTensor::quantize(&w, dtype).unwrap());
            let ours = quantize_weighted(&w, dtype, Some(&imp)).unwrap();
            let (e_plain, e_ours) = (
                weighted_error(&w, &plain, Some(&imp)).unwrap(),
                weighted_error(&w, &ours, Some(&imp)).unwrap(),
            );
            // Not just "no worse": at least 10% less weighted error on these tensors.
            assert!(
                e_ours < 0.9 * e_plain,
                "{dtype:?}: weighted {e_ours} vs plain {e_plain}"
            );
            // Without importance the search still lowers the plain squared error.
            let unweighted = quantize_weighted(&w, dtype, None).unwrap();
            assert!(
                weighted_error(&w, &unweighted, None).unwrap()
                    < weighted_error(&w, &plain, None).unwrap()
            );
        }
    }

    /// IQ4_NL: every value decodes to a codebook level times its block's scale, and the
    /// search beats the plain nearest-level encoder (the engine's) on heavy-tailed random
    /// tensors, with the importance matrix and without.
    #[test]
    fn iq4_nl_beats_plain_nearest_level_rounding() {
        let (w, imp) = random_case(48, 256, 4);
        let ours = quantize_weighted(&w, WeightType::Iq4Nl, Some(&imp)).unwrap();
        assert_eq!(ours.dtype(), WeightType::Iq4Nl);
        let Weight::Iq4Nl(m) = &ours else {
            panic!("an IQ4_NL weight")
        };
        for b in m.blocks() {
            let d = b.scale();
            for v in b.decode() {
                let levels = edgewise_llm::iq4_nl::CODEBOOK;
                assert!(levels.iter().any(|&k| v == d * f32::from(k)), "{v} / {d}");
            }
        }
        let x: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        let plain = Weight::from(Iq4NlMatrix::quantize_plain(vec![48, 256], &x).unwrap());
        let (e_plain, e_ours) = (
            weighted_error(&w, &plain, Some(&imp)).unwrap(),
            weighted_error(&w, &ours, Some(&imp)).unwrap(),
        );
        assert!(
            e_ours < 0.8 * e_plain,
            "weighted {e_ours} vs plain {e_plain}"
        );
        let unweighted = quantize_weighted(&w, WeightType::Iq4Nl, None).unwrap();
        let (u_plain, u_ours) = (
            weighted_error(&w, &plain, None).unwrap(),
            weighted_error(&w, &unweighted, None).unwrap(),
        );
        // Without importance the search still lowers the plain squared error (a little:
        // its weights also favour the larger values, which plain error does not).
        assert!(u_ours < u_plain, "unweighted {u_ours} vs plain {u_plain}");
        // The importance matrix moves error off the important columns.
        let e_unweighted = weighted_error(&w, &unweighted, Some(&imp)).unwrap();
        assert!(e_ours < e_unweighted, "{e_ours} vs {e_unweighted}");
    }

    #[test]
    fn bad_input_is_refused() {
        let w = Tensor::zeros((2, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(quantize_weighted(&w, GgmlDType::Q4_0, None).is_err());
        let e = quantize_weighted(&w, WeightType::Iq4Nl, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("IQ4_NL") && e.contains("rows of 40 values"),
            "{e}"
        );
        let w = Tensor::zeros((2, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(quantize_weighted(&w, GgmlDType::Q4K, None).is_err());
        assert!(quantize_weighted(&w, GgmlDType::Q4_0, Some(&[1.0; 3])).is_err());
        let e = quantize_weighted(&w, WeightType::Iq4Nl, Some(&[1.0; 3]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 values") && e.contains("64 columns"), "{e}");
        // All-zero blocks encode as zeros.
        let q = quantize_weighted(&w, GgmlDType::Q4_1, None).unwrap();
        assert_eq!(weighted_error(&w, &q, None).unwrap(), 0.0);
    }
}
