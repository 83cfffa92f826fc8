//! Checkpoints that resume exactly, written atomically.
//!
//! # File layout (`edgewise-checkpoint`, version 2)
//!
//! ```text
//! "EDGEWISE-CKPT\n"                      14-byte magic
//! u32 LE  header length, then the header: JSON {"format":"edgewise-checkpoint","version":2,
//!         "algo":"ppo"|"wm-ppo"|"wm-ppo-gru", "state":{…}, "blobs":[names]}
//! for each blob: u64 LE length, then the bytes
//! ```
//!
//! - `ppo`: `state` is the learner state (config, env spec, seed, RNG state, normaliser
//!   and reward-scaler state, iteration and step counters); blobs `model` and
//!   `optimizer` are burnpack records of the burn module and of the Adam state.
//! - `wm-ppo`: `state` is `{"ppo": <as above>, "wm": {config, trainer: {model shape and
//!   settings, RNG state, trained flag, rows of each replayed rollout}}}`; blobs `model`,
//!   `optimizer`, `wm_model`, `wm_optimizer` (burnpack: the response ensemble and its Adam
//!   state), then `replay.0`, `replay.1`, … — its replay of recent transitions, each as
//!   little-endian arrays (observations and targets as `f32`, actions as `u32`).
//! - `wm-ppo-gru` (the ablation): `state` is `{"ppo": …, "wm": {config, sizes, RNG state,
//!   replay segment shapes}, "assist_rng": <RNG state>}`; the same four model blobs for
//!   the GRU, then its replay of recent rollouts, each as little-endian arrays
//!   (observations, last next observations and rewards as `f32`, actions as `u32`, dones
//!   and truncations as one byte each).
//!
//! A checkpoint is written to a temporary file beside `PATH`, synced and renamed over it, so a
//! crash never leaves a half-written checkpoint behind.
//!
//! Environments cannot be snapshotted through [`edgewise_env::VecEnv`], so a checkpoint
//! is also a *segment boundary*: right after saving (and right after loading) the learner
//! restarts its environments from a seed derived from the run seed and the iteration.
//! A run that is checkpointed and resumed is therefore identical, bit for bit, to the
//! same run continued in the process that wrote the checkpoint.

use std::path::Path;

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RlError};
use crate::gru_assist::GruAssist;
use crate::gru_world_model::{WmSnapshot, WmTrainerState, WorldModelTrainer};
use crate::model::ActorCritic;
use crate::ppo::{ModelAssist, Ppo, PpoState};
use crate::wm_ppo::{WmAssist, WmAssistState};
use edgewise_rng::Rng;

const MAGIC: &[u8] = b"EDGEWISE-CKPT\n";
/// The value of the header's `format` field.
pub const FORMAT: &str = "edgewise-checkpoint";
/// The checkpoint version this code reads and writes. Version 2 added the observation
/// normaliser's standard-deviation floor and active-rows-only statistics; a version-1
/// checkpoint cannot continue exactly under them and is refused.
pub const VERSION: u32 = 2;

/// The `wm-ppo` checkpoint state: PPO's plus the response model's.
#[derive(Serialize, Deserialize)]
struct WmPpoState {
    ppo: PpoState,
    wm: WmAssistState,
}

/// The `wm-ppo-gru` checkpoint state: PPO's plus the GRU world model's.
#[derive(Serialize, Deserialize)]
struct GruPpoState {
    ppo: PpoState,
    wm: WmTrainerState,
    assist_rng: Rng,
}

/// `names` and `blobs` as the (name, bytes) list [`encode`] takes.
fn named<'a>(
    names: &'a [String],
    blobs: &'a [Vec<u8>],
) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    names
        .iter()
        .map(String::as_str)
        .zip(blobs.iter().map(Vec::as_slice))
}

#[derive(Serialize, Deserialize)]
struct Header<S> {
    format: String,
    version: u32,
    algo: String,
    state: S,
    blobs: Vec<String>,
}

/// Write `bytes` to `path` atomically, so a reader never sees half a checkpoint.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    edgewise_atomic_file::write(path, bytes).map_err(|e| RlError::Io {
        path: path.display().to_string(),
        source: e.source,
    })
}

