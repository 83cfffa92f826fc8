//! CLI tests of `edgewise compress`: the three methods on the shipped model with tiny
//! budgets, resuming a distillation (with the cached teacher text), mixed-precision
//! embeddings, and the errors users meet (bad ratios, widths, block types and files, a
//! checkpoint of another run, a missing model cache).
//!
//! Needs the shipped model in the cache (`cargo xtask setup`).

use std::path::PathBuf;
use std::process::Command;

use edgewise_tests::cli::{edgewise_bin, run, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgewise-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TINY: &[&str] = &[
    "--batch",
    "2",
    "--seq-len",
    "32",
    "--calib-windows",
    "4",
    "--prune-layers",
    "2",
    "--teacher-prompts",
    "4",
    "--teacher-tokens",
    "16",
];

fn compress(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["compress"];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn ecld_writes_a_loadable_smaller_model_and_resumes() {
    let dir = scratch("compress-ecld");
    let out = dir.join("ecld.gguf");
    let out_s = out.to_str().unwrap();
    let mut args = vec!["--method", "ecld", "--distill-steps", "2", "--out", out_s];
    args.extend_from_slice(TINY);
    let o = compress(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("teacher text: 4 passages") && stderr(&o).contains("generated"),
        "{}",
        stderr(&o)
    );
    let text = stdout(&o);
    assert!(text.contains("smaller than the f16 base"), "{text}");
    assert!(text.contains("held-out CE"), "{text}");
    assert!(text.contains("generation check"), "{text}");
    assert!(text.contains("Q4_0") && text.contains("Q8_0"), "{text}");
    assert!(std::fs::metadata(&out).unwrap().len() > 1_000_000);
    assert!(!dir.join("ecld.gguf.tmp").exists());
    let ckpt = dir.join("ecld.gguf.ckpt");
    assert_eq!(
        std::fs::read_to_string(ckpt.join("latest")).unwrap(),
        "step-00000002"
    );
    // Extend the same run by one step from its checkpoint.
    let mut resume = args.clone();
    resume[3] = "3";
    resume.extend_from_slice(&["--resume", "--no-check"]);
    let o = compress(&resume);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("steps 3..3"), "{}", stderr(&o));
    // The teacher's text comes from the cache, identical, so the checkpoint matches.
    assert!(stderr(&o).contains("(reused;"), "{}", stderr(&o));
    // Other pruning arguments do not match the checkpoint.
    let mut other = resume.clone();
    other.extend_from_slice(&["--prune-ffn", "0.4"]);
    let o = compress(&other);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("another configuration"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn baselines_write_loadable_models() {
    let dir = scratch("compress-baselines");
    for (method, bits) in [("quant-only", "8"), ("prune-only", "4")] {
        let out = dir.join(format!("{method}.gguf"));
        let mut args = vec![
            "--method",
            method,
            "--bits",
            bits,
            "--out",
            out.to_str().unwrap(),
            "--no-check",
        ];
        args.extend_from_slice(TINY);
        let o = compress(&args);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        assert!(stdout(&o).contains(&format!("{}", out.display())));
        // Loadable by the engine: a second compress run takes it as its base.
        let again = dir.join(format!("{method}-again.gguf"));
        let o = compress(&[
            "--model",
            out.to_str().unwrap(),
            "--method",
            "quant-only",
            "--bits",
            "8",
            "--out",
            again.to_str().unwrap(),
            "--no-check",
        ]);
        assert!(o.status.success(), "{method} reload: {}", stderr(&o));
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn embedding_type_is_chosen_separately() {
    let dir = scratch("compress-embed");
    let out = dir.join("q4-e40.gguf");
    let o = compress(&[
        "--method",
        "quant-only",
        "--bits",
        "4",
        "--embed-type",
        "q4_0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // Every matrix, the tied embedding/output included, is Q4_0; norms stay F32.
    assert!(
        text.contains(r#"tensor types: {"F32": 61, "Q4_0": 211}"#),
        "{text}"
    );
    assert!(text.contains("held-out CE"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_reported() {
    let dir = scratch("compress-bad");
    let out = dir.join("x.gguf");
    let out_s = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--method",
                "prune-only",
                "--prune-ffn",
                "1.5",
                "--out",
                out_s,
            ],
            "--prune-ffn must be a ratio in [0, 1)",
        ),
        (
            vec![
                "--method",
                "prune-only",
                "--prune-heads=-0.2",
                "--out",
                out_s,
            ],
            "--prune-heads must be a ratio",
        ),
        (
            vec![
                "--method",
                "prune-only",
                "--prune-ffn",
                "0.1,0.2",
                "--out",
                out_s,
            ],
            "give one ratio or one per layer (30)",
        ),
        (
            vec!["--method", "quant-only", "--bits", "3", "--out", out_s],
            "--bits must be 8 or 4",
        ),
        (
            vec!["--method", "quant-only", "--out", "x.bin"],
            "--out must name a .gguf file",
        ),
        (
            vec![
                "--method",
                "quant-only",
                "--embed-type",
                "q3",
                "--out",
                out_s,
            ],
            "unknown block type `q3`, expected one of f16, q8_0",
        ),
        (
            vec![
                "--method",
                "quant-only",
                "--embed-type",
                "q6_k",
                "--out",
                out_s,
            ],
            "multiple of 256 values, the model's embedding rows have 576",
        ),
        (
            vec![
                "--method",
                "prune-only",
                "--prune-layers",
                "30",
                "--out",
                out_s,
            ],
            "cannot drop 30 of 30 layers",
        ),
    ];
    for (args, want) in cases {
        let o = compress(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // A truncated model file.
    let src = edgewise_llm_model_path();
    let bytes = std::fs::read(&src).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = compress(&[
        "--model",
        cut.to_str().unwrap(),
        "--method",
        "quant-only",
        "--out",
        out_s,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("truncated GGUF"), "{}", stderr(&o));
    // An empty model cache.
    let o = Command::new(edgewise_bin())
        .args(["compress", "--method", "quant-only", "--out", out_s])
        .env("EDGEWISE_MODEL_DIR", dir.join("no-such-cache"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("missing model cache") && err.contains("cargo xtask setup"),
        "{err}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// The shipped model's path, as the CLI resolves it.
fn edgewise_llm_model_path() -> PathBuf {
    let dir = std::env::var_os("EDGEWISE_MODEL_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/edgewise/models"),
            PathBuf::from,
        );
    dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")
}
