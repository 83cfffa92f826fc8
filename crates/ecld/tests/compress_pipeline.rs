//! The ECLD pipeline end to end: distillation resume equality and checkpoint identity on a
//! tiny model, every method on the shipped model (very short distillation) with a GGUF
//! round trip through our engine, and the errors users meet.
//!
//! The shipped-model test needs the model cache (`cargo xtask setup`); it fails with that
//! instruction when the model is missing.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::quantized::GgmlDType;
use edgewise_ecld::compress::{
    PrunePlan, QuantSpec, default_calibration_texts, export_gguf, export_gguf_file, weight_bytes,
};
use edgewise_ecld::distill::{
    CheckpointOptions, DistillConfig, Student, TeacherTextConfig, TokenWindows,
    cached_teacher_text, distill, teacher_text,
};
use edgewise_ecld::pipeline::{Method, PipelineOptions, run_pipeline};
use edgewise_ecld::reconstruct::RefitOptions;
use edgewise_llm::model::tiny_config;
use edgewise_llm::model_cache::default_model_path;
use edgewise_llm::{
    ChatMessage, Device, Engine, Error, GgufFile, Model, Sampler, Sampling, Tokenizer,
};

/// A fresh, empty folder under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "edgewise-compress-test-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn weights(s: &Student) -> Vec<(String, Vec<f32>)> {
    s.params()
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

fn tiny_setup() -> (Model, Model, TokenWindows) {
    let dev = Device::Cpu;
    let teacher = Model::synthetic(&tiny_config(2), 4, &dev).unwrap();
    let stats = edgewise_ecld::compress::calibrate(&teacher, &[(0..40).collect()]).unwrap();
    let plan = PrunePlan {
        ffn_keep: 0.5,
        kv_group_keep: 0.5,
        ..PrunePlan::default()
    };
    let pruned = edgewise_ecld::compress::prune(&teacher, &stats, &plan).unwrap();
    let text: Vec<Vec<u32>> = (0..6u32)
        .map(|i| (0..50).map(|j| (i * 17 + j * 5 + 3) % 256).collect())
        .collect();
    let data = TokenWindows::new(&text, Some(1), 12).unwrap();
    (teacher, pruned, data)
}

fn tiny_cfg(steps: usize) -> DistillConfig {
    DistillConfig {
        steps,
        batch: 3,
        seq_len: 12,
        lr: 1e-3,
        ce_weight: 0.5,
        seed: 9,
        ..DistillConfig::default()
    }
}

