//! Statistics that tell variants apart on the same items (issue 13, item 1).
//!
//! * [`paired_bootstrap`]: a confidence interval for the mean of variant − base over items
//!   that both were scored on, resampling items with replacement **within each task
//!   family** (stratified, so every replicate keeps the family mix of the data set) from a
//!   seeded xoshiro256++: the same seed gives the same interval everywhere.
//! * [`mcnemar_exact`]: the exact (binomial) two-sided McNemar test for paired correct /
//!   wrong outcomes: only the discordant items count.
//! * [`retained_above_chance`]: (variant − chance) / (base − chance), beside raw retention
//!   variant / base, so that a 4-way multiple choice at 25% is not "50% retained" by luck.
//! * [`token_agreement`]: KL(base ‖ variant) and top-1 agreement per predicted token on
//!   held-out text, a development metric far less noisy than accuracy.
//! * [`risk_coverage`]: for factual questions, coverage (answered / asked), risk (wrong /
//!   answered) and hallucination rate (wrong answered / asked) as the confidence threshold
//!   moves, so a lower hallucination rate bought by abstaining is visible as lower coverage.

use std::collections::BTreeMap;

use candle_core::D;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use edgewise_llm::error::{Error, Result};
use edgewise_llm::model::Model;

/// A point estimate with a two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate on the actual items.
    pub estimate: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Paired, family-stratified bootstrap of the mean difference. `items` holds `(family,
/// base value, variant value)` per item (1/0 for correct/wrong, or any score);
/// `level` is the coverage of the interval (0.95), `reps` the bootstrap replicates.
/// Percentile interval.
///
/// # Errors
/// [`Error::InvalidArgument`] for no items, `reps` = 0 or a level outside (0, 1).
pub fn paired_bootstrap(
    items: &[(String, f64, f64)],
    reps: usize,
    level: f64,
    seed: u64,
) -> Result<Interval> {
    if items.is_empty() || reps == 0 || !(level > 0.0 && level < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "bootstrap needs items (got {}), replicates (got {reps}) and a level in (0, 1) \
             (got {level})",
            items.len()
        )));
    }
    let mut strata: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (f, b, v) in items {
        strata.entry(f.as_str()).or_default().push(v - b);
    }
    #[allow(clippy::cast_precision_loss)]
    let n = items.len() as f64;
    let estimate = items.iter().map(|(_, b, v)| v - b).sum::<f64>() / n;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut means = Vec::with_capacity(reps);
    for _ in 0..reps {
        let mut sum = 0.0;
        for d in strata.values() {
            let len = d.len() as u64;
            for _ in 0..d.len() {
                // Multiply-shift: an unbiased-enough index for bootstrap purposes.
                let i = ((u128::from(rng.next_u64()) * u128::from(len)) >> 64) as usize;
                sum += d[i];
            }
        }
        means.push(sum / n);
    }
    means.sort_by(f64::total_cmp);
    let q = |p: f64| {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let i = ((p * (reps - 1) as f64).round() as usize).min(reps - 1);
        means[i]
    };
    let tail = (1.0 - level) / 2.0;
    Ok(Interval {
        estimate,
        lo: q(tail),
        hi: q(1.0 - tail),
    })
}

/// Exact two-sided McNemar p-value from the discordant counts: `base_only` items the base
/// got right and the variant wrong, `variant_only` the reverse. Under the null each
/// discordant item is a fair coin: p = min(1, 2·P(Binomial(n, ½) ≤ min)).
#[must_use]
pub fn mcnemar_exact(base_only: u64, variant_only: u64) -> f64 {
    let n = base_only + variant_only;
    if n == 0 {
        return 1.0;
    }
    let k = base_only.min(variant_only);
    // Σ_{i≤k} C(n, i) / 2^n in log space (n may be in the thousands).
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_c = 0.0f64; // ln C(n, 0)
    let mut total = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            #[allow(clippy::cast_precision_loss)]
            {
                ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
        }
        total += (ln_c + ln_half_n).exp();
    }
    (2.0 * total).min(1.0)
}

/// Accuracy retained above chance: (variant − chance) / (base − chance); None when the base
/// is not above chance.
#[must_use]
pub fn retained_above_chance(variant: f64, base: f64, chance: f64) -> Option<f64> {
    (base > chance).then(|| (variant - chance) / (base - chance))
}

