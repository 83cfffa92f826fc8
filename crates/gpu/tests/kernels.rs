//! Every kernel against its CPU reference on random inputs: weight types, shapes and block
//! counts drawn by proptest (small shapes: CI runs these on lavapipe, a CPU adapter).

mod common;

use common::{assert_close, gpu, uniform, weights};
use edgewise_gpu::{GpuWeights, WeightType, block_on, ops, reference, rope};
use proptest::prelude::*;

fn ty() -> impl Strategy<Value = WeightType> {
    prop::sample::select(WeightType::ALL.to_vec())
}

/// Whole blocks of 32 columns: mostly a few, sometimes more than one staged tile (1024
/// columns) of the cooperative mat-vec.
fn blocks() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..5, 1 => 32usize..40]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The re-layout keeps every weight: read back from the words, it equals candle's
    /// dequantisation of the GGUF bytes exactly (CPU only).
    #[test]
    fn relayout_preserves_every_weight(ty in ty(), rows in 1usize..6, blocks in 1usize..5, seed in any::<u64>()) {
        let (gw, deq) = weights(seed, ty, rows, blocks * 32);
        prop_assert_eq!(gw.words.len(), rows * ty.row_words(blocks * 32));
        prop_assert_eq!(reference::dequantize(&gw), deq);
    }

    #[test]
    fn embed_matches_reference(ty in ty(), vocab in 1usize..9, blocks in 1usize..4, seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let cols = blocks * 32;
        let (gw, deq) = weights(seed, ty, vocab, cols);
        let token = pick.index(vocab);
        let got = block_on(ops::embed(ctx, k, &gw, u32::try_from(token).unwrap())).unwrap();
        assert_close("embed", &got, &reference::embed(&deq, cols, token), 0.0);
    }

    #[test]
    fn matvec_add_matches_reference(ty in ty(), rows in 1usize..80, blocks in blocks(), bias in any::<bool>(), seed in any::<u64>()) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let cols = blocks * 32;
        let (gw, deq) = weights(seed, ty, rows, cols);
        let v = uniform(seed ^ 1, cols, 1.0);
        let x = uniform(seed ^ 2, rows, 1.0);
        let b = bias.then(|| uniform(seed ^ 3, rows, 1.0));
        let got = block_on(ops::matvec_add(ctx, k, &gw, b.as_deref(), &v, &x)).unwrap();
        let want = reference::matvec_add(&x, &deq, &v, b.as_deref());
        assert_close("matvec_add", &got, &want, 1e-4);
    }

    #[test]
    fn gate_up_matches_reference(tg in ty(), tu in ty(), n_ff in 1usize..80, blocks in blocks(), bias in any::<bool>(), seed in any::<u64>()) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let e = blocks * 32;
        let (g, gd) = weights(seed, tg, n_ff, e);
        let (u, ud) = weights(seed ^ 1, tu, n_ff, e);
        let x = uniform(seed ^ 2, e, 3.0);
        let norm = uniform(seed ^ 3, e, 1.0);
        let bg = bias.then(|| uniform(seed ^ 4, n_ff, 1.0));
        let bu = bias.then(|| uniform(seed ^ 5, n_ff, 1.0));
        let got = block_on(ops::gate_up(ctx, k, &g, &u, (bg.as_deref(), bu.as_deref()), &norm, 1e-5, &x)).unwrap();
        let want = reference::gate_up(
            &x,
            &norm,
            1e-5,
            reference::Proj { w: &gd, rows: n_ff, bias: bg.as_deref() },
            reference::Proj { w: &ud, rows: n_ff, bias: bu.as_deref() },
        );
        assert_close("gate_up", &got, &want, 1e-4);
    }

    #[test]
    fn lm_head_matches_reference(ty in ty(), rows in 1usize..300, blocks in blocks(), seed in any::<u64>()) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let e = blocks * 32;
        let (w, wd) = weights(seed, ty, rows, e);
        let x = uniform(seed ^ 1, e, 5.0);
        let norm = uniform(seed ^ 2, e, 1.0);
        let got = block_on(ops::lm_head(ctx, k, &w, &norm, 1e-5, &x)).unwrap();
        assert_close("lm_head", &got, &reference::lm_head(&x, &norm, 1e-5, &wd, rows), 1e-4);
    }

    /// Ties are frequent (values on a coarse grid) so the lowest-index rule is exercised.
    #[test]
    fn argmax_matches_reference(n in 1usize..3000, seed in any::<u64>(), pos in 0usize..4, generating in any::<bool>()) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let logits: Vec<f32> = uniform(seed, n, 8.0).iter().map(|v| v.round()).collect();
        let known = if generating { pos + 1 } else { pos + 2 };
        let (pred, next) = block_on(ops::argmax(ctx, k, &logits, pos, known)).unwrap();
        let want = reference::argmax(&logits);
        prop_assert_eq!(pred, want);
        // The choice becomes the next token only when the host supplied none.
        prop_assert_eq!(next, if generating { want } else { u32::MAX });
    }

    #[test]
    fn qkv_matches_reference(
        types in (ty(), ty(), ty()),
        n_kv in 1usize..3,
        rep in 1usize..4,
        head_dim in prop::sample::select(vec![2usize, 4, 8, 16, 22, 64]),
        blocks in blocks(),
        halves in any::<bool>(),
        bias in any::<bool>(),
        pos in 0usize..6,
        seed in any::<u64>(),
    ) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let e = blocks * 32;
        let (qr, kr) = (n_kv * rep * head_dim, n_kv * head_dim);
        let (wq, qd) = weights(seed, types.0, qr, e);
        let (wk, kd) = weights(seed ^ 1, types.1, kr, e);
        let (wv, vd) = weights(seed ^ 2, types.2, kr, e);
        let x = uniform(seed ^ 3, e, 3.0);
        let norm = uniform(seed ^ 4, e, 1.0);
        let b: Vec<Option<Vec<f32>>> = [qr, kr, kr]
            .iter()
            .enumerate()
            .map(|(i, &n)| bias.then(|| uniform(seed ^ (5 + i as u64), n, 1.0)))
            .collect();
        let max_ctx = pos + 2;
        let table = rope::rope_table(head_dim, max_ctx, 10_000.0);
        let (q, kk, vv) = block_on(ops::qkv(ctx, k, ops::QkvInputs {
            x: &x,
            norm: &norm,
            eps: 1e-5,
            w: [&wq, &wk, &wv],
            bias: [b[0].as_deref(), b[1].as_deref(), b[2].as_deref()],
            head_dim,
            halves,
            pos,
            max_ctx,
            rope: &table,
        })).unwrap();
        let want = reference::qkv(
            &x,
            &norm,
            1e-5,
            reference::Proj { w: &qd, rows: qr, bias: b[0].as_deref() },
            reference::Proj { w: &kd, rows: kr, bias: b[1].as_deref() },
            reference::Proj { w: &vd, rows: kr, bias: b[2].as_deref() },
            head_dim,
            halves,
            &rope::at(&table, head_dim, pos),
        );
        assert_close("q", &q, &want.q, 1e-4);
        // One f16 rounding step apart at most.
        assert_close("k", &kk, &want.k, 2e-3);
        assert_close("v", &vv, &want.v, 2e-3);
    }

    /// Up to 70 cached positions, so the 64 threads of a head stride over the cache; head
    /// sizes from one 16-byte cache load (padded) to 16 of them.
    #[test]
    fn attention_matches_reference(
        n_kv in 1usize..3,
        rep in 1usize..4,
        head_dim in prop::sample::select(vec![2usize, 4, 8, 16, 22, 64, 128, 256]),
        len in 1usize..71,
        window in prop::option::of(1usize..80),
        seed in any::<u64>(),
    ) {
        let Some((ctx, k)) = gpu() else { return Ok(()) };
        let n_head = n_kv * rep;
        let kvw = n_kv * head_dim;
        // The cache holds f16: start from f16 values so packing is exact.
        let keys: Vec<Vec<f32>> = (0..len).map(|t| reference::f16_round(&uniform(seed ^ t as u64, kvw, 2.0))).collect();
        let values: Vec<Vec<f32>> = (0..len).map(|t| reference::f16_round(&uniform(seed ^ (1000 + t as u64), kvw, 2.0))).collect();
        let q = uniform(seed ^ 7, n_head * head_dim, 2.0);
        let w = window.unwrap_or(0);
        let got = block_on(ops::attention(ctx, k, &q, &keys, &values, n_head, n_kv, head_dim, w)).unwrap();
        let want = reference::attention(&q, &keys, &values, n_head, n_kv, head_dim, w);
        assert_close("attention", &got, &want, 1e-4);
    }
}

/// The kernels' integer f16 decode is exact for every f16 value (subnormals, infinities
/// and NaN included), read through `embed` from a one-row F16 table of all 65,536.
#[test]
fn f16_decode_is_exact_for_every_value() {
    let Some((ctx, k)) = gpu() else { return };
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    let table = GpuWeights::from_bytes("all f16", WeightType::F16, 1, 65_536, &bytes).unwrap();
    let got = block_on(ops::embed(ctx, k, &table, 0)).unwrap();
    for (h, g) in (0..=u16::MAX).zip(got) {
        let want = half::f16::from_bits(h).to_f32();
        assert!(
            g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
            "f16 {h:#06x}: GPU {g} ({:#010x}) vs {want}",
            g.to_bits()
        );
    }
}

#[test]
fn pack_f16_puts_the_first_value_in_the_low_half() {
    let w = ops::pack_f16(1.0, -2.0);
    assert_eq!(w & 0xffff, 0x3c00, "first value in the low half");
    assert_eq!(w >> 16, 0xc000);
    assert_eq!(ops::unpack_f16(w), (1.0, -2.0));
}
