//! CPU matrix products for Q4_1 weights, the type of the shipped model's linear layers,
//! and (in [`iq4_nl`](self::iq4_nl)) for IQ4_NL weights, which candle cannot multiply.
//!
//! candle multiplies Q4_1 weights through its generic scalar `vec_dot` (it has SIMD only
//! for other block types), which left ~80 % of a decode step in that one loop. This module
//! does the same product faster while giving **bit-identical** results:
//!
//! * the activations are quantized to Q8_1 exactly as candle does (`amax / 127`, rounded
//!   to nearest, `s = f16(Σq) · f16(d)` in half precision);
//! * each 32-wide block's integer dot product `Σ w·q` is exact whichever way it is summed,
//!   so it may be computed with SIMD;
//! * the per-block float combination `Σ ((sumᵢ·dw)·dx + mw·sx)` is done in the same order
//!   with the same operations (no fused multiply-add), block after block.
//!
//! So the greedy tokens of the engine, the reference-agreement fixtures and the browser's
//! expected tokens (the wasm build runs this module's portable path) do not move.
//!
//! The portable path is plain Rust; on x86-64 an AVX2 version of the block dot products is
//! selected at run time (the crate's only `unsafe`: calls guarded by feature detection);
//! the wasm32 build (compiled with `simd128`) uses the 128-bit lane kernel of
//! [`simd128`](self::simd128), which native tests run on an emulation of its lanes.
//! Rows are split over candle's CPU thread pool, so `RAYON_NUM_THREADS` /
//! `CANDLE_NUM_THREADS` govern both.

use std::sync::Mutex;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Storage, Tensor};
use half::f16;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::error::{Error, Result};

mod iq4_nl;
mod q8_0;
mod simd128;

pub use iq4_nl::matmul_iq4_nl;
pub use q8_0::matmul_q8_0;

/// Whether [`matmul`] has a kernel for weights of `dtype` in this build: Q4_1 always,
/// Q8_0 in the wasm `simd128` build (natively candle's own Q8_0 path is as fast).
#[must_use]
pub fn has_kernel(dtype: GgmlDType) -> bool {
    dtype == GgmlDType::Q4_1
        || (dtype == GgmlDType::Q8_0
            && cfg!(all(target_arch = "wasm32", target_feature = "simd128")))
}

/// `x Wᵀ` through this crate's kernel for `w`'s type ([`matmul_q4_1`], [`matmul_q8_0`]),
/// or `None` when none applies (the caller then uses candle's `QMatMul`).
///
/// # Errors
/// As the kernel's.
pub fn matmul(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    match w.dtype() {
        GgmlDType::Q4_1 => matmul_q4_1(w, x),
        GgmlDType::Q8_0 => matmul_q8_0(w, x),
        _ => Ok(None),
    }
}

/// Values per quantization block (Q4_1 and Q8_1 alike).
const QK: usize = 32;

/// A Q4_1 block as stored in GGUF: `x = d·q + m`, `q ∈ 0..16`, low nibbles first.
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct BlockQ41 {
    d: [u8; 2],
    m: [u8; 2],
    qs: [u8; QK / 2],
}

/// A Q8_1 activation block with its half-precision scales already widened to f32.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct BlockQ81 {
    /// Scale `d` (an f16 value).
    d: f32,
    /// `d · Σ qs` (an f16 value).
    s: f32,
    qs: [i8; QK],
}

fn f16_le(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Quantizes one row of activations to Q8_1 the way candle (and ggml) does.
fn quantize_row_q8_1(xs: &[f32], out: &mut [BlockQ81]) {
    for (x, b) in xs.chunks_exact(QK).zip(out) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let d16 = f16::from_f32(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            #[allow(clippy::cast_possible_truncation)]
            let r = (v * id).round() as i8;
            *q = r;
            sum += i32::from(r);
        }
        b.d = d16.to_f32();
        #[allow(clippy::cast_precision_loss)]
        let s = f16::from_f32(sum as f32) * d16;
        b.s = s.to_f32();
    }
}

/// A Q8_0 activation block with its f16 scale already widened to f32.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct BlockQ80 {
    /// Scale (an f16 value).
    d: f32,
    qs: [i8; QK],
}

