//! CLI tests of `edgewise eval` on the shipped model (a small `--limit`), and its bad-input
//! errors. The shipped model must be in the model cache (`cargo xtask setup`); the test
//! fails, naming the path, when it is not.

use std::path::PathBuf;

use edgewise_tests::cli::{run, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgewise-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn eval_scores_the_shipped_model_and_writes_a_catalogue() {
    let out = scratch("eval-small");
    let o = run(&[
        "eval",
        "--limit",
        "4",
        "--max-answer-tokens",
        "12",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 1);
    let m = &variants[0];
    assert_eq!(m["mc_items"], 4);
    assert_eq!(
        m["facts"]["correct"].as_u64().unwrap()
            + m["facts"]["abstained"].as_u64().unwrap()
            + m["facts"]["hallucinated"].as_u64().unwrap(),
        4
    );
    for key in ["mc_accuracy", "hallucination_rate"] {
        let x = m[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    for key in ["prefill_tok_s", "decode_tok_s", "load_s", "perplexity"] {
        let x = m[key].as_f64().unwrap();
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // Perplexity of an instruct model on English prose: far from uniform over the vocab.
    assert!(m["perplexity"].as_f64().unwrap() < 1000.0, "{m}");
    assert!(m["peak_rss_bytes"].as_u64().unwrap() > m["bytes"].as_u64().unwrap() / 2);
    assert_eq!(m["classes"].as_array().unwrap().len(), 3);
    for f in ["eval.md", "eval.json", "tradeoff.png", "catalogue.json"] {
        let p = out.join(f);
        assert!(
            p.metadata().map(|m| m.len() > 0).unwrap_or(false),
            "{f} missing"
        );
    }
    // The report breaks accuracy down by task family; `--limit 4` takes one item from each
    // of the first four families of each set.
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    for row in [
        "Multiple-choice accuracy per task family",
        "| element-name | 1 |",
        "Factual questions, accuracy / hallucination rate, per task family",
        "| chemical-symbol | 1 |",
    ] {
        assert!(md.contains(row), "eval.md lacks {row:?}:\n{md}");
    }
    let cat: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("catalogue.json")).unwrap())
            .unwrap();
    assert_eq!(cat["format"], "edgewise-catalogue");
    let cv = &cat["variants"][0];
    assert!(cv["source"].as_str().unwrap().starts_with("measured:"));
    assert!(
        cv["per_class"]["phone-low"]["joules_per_token"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // No temporary files are left behind.
    for e in std::fs::read_dir(&out).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !n.starts_with('.') && !n.ends_with(".tmp"),
            "left over: {n}"
        );
    }
    // --merge with no --model re-renders the earlier run: same variant, same figures.
    let merged = scratch("eval-merged");
    let prior = out.join("eval.json");
    let merge_args = |limit: &'static str| {
        vec![
            "eval".to_owned(),
            "--limit".into(),
            limit.into(),
            "--max-answer-tokens".into(),
            "12".into(),
            "--merge".into(),
            prior.to_str().unwrap().into(),
            "--out".into(),
            merged.to_str().unwrap().into(),
            "--json".into(),
        ]
    };
    let args = merge_args("4");
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let wm = &w["variants"][0];
    assert_eq!(w["variants"].as_array().unwrap().len(), 1);
    for key in [
        "name",
        "mc_accuracy",
        "hallucination_rate",
        "perplexity",
        "bytes",
    ] {
        assert_eq!(wm[key], m[key], "{key}");
    }
    assert!(merged.join("catalogue.json").is_file());
    // Results measured differently are not merged.
    let args = merge_args("5");
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("measured with --limit 4, this run uses 5"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&merged).ok();
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn eval_rejects_bad_input_and_writes_nothing() {
    let out = scratch("eval-bad");
    let target = out.join("never");
    let o = run(&[
        "eval",
        "--model",
        "/nonexistent/model.gguf",
        "--out",
        target.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/model.gguf"),
        "{}",
        stderr(&o)
    );
    assert!(!target.exists());

    // A data folder with a malformed item: the error names the file, the line and the field.
    let data = out.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let head = |set: &str| {
        format!(
            r#"{{"format":"edgewise-eval-data","version":1,"set":"{set}","description":"d","generator":"g","seed":1,"sources":[]}}"#
        )
    };
    std::fs::write(
        data.join("facts.jsonl"),
        format!(
            "{}\n{}\n",
            head("facts"),
            r#"{"id":"a","family":"f","question":"q?","answers":["x"]}"#
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("mc.jsonl"),
        format!(
            "{}\n{}\n",
            head("mc"),
            r#"{"id":"a","family":"f","question":"q?","options":["x","y"],"answer":5}"#
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("prose.jsonl"),
        format!(
            "{}\n{}\n",
            head("prose"),
            r#"{"id":"a","text":"Some text."}"#
        ),
    )
    .unwrap();
    let model = out.join("model.gguf");
    std::fs::write(&model, b"").unwrap();
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("mc.jsonl") && e.contains("line 2") && e.contains("answer"),
        "{e}"
    );
    assert!(!target.exists());
    std::fs::remove_dir_all(&out).ok();
}

fn mec_data(file: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/mec/data")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn committed_catalogues_run_in_the_simulator() {
    // The 8B-assumption catalogue with its own scenario file.
    let o = run(&[
        "simulate",
        "--catalogue",
        &mec_data("paper-8b-assumed.json"),
        "--config",
        &mec_data("paper-8b-scenario.toml"),
        "--slots",
        "20",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The shipped (measured) catalogue named explicitly, with the default scenario.
    let o = run(&[
        "simulate",
        "--catalogue",
        &mec_data("default-catalogue.json"),
        "--slots",
        "20",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["mean_latency_s"].as_f64().unwrap() > 0.0);
}