/// KL to the base and top-1 agreement on held-out tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Mean KL(p_base ‖ p_variant) per predicted token, nats.
    pub kl: f64,
    /// Fraction of positions where both models' most likely next token is the same.
    pub top1: f64,
    /// Positions compared.
    pub tokens: usize,
}

/// KL(base ‖ variant) and top-1 agreement over every position of `sequences` (each run
/// from position 0; both models must share the vocabulary).
///
/// # Errors
/// [`Error::InvalidArgument`] for different vocabularies or no positions; model errors.
pub fn token_agreement(base: &Model, variant: &Model, sequences: &[Vec<u32>]) -> Result<Agreement> {
    if base.config().vocab_size != variant.config().vocab_size {
        return Err(Error::InvalidArgument(format!(
            "the variant's vocabulary ({}) differs from the base's ({})",
            variant.config().vocab_size,
            base.config().vocab_size
        )));
    }
    let (mut kl, mut agree, mut n) = (0.0f64, 0usize, 0usize);
    for s in sequences.iter().filter(|s| !s.is_empty()) {
        let lb = base.forward_all(s, &mut base.new_cache())?;
        let lv = variant.forward_all(s, &mut variant.new_cache())?;
        let pb = candle_nn::ops::log_softmax(&lb, D::Minus1)?;
        let pv = candle_nn::ops::log_softmax(&lv, D::Minus1)?;
        let k = (pb.exp()? * (&pb - &pv)?)?.sum_all()?.to_scalar::<f32>()?;
        kl += f64::from(k);
        let ab = lb.argmax(D::Minus1)?.to_vec1::<u32>()?;
        let av = lv.argmax(D::Minus1)?.to_vec1::<u32>()?;
        agree += ab.iter().zip(&av).filter(|(a, b)| a == b).count();
        n += s.len();
    }
    if n == 0 {
        return Err(Error::InvalidArgument(
            "token agreement needs at least one token".into(),
        ));
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(Agreement {
        kl: kl / n as f64,
        top1: agree as f64 / n as f64,
        tokens: n,
    })
}

/// One factual reply as risk–coverage needs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FactReply {
    /// Geometric mean of the reply's token probabilities.
    pub confidence: f32,
    /// Contains a gold answer.
    pub correct: bool,
    /// Says it does not know (or is empty): never counted as answered.
    pub refused: bool,
}

/// One point of the risk–coverage curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskPoint {
    /// Replies with confidence below this count as abstentions.
    pub threshold: f32,
    /// Answered / asked.
    pub coverage: f64,
    /// Wrong / answered (0 when nothing is answered).
    pub risk: f64,
    /// Wrong answered / asked: the hallucination rate at this threshold.
    pub hallucination_rate: f64,
    /// Correct answered / asked.
    pub accuracy: f64,
}