/// Quantizes one row of activations to Q8_0 (`d = amax/127`, round to nearest).
fn quantize_row_q8_0(xs: &[f32], out: &mut [BlockQ80]) {
    for (x, b) in xs.chunks_exact(QK).zip(out) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        for (q, &v) in b.qs.iter_mut().zip(x) {
            #[allow(clippy::cast_possible_truncation)]
            let r = (v * id).round() as i8;
            *q = r;
        }
        b.d = f16::from_f32(d).to_f32();
    }
}

/// `Σ w·q` over one block pair, exact.
fn block_dot(w: &BlockQ41, y: &BlockQ81) -> i32 {
    let (lo, hi) = y.qs.split_at(QK / 2);
    let mut s = 0i32;
    for ((&q, &a), &b) in w.qs.iter().zip(lo).zip(hi) {
        s += i32::from(q & 0x0F) * i32::from(a) + i32::from(q >> 4) * i32::from(b);
    }
    s
}

/// Adds one block's contribution in candle's order: `acc + ((sumi·dw)·dx + mw·sx)`.
#[inline]
fn combine(acc: f32, sumi: i32, w: &BlockQ41, y: &BlockQ81) -> f32 {
    #[allow(clippy::cast_precision_loss)]
    let t = sumi as f32 * f16_le(w.d) * y.d + f16_le(w.m) * y.s;
    acc + t
}

fn row_dot_portable(w: &[BlockQ41], y: &[BlockQ81]) -> f32 {
    w.iter()
        .zip(y)
        .fold(0f32, |acc, (w, y)| combine(acc, block_dot(w, y), w, y))
}