#[test]
fn resumed_distillation_equals_an_uninterrupted_run() {
    let (teacher, pruned, data) = tiny_setup();
    // Uninterrupted: 4 steps (2 windows per epoch boundary are crossed on the way).
    let mut a = Student::from_model(&pruned).unwrap();
    let ra = distill(&teacher, &mut a, &data, &tiny_cfg(4), None, &mut |_| {}).unwrap();
    // Interrupted: 2 steps with checkpoints, then a resumed run to 4 with a new student.
    let dir = temp_dir("resume");
    let ck = CheckpointOptions {
        dir: dir.clone(),
        every: 1,
        resume: false,
        run_tag: "tiny".into(),
        stop: None,
    };
    let mut b = Student::from_model(&pruned).unwrap();
    let mut seen = Vec::new();
    distill(&teacher, &mut b, &data, &tiny_cfg(2), Some(&ck), &mut |r| {
        seen.push((r.step, r.checkpointed));
    })
    .unwrap();
    assert_eq!(seen, vec![(1, true), (2, true)]);
    assert_eq!(
        std::fs::read_to_string(dir.join("latest")).unwrap(),
        "step-00000002"
    );
    assert!(
        !dir.join("step-00000001").exists(),
        "old checkpoints are removed"
    );
    let mut c = Student::from_model(&pruned).unwrap();
    let resume = CheckpointOptions {
        resume: true,
        ..ck.clone()
    };
    let rc = distill(
        &teacher,
        &mut c,
        &data,
        &tiny_cfg(4),
        Some(&resume),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(rc.start_step, 2);
    assert_eq!(rc.losses, ra.losses);
    assert_eq!(weights(&c), weights(&a), "resumed weights differ");
    // The losses really changed the weights.
    assert_ne!(weights(&a), weights(&Student::from_model(&pruned).unwrap()));

    // A stop request ends the run after the current step with a checkpoint (every = 0:
    // none was due), and resuming finishes it exactly.
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = CheckpointOptions {
        dir: temp_dir("stop"),
        every: 0,
        stop: Some(flag.clone()),
        ..ck.clone()
    };
    let mut e = Student::from_model(&pruned).unwrap();
    let re = distill(
        &teacher,
        &mut e,
        &data,
        &tiny_cfg(4),
        Some(&stopping),
        &mut |r| {
            if r.step == 3 {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    assert_eq!(re.losses.len(), 3);
    let mut f = Student::from_model(&pruned).unwrap();
    let resumed = CheckpointOptions {
        resume: true,
        stop: None,
        ..stopping
    };
    let rf = distill(
        &teacher,
        &mut f,
        &data,
        &tiny_cfg(4),
        Some(&resumed),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(rf.start_step, 3);
    assert_eq!(rf.losses, ra.losses);
    assert_eq!(weights(&f), weights(&a));

    // A checkpoint of another configuration is refused, naming the problem.
    let mut other = tiny_cfg(4);
    other.lr = 5e-4;
    let mut d = Student::from_model(&pruned).unwrap();
    let e = distill(&teacher, &mut d, &data, &other, Some(&resume), &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::Checkpoint { .. }), "{e}");
    assert!(e.to_string().contains("another configuration"), "{e}");
    let tagged = CheckpointOptions {
        run_tag: "other pruning".into(),
        ..resume.clone()
    };
    let e = distill(
        &teacher,
        &mut d,
        &data,
        &tiny_cfg(4),
        Some(&tagged),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("another configuration"), "{e}");
    // Resuming from an empty folder is an error, not a silent fresh start.
    let empty = CheckpointOptions {
        dir: temp_dir("empty"),
        ..resume
    };
    let e = distill(
        &teacher,
        &mut d,
        &data,
        &tiny_cfg(4),
        Some(&empty),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("no checkpoint to resume from"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let (teacher, pruned, data) = tiny_setup();
    let stats = edgewise_ecld::compress::calibrate(&teacher, &[(0..10).collect()]).unwrap();
    for plan in [
        PrunePlan {
            ffn_keep: 0.0,
            ..PrunePlan::default()
        },
        PrunePlan {
            kv_group_keep: 1.5,
            ..PrunePlan::default()
        },
        PrunePlan {
            ffn_keep_per_layer: vec![0.5, -0.1],
            ..PrunePlan::default()
        },
    ] {
        let e = edgewise_ecld::compress::prune(&teacher, &stats, &plan).unwrap_err();
        assert!(e.to_string().contains("must be in (0, 1]"), "{e}");
    }
    let e = edgewise_ecld::compress::prune(
        &teacher,
        &stats,
        &PrunePlan {
            ffn_keep_per_layer: vec![0.5; 3],
            ..PrunePlan::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("3 entries, the model has 2 layers"),
        "{e}"
    );
    let e = QuantSpec::for_bits(3).unwrap_err();
    assert!(e.to_string().contains("bits must be 8 or 4"), "{e}");
    let mut s = Student::from_model(&pruned).unwrap();
    let mut bad = tiny_cfg(1);
    bad.temperature = 0.0;
    let e = distill(&teacher, &mut s, &data, &bad, None, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("temperature"), "{e}");
    let mut bad = tiny_cfg(1);
    bad.seq_len = 20;
    let e = distill(&teacher, &mut s, &data, &bad, None, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("seq_len 20"), "{e}");
    assert!(TokenWindows::new(&[vec![1, 2]], None, 64).is_err());
}

struct Shipped {
    base: Model,
    gguf: GgufFile,
    tok: Tokenizer,
}

fn shipped() -> &'static Shipped {
    static S: OnceLock<Shipped> = OnceLock::new();
    S.get_or_init(|| {
        let path = default_model_path().unwrap_or_else(|e| panic!("{e}"));
        let (base, gguf) = Model::from_path(&path, &Device::Cpu).expect("load");
        let tok = Tokenizer::from_gguf(&gguf).expect("tokenizer");
        Shipped { base, gguf, tok }
    })
}

fn calib_windows(tok: &Tokenizer, seq_len: usize, lines: usize) -> TokenWindows {
    let passages: Vec<Vec<u32>> = default_calibration_texts()
        .unwrap()
        .iter()
        .take(lines)
        .map(|l| tok.encode(l, false).unwrap())
        .collect();
    TokenWindows::new(&passages, tok.eos(), seq_len).unwrap()
}

/// Writes `model` to a file, reloads it with the engine, checks the configuration and that
/// it generates; returns the file size.
fn round_trip(model: &Model, s: &Shipped, file: &std::path::Path) -> u64 {
    let bytes = export_gguf_file(file, model, Some(&s.gguf)).expect("export");
    assert_eq!(std::fs::metadata(file).unwrap().len(), bytes);
    let engine = Engine::from_path(file, &Device::Cpu).expect("reload");
    assert_eq!(engine.model.config(), model.config());
    let g = GgufFile::open(file).unwrap().0;
    // Standard llama.cpp keys and names.
    assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
    assert!(g.get("tokenizer.ggml.tokens").is_ok());
    assert!(g.has_tensor("blk.0.attn_q.weight") && g.has_tensor("output_norm.weight"));
    let ids = s.tok.encode("The capital of France is", false).unwrap();
    let mut sampler = Sampler::new(Sampling::Greedy, 0).unwrap();
    let (out, _) = edgewise_llm::generate(
        &engine.model,
        &mut engine.model.new_cache(),
        &ids,
        4,
        &mut sampler,
        &[],
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(out.len(), 4);
    bytes
}

#[test]
fn every_method_on_the_shipped_model_round_trips() {
    let s = shipped();
    let dir = temp_dir("shipped");
    let data = calib_windows(&s.tok, 32, 40);
    let plan = PrunePlan {
        ffn_keep: 0.5,
        kv_group_keep: 2.0 / 3.0,
        drop_layers: 2,
        ..PrunePlan::default()
    };
    let mut opts = PipelineOptions {
        method: Method::QuantOnly,
        prune: plan,
        quant: QuantSpec::Q8_0,
        type_rules: Vec::new(),
        imatrix_windows: 4,
        refit: Some(RefitOptions::default()),
        distill: DistillConfig {
            steps: 2,
            batch: 2,
            seq_len: 32,
            ..DistillConfig::default()
        },
        checkpoint: None,
        calib_windows: 4,
    };
    let base_cfg = s.base.config().clone();

    let q = run_pipeline(&s.base, &data, &data, &opts, &mut |_| {}, &mut |_| {}).unwrap();
    assert_eq!(q.model.config(), &base_cfg);
    assert_eq!(q.model.blocks()[0].wq.weight().dtype(), GgmlDType::Q8_0);
    let q_bytes = round_trip(&q.model, s, &dir.join("quant-only.gguf"));

    opts.method = Method::PruneOnly;
    let p = run_pipeline(&s.base, &data, &data, &opts, &mut |_| {}, &mut |_| {}).unwrap();
    let pc = p.model.config();
    assert_eq!(pc.n_layer, base_cfg.n_layer - 2);
    assert_eq!(pc.n_head_kv[0], 2);
    assert_eq!(pc.n_head[0], 6);
    assert_eq!(pc.n_ff[0], 768);
    assert_eq!(p.model.blocks()[0].w_up.weight().dtype(), GgmlDType::F16);
    let p_bytes = round_trip(&p.model, s, &dir.join("prune-only.gguf"));

    opts.method = Method::Ecld;
    opts.quant = QuantSpec::Q4_0_MIXED;
    opts.checkpoint = Some(CheckpointOptions {
        dir: dir.join("ckpt"),
        every: 1,
        resume: false,
        run_tag: "test".into(),
        stop: None,
    });
    let mut steps = Vec::new();
    let e = run_pipeline(
        &s.base,
        &data,
        &data,
        &opts,
        &mut |r| steps.push(r.loss),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|l| l.is_finite() && *l > 0.0), "{steps:?}");
    assert_eq!(e.model.config(), pc);
    assert_eq!(e.model.blocks()[0].w_up.weight().dtype(), GgmlDType::Q4_0);
    assert!(dir.join("ckpt/step-00000002/student.safetensors").is_file());
    let e_bytes = round_trip(&e.model, s, &dir.join("ecld.gguf"));
    // The in-memory size and the file agree to within the header.
    let w = weight_bytes(&e.model).unwrap();
    assert!(
        e_bytes > w && e_bytes < w + 4 * 1024 * 1024,
        "{e_bytes} vs {w}"
    );
    assert!(
        e_bytes < p_bytes && e_bytes < q_bytes,
        "{e_bytes} {p_bytes} {q_bytes}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn in_memory_export_matches_the_file_export() {
    let m = Model::synthetic(&tiny_config(1), 2, &Device::Cpu).unwrap();
    let dir = temp_dir("export");
    let f = dir.join("m.gguf");
    export_gguf_file(&f, &m, None).unwrap();
    let mut buf = Cursor::new(Vec::new());
    export_gguf(&mut buf, &m, None).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), buf.into_inner());
    assert!(!dir.join("m.gguf.tmp").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn teacher_text_is_seeded_and_cached() {
    let s = shipped();
    let prompts = default_calibration_texts().unwrap()[..3].to_vec();
    let cfg = TeacherTextConfig {
        max_new_tokens: 8,
        seed: 7,
        ..TeacherTextConfig::default()
    };
    let mut seen = Vec::new();
    let a = teacher_text(&s.base, &s.tok, &prompts, &cfg, &mut |d, n| {
        seen.push((d, n));
    })
    .unwrap();
    assert_eq!(seen, [(1, 3), (2, 3), (3, 3)]);
    assert_eq!(a.len(), 3);
    // Plain continuation: the passage starts with the prompt's own tokens.
    let p0 = s.tok.encode(&prompts[0], false).unwrap();
    assert!(a[0].starts_with(&p0) && a[0].len() > p0.len() && a[0].len() <= p0.len() + 8);
    // Chat: the templated user turn, then the reply.
    let chat = s
        .tok
        .apply_chat_template(&[ChatMessage::user(&prompts[1])], true);
    assert!(a[1].starts_with(&s.tok.encode(&chat, true).unwrap()));
    // Same seed, same text; another seed, other text.
    let again = teacher_text(&s.base, &s.tok, &prompts, &cfg, &mut |_, _| {}).unwrap();
    assert_eq!(a, again);
    let other = TeacherTextConfig { seed: 8, ..cfg };
    assert_ne!(
        a,
        teacher_text(&s.base, &s.tok, &prompts, &other, &mut |_, _| {}).unwrap()
    );
    // The cache: written once, then reused; another configuration regenerates.
    let dir = temp_dir("teacher");
    let file = dir.join("ckpt/teacher-text.json");
    let (b, cached) =
        cached_teacher_text(&file, "m", &s.base, &s.tok, &prompts, &cfg, &mut |_, _| {}).unwrap();
    assert!(!cached && b == a && file.is_file());
    let (c, cached) =
        cached_teacher_text(&file, "m", &s.base, &s.tok, &prompts, &cfg, &mut |_, _| {}).unwrap();
    assert!(cached && c == a);
    let (_, cached) = cached_teacher_text(
        &file,
        "other",
        &s.base,
        &s.tok,
        &prompts,
        &cfg,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(!cached);
    std::fs::write(&file, "not json").unwrap();
    let e = cached_teacher_text(&file, "m", &s.base, &s.tok, &prompts, &cfg, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("teacher-text.json") && e.contains("not a teacher-text cache"),
        "{e}"
    );
    assert!(teacher_text(&s.base, &s.tok, &[], &cfg, &mut |_, _| {}).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

/// Importance-weighted rounding on real tensors of the shipped model, weighted by an
/// importance matrix collected on calibration text: less weighted error than ggml's plain
/// rounding (IQ4_NL: the engine's nearest-level encoder) for every type it handles.
#[test]
fn importance_weighted_quantization_beats_plain_rounding_on_the_shipped_model() {
    use edgewise_ecld::block_quant::{quantize_weighted, weighted_error};
    use edgewise_ecld::imatrix::ImportanceMatrix;
    let s = shipped();
    let data = calib_windows(&s.tok, 32, 12);
    let im = ImportanceMatrix::collect(&s.base, &data.windows()[..6], &mut |_, _| {}).unwrap();
    assert!(im.tokens >= 6 * 32);
    let named = s.base.named_tensors().unwrap();
    use edgewise_llm::{Weight, WeightType};
    for (name, dtype) in [
        ("blk.3.ffn_down.weight", GgmlDType::Q4_0.into()),
        ("blk.10.attn_q.weight", GgmlDType::Q4_0.into()),
        ("blk.7.ffn_up.weight", GgmlDType::Q8_0.into()),
        ("blk.20.attn_output.weight", GgmlDType::Q4_1.into()),
        ("blk.3.ffn_down.weight", WeightType::Iq4Nl),
        ("blk.12.attn_v.weight", WeightType::Iq4Nl),
    ] {
        let w = named
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .dequantize(&Device::Cpu)
            .unwrap();
        let imp = im.get(name).unwrap();
        let plain: Weight = match dtype {
            WeightType::Ggml(t) => candle_core::quantized::QTensor::quantize(&w, t)
                .unwrap()
                .into(),
            WeightType::Iq4Nl => edgewise_llm::iq4_nl::Iq4NlMatrix::quantize_plain(
                w.dims().to_vec(),
                &w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
            .unwrap()
            .into(),
        };
        let ours = quantize_weighted(&w, dtype, Some(imp)).unwrap();
        let (e_plain, e_ours) = (
            weighted_error(&w, &plain, Some(imp)).unwrap(),
            weighted_error(&w, &ours, Some(imp)).unwrap(),
        );
        // The shipped weights are already on a Q4_1 grid, so Q4_1 → Q4_1 is close to exact
        // either way; the other types must show a clear gain.
        let need = if dtype == WeightType::Ggml(GgmlDType::Q4_1) {
            1.0
        } else {
            0.9
        };
        assert!(
            e_ours <= need * e_plain,
            "{name} {dtype:?}: weighted error {e_ours} vs plain {e_plain}"
        );
    }
}

/// The least-squares refit after pruning on real activations of the shipped model: each
/// refitted projection fits its calibration target better than the pruned weights, and
/// the final hidden state on held-out text is closer to the base's than plain pruning's.
#[test]
fn refit_after_pruning_beats_plain_pruning_on_the_shipped_model() {
    use edgewise_ecld::compress::{calibrate, prune_mapped};
    use edgewise_ecld::reconstruct::{hidden_mse, refit_pruned};
    let s = shipped();
    let data = calib_windows(&s.tok, 48, 90);
    let w = data.windows();
    assert!(w.len() >= 46, "{}", w.len());
    let (train, held) = (&w[..40], &w[40..46]);
    let stats = calibrate(&s.base, train).unwrap();
    let plan = PrunePlan {
        ffn_keep: 0.5,
        ..PrunePlan::default()
    };
    let (pruned, map) = prune_mapped(&s.base, &stats, &plan).unwrap();
    let (refit, report) = refit_pruned(
        &s.base,
        &pruned,
        &map,
        train,
        RefitOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(report.len(), s.base.config().n_layer);
    for r in &report {
        assert!(r.after <= r.before, "{r:?}");
    }
    let kept = report.iter().filter(|r| r.refitted).count();
    assert!(
        kept * 4 >= report.len() * 3,
        "only {kept} of {} refits fit better than plain pruning",
        report.len()
    );
    let (plain, fitted) = (
        hidden_mse(&s.base, &pruned, held).unwrap(),
        hidden_mse(&s.base, &refit, held).unwrap(),
    );
    assert!(
        fitted < plain,
        "held-out hidden MSE: refit {fitted} vs plain pruning {plain}"
    );
}
