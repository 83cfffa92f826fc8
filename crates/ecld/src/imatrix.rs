//! The importance matrix: for every linear weight, Σ over calibration tokens of x_j² per
//! input channel j (the diagonal of XᵀX). Rounding error in column j of a weight costs
//! output error in proportion to it, so the block quantizers ([`crate::block_quant`])
//! minimise Σ_j imp_j·(w_j − q_j)² instead of the plain squared error.

use std::collections::BTreeMap;

use edgewise_llm::error::{Error, Result};
use edgewise_llm::model::Model;

use crate::calibration::{Tracer, column_sum_sq};

/// Σx² per input channel, keyed by the GGUF name of the weight it applies to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportanceMatrix {
    sums: BTreeMap<String, Vec<f32>>,
    /// Calibration tokens summed over.
    pub tokens: usize,
}

impl ImportanceMatrix {
    /// Collects the matrix on `sequences` (each run from position 0). `on_progress(done,
    /// total)` is called after every sequence.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no sequences; tensor errors.
    pub fn collect(
        model: &Model,
        sequences: &[Vec<u32>],
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        if sequences.iter().all(Vec::is_empty) {
            return Err(Error::InvalidArgument(
                "the importance matrix needs at least one non-empty calibration sequence".into(),
            ));
        }
        let cfg = model.config();
        let tracer = Tracer::new(model)?;
        let mut m = Self::default();
        let tied = !model
            .named_tensors()?
            .iter()
            .any(|(n, _)| n == "output.weight");
        let head = if tied {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        for (i, s) in sequences.iter().enumerate() {
            if s.is_empty() {
                continue;
            }
            let mut x = tracer.embed(s)?;
            for (l, b) in model.blocks().iter().enumerate() {
                let (out, taps) = tracer.block(b, cfg.n_head[l], cfg.n_head_kv[l], &x)?;
                let attn_in = column_sum_sq(&taps.attn_in)?;
                for n in ["attn_q", "attn_k", "attn_v"] {
                    m.add(&format!("blk.{l}.{n}.weight"), &attn_in);
                }
                m.add(
                    &format!("blk.{l}.attn_output.weight"),
                    &column_sum_sq(&taps.attn_out)?,
                );
                let ffn_in = column_sum_sq(&taps.ffn_in)?;
                for n in ["ffn_gate", "ffn_up"] {
                    m.add(&format!("blk.{l}.{n}.weight"), &ffn_in);
                }
                m.add(
                    &format!("blk.{l}.ffn_down.weight"),
                    &column_sum_sq(&taps.ffn_act)?,
                );
                x = out;
            }
            m.add(head, &column_sum_sq(&tracer.final_norm(&x)?)?);
            m.tokens += s.len();
            on_progress(i + 1, sequences.len());
        }
        Ok(m)
    }

    fn add(&mut self, name: &str, v: &[f32]) {
        let acc = self
            .sums
            .entry(name.to_owned())
            .or_insert_with(|| vec![0.0; v.len()]);
        for (a, x) in acc.iter_mut().zip(v) {
            *a += x;
        }
    }

    /// The importance of `tensor`'s input channels (Σx²), if collected.
    #[must_use]
    pub fn get(&self, tensor: &str) -> Option<&[f32]> {
        self.sums.get(tensor).map(Vec::as_slice)
    }

    /// Names of the weights covered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sums.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_llm::Device;
    use edgewise_llm::model::tiny_config;

    #[test]
    fn covers_every_linear_with_positive_sums() {
        let m = Model::synthetic(&tiny_config(2), 3, &Device::Cpu).unwrap();
        let mut calls = 0;
        let im = ImportanceMatrix::collect(&m, &[vec![1, 2, 3, 4], vec![9, 8]], &mut |_, _| {
            calls += 1;
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(im.tokens, 6);
        // 7 linears per block × 2 blocks + the (tied) output matrix.
        assert_eq!(im.names().count(), 15);
        assert_eq!(im.get("blk.1.ffn_down.weight").unwrap().len(), 128);
        assert_eq!(im.get("blk.0.attn_q.weight").unwrap().len(), 64);
        assert!(
            im.get("blk.0.ffn_up.weight")
                .unwrap()
                .iter()
                .all(|&v| v > 0.0)
        );
        assert!(ImportanceMatrix::collect(&m, &[], &mut |_, _| {}).is_err());
    }
}