/// Eight weight rows `w` (8 × `kb` blocks, row after row) against activation rows `y`
/// (`kb` blocks each): `out[j·8 + i]` = row `i` · activation `j`.
fn dot8_portable(w: &[BlockQ41], y: &[BlockQ81], kb: usize, out: &mut [f32]) {
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
        __m128i, __m256, __m256i, _mm_and_si128, _mm_set_epi16, _mm_set1_epi8, _mm_srli_epi16,
        _mm256_add_epi32, _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_cvtph_ps, _mm256_hadd_epi32,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_mul_ps, _mm256_permute2x128_si256,
        _mm256_set_m128i, _mm256_set1_epi16, _mm256_set1_ps, _mm256_setzero_ps,
    };

    use super::{BlockQ41, BlockQ81};

    /// Whether the CPU running us has AVX2 and F16C (checked once; std caches the answer).
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c")
    }

    /// A block's 32 weights as bytes 0..16, in the order of the activation block.
    #[target_feature(enable = "avx2")]
    fn unpack(w: &BlockQ41) -> __m256i {
        let mask = _mm_set1_epi8(0x0F);
        let q: __m128i = zerocopy::transmute!(w.qs);
        let lo = _mm_and_si128(q, mask);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), mask);
        _mm256_set_m128i(hi, lo)
    }

    /// Lane `i` = `Σ x[i]·a` (exact): eight blocks against one activation block.
    #[target_feature(enable = "avx2")]
    fn block_sums(x: &[__m256i; 8], a: __m256i) -> __m256i {
        let ones = _mm256_set1_epi16(1);
        // u8 (0..16) × i8 (|q| ≤ 127), pairs summed: ≤ 3810, no i16 saturation.
        let v: [__m256i; 8] =
            std::array::from_fn(|i| _mm256_madd_epi16(_mm256_maddubs_epi16(x[i], a), ones));
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

    /// Eight f16 scales, one per row, widened.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn halves(h: [[u8; 2]; 8]) -> __m256 {
        let v = |i: usize| i16::from_le_bytes(h[i]);
        _mm256_cvtph_ps(_mm_set_epi16(
            v(7),
            v(6),
            v(5),
            v(4),
            v(3),
            v(2),
            v(1),
            v(0),
        ))
    }

    /// Rows in lanes: each lane accumulates its blocks in order with the scalar code's
    /// operations (`acc + ((sumi·dw)·dx + mw·sx)`, no fused multiply-add), so every
    /// lane's result has the scalar code's bits. `R` activation rows share each unpacked
    /// weight block.
    #[target_feature(enable = "avx2,f16c")]
    fn dot8_avx2<const R: usize>(w: &[BlockQ41], y: &[BlockQ81], kb: usize, out: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..kb {
            let r = |i: usize| &w[i * kb + b];
            let x: [__m256i; 8] = std::array::from_fn(|i| unpack(r(i)));
            let dw = halves(std::array::from_fn(|i| r(i).d));
            let mw = halves(std::array::from_fn(|i| r(i).m));
            for (j, acc) in acc.iter_mut().enumerate() {
                let yb = &y[j * kb + b];
                let s = block_sums(&x, zerocopy::transmute!(yb.qs));
                let t = _mm256_add_ps(
                    _mm256_mul_ps(
                        _mm256_mul_ps(_mm256_cvtepi32_ps(s), dw),
                        _mm256_set1_ps(yb.d),
                    ),
                    _mm256_mul_ps(mw, _mm256_set1_ps(yb.s)),
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
    pub(super) fn dot8(w: &[BlockQ41], y: &[BlockQ81], kb: usize, out: &mut [f32]) {
        let rows = y.len() / kb;
        assert!(
            w.len() == 8 * kb && y.len() == rows * kb && out.len() == 8 * rows,
            "dot8: 8 weight rows, {rows} activation rows, {} outputs",
            out.len()
        );
        // SAFETY: only reachable when `available()` said the CPU has AVX2 and F16C
        // (`Dot8::select`); the function reads and writes nothing but its slices.
        match rows {
            1 => unsafe { dot8_avx2::<1>(w, y, kb, out) },
            4 => unsafe { dot8_avx2::<4>(w, y, kb, out) },
            8 => unsafe { dot8_avx2::<8>(w, y, kb, out) },
            _ => super::dot8_portable(w, y, kb, out),
        }
    }
}

/// An eight-row dot product: eight weight rows (blocks `W`) against 1..n activation rows
/// (blocks `Y`) (see [`dot8_portable`]).
type Dot8Fn<W = BlockQ41, Y = BlockQ81> = fn(&[W], &[Y], usize, &mut [f32]);

/// The eight-row dot product chosen for this CPU, and the portable one (same bits) for
/// groups of fewer than eight rows.
struct Dot8<W: 'static = BlockQ41, Y: 'static = BlockQ81>(Dot8Fn<W, Y>, Dot8Fn<W, Y>);

impl<W, Y> Clone for Dot8<W, Y> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W, Y> Copy for Dot8<W, Y> {}

impl Dot8 {
    fn select() -> Self {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            return Self(avx2::dot8, dot8_portable);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return Self(simd128::wasm::dot8, dot8_portable);
        #[allow(unreachable_code)]
        Self(dot8_portable, dot8_portable)
    }
}

impl<W, Y> Dot8<W, Y> {
    /// `out[c]` = weight row `c` · activation row `y` for `out.len()` consecutive weight
    /// rows from `w`: groups of eight through the chosen kernel, a remainder through the
    /// portable one (same bits).
    fn rows(self, w: &[W], y: &[Y], out: &mut [f32]) {
        let kb = y.len();
        let mut groups = out.chunks_exact_mut(8);
        let mut at = 0;
        for o in &mut groups {
            (self.0)(&w[at..at + 8 * kb], y, kb, o);
            at += 8 * kb;
        }
        let rest = groups.into_remainder();
        (self.1)(&w[at..at + rest.len() * kb], y, kb, rest);
    }
}

/// `x Wᵀ` for a Q4_1 weight `W (n, k)` and f32 activations `x (…, k)` on the CPU, or
/// `None` when this kernel does not apply (another type or device, `k` not a multiple of
/// 32); the caller then uses candle's `QMatMul`.
///
/// # Errors
/// Shape mismatches and tensor errors.
pub fn matmul_q4_1(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    if w.dtype() != GgmlDType::Q4_1 || !w.device().is_cpu() || !x.device().is_cpu() {
        return Ok(None);
    }
    let (n, k) = w.shape().dims2()?;
    if !k.is_multiple_of(QK) || x.dtype() != candle_core::DType::F32 {
        return Ok(None);
    }
    let dims = x.dims();
    let Some((&xk, batch)) = dims.split_last() else {
        return Ok(None);
    };
    if xk != k {
        return Err(Error::InvalidArgument(format!(
            "matmul: activations have {xk} columns, the Q4_1 weight {n}x{k} expects {k}"
        )));
    }
    let m: usize = batch.iter().product();
    let x = x.contiguous()?;
    let kb = k / QK;
    let mut xq = vec![BlockQ81::new_zeroed(); m * kb];
    {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        let xs = &cpu.as_slice::<f32>()?[layout.start_offset()..][..m * k];
        for (row, q) in xs.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
            quantize_row_q8_1(row, q);
        }
    }
    let data = w.data()?;
    let blocks = <[BlockQ41]>::ref_from_bytes(&data).map_err(|_| {
        Error::InvalidArgument(format!(
            "Q4_1 weight {n}x{k}: {} bytes is not a whole number of 20-byte blocks",
            data.len()
        ))
    })?;
    if blocks.len() != n * kb {
        return Err(Error::InvalidArgument(format!(
            "Q4_1 weight {n}x{k}: {} blocks, expected {}",
            blocks.len(),
            n * kb
        )));
    }
    let mut dst = vec![0f32; m * n];
    gemm(Dot8::select(), blocks, &xq, (m, kb, n), &mut dst);
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

/// Weight rows per work item when decoding (one activation row).
const DECODE_ROWS: usize = 32;
/// Activation rows per tile when prefilling: each weight row is read once per tile.
const PREFILL_TILE: usize = 16;

/// `dst (m, n) = y (m, kb blocks) · wᵀ (n, kb blocks)`, split over candle's thread pool.
fn gemm<W: Sync, Y: Sync>(
    dot: Dot8<W, Y>,
    w: &[W],
    y: &[Y],
    (m, kb, n): (usize, usize, usize),
    dst: &mut [f32],
) {
    let threads = candle_core::utils::get_num_threads();
    if m == 1 {
        let work = |chunk: usize, out: &mut [f32]| {
            let first = chunk * DECODE_ROWS;
            dot.rows(&w[first * kb..], y, out);
        };
        run(threads, dst, DECODE_ROWS, work);
    } else {
        let tile = m.div_ceil(threads * 4).clamp(1, PREFILL_TILE);
        let work = |chunk: usize, out: &mut [f32]| {
            let rows = out.len() / n;
            let ys = &y[chunk * tile * kb..][..rows * kb];
            let mut buf = [0f32; 8 * 8];
            for c in (0..n).step_by(8) {
                let g = (n - c).min(8);
                let wg = &w[c * kb..(c + g) * kb];
                if g < 8 {
                    for (yr, o) in ys.chunks_exact(kb).zip(out.chunks_exact_mut(n)) {
                        (dot.1)(wg, yr, kb, &mut o[c..c + g]);
                    }
                    continue;
                }
                // Eight (or four) activation rows share each unpacked weight block; then
                // one at a time.
                let mut r = 0;
                while r < rows {
                    let take = match rows - r {
                        8.. => 8,
                        4..=7 => 4,
                        _ => 1,
                    };
                    (dot.0)(wg, &ys[r * kb..(r + take) * kb], kb, &mut buf[..8 * take]);
                    for (j, b8) in buf[..8 * take].chunks_exact(8).enumerate() {
                        out[(r + j) * n + c..][..8].copy_from_slice(b8);
                    }
                    r += take;
                }
            }
        };
        run(threads, dst, tile * n, work);
    }
}

/// Calls `work(i, chunk_i)` for every `chunk`-sized piece of `dst`, on the pool when it
/// has more than one thread.
fn run(threads: usize, dst: &mut [f32], chunk: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    let n_chunks = dst.len().div_ceil(chunk);
    if threads <= 1 || n_chunks <= 1 {
        for (i, c) in dst.chunks_mut(chunk).enumerate() {
            work(i, c);
        }
        return;
    }
    let pieces: Vec<Mutex<&mut [f32]>> = dst.chunks_mut(chunk).map(Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(n_chunks, |range| {
        for i in range {
            // Each piece is visited by exactly one worker, so the lock never waits.
            let mut piece = pieces[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            work(i, &mut piece);
        }
    });
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module};
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

    /// Same bits as candle's own Q4_1 × Q8_1 product, for decode and prefill shapes,
    /// with zero rows and blocks (d = 0) included (candle asserts an even block count).
    #[test]
    fn matches_candle_bit_for_bit() {
        let dev = Device::Cpu;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        for &(m, k, n) in &[
            (1, 64, 8),
            (1, 576, 200),
            (3, 128, 37),
            (40, 576, 67),
            (1, 1536, 33),
        ] {
            let w = Tensor::from_vec(random(&mut rng, n * k, 0.5), (n, k), &dev).unwrap();
            let qw = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
            let mut xs = random(&mut rng, m * k, 3.0);
            xs[..QK].iter_mut().for_each(|v| *v = 0.0);
            let x = Tensor::from_vec(xs, (m, k), &dev).unwrap();
            let ours: Vec<f32> = matmul_q4_1(&qw, &x)
                .unwrap()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mm = QMatMul::from_qtensor(qw).unwrap();
            let theirs: Vec<f32> = mm
                .forward(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let ob: Vec<u32> = ours.iter().map(|v| v.to_bits()).collect();
            let tb: Vec<u32> = theirs.iter().map(|v| v.to_bits()).collect();
            assert_eq!(ob, tb, "m={m} k={k} n={n}");
        }
    }

    #[test]
    fn portable_and_simd_agree_exactly() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        // 19 blocks per row, 13 rows: one SIMD group of eight and a remainder of five.
        let (kb, n) = (19, 13);
        let xs = random(&mut rng, kb * QK, 2.0);
        let mut y = vec![BlockQ81::new_zeroed(); kb];
        quantize_row_q8_1(&xs, &mut y);
        let w = random(&mut rng, n * kb * QK, 1.0);
        let w = Tensor::from_vec(w, (n, kb * QK), &Device::Cpu).unwrap();
        let qw = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let data = qw.data().unwrap();
        let blocks = <[BlockQ41]>::ref_from_bytes(&data).unwrap();
        let mut a = vec![0f32; n];
        Dot8(dot8_portable, dot8_portable).rows(blocks, &y, &mut a);
        let mut b = vec![0f32; n];
        Dot8::select().rows(blocks, &y, &mut b);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert!(a.iter().all(|v| *v != 0.0));
        // The SIMD kernel with one, four and eight activation rows sharing the weights.
        for rows in [1, 4, 8] {
            let ys: Vec<BlockQ81> = (0..rows).flat_map(|_| y.iter().copied()).collect();
            let mut c = vec![0f32; 8 * rows];
            (Dot8::select().0)(&blocks[..8 * kb], &ys, kb, &mut c);
            for c in c.chunks_exact(8) {
                assert_eq!(bits(c), bits(&a[..8]), "{rows} activation rows");
            }
        }
    }

    /// Quantized weights `(n, kb·32)` and Q8_1 activations `(m, kb·32)` from a seed.
    fn blocks(seed: u64, m: usize, kb: usize, n: usize) -> (QTensor, Vec<BlockQ81>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let k = kb * QK;
        let w = Tensor::from_vec(random(&mut rng, n * k, 1.0), (n, k), &Device::Cpu).unwrap();
        let qw = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let xs = random(&mut rng, m * k, 2.0);
        let mut y = vec![BlockQ81::new_zeroed(); m * kb];
        for (row, q) in xs.chunks_exact(k).zip(y.chunks_exact_mut(kb)) {
            quantize_row_q8_1(row, q);
        }
        (qw, y)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every kernel on every eight-row group: `(portable, chosen for this CPU, the
    /// simd128 lane kernel on emulated lanes)`, each `m × n8` (row-major, `n8` = the
    /// rows in whole groups of eight).
    fn all_kernels(qw: &QTensor, y: &[BlockQ81], kb: usize) -> [Vec<f32>; 3] {
        let data = qw.data().unwrap();
        let w = <[BlockQ41]>::ref_from_bytes(&data).unwrap();
        let n8 = w.len() / kb / 8 * 8;
        let m = y.len() / kb;
        let kernels: [Dot8Fn; 3] = [
            dot8_portable,
            Dot8::select().0,
            simd128::dot8_rows::<simd128::emulated::E>,
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

    /// The simd128 lane kernel (on emulated lanes) has the portable kernel's bits, for
    /// one, four and eight activation rows and for another count (the portable fallback).
    #[test]
    fn simd128_lane_kernel_matches_portable() {
        for (seed, m) in [(1, 1), (2, 4), (3, 8), (4, 3)] {
            let (kb, n) = (18, 24);
            let (qw, y) = blocks(seed, m, kb, n);
            let [portable, chosen, lanes] = all_kernels(&qw, &y, kb);
            assert!(portable.iter().all(|v| *v != 0.0));
            assert_eq!(bits(&lanes), bits(&portable), "m={m}");
            assert_eq!(bits(&chosen), bits(&portable), "m={m}");
        }
    }

    /// The relaxed-SIMD decode path (two 8-bit dot products a block, on emulated lanes)
    /// has the portable kernel's bits too.
    #[test]
    fn relaxed_simd_decode_path_matches_portable() {
        for seed in 0..6 {
            let kb = 7 + 3 * usize::try_from(seed).unwrap();
            let (qw, y) = blocks(seed, 1, kb, 8);
            let data = qw.data().unwrap();
            let w = <[BlockQ41]>::ref_from_bytes(&data).unwrap();
            let mut portable = vec![0f32; 8];
            dot8_portable(w, &y, kb, &mut portable);
            let mut relaxed = vec![0f32; 8];
            simd128::dot8_one::<simd128::emulated::E, true>(w, &y, &mut relaxed);
            assert!(portable.iter().all(|v| *v != 0.0));
            assert_eq!(bits(&relaxed), bits(&portable), "kb={kb}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Over shapes and block counts: the portable, the CPU's chosen (AVX2 here) and the
        /// simd128 lane kernel agree bit for bit on every group of eight rows; the whole
        /// product (`matmul_q4_1`, remainder rows included) equals candle's (which asks for
        /// an even block count).
        #[test]
        fn kernels_agree_over_shapes(
            seed in 0u64..1_000_000,
            m in 1usize..10,
            kb in 1usize..24,
            n in 1usize..40,
        ) {
            let (qw, y) = blocks(seed, m, kb, n);
            let [portable, chosen, lanes] = all_kernels(&qw, &y, kb);
            proptest::prop_assert_eq!(bits(&chosen), bits(&portable));
            proptest::prop_assert_eq!(bits(&lanes), bits(&portable));
            if kb % 2 == 0 {
                let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
                let x = Tensor::from_vec(random(&mut rng, m * kb * QK, 2.0), (m, kb * QK), &Device::Cpu)
                    .unwrap();
                let ours = matmul_q4_1(&qw, &x).unwrap().unwrap().flatten_all().unwrap();
                let mm = QMatMul::from_qtensor(qw).unwrap();
                let theirs = mm.forward(&x).unwrap().flatten_all().unwrap();
                proptest::prop_assert_eq!(
                    bits(&ours.to_vec1::<f32>().unwrap()),
                    bits(&theirs.to_vec1::<f32>().unwrap())
                );
            }
        }
    }

    #[test]
    fn other_types_and_bad_shapes() {
        let dev = Device::Cpu;
        let w = Tensor::zeros((4, 64), candle_core::DType::F32, &dev).unwrap();
        let q8 = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let x = Tensor::zeros((1, 64), candle_core::DType::F32, &dev).unwrap();
        assert!(matmul_q4_1(&q8, &x).unwrap().is_none());
        let q4 = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let bad = Tensor::zeros((1, 32), candle_core::DType::F32, &dev).unwrap();
        let err = matmul_q4_1(&q4, &bad).unwrap_err().to_string();
        assert!(err.contains("expects 64"), "{err}");
    }
}