/// Risk and coverage at each threshold. A correct reply counts as answered whatever its
/// confidence (as in the hallucination rule); a wrong one only at or above the threshold.
#[must_use]
pub fn risk_coverage(replies: &[FactReply], thresholds: &[f32]) -> Vec<RiskPoint> {
    #[allow(clippy::cast_precision_loss)]
    let asked = replies.len().max(1) as f64;
    thresholds
        .iter()
        .map(|&t| {
            let correct = replies.iter().filter(|r| r.correct).count();
            let wrong = replies
                .iter()
                .filter(|r| !r.correct && !r.refused && r.confidence >= t)
                .count();
            let answered = correct + wrong;
            #[allow(clippy::cast_precision_loss)]
            RiskPoint {
                threshold: t,
                coverage: answered as f64 / asked,
                risk: if answered == 0 {
                    0.0
                } else {
                    wrong as f64 / answered as f64
                },
                hallucination_rate: wrong as f64 / asked,
                accuracy: correct as f64 / asked,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_known_answers() {
        // n = 5, all one way: 2 · (1/32).
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // n = 10, k = 1: 2 · (1 + 10)/1024.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-12);
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(4, 4), 1.0);
        // Large n stays finite and tiny: 0 vs 2000.
        let p = mcnemar_exact(0, 2000);
        assert!((0.0..1e-300).contains(&p), "{p}");
    }

    #[test]
    fn retention_above_chance() {
        assert_eq!(retained_above_chance(0.25, 0.5, 0.25), Some(0.0));
        assert_eq!(retained_above_chance(0.5, 0.5, 0.25), Some(1.0));
        assert!((retained_above_chance(0.4, 0.6, 0.2).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(retained_above_chance(0.3, 0.2, 0.25), None);
    }

    #[test]
    fn bootstrap_of_a_constant_difference_is_that_constant() {
        let items: Vec<(String, f64, f64)> = (0..40)
            .map(|i| {
                (
                    format!("f{}", i % 3),
                    0.2 * f64::from(i % 2),
                    0.2 * f64::from(i % 2) - 0.1,
                )
            })
            .collect();
        let iv = paired_bootstrap(&items, 500, 0.95, 7).unwrap();
        for v in [iv.estimate, iv.lo, iv.hi] {
            assert!((v + 0.1).abs() < 1e-12, "{iv:?}");
        }
    }

    #[test]
    fn bootstrap_interval_matches_the_binomial_width() {
        // 400 items, variant right where base wrong on 20% (diff +1), else equal: the mean
        // is 0.2 with sd sqrt(0.2·0.8/400) = 0.02, so the 95% interval is about ±0.039.
        let items: Vec<(String, f64, f64)> = (0..400)
            .map(|i| {
                let fam = format!("f{}", i % 4);
                if i % 5 == 0 {
                    (fam, 0.0, 1.0)
                } else {
                    (fam, 1.0, 1.0)
                }
            })
            .collect();
        let iv = paired_bootstrap(&items, 2000, 0.95, 1).unwrap();
        assert!((iv.estimate - 0.2).abs() < 1e-12);
        let half = (iv.hi - iv.lo) / 2.0;
        assert!((0.025..0.05).contains(&half), "{iv:?}");
        assert!(iv.lo < 0.2 && iv.hi > 0.2);
        // Deterministic.
        assert_eq!(iv, paired_bootstrap(&items, 2000, 0.95, 1).unwrap());
        assert!(paired_bootstrap(&[], 10, 0.95, 1).is_err());
        assert!(paired_bootstrap(&items, 0, 0.95, 1).is_err());
    }

    #[test]
    fn stratification_keeps_family_sizes() {
        // One family all +1, one all −1, equal sizes: every stratified replicate has mean 0
        // (an unstratified bootstrap would wander).
        let mut items: Vec<(String, f64, f64)> = (0..30).map(|_| ("a".into(), 0.0, 1.0)).collect();
        items.extend((0..30).map(|_| ("b".into(), 1.0, 0.0)));
        let iv = paired_bootstrap(&items, 300, 0.9, 3).unwrap();
        assert_eq!((iv.estimate, iv.lo, iv.hi), (0.0, 0.0, 0.0));
    }

    #[test]
    fn risk_coverage_known_answers() {
        let r = |confidence, correct, refused| FactReply {
            confidence,
            correct,
            refused,
        };
        let replies = [
            r(0.9, true, false),
            r(0.2, true, false),
            r(0.8, false, false),
            r(0.3, false, false),
            r(0.9, false, true),
        ];
        let pts = risk_coverage(&replies, &[0.0, 0.5, 1.0]);
        // t = 0: answered 2 correct + 2 wrong of 5.
        assert!((pts[0].coverage - 0.8).abs() < 1e-12 && (pts[0].risk - 0.5).abs() < 1e-12);
        assert!((pts[0].hallucination_rate - 0.4).abs() < 1e-12);
        // t = 0.5: the 0.3 wrong reply abstains.
        assert!((pts[1].coverage - 0.6).abs() < 1e-12);
        assert!((pts[1].hallucination_rate - 0.2).abs() < 1e-12);
        // t = 1: only correct replies count as answered; risk 0.
        assert!((pts[2].coverage - 0.4).abs() < 1e-12 && pts[2].risk == 0.0);
        assert!(pts.iter().all(|p| (p.accuracy - 0.4).abs() < 1e-12));
    }

    #[test]
    fn agreement_of_a_model_with_itself_is_perfect() {
        use edgewise_llm::Device;
        use edgewise_llm::model::tiny_config;
        let m = Model::synthetic(&tiny_config(1), 2, &Device::Cpu).unwrap();
        let a = token_agreement(&m, &m, &[vec![1, 2, 3], vec![4, 5]]).unwrap();
        assert_eq!(a.tokens, 5);
        assert!(a.kl.abs() < 1e-6 && (a.top1 - 1.0).abs() < 1e-12, "{a:?}");
        let other = Model::synthetic(&tiny_config(1), 3, &Device::Cpu).unwrap();
        let b = token_agreement(&m, &other, &[vec![1, 2, 3], vec![4, 5]]).unwrap();
        assert!(b.kl > 0.0, "{b:?}");
    }
}
