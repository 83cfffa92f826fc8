//! The Q4_1 × Q8_1 product in 128-bit lanes: the kernel of the wasm32 `simd128` build.
//! [`Lanes`] also carries the IQ4_NL lane kernel of [`super::iq4_nl`] (one more
//! operation: a 16-entry table lookup).
//!
//! The kernel is written once, over [`Lanes`] (the dozen 128-bit operations it needs),
//! and instantiated twice: with WebAssembly's `v128` intrinsics in the browser build, and
//! in native tests with a plain-Rust emulation of the same lane semantics, so the kernel's
//! lane logic is checked bit for bit against the portable kernel on every native test
//! run (the browser test then checks the page's greedy tokens against the native engine).
//!
//! Bit-identity follows the portable kernel's argument: each block's integer sum
//! `Σ w·q` is exact however it is grouped (`i16` products ≤ 15·128 in magnitude, pairs
//! summed into `i32`), and each lane (one weight row) then does the scalar code's float
//! operations in its order, `acc + ((sumᵢ·dw)·dx + mw·sx)`, with no fused multiply-add
//! (WebAssembly's baseline SIMD has none). The f16 scales are widened exactly (see
//! [`f16_bits_to_f32_bits`]).

use super::{BlockQ41, BlockQ81, QK};

/// The 128-bit operations the kernel is written in. Lane types are implied by the
/// operation (as with WebAssembly's untyped `v128`).
pub(super) trait Lanes: Copy {
    /// Sixteen bytes, lane `i` = `b[i]`.
    fn bytes(b: [u8; 16]) -> Self;
    /// `u8` lanes: `v & 0x0F`.
    fn low_nibbles(self) -> Self;
    /// `u8` lanes: `v >> 4`.
    fn high_nibbles(self) -> Self;
    /// Byte lanes: lane `i` = `table[self[i]]` (`self[i]` < 16; 0 for larger indices, as
    /// WebAssembly's swizzle gives).
    fn lookup(self, table: Self) -> Self;
    /// Sixteen bytes of packed nibbles as four vectors of `i16` lanes: the low nibbles
    /// of the even bytes, of the odd bytes, then the high nibbles of the even bytes and
    /// of the odd bytes (lane `i` of each from byte `2i` or `2i + 1`).
    fn nibbles_i16(self) -> [Self; 4];
    /// `i8` lanes sign-extended to `i16`: (the even bytes, the odd bytes).
    fn split_i8(self) -> (Self, Self);
    /// `i8` lanes of `self` times the `u8` lanes of `w` (each below 64), four adjacent
    /// products summed into each `i32` lane and added to `acc`: relaxed SIMD's
    /// `i32x4.relaxed_dot_i8x16_i7x16_add_s`, exact for such `w`.
    fn dot_i8_add(self, w: Self, acc: Self) -> Self;
    /// `i8` lanes multiplied into `i16` lanes: (lanes 0..8, lanes 8..16).
    fn extmul_i8(self, b: Self) -> (Self, Self);
    /// `i16` lanes added (wrapping).
    fn add_i16(self, b: Self) -> Self;
    /// Adjacent `i16` lanes summed into four `i32` lanes.
    fn sum_pairs_i16(self) -> Self;
    /// `i8` lanes widened to `i16`: (lanes 0..8, lanes 8..16).
    fn widen_i8(self) -> (Self, Self);
    /// `i16` lanes multiplied pairwise and adjacent pairs summed into four `i32` lanes.
    fn dot_i16(self, b: Self) -> Self;
    /// `i32` lanes added.
    fn add_i32(self, b: Self) -> Self;
    /// Four `i32x4` vectors to one: lane `i` = the sum of `v[i]`'s lanes.
    fn sum_each(v: [Self; 4]) -> Self;
    /// `i32` lanes converted to `f32` (round to nearest, as `as f32`).
    fn f32_from_i32(self) -> Self;
    /// Four little-endian f16 values widened to `f32` lanes, exactly.
    fn f32_from_f16(h: [[u8; 2]; 4]) -> Self;
    /// Four pairs of little-endian f16 values (a Q4_1 block's `d` then `m`) widened to
    /// `f32` lanes, exactly: (the first of each pair, the second).
    fn f32_from_f16_pairs(h: [[u8; 4]; 4]) -> (Self, Self);
    /// All four `f32` lanes = `x`.
    fn f32_splat(x: f32) -> Self;
    /// `f32` lanes multiplied (IEEE, round to nearest).
    fn f32_mul(self, b: Self) -> Self;
    /// `f32` lanes added (IEEE, round to nearest).
    fn f32_add(self, b: Self) -> Self;
    /// The four `f32` lanes.
    fn f32_lanes(self) -> [f32; 4];
}