fn encode<S: Serialize>(algo: &str, state: &S, blobs: &[(&str, &[u8])]) -> Vec<u8> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        algo: algo.into(),
        state,
        blobs: blobs.iter().map(|(n, _)| (*n).to_owned()).collect(),
    };
    let json = serde_json::to_vec(&header).expect("checkpoint header serialises");
    let mut out =
        Vec::with_capacity(json.len() + blobs.iter().map(|b| b.1.len() + 8).sum::<usize>() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(json.len())
            .expect("header under 4 GiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(&json);
    for (_, b) in blobs {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// Split a checkpoint into its algorithm name, its state (as JSON) and its blobs.
fn decode(path: &Path, bytes: &[u8]) -> Result<(String, serde_json::Value, Vec<Vec<u8>>)> {
    let bad = |reason: String| RlError::Checkpoint {
        path: path.display().to_string(),
        reason,
    };
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not an edgewise checkpoint (bad magic)".into()))?;
    let (len, rest) = rest
        .split_at_checked(4)
        .ok_or_else(|| bad("truncated header".into()))?;
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    let (json, mut rest) = rest
        .split_at_checked(len)
        .ok_or_else(|| bad("truncated header".into()))?;
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad(format!("header: {e}")))?;
    if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
        return Err(bad(format!("format is not {FORMAT}")));
    }
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if version == Some(1) {
        return Err(bad(format!(
            "version 1 was written before the observation normaliser's std floor and \
             active-rows statistics; it cannot resume exactly under version {VERSION}: start \
             the run again"
        )));
    }
    if version != Some(u64::from(VERSION)) {
        return Err(bad(format!(
            "version {version:?} is not supported (this build reads {VERSION})"
        )));
    }
    let header: Header<serde_json::Value> =
        serde_json::from_value(value).map_err(|e| bad(format!("header: {e}")))?;
    let mut blobs = Vec::new();
    for name in &header.blobs {
        let (len, r) = rest
            .split_at_checked(8)
            .ok_or_else(|| bad(format!("truncated before {name}")))?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into().expect("8 bytes")))
            .map_err(|_| bad(format!("{name} too large")))?;
        let (blob, r) = r
            .split_at_checked(len)
            .ok_or_else(|| bad(format!("{name} truncated")))?;
        blobs.push(blob.to_vec());
        rest = r;
    }
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    Ok((header.algo, header.state, blobs))
}

impl Ppo {
    /// Serialise the whole learner (module, Adam state, RNG, normalisers, counters; for
    /// WM-PPO and its GRU ablation also the world model, its Adam state, RNGs and replay). Restarts the
    /// environments at the next iteration (see the module docs).
    ///
    /// # Errors
    /// [`RlError::Checkpoint`] if burn cannot serialise a record.
    pub fn checkpoint_bytes(&mut self) -> Result<Vec<u8>> {
        let bad = |reason: String| RlError::Checkpoint {
            path: "<memory>".into(),
            reason,
        };
        let model = self.model.as_ref().expect("model present").clone();
        let model_bytes = model
            .into_record()
            .into_bytes()
            .map_err(|e| bad(format!("module record: {e:?}")))?;
        let optim_bytes = self
            .optim
            .into_bytes()
            .map_err(|e| bad(format!("optimiser record: {e:?}")))?;
        let out = match &self.assist {
            None => encode(
                "ppo",
                &self.state,
                &[("model", &model_bytes), ("optimizer", &optim_bytes)],
            ),
            Some(ModelAssist::Response(wm)) => {
                let (wm_state, snap) = wm.snapshot().map_err(bad)?;
                let state = WmPpoState {
                    ppo: self.state.clone(),
                    wm: wm_state,
                };
                let names: Vec<String> = (0..snap.replay.len())
                    .map(|i| format!("replay.{i}"))
                    .collect();
                let mut blobs: Vec<(&str, &[u8])> = vec![
                    ("model", &model_bytes),
                    ("optimizer", &optim_bytes),
                    ("wm_model", &snap.model),
                    ("wm_optimizer", &snap.optimizer),
                ];
                blobs.extend(named(&names, &snap.replay));
                encode("wm-ppo", &state, &blobs)
            }
            Some(ModelAssist::Gru(gru)) => {
                let WmSnapshot {
                    state: wm_state,
                    model: wm_model,
                    optimizer: wm_optim,
                    replay,
                } = gru.trainer.snapshot().map_err(bad)?;
                let state = GruPpoState {
                    ppo: self.state.clone(),
                    wm: wm_state,
                    assist_rng: gru.rng.clone(),
                };
                let names: Vec<String> = (0..replay.len()).map(|i| format!("replay.{i}")).collect();
                let mut blobs: Vec<(&str, &[u8])> = vec![
                    ("model", &model_bytes),
                    ("optimizer", &optim_bytes),
                    ("wm_model", &wm_model),
                    ("wm_optimizer", &wm_optim),
                ];
                blobs.extend(named(&names, &replay));
                encode("wm-ppo-gru", &state, &blobs)
            }
        };
        self.restart_envs();
        Ok(out)
    }

