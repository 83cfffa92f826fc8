//! What the `edgewise experiment` tests share: the tiny plan and how to compare two
//! finished experiments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::cli::{edgewise_bin, stderr, stdout};

/// The tiny plan: the quick preset (3 arms, default and bursty evaluation) cut to 2 seeds
/// × 1024 steps on a mix of 10 and 20 devices, evaluated at 10 and 20 devices × 2
/// held-out seeds (6 cells of seconds each).
pub const TINY: [&str; 12] = [
    "--preset",
    "quick",
    "--seeds",
    "2",
    "--steps",
    "1024",
    "--train-populations",
    "10,20",
    "--populations",
    "10,20",
    "--eval-seeds",
    "2",
];

/// The tiny plan's cells, in order (seed, then arm).
pub const TINY_CELLS: [&str; 6] = [
    "ppo-s1",
    "wm-ppo-s1",
    "ppo-eqgrad-s1",
    "ppo-s2",
    "wm-ppo-s2",
    "ppo-eqgrad-s2",
];

/// A fresh scratch directory for one test.
///
/// # Panics
/// If it cannot be created.
#[must_use]
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgewise-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `edgewise experiment TINY EXTRA... --out OUT` with extra environment variables.
///
/// # Panics
/// If the binary cannot be started.
#[must_use]
pub fn experiment(out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(edgewise_bin())
        .arg("experiment")
        .args(TINY)
        .args(extra)
        .arg("--out")
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .expect("run edgewise")
}

/// Assert that a command succeeded, showing its output if not.
///
/// # Panics
/// If it failed.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
}

/// `DIR/results.json` without the wall times (the only thing allowed to differ between
/// two runs of one plan).
///
/// # Panics
/// If the file is missing or not JSON.
#[must_use]
pub fn results(dir: &Path) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("wall_s"));
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let path = dir.join("results.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    strip(&mut v);
    v
}

/// Every file in `dir/sub`, by name, with its bytes.
///
/// # Panics
/// If the directory cannot be read.
#[must_use]
pub fn files(dir: &Path, sub: &str) -> BTreeMap<String, Vec<u8>> {
    let path = dir.join(sub);
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Assert that two finished experiments agree: the same results.json (wall times aside)
/// and byte-identical policy files.
///
/// # Panics
/// If they differ.
pub fn assert_same_experiment(a: &Path, b: &Path) {
    assert!(
        results(a) == results(b),
        "{} and {} differ in results.json",
        a.display(),
        b.display()
    );
    let (pa, pb) = (files(a, "policies"), files(b, "policies"));
    assert_eq!(
        pa.keys().collect::<Vec<_>>(),
        pb.keys().collect::<Vec<_>>(),
        "policy files"
    );
    for (name, bytes) in &pa {
        assert!(&pb[name] == bytes, "policies/{name} differs");
    }
}