/// The bits of `f32::from(f16::from_bits(h))` for one value, computed the way the lane
/// code does: the f16 exponent and mantissa moved into f32 position are a number 2¹¹²
/// times too small (also for subnormals, read as f32 subnormals), so one exact
/// multiplication by 2¹¹² rescales them; infinities and NaNs (exponent all ones) get the
/// f32 exponent all ones instead (NaNs made quiet, as `half` does); the sign is copied.
#[cfg(test)]
fn f16_bits_to_f32_bits(h: u16) -> u32 {
    let h = u32::from(h);
    let exp_man = h & 0x7FFF;
    let shifted = exp_man << 13;
    let mag = if exp_man >= 0x7C00 {
        shifted | 0x7F80_0000 | if exp_man > 0x7C00 { 0x0040_0000 } else { 0 }
    } else {
        (f32::from_bits(shifted) * F16_RESCALE).to_bits()
    };
    mag | ((h & 0x8000) << 16)
}

/// 2¹¹²: the f32 exponent bias (127) less the f16 one (15).
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
const F16_RESCALE: f32 = 5.192_297e33;

/// Eight weight rows `w` (8 × `kb` blocks, row after row) against `R` activation rows
/// `y` (`kb` blocks each): `out[j·8 + i]` = row `i` · activation `j`. The same contract
/// and the same bits as [`super::dot8_portable`].
///
/// Rows go four at a time (one `f32` vector of results), so that one group's nibbles,
/// scales and accumulators stay in registers (V8 has sixteen 128-bit registers): with
/// all eight rows' widened weights live at once, the browser spilled them to memory.
#[inline(always)]
pub(super) fn dot8<L: Lanes, const R: usize>(
    w: &[BlockQ41],
    y: &[BlockQ81],
    kb: usize,
    out: &mut [f32],
) {
    // Accumulators: activation row j, weight rows 0..4 and 4..8.
    let mut acc = [[L::f32_splat(0.0); 2]; R];
    for b in 0..kb {
        for h in 0..2 {
            let blocks = [0, 1, 2, 3].map(|i| &w[(h * 4 + i) * kb + b]);
            let (dw, mw) = L::f32_from_f16_pairs(blocks.map(|blk| {
                let [d0, d1] = blk.d;
                let [m0, m1] = blk.m;
                [d0, d1, m0, m1]
            }));
            let nibbles = blocks.map(|blk| {
                let q = L::bytes(blk.qs);
                (q.low_nibbles(), q.high_nibbles())
            });
            for (j, acc) in acc.iter_mut().enumerate() {
                let yb = &y[j * kb + b];
                let [lo, hi]: [[u8; QK / 2]; 2] = zerocopy::transmute!(yb.qs);
                let (a_lo, a_hi) = (L::bytes(lo), L::bytes(hi));
                let s = L::sum_each(nibbles.map(|(x_lo, x_hi)| block_sum(x_lo, x_hi, a_lo, a_hi)));
                let t = s
                    .f32_from_i32()
                    .f32_mul(dw)
                    .f32_mul(L::f32_splat(yb.d))
                    .f32_add(mw.f32_mul(L::f32_splat(yb.s)));
                acc[h] = acc[h].f32_add(t);
            }
        }
    }
    for (acc, o) in acc.iter().zip(out.chunks_exact_mut(8)) {
        o[..4].copy_from_slice(&acc[0].f32_lanes());
        o[4..].copy_from_slice(&acc[1].f32_lanes());
    }
}

