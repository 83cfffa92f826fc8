//! CLI tests of `edgewise generate` and `edgewise chat` on the shipped model: greedy
//! `generate --json` gives the native engine's greedy tokens (the fixture that
//! `web/tests/llm_greedy.rs` keeps equal to the engine), `chat` driven through standard
//! input answers several turns and exits at end of input, and bad flags are clear errors.
//! The shipped model must be in the model cache (`cargo xtask setup`).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use edgewise_tests::cli::{edgewise_bin, run, stderr, stdout};
use serde_json::Value;

/// `{prompt, new_tokens, ids, text}`: the engine's greedy answer to the prompt.
fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/browser/fixtures/llm-greedy.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read the greedy fixture"))
        .expect("fixture is JSON")
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id"))
        .collect()
}

#[test]
fn generate_json_greedy_gives_the_engines_tokens() {
    let f = fixture();
    let n = f["new_tokens"].as_u64().unwrap().to_string();
    let o = run(&[
        "generate",
        "--json",
        "--backend",
        "cpu",
        "--temperature",
        "0",
        "--max-tokens",
        &n,
        f["prompt"].as_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object on stdout");
    assert_eq!(ids(&v["tokens"]), ids(&f["ids"]), "{v}");
    assert_eq!(v["text"], f["text"]);
    assert_eq!(v["stop"], "length");
    assert!(v["backend"].as_str().unwrap().starts_with("cpu"), "{v}");
    assert!(v["prompt_tokens"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["prefill"]["tokens"], v["prompt_tokens"]);
    // Eight tokens: seven fed back (the last is never fed).
    assert_eq!(
        v["decode"]["tokens"].as_u64().unwrap(),
        ids(&f["ids"]).len() as u64 - 1
    );
    for phase in ["prefill", "decode"] {
        let r = v[phase]["tok_s"].as_f64().unwrap();
        assert!(r.is_finite() && r > 0.0, "{phase}: {r}");
    }
    assert!(
        stderr(&o).contains("backend: cpu") && stderr(&o).contains("--backend cpu"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn generate_streams_text_and_auto_says_which_backend() {
    let f = fixture();
    let o = run(&[
        "generate",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        f["prompt"].as_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim_end(),
        f["text"].as_str().unwrap().trim_end()
    );
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with("backend: "))
        .unwrap_or_else(|| panic!("no backend line: {err}"));
    assert!(line.contains("(auto: "), "auto gives no reason: {line}");
    assert!(err.contains("tok/s"), "no speed shown: {err}");
}

/// Runs `edgewise chat ARGS` with `input` on standard input (then end of input).
fn chat(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(edgewise_bin())
        .arg("chat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start edgewise chat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for edgewise chat")
}

#[test]
fn chat_answers_turns_from_stdin_and_exits_at_eof() {
    let f = fixture();
    let q = f["prompt"].as_str().unwrap();
    let input = format!("{q}\n/reset\n{q}\nAnd what is the capital of Italy?\n");
    let o = chat(
        &[
            "--backend",
            "cpu",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
        ],
        &input,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let stats: Vec<&str> = err.lines().filter(|l| l.contains(" tok/s; ")).collect();
    assert_eq!(stats.len(), 3, "three answers expected:\n{err}");
    assert!(err.contains("(new conversation)"), "{err}");
    // The first turn, and the same question after /reset, give the engine's greedy answer.
    let want = f["text"].as_str().unwrap().trim_end();
    let out = stdout(&o);
    let answers: Vec<&str> = out.lines().collect();
    assert!(answers.len() >= 3, "{out}");
    assert_eq!(answers[0].trim_end(), want, "{out}");
    assert_eq!(answers[1].trim_end(), want, "{out}");
    // The follow-up reused the cache: its prefill covers only the new turn, not the whole
    // conversation (the first prompt alone is longer than 20 tokens).
    let prefill = |line: &str| -> usize {
        let at = line.find("prefill ").expect("prefill field") + "prefill ".len();
        line[at..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("prefill token count")
    };
    assert!(prefill(stats[0]) > 20, "{}", stats[0]);
    assert!(prefill(stats[2]) < prefill(stats[0]), "{stats:?}");
}

#[test]
fn chat_with_empty_input_exits_cleanly() {
    let o = chat(&["--backend", "cpu"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn bad_flags_are_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["generate", "--temperature", "-1", "hi"],
            "--temperature must be",
        ),
        (
            &["generate", "--top-p", "1.5", "hi"],
            "--top-p must be in (0, 1]",
        ),
        (
            &["generate", "--max-tokens", "0", "hi"],
            "--max-tokens must be at least 1",
        ),
        (&["chat", "--temperature", "nan"], "--temperature must be"),
        (
            &["generate", "--backend", "gpu", "hi"],
            "possible values: cpu, wgpu, auto",
        ),
        (
            &["generate", "--model", "/nonexistent/m.gguf", "hi"],
            "no such file",
        ),
        (&["generate", "   "], "the prompt is empty"),
    ];
    for (args, want) in cases {
        let o = run(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn wgpu_backend_without_the_feature_names_it() {
    let o = run(&["generate", "--backend", "wgpu", "--max-tokens", "1", "hi"]);
    let err = stderr(&o);
    if o.status.success() {
        // A binary built with `--features wgpu` on a machine with an adapter.
        assert!(err.contains("backend: wgpu"), "{err}");
    } else if err.contains("without the `wgpu` feature") {
        assert!(err.contains("rebuild with `--features wgpu`"), "{err}");
    } else {
        // Built with the feature but no adapter: the error must say so.
        assert!(err.contains("adapter"), "{err}");
    }
}
