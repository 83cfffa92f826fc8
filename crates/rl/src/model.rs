//! The actor-critic networks on burn, their orthogonal initialisation and their export
//! to the plain-Rust [`Mlp`](edgewise_policy::Mlp).

use burn::module::{Module, Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData, activation};

use edgewise_rng::Rng;
use edgewise_policy::{Dense, Mlp};

/// A `tanh` multi-layer perceptron on burn.
#[derive(Module, Debug)]
pub struct Net {
    /// Layers in order; `tanh` between them, none after the last.
    pub layers: Vec<Linear>,
}

impl Net {
    /// An orthogonally initialised network: `sizes = [inputs, hidden.., outputs]`, hidden
    /// layers with gain √2, the last with `last_gain`, biases zero (the usual PPO init).
    #[must_use]
    pub fn new(sizes: &[usize], last_gain: f64, rng: &mut Rng, device: &Device) -> Self {
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let gain = if i + 1 == n {
                    last_gain
                } else {
                    core::f64::consts::SQRT_2
                };
                let w = orthogonal(sizes[i], sizes[i + 1], gain, rng);
                linear_from(&w, &vec![0.0; sizes[i + 1]], sizes[i], sizes[i + 1], device)
            })
            .collect();
        Self { layers }
    }

    /// Forward a batch `[rows, inputs]` to `[rows, outputs]`.
    #[must_use]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let n = self.layers.len();
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i + 1 < n {
                // tanh(x) = 2·σ(2x) − 1: the CPU backend's sigmoid uses `expf`, several
                // times faster than its scalar `tanhf`, and this is the hot spot of learning.
                x = activation::sigmoid(x.mul_scalar(2.0))
                    .mul_scalar(2.0)
                    .sub_scalar(1.0);
            }
        }
        x
    }

    /// Copy the weights out into a plain-Rust [`Mlp`].
    ///
    /// # Panics
    /// If a parameter cannot be read back as `f32` (never for this crate's backends).
    #[must_use]
    pub fn to_plain(&self) -> Mlp {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let [inputs, outputs] = l.weight.val().dims();
                let weight = l
                    .weight
                    .val()
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("f32 weights");
                let bias = l.bias.as_ref().map_or_else(
                    || vec![0.0; outputs],
                    |b| b.val().into_data().try_into_vec::<f32>().expect("f32 bias"),
                );
                Dense {
                    inputs,
                    outputs,
                    weight,
                    bias,
                }
            })
            .collect();
        Mlp { layers }
    }

    /// The ids of every parameter with its rank, in a fixed order.
    #[must_use]
    pub fn param_ids(&self) -> Vec<(ParamId, usize)> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.push((l.weight.id, 2));
            if let Some(b) = &l.bias {
                out.push((b.id, 1));
            }
        }
        out
    }
}

/// Actor (logits per action) and critic (one value) sharing nothing.
#[derive(Module, Debug)]
pub struct ActorCritic {
    /// Maps an agent's normalised observation to action logits.
    pub actor: Net,
    /// Maps an agent's normalised observation to a state value.
    pub critic: Net,
}

impl ActorCritic {
    /// Networks `obs_dim -> hidden.. -> num_actions` and `obs_dim -> hidden.. -> 1`
    /// (actor output gain 0.01, critic output gain 1).
    #[must_use]
    pub fn new(
        obs_dim: usize,
        hidden: &[usize],
        num_actions: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let sizes = |out| {
            let mut s = vec![obs_dim];
            s.extend_from_slice(hidden);
            s.push(out);
            s
        };
        Self {
            actor: Net::new(&sizes(num_actions), 0.01, rng, device),
            critic: Net::new(&sizes(1), 1.0, rng, device),
        }
    }

    /// All parameter ids with their ranks.
    #[must_use]
    pub fn param_ids(&self) -> Vec<(ParamId, usize)> {
        let mut ids = self.actor.param_ids();
        ids.extend(self.critic.param_ids());
        ids
    }
}

/// Build a burn [`Linear`] from row-major `inputs × outputs` weights and a bias.
#[must_use]
pub fn linear_from(
    weight: &[f32],
    bias: &[f32],
    inputs: usize,
    outputs: usize,
    device: &Device,
) -> Linear {
    let w = Tensor::<2>::from_data(TensorData::new(weight.to_vec(), [inputs, outputs]), device);
    let b = Tensor::<1>::from_data(TensorData::new(bias.to_vec(), [outputs]), device);
    Linear {
        weight: Param::from_tensor(w),
        bias: Some(Param::from_tensor(b)),
    }
}

/// A `rows × cols` matrix with orthonormal rows or columns (whichever are fewer) times
/// `gain`, from Gaussian draws orthonormalised by modified Gram–Schmidt — the same
/// distribution as the QR-based initialiser of the common frameworks, but drawn from
/// our portable [`Rng`] so that initialisation is identical on every backend.
#[must_use]
#[allow(clippy::cast_possible_truncation)]
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (long, short) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // `short` vectors of length `long`.
    let mut v: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..long).map(|_| rng.normal()).collect())
        .collect();
    for i in 0..short {
        for j in 0..i {
            let dot: f64 = v[i].iter().zip(&v[j]).map(|(a, b)| a * b).sum();
            let (head, tail) = v.split_at_mut(i);
            for (a, b) in tail[0].iter_mut().zip(&head[j]) {
                *a -= dot * b;
            }
        }
        let norm = v[i].iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        for a in &mut v[i] {
            *a /= norm;
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // rows >= cols: column c is vector c; otherwise row r is vector r.
            let x = if rows >= cols { v[c][r] } else { v[r][c] };
            out[r * cols + c] = (x * gain) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_is_orthonormal() {
        let mut rng = Rng::new(0);
        for (r, c) in [(4, 64), (64, 64), (64, 2)] {
            let w = orthogonal(r, c, 1.0, &mut rng);
            let short = r.min(c);
            for i in 0..short {
                for j in 0..short {
                    let dot: f32 = if r >= c {
                        (0..r).map(|k| w[k * c + i] * w[k * c + j]).sum()
                    } else {
                        (0..c).map(|k| w[i * c + k] * w[j * c + k]).sum()
                    };
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-4, "{r}x{c} ({i},{j}) = {dot}");
                }
            }
        }
    }
}