/// [`dot8`] for one activation row (decoding), written out for the register
/// allocator: each weight is used once, so both sides go to `i16` lanes for
/// `i32x4.dot_i16x8` (one x86 instruction in V8; the extended multiplies of [`block_sum`]
/// take several each) by 16-bit shifts and masks, which skip the byte-lane shift and
/// widening that V8 lowers to several instructions each.
///
/// With `DOT_I8` (the relaxed-SIMD build) each block is two 8-bit dot products of the
/// unwidened nibbles with the activation bytes instead.
#[inline(always)]
pub(super) fn dot8_one<L: Lanes, const DOT_I8: bool>(
    w: &[BlockQ41],
    y: &[BlockQ81],
    out: &mut [f32],
) {
    let kb = y.len();
    let rows: [&[BlockQ41]; 8] = std::array::from_fn(|i| &w[i * kb..(i + 1) * kb]);
    let mut acc = [L::f32_splat(0.0); 2];
    for (b, yb) in y.iter().enumerate() {
        // Weight byte j holds value j (low nibble) and value 16 + j (high nibble); the
        // activations are split the same way, even and odd positions.
        let [lo, hi]: [[u8; QK / 2]; 2] = zerocopy::transmute!(yb.qs);
        let (a_lo, a_hi) = (L::bytes(lo), L::bytes(hi));
        let (a0, a1) = a_lo.split_i8();
        let (a2, a3) = a_hi.split_i8();
        let (dx, sx) = (L::f32_splat(yb.d), L::f32_splat(yb.s));
        for (h, acc) in acc.iter_mut().enumerate() {
            let r0 = &rows[h * 4][b];
            let r1 = &rows[h * 4 + 1][b];
            let r2 = &rows[h * 4 + 2][b];
            let r3 = &rows[h * 4 + 3][b];
            let dot = |blk: &BlockQ41| {
                let q = L::bytes(blk.qs);
                if DOT_I8 {
                    let zero = L::f32_splat(0.0);
                    a_lo.dot_i8_add(q.low_nibbles(), a_hi.dot_i8_add(q.high_nibbles(), zero))
                } else {
                    let [x0, x1, x2, x3] = q.nibbles_i16();
                    x0.dot_i16(a0)
                        .add_i32(x1.dot_i16(a1))
                        .add_i32(x2.dot_i16(a2).add_i32(x3.dot_i16(a3)))
                }
            };
            let s = L::sum_each([dot(r0), dot(r1), dot(r2), dot(r3)]);
            let (dw, mw) = L::f32_from_f16_pairs([r0, r1, r2, r3].map(|blk| {
                let [d0, d1] = blk.d;
                let [m0, m1] = blk.m;
                [d0, d1, m0, m1]
            }));
            let t = s
                .f32_from_i32()
                .f32_mul(dw)
                .f32_mul(dx)
                .f32_add(mw.f32_mul(sx));
            *acc = acc.f32_add(t);
        }
    }
    out[..4].copy_from_slice(&acc[0].f32_lanes());
    out[4..8].copy_from_slice(&acc[1].f32_lanes());
}

/// One weight row's block against one activation block: four `i32` lanes summing to
/// `Σ w·q`. The weights' low nibbles (values 0..16) meet the activations' first sixteen
/// bytes, the high nibbles the last sixteen; each `i16` lane sums four products of at
/// most 15·128 in magnitude, so nothing overflows before the widening pairwise add.
#[inline(always)]
fn block_sum<L: Lanes>(x_lo: L, x_hi: L, a_lo: L, a_hi: L) -> L {
    let (p0, p1) = x_lo.extmul_i8(a_lo);
    let (p2, p3) = x_hi.extmul_i8(a_hi);
    p0.add_i16(p1).add_i16(p2.add_i16(p3)).sum_pairs_i16()
}

/// [`dot8`] with `R` = the number of activation rows when it is 1, 4 or 8 (the counts
/// the callers use), else the portable kernel.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
pub(super) fn dot8_rows<L: Lanes>(w: &[BlockQ41], y: &[BlockQ81], kb: usize, out: &mut [f32]) {
    let rows = y.len() / kb;
    assert!(
        w.len() == 8 * kb && y.len() == rows * kb && out.len() == 8 * rows,
        "dot8: 8 weight rows, {rows} activation rows, {} outputs",
        out.len()
    );
    match rows {
        1 => dot8_one::<L, { cfg!(target_feature = "relaxed-simd") }>(w, y, out),
        4 => dot8::<L, 4>(w, y, kb, out),
        8 => dot8::<L, 8>(w, y, kb, out),
        _ => super::dot8_portable(w, y, kb, out),
    }
}

