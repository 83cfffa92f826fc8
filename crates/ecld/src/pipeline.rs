//! The whole of ECLD and its two baselines as one call: [`run_pipeline`] chains pruning
//! ([`crate::compress`]), the refit ([`crate::reconstruct`]), distillation
//! ([`crate::distill`]) and importance-weighted quantization ([`crate::imatrix`]) as
//! [`PipelineOptions`] say, reporting each stage's progress. `edgewise compress` drives it.

use edgewise_llm::error::Result;
use edgewise_llm::model::Model;

use crate::compress::{
    PrunePlan, QuantPlan, QuantSpec, TypeRule, calibrate, prune_mapped, quantize, quantize_with,
};
use crate::imatrix::ImportanceMatrix;
use crate::reconstruct::{LayerRefit, RefitOptions, refit_pruned};

/// The three ways `edgewise compress` builds a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Prune → distill → quantize.
    Ecld,
    /// Base → quantize.
    QuantOnly,
    /// Base → prune, stored F16, no distillation.
    PruneOnly,
}

/// Everything the ECLD pipeline needs besides the model and the text.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Which pipeline.
    pub method: Method,
    /// What pruning keeps (ignored by quant-only).
    pub prune: PrunePlan,
    /// Target types (ignored by prune-only, which stores F16).
    pub quant: QuantSpec,
    /// Per-tensor type overrides (first match wins).
    pub type_rules: Vec<TypeRule>,
    /// Calibration windows for the importance matrix of the quantizer (0: plain rounding).
    pub imatrix_windows: usize,
    /// Least-squares refit of the projections after pruning (None: keep the pruned
    /// weights as they are).
    pub refit: Option<RefitOptions>,
    /// Distillation settings (ECLD only; `steps = 0` skips it).
    pub distill: crate::distill::DistillConfig,
    /// Checkpointing of the distillation, if wanted.
    pub checkpoint: Option<crate::distill::CheckpointOptions>,
    /// Windows of the text used for the activation statistics (and the refit).
    pub calib_windows: usize,
}

/// What the pipeline produced.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// The compressed model (weights in their final block types).
    pub model: Model,
    /// The distillation run, for ECLD with steps > 0.
    pub distill: Option<crate::distill::DistillReport>,
    /// The refit of each pruned projection (empty without refit).
    pub refit: Vec<LayerRefit>,
}

/// Progress of the pipeline's stages other than distillation steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Importance matrix: calibration windows done of total.
    Imatrix(usize, usize),
    /// Refit: blocks done of total.
    Refit(usize, usize),
}

/// Runs `opts.method` on `base`: activation statistics (and the refit) from the first
/// `opts.calib_windows` windows of `calibration`, distillation (ECLD) on `train`, the
/// importance matrix from the first `opts.imatrix_windows` windows.
///
/// `on_step` sees every distillation step (for a progress bar), `on_stage` the other
/// stages' progress.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad plan or configuration, checkpoint errors, tensor errors.
pub fn run_pipeline(
    base: &Model,
    calibration: &crate::distill::TokenWindows,
    train: &crate::distill::TokenWindows,
    opts: &PipelineOptions,
    on_step: &mut dyn FnMut(&crate::distill::StepReport),
    on_stage: &mut dyn FnMut(Stage),
) -> Result<PipelineOutput> {
    let windows = calibration.windows();
    let quant_plan = |m: &Model, on_stage: &mut dyn FnMut(Stage)| -> Result<QuantPlan> {
        let imatrix = if opts.imatrix_windows > 0 {
            let n = opts.imatrix_windows.min(windows.len());
            Some(ImportanceMatrix::collect(m, &windows[..n], &mut |d, t| {
                on_stage(Stage::Imatrix(d, t));
            })?)
        } else {
            None
        };
        Ok(QuantPlan {
            spec: opts.quant,
            rules: opts.type_rules.clone(),
            imatrix,
        })
    };
    if opts.method == Method::QuantOnly {
        let plan = quant_plan(base, on_stage)?;
        return Ok(PipelineOutput {
            model: quantize_with(base, &plan)?,
            distill: None,
            refit: Vec::new(),
        });
    }
    if opts.method == Method::Ecld && opts.distill.steps > 0 {
        opts.distill.validate()?;
    }
    opts.prune.validate(base.config())?;
    let n = opts.calib_windows.clamp(1, windows.len());
    let stats = calibrate(base, &windows[..n])?;
    let (mut pruned, map) = prune_mapped(base, &stats, &opts.prune)?;
    let mut refit = Vec::new();
    if let Some(r) = opts.refit {
        let (m, report) = refit_pruned(base, &pruned, &map, &windows[..n], r, &mut |d, t| {
            on_stage(Stage::Refit(d, t));
        })?;
        pruned = m;
        refit = report;
    }
    if opts.method == Method::PruneOnly {
        return Ok(PipelineOutput {
            model: quantize(&pruned, QuantSpec::F16)?,
            distill: None,
            refit,
        });
    }
    let mut report = None;
    let student_model = if opts.distill.steps > 0 {
        let teacher = base.dequantized()?;
        let mut student = crate::distill::Student::from_model(&pruned)?;
        report = Some(crate::distill::distill(
            &teacher,
            &mut student,
            train,
            &opts.distill,
            opts.checkpoint.as_ref(),
            on_step,
        )?);
        student.to_model()?
    } else {
        pruned
    };
    let plan = quant_plan(&student_model, on_stage)?;
    Ok(PipelineOutput {
        model: quantize_with(&student_model, &plan)?,
        distill: report,
        refit,
    })
}
