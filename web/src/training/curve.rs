//! A learning curve (one point per finished episode) and the "did it improve" statistic
//! the page shows and the browser test reads.

use serde::{Deserialize, Serialize};

/// Episodes averaged at each end of a learning curve by [`window_means`].
pub const IMPROVEMENT_WINDOW: usize = 8;

/// One finished episode on a learning curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Real environment steps the learner had taken when the episode ended.
    pub env_steps: u64,
    /// The episode's mean reward per slot (its return over its length), so scenarios
    /// with other episode lengths compare.
    pub reward: f64,
}

/// Mean reward of the first and of the last `window` episodes of a curve (fewer when the
/// curve is shorter than two windows: it is split in halves), or none with fewer than
/// two episodes. The page shows the difference; the browser test asserts it is positive.
#[must_use]
pub fn window_means(curve: &[CurvePoint], window: usize) -> Option<(f64, f64)> {
    if curve.len() < 2 || window == 0 {
        return None;
    }
    let w = window.min(curve.len() / 2);
    #[allow(clippy::cast_precision_loss)]
    let mean = |s: &[CurvePoint]| s.iter().map(|p| p.reward).sum::<f64>() / s.len() as f64;
    Some((mean(&curve[..w]), mean(&curve[curve.len() - w..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_means_split_short_curves() {
        let p = |reward| CurvePoint {
            env_steps: 0,
            reward,
        };
        assert_eq!(window_means(&[p(1.0)], 4), None);
        assert_eq!(window_means(&[p(1.0), p(3.0)], 4), Some((1.0, 3.0)));
        let curve: Vec<CurvePoint> = (0..10).map(|i| p(f64::from(i))).collect();
        assert_eq!(window_means(&curve, 2), Some((0.5, 8.5)));
        assert_eq!(window_means(&curve, 0), None);
    }
}