/// WebAssembly's `v128` (the build sets `+simd128` for wasm32 in `.cargo/config.toml`).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) mod wasm {
    use std::arch::wasm32::{
        f32x4_add, f32x4_convert_i32x4, f32x4_mul, f32x4_splat, i8x16_swizzle, i16x8_add,
        i16x8_extend_high_i8x16, i16x8_extend_low_i8x16, i16x8_extmul_high_i8x16,
        i16x8_extmul_low_i8x16, i16x8_shl, i16x8_shr, i32x4_add, i32x4_dot_i16x8,
        i32x4_extadd_pairwise_i16x8, i32x4_shl, i32x4_shuffle, u8x16_shr, u8x16_splat, u16x8_shr,
        u16x8_splat, u32x4, u32x4_ge, u32x4_gt, u32x4_shr, u32x4_splat, v128, v128_and,
        v128_bitselect, v128_or,
    };

    use super::{F16_RESCALE, Lanes};

    #[derive(Clone, Copy)]
    pub(in crate::kernels) struct V(v128);

    impl Lanes for V {
        #[inline(always)]
        fn bytes(b: [u8; 16]) -> Self {
            Self(zerocopy::transmute!(b))
        }
        #[inline(always)]
        fn low_nibbles(self) -> Self {
            Self(v128_and(self.0, u8x16_splat(0x0F)))
        }
        #[inline(always)]
        fn high_nibbles(self) -> Self {
            Self(u8x16_shr(self.0, 4))
        }
        #[inline(always)]
        fn lookup(self, table: Self) -> Self {
            Self(i8x16_swizzle(table.0, self.0))
        }
        #[inline(always)]
        fn nibbles_i16(self) -> [Self; 4] {
            let m = u16x8_splat(0x000F);
            [
                Self(v128_and(self.0, m)),
                Self(v128_and(u16x8_shr(self.0, 8), m)),
                Self(v128_and(u16x8_shr(self.0, 4), m)),
                Self(u16x8_shr(self.0, 12)),
            ]
        }
        #[inline(always)]
        fn split_i8(self) -> (Self, Self) {
            (
                Self(i16x8_shr(i16x8_shl(self.0, 8), 8)),
                Self(i16x8_shr(self.0, 8)),
            )
        }
        #[inline(always)]
        fn dot_i8_add(self, w: Self, acc: Self) -> Self {
            #[cfg(target_feature = "relaxed-simd")]
            let sum = std::arch::wasm32::i32x4_relaxed_dot_i8x16_i7x16_add(self.0, w.0, acc.0);
            // The baseline build never calls this (`dot8_one` without `DOT_I8`); the
            // same sums in baseline SIMD keep it total.
            #[cfg(not(target_feature = "relaxed-simd"))]
            let sum = i32x4_add(
                acc.0,
                i32x4_add(
                    i32x4_extadd_pairwise_i16x8(i16x8_extmul_low_i8x16(self.0, w.0)),
                    i32x4_extadd_pairwise_i16x8(i16x8_extmul_high_i8x16(self.0, w.0)),
                ),
            );
            Self(sum)
        }
        #[inline(always)]
        fn extmul_i8(self, b: Self) -> (Self, Self) {
            (
                Self(i16x8_extmul_low_i8x16(self.0, b.0)),
                Self(i16x8_extmul_high_i8x16(self.0, b.0)),
            )
        }
        #[inline(always)]
        fn add_i16(self, b: Self) -> Self {
            Self(i16x8_add(self.0, b.0))
        }
        #[inline(always)]
        fn sum_pairs_i16(self) -> Self {
            Self(i32x4_extadd_pairwise_i16x8(self.0))
        }
        #[inline(always)]
        fn widen_i8(self) -> (Self, Self) {
            (
                Self(i16x8_extend_low_i8x16(self.0)),
                Self(i16x8_extend_high_i8x16(self.0)),
            )
        }
        #[inline(always)]
        fn dot_i16(self, b: Self) -> Self {
            Self(i32x4_dot_i16x8(self.0, b.0))
        }
        #[inline(always)]
        fn add_i32(self, b: Self) -> Self {
            Self(i32x4_add(self.0, b.0))
        }
        #[inline(always)]
        fn sum_each(v: [Self; 4]) -> Self {
            // [a0+a2, b0+b2, a1+a3, b1+b3], then the same for c and d, then pairs.
            let ab = i32x4_add(
                i32x4_shuffle::<0, 4, 1, 5>(v[0].0, v[1].0),
                i32x4_shuffle::<2, 6, 3, 7>(v[0].0, v[1].0),
            );
            let cd = i32x4_add(
                i32x4_shuffle::<0, 4, 1, 5>(v[2].0, v[3].0),
                i32x4_shuffle::<2, 6, 3, 7>(v[2].0, v[3].0),
            );
            Self(i32x4_add(
                i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
                i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
            ))
        }
        #[inline(always)]
        fn f32_from_i32(self) -> Self {
            Self(f32x4_convert_i32x4(self.0))
        }
        #[inline(always)]
        fn f32_from_f16(h: [[u8; 2]; 4]) -> Self {
            let u = |i: usize| u32::from(u16::from_le_bytes(h[i]));
            Self(f16_lanes(u32x4(u(0), u(1), u(2), u(3))))
        }
        #[inline(always)]
        fn f32_from_f16_pairs(h: [[u8; 4]; 4]) -> (Self, Self) {
            // One 32-bit gather per block instead of two 16-bit ones.
            let u = |i: usize| u32::from_le_bytes(h[i]);
            let v = u32x4(u(0), u(1), u(2), u(3));
            (
                Self(f16_lanes(v128_and(v, u32x4_splat(0xFFFF)))),
                Self(f16_lanes(u32x4_shr(v, 16))),
            )
        }
        #[inline(always)]
        fn f32_splat(x: f32) -> Self {
            Self(f32x4_splat(x))
        }
        #[inline(always)]
        fn f32_mul(self, b: Self) -> Self {
            Self(f32x4_mul(self.0, b.0))
        }
        #[inline(always)]
        fn f32_add(self, b: Self) -> Self {
            Self(f32x4_add(self.0, b.0))
        }
        #[inline(always)]
        fn f32_lanes(self) -> [f32; 4] {
            zerocopy::transmute!(self.0)
        }
    }

    /// f16 bit patterns in the low halves of `u32` lanes (high halves zero) widened to
    /// `f32` lanes, exactly (as `f16_bits_to_f32_bits` in the tests).
    #[inline(always)]
    fn f16_lanes(v: v128) -> v128 {
        let exp_man = v128_and(v, u32x4_splat(0x7FFF));
        let shifted = i32x4_shl(exp_man, 13);
        let finite = f32x4_mul(shifted, f32x4_splat(F16_RESCALE));
        let quiet = v128_and(
            u32x4_gt(exp_man, u32x4_splat(0x7C00)),
            u32x4_splat(0x0040_0000),
        );
        let special = v128_or(v128_or(shifted, u32x4_splat(0x7F80_0000)), quiet);
        let mag = v128_bitselect(special, finite, u32x4_ge(exp_man, u32x4_splat(0x7C00)));
        let sign = i32x4_shl(v128_and(v, u32x4_splat(0x8000)), 16);
        v128_or(mag, sign)
    }

    /// The kernel with `v128` lanes, for [`super::super::Dot8`].
    pub(in crate::kernels) fn dot8(
        w: &[super::BlockQ41],
        y: &[super::BlockQ81],
        kb: usize,
        out: &mut [f32],
    ) {
        super::dot8_rows::<V>(w, y, kb, out);
    }
}

