//! Global gradient-norm clipping, shared by every learner in the crate (PPO and the
//! world models).

use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Scale all gradients together so that their global L2 norm is at most `max_norm`.
/// `ids` lists every parameter with its rank (1 or 2).
pub(crate) fn clip_global_norm(
    grads: &mut GradientsParams,
    ids: &[(ParamId, usize)],
    max_norm: f32,
) {
    let mut sq = Vec::with_capacity(ids.len());
    for &(id, rank) in ids {
        let s = match rank {
            1 => grads.get::<1>(id).map(|g| g.powi_scalar(2).sum()),
            _ => grads.get::<2>(id).map(|g| g.powi_scalar(2).sum()),
        };
        sq.extend(s);
    }
    if sq.is_empty() {
        return;
    }
    let norm = Tensor::cat(sq, 0).sum().into_scalar::<f32>().sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for &(id, rank) in ids {
            match rank {
                1 => {
                    if let Some(g) = grads.remove::<1>(id) {
                        grads.register(id, g.mul_scalar(scale));
                    }
                }
                _ => {
                    if let Some(g) = grads.remove::<2>(id) {
                        grads.register(id, g.mul_scalar(scale));
                    }
                }
            }
        }
    }
}