    /// Write a checkpoint to `path` atomically. Restarts the environments at the next
    /// iteration, exactly as [`Ppo::load_checkpoint`] does.
    ///
    /// # Errors
    /// [`RlError::Io`] or [`RlError::Checkpoint`].
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<()> {
        let bytes = self.checkpoint_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Rebuild a learner (PPO or WM-PPO, as written) from checkpoint bytes (`origin`
    /// names them in errors).
    ///
    /// # Errors
    /// [`RlError::Checkpoint`] for a corrupt, truncated or foreign file.
    pub fn from_checkpoint_bytes(bytes: &[u8], origin: &Path, device: &Device) -> Result<Self> {
        let bad = |reason: String| RlError::Checkpoint {
            path: origin.display().to_string(),
            reason,
        };
        let (algo, state, blobs) = decode(origin, bytes)?;
        match algo.as_str() {
            "ppo" => {
                let state: PpoState =
                    serde_json::from_value(state).map_err(|e| bad(format!("header: {e}")))?;
                let [model, optim]: [Vec<u8>; 2] = blobs
                    .try_into()
                    .map_err(|_| bad("expected model and optimizer blobs".into()))?;
                Self::restore(state, model, optim, origin, device)
            }
            "wm-ppo" => {
                let state: WmPpoState =
                    serde_json::from_value(state).map_err(|e| bad(format!("header: {e}")))?;
                let mut blobs = blobs.into_iter();
                let mut next = |name: &str| {
                    blobs
                        .next()
                        .ok_or_else(|| bad(format!("expected a {name} blob")))
                };
                let (model, optim) = (next("model")?, next("optimizer")?);
                let (wm_model, wm_optim) = (next("wm_model")?, next("wm_optimizer")?);
                let replay: Vec<Vec<u8>> = blobs.collect();
                let shape = &state.wm.trainer.shape;
                if shape.obs_dim != state.ppo.spec.obs_dim
                    || shape.num_actions != state.ppo.spec.num_actions
                {
                    return Err(bad("world model and policy disagree on sizes".into()));
                }
                let mut ppo = Self::restore(state.ppo, model, optim, origin, device)?;
                let wm =
                    WmAssist::restore(state.wm, wm_model, wm_optim, replay, device).map_err(bad)?;
                ppo.assist = Some(ModelAssist::Response(Box::new(wm)));
                Ok(ppo)
            }
            "wm-ppo-gru" => {
                let state: GruPpoState =
                    serde_json::from_value(state).map_err(|e| bad(format!("header: {e}")))?;
                let mut blobs = blobs.into_iter();
                let mut next = |name: &str| {
                    blobs
                        .next()
                        .ok_or_else(|| bad(format!("expected a {name} blob")))
                };
                let (model, optim) = (next("model")?, next("optimizer")?);
                let (wm_model, wm_optim) = (next("wm_model")?, next("wm_optimizer")?);
                let replay: Vec<Vec<u8>> = blobs.collect();
                if state.wm.obs_dim != state.ppo.spec.obs_dim
                    || state.wm.num_actions != state.ppo.spec.num_actions
                {
                    return Err(bad("world model and policy disagree on sizes".into()));
                }
                let mut ppo = Self::restore(state.ppo, model, optim, origin, device)?;
                let snapshot = WmSnapshot {
                    state: state.wm,
                    model: wm_model,
                    optimizer: wm_optim,
                    replay,
                };
                let trainer = WorldModelTrainer::restore(snapshot, device).map_err(bad)?;
                ppo.assist = Some(ModelAssist::Gru(Box::new(GruAssist {
                    trainer,
                    rng: state.assist_rng,
                })));
                Ok(ppo)
            }
            other => Err(bad(format!(
                "written by an unknown algorithm {other:?} (expected ppo, wm-ppo or wm-ppo-gru)"
            ))),
        }
    }

    fn restore(
        state: PpoState,
        model_bytes: Vec<u8>,
        optim_bytes: Vec<u8>,
        origin: &Path,
        device: &Device,
    ) -> Result<Self> {
        let bad = |reason: String| RlError::Checkpoint {
            path: origin.display().to_string(),
            reason,
        };
        state.config.validate()?;
        let device = device.clone().autodiff();
        device.seed(state.seed);
        let mut scratch = Rng::new(0);
        let skeleton = ActorCritic::new(
            state.spec.obs_dim,
            &state.config.hidden,
            state.spec.num_actions,
            &mut scratch,
            &device,
        );
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model_bytes))
            .map_err(|e| bad(format!("module record: {e:?}")))?;
        let model = skeleton
            .try_load_record(record)
            .map_err(|e| bad(format!("module record: {e:?}")))?;
        let mut ppo = Ppo::assemble(state, device, model);
        ppo.optim = AdamConfig::new()
            .with_epsilon(ppo.state.config.adam_epsilon)
            .init()
            .from_bytes(Bytes::from_bytes_vec(optim_bytes))
            .map_err(|e| bad(format!("optimizer record: {e:?}")))?;
        Ok(ppo)
    }

    /// Load a checkpoint written by [`Ppo::save_checkpoint`].
    ///
    /// # Errors
    /// [`RlError::Io`] or [`RlError::Checkpoint`].
    pub fn load_checkpoint(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| RlError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_checkpoint_bytes(&bytes, path, device)
    }
}