/// The lane semantics in plain Rust, lane by lane, for checking the kernel natively.
#[cfg(test)]
pub(super) mod emulated {
    use super::{Lanes, f16_bits_to_f32_bits};

    /// A 128-bit value as bytes (little-endian lanes, as in WebAssembly).
    #[derive(Clone, Copy)]
    pub(in crate::kernels) struct E([u8; 16]);

    fn i16s(v: E) -> [i16; 8] {
        zerocopy::transmute!(v.0)
    }
    fn i32s(v: E) -> [i32; 4] {
        zerocopy::transmute!(v.0)
    }
    fn f32s(v: E) -> [f32; 4] {
        zerocopy::transmute!(v.0)
    }
    fn from_i16(v: [i16; 8]) -> E {
        E(zerocopy::transmute!(v))
    }
    fn from_i32(v: [i32; 4]) -> E {
        E(zerocopy::transmute!(v))
    }
    fn from_f32(v: [f32; 4]) -> E {
        E(zerocopy::transmute!(v))
    }

    impl Lanes for E {
        fn bytes(b: [u8; 16]) -> Self {
            Self(b)
        }
        fn low_nibbles(self) -> Self {
            Self(self.0.map(|b| b & 0x0F))
        }
        fn high_nibbles(self) -> Self {
            Self(self.0.map(|b| b >> 4))
        }
        fn lookup(self, table: Self) -> Self {
            Self(
                self.0
                    .map(|i| table.0.get(usize::from(i)).copied().unwrap_or(0)),
            )
        }
        fn nibbles_i16(self) -> [Self; 4] {
            let v = self.0;
            let lane = |f: fn(u8) -> u8, odd: usize| {
                from_i16(std::array::from_fn(|i| i16::from(f(v[2 * i + odd]))))
            };
            [
                lane(|b| b & 0x0F, 0),
                lane(|b| b & 0x0F, 1),
                lane(|b| b >> 4, 0),
                lane(|b| b >> 4, 1),
            ]
        }
        fn split_i8(self) -> (Self, Self) {
            #[allow(clippy::cast_possible_wrap)]
            let lane = |odd: usize| {
                from_i16(std::array::from_fn(|i| {
                    i16::from(self.0[2 * i + odd] as i8)
                }))
            };
            (lane(0), lane(1))
        }
        fn dot_i8_add(self, w: Self, acc: Self) -> Self {
            let acc = i32s(acc);
            #[allow(clippy::cast_possible_wrap)]
            from_i32(std::array::from_fn(|k| {
                (0..4).fold(acc[k], |s, j| {
                    let (a, b) = (self.0[4 * k + j] as i8, w.0[4 * k + j]);
                    assert!(b < 64, "relaxed dot: weight lane {b} outside 0..64");
                    s.wrapping_add(i32::from(a) * i32::from(b))
                })
            }))
        }
        fn extmul_i8(self, b: Self) -> (Self, Self) {
            #[allow(clippy::cast_possible_wrap)]
            let p = |o: usize| {
                from_i16(std::array::from_fn(|i| {
                    i16::from(self.0[o + i] as i8) * i16::from(b.0[o + i] as i8)
                }))
            };
            (p(0), p(8))
        }
        fn add_i16(self, b: Self) -> Self {
            let (a, b) = (i16s(self), i16s(b));
            from_i16(std::array::from_fn(|i| a[i].wrapping_add(b[i])))
        }
        fn sum_pairs_i16(self) -> Self {
            let a = i16s(self);
            from_i32(std::array::from_fn(|i| {
                i32::from(a[2 * i]) + i32::from(a[2 * i + 1])
            }))
        }
        fn widen_i8(self) -> (Self, Self) {
            #[allow(clippy::cast_possible_wrap)]
            let w = |o: usize| from_i16(std::array::from_fn(|i| i16::from(self.0[o + i] as i8)));
            (w(0), w(8))
        }
        fn dot_i16(self, b: Self) -> Self {
            let (a, b) = (i16s(self), i16s(b));
            let p = |i: usize| i32::from(a[i]) * i32::from(b[i]);
            from_i32(std::array::from_fn(|i| p(2 * i).wrapping_add(p(2 * i + 1))))
        }
        fn add_i32(self, b: Self) -> Self {
            let (a, b) = (i32s(self), i32s(b));
            from_i32(std::array::from_fn(|i| a[i].wrapping_add(b[i])))
        }
        fn sum_each(v: [Self; 4]) -> Self {
            from_i32(std::array::from_fn(|i| {
                i32s(v[i]).iter().fold(0i32, |s, &x| s.wrapping_add(x))
            }))
        }
        fn f32_from_i32(self) -> Self {
            #[allow(clippy::cast_precision_loss)]
            from_f32(i32s(self).map(|x| x as f32))
        }
        fn f32_from_f16(h: [[u8; 2]; 4]) -> Self {
            from_f32(h.map(|b| f32::from_bits(f16_bits_to_f32_bits(u16::from_le_bytes(b)))))
        }
        fn f32_from_f16_pairs(h: [[u8; 4]; 4]) -> (Self, Self) {
            let half = |o: usize| Self::f32_from_f16(h.map(|b| [b[o], b[o + 1]]));
            (half(0), half(2))
        }
        fn f32_splat(x: f32) -> Self {
            from_f32([x; 4])
        }
        fn f32_mul(self, b: Self) -> Self {
            let (a, b) = (f32s(self), f32s(b));
            from_f32(std::array::from_fn(|i| a[i] * b[i]))
        }
        fn f32_add(self, b: Self) -> Self {
            let (a, b) = (f32s(self), f32s(b));
            from_f32(std::array::from_fn(|i| a[i] + b[i]))
        }
        fn f32_lanes(self) -> [f32; 4] {
            f32s(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::f16_bits_to_f32_bits;

    /// The lane code's f16 widening equals `half`'s for every bit pattern (NaNs: both
    /// NaN with the same payload and sign).
    #[test]
    fn f16_widening_is_exact_for_all_values() {
        for h in 0..=u16::MAX {
            let want = f16::from_bits(h).to_f32();
            let got = f32::from_bits(f16_bits_to_f32_bits(h));
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
                assert_eq!(
                    got.to_bits() | 0x0040_0000,
                    want.to_bits() | 0x0040_0000,
                    "{h:#06x}"
                );
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}: {got} vs {want}");
            }
        }
    }
}
