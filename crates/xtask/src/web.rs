//! `cargo xtask web [--dev]`: build the browser app and assemble `www/dist/`.
//!
//! 1. `cargo build -p edgewise-web --target wasm32-unknown-unknown --profile web`
//!    (`--dev`: the dev profile, much faster to build, larger and slower to run);
//! 2. wasm-bindgen, used as a library pinned to the exact `wasm-bindgen` version in
//!    Cargo.lock, writes the JS glue and the final `.wasm` (`--target web` flavour);
//! 3. everything in `www/` except `dist/` is copied next to them;
//! 4. the LLM model(s) in the model cache are hard-linked (else copied) into
//!    `models/`, listed in `models/index.json` (an empty list, and a note, when the cache
//!    has none: the bundle still builds and the chat panel says to run `cargo xtask setup`).
//!
//! The bundle is assembled in `www/dist.tmp/` and renamed into place, so `www/dist/`
//! is never half-written.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use flate2::Compression;
use flate2::write::GzEncoder;
use wasm_bindgen_cli_support::Bindgen;

use crate::setup::WASM_TARGET;
use crate::util::{self, Context};

/// The cargo package of the browser app.
pub const WEB_PACKAGE: &str = "edgewise-web";

/// The cargo package of the LLM worker's binary (its own package so that `[profile.web]`
/// can build it at opt-level 3 while the page stays small).
pub const LLM_WORKER_PACKAGE: &str = "edgewise-llm-worker";

/// Binaries of [`WEB_PACKAGE`] and [`LLM_WORKER_PACKAGE`] turned into ES modules named after the bin with `-`
/// replaced by `_`: `edgewise-web` gives `edgewise_web.js` + `edgewise_web_bg.wasm`
/// (what `www/index.html` imports); `edgewise-worker` is the simulation's dedicated web
/// worker (loaded by `www/worker.js`); `edgewise-trainer` is the training race's worker
/// (burn; loaded by `www/trainer.js` only when a race starts); `edgewise-llm-worker` is the
/// in-page LLM's worker (loaded by `www/llm-worker.js` when the chat panel opens).
pub const WEB_BINS: &[&str] = &[
    "edgewise-web",
    "edgewise-worker",
    "edgewise-trainer",
    "edgewise-llm-worker",
];

/// Folder of the staged LLM model files, relative to the bundle (and to the page).
pub const MODEL_DIR: &str = "models";

/// A model file in the cache whose name contains this (any case) is the ECLD-compressed
/// variant; the page prefers it over the shipped Q4_1 model.
pub const ECLD_MARKER: &str = "ecld";

/// Folder of the shipped policy files, relative to `www/` (and to the page).
pub const POLICY_DIR: &str = "policies";

/// The cargo profile of the release bundle (see `[profile.web]` in the root manifest).
pub const WEB_PROFILE: &str = "web";

#[derive(Args, Debug, Default)]
pub struct WebArgs {
    /// Build with the dev profile (fast build, large unoptimised wasm).
    #[arg(long)]
    pub dev: bool,
}

/// Builds the bundle; returns the `www/dist` directory.
pub fn run(ctx: &Context, args: &WebArgs) -> Result<PathBuf> {
    let (profile_args, profile_dir): (&[&str], &str) = if args.dev {
        (&[], "debug")
    } else {
        (&["--profile", WEB_PROFILE], WEB_PROFILE)
    };
    util::run(
        ctx.cargo([
            "build",
            "-p",
            WEB_PACKAGE,
            "-p",
            LLM_WORKER_PACKAGE,
            "--target",
            WASM_TARGET,
        ])
        .args(profile_args),
    )
    .with_context(|| {
        format!("building the wasm of {WEB_PACKAGE} and {LLM_WORKER_PACKAGE} failed")
    })?;

    let www = ctx.path("www");
    let dist = www.join("dist");
    let staging = www.join("dist.tmp");
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("could not remove stale {}", staging.display()))?;
    }
    fs::create_dir_all(&staging)
        .with_context(|| format!("could not create {}", staging.display()))?;

    for bin in WEB_BINS {
        let input = ctx.wasm_artifact(profile_dir, &format!("{bin}.wasm"));
        if !input.is_file() {
            bail!(
                "cargo reported success but {} is missing (is `{bin}` a bin of {WEB_PACKAGE} or {LLM_WORKER_PACKAGE}?)",
                input.display()
            );
        }
        println!("xtask web: wasm-bindgen {}", input.display());
        Bindgen::new()
            .input_path(&input)
            .out_name(&bin.replace('-', "_"))
            .web(true)?
            .typescript(false)
            // The library defaults to omitting `new URL('<name>_bg.wasm', import.meta.url)`
            // (the CLI does not): keep it so `init()` finds the wasm next to the JS.
            .omit_default_module_path(false)
            .debug(args.dev)
            .keep_debug(args.dev)
            .generate(&staging)
            .with_context(|| format!("wasm-bindgen failed on {}", input.display()))?;
    }

    copy_static(&www, &staging)?;
    write_policy_index(&staging)?;
    stage_models(&staging)?;

    if dist.exists() {
        fs::remove_dir_all(&dist)
            .with_context(|| format!("could not remove old {}", dist.display()))?;
    }
    fs::rename(&staging, &dist)
        .with_context(|| format!("could not move {} to {}", staging.display(), dist.display()))?;

    report_sizes(&dist)?;
    println!("xtask web: bundle ready in {}", dist.display());
    Ok(dist)
}

/// Copies `www/` (except the build outputs) into the staging directory.
fn copy_static(www: &Path, staging: &Path) -> Result<()> {
    if !www.join("index.html").is_file() {
        bail!(
            "{} is missing: the page shell lives in www/",
            www.join("index.html").display()
        );
    }
    for entry in fs::read_dir(www).with_context(|| format!("could not read {}", www.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "dist" || name == "dist.tmp" {
            continue;
        }
        copy_recursive(&entry.path(), &staging.join(&name))?;
    }
    Ok(())
}

/// Writes `policies/index.json`: the names of the policy files shipped in the bundle
/// (a JSON array, sorted). The page fetches only listed files, so a policy that is not
/// shipped yet costs no failed request (and no console error).
fn write_policy_index(staging: &Path) -> Result<()> {
    let dir = staging.join(POLICY_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("could not read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && name != "index.json" {
            names.push(name);
        }
    }
    names.sort();
    let index = policy_index_json(&names);
    let path = dir.join("index.json");
    fs::write(&path, index).with_context(|| format!("could not write {}", path.display()))?;
    println!(
        "xtask web: shipped policies: {}",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    Ok(())
}

/// Links the cached LLM model files into `models/` and writes `models/index.json`
/// (`{"models": [{file, name, variant, bytes, sha256}]}`, the shipped Q4_1 model and any
/// ECLD variant; the page picks the ECLD one when listed and checks what it downloads, or
/// finds in its cache, against `sha256`).
fn stage_models(staging: &Path) -> Result<()> {
    let dir = staging.join(MODEL_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let cache = crate::model::model_dir()?;
    let mut files: Vec<PathBuf> = Vec::new();
    if cache.is_dir() {
        for entry in
            fs::read_dir(&cache).with_context(|| format!("could not read {}", cache.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_file()
                && (name == crate::model::MODEL_FILE
                    || (name.ends_with(".gguf") && name.to_lowercase().contains(ECLD_MARKER)))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut entries = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let to = dir.join(&name);
        // A hard link costs no space; across file systems fall back to a copy.
        if fs::hard_link(path, &to).is_err() {
            fs::copy(path, &to).with_context(|| {
                format!("could not copy {} to {}", path.display(), to.display())
            })?;
        }
        let bytes = fs::metadata(&to)
            .with_context(|| format!("could not stat {}", to.display()))?
            .len();
        entries.push(ModelListing::new(
            &name,
            bytes,
            crate::model::sha256_file(&to)?,
        ));
    }
    let path = dir.join("index.json");
    fs::write(&path, model_index_json(&entries))
        .with_context(|| format!("could not write {}", path.display()))?;
    if entries.is_empty() {
        println!(
            "xtask web: no LLM model in {} (the chat panel will say to run `cargo xtask setup`)",
            cache.display()
        );
    } else {
        let names: Vec<&str> = entries.iter().map(|e| e.file.as_str()).collect();
        println!("xtask web: staged models: {}", names.join(", "));
    }
    Ok(())
}

/// One entry of `models/index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelListing {
    file: String,
    name: String,
    variant: String,
    bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    sha256: String,
}

impl ModelListing {
    fn new(file: &str, bytes: u64, sha256: String) -> Self {
        let stem = file.strip_suffix(".gguf").unwrap_or(file);
        let variant = if file.to_lowercase().contains(ECLD_MARKER) {
            ECLD_MARKER.to_owned()
        } else {
            // `Name.Q4_1.gguf` → `q4_1`.
            stem.rsplit_once('.')
                .map_or("gguf", |(_, q)| q)
                .to_lowercase()
        };
        let name = stem.rsplit_once('.').map_or(stem, |(n, _)| n).to_owned();
        Self {
            file: file.to_owned(),
            name,
            variant,
            bytes,
            sha256,
        }
    }
}

fn model_index_json(entries: &[ModelListing]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let items: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{{\"file\": {}, \"name\": {}, \"variant\": {}, \"bytes\": {}, \"sha256\": {}}}",
                quote(&e.file),
                quote(&e.name),
                quote(&e.variant),
                e.bytes,
                quote(&e.sha256)
            )
        })
        .collect();
    format!("{{\"models\": [{}]}}\n", items.join(", "))
}

fn policy_index_json(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]\n", quoted.join(", "))
}

fn copy_recursive(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        fs::create_dir_all(to).with_context(|| format!("could not create {}", to.display()))?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        fs::copy(from, to)
            .with_context(|| format!("could not copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Prints each file of the bundle with its raw and gzip-compressed size.
fn report_sizes(dist: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_files(dist, &mut files)?;
    files.sort();
    let (mut raw_total, mut gz_total) = (0, 0);
    println!("xtask web: bundle sizes (raw / gzip -9):");
    for file in &files {
        let name = file.strip_prefix(dist).unwrap_or(file).display();
        if file.extension().is_some_and(|e| e == "gguf") {
            // Model weights: already compressed; gzip would take long and save little.
            let raw = fs::metadata(file)?.len();
            println!(
                "  {name:<40} {:>12} {:>12}",
                util::fmt_bytes(raw),
                "(not gzipped)"
            );
            continue;
        }
        let bytes = fs::read(file).with_context(|| format!("could not read {}", file.display()))?;
        let raw = bytes.len() as u64;
        let gz = gzip_len(&bytes)?;
        raw_total += raw;
        gz_total += gz;
        println!(
            "  {name:<40} {:>12} {:>12}",
            util::fmt_bytes(raw),
            util::fmt_bytes(gz)
        );
    }
    println!(
        "  {:<40} {:>12} {:>12}",
        "total (without models)",
        util::fmt_bytes(raw_total),
        util::fmt_bytes(gz_total)
    );
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_index_is_a_json_array() {
        assert_eq!(policy_index_json(&[]), "[]\n");
        let names = vec!["a.json".to_owned(), "b\"c.json".to_owned()];
        assert_eq!(policy_index_json(&names), "[\"a.json\", \"b\\\"c.json\"]\n");
    }

    #[test]
    fn model_index_lists_variants() {
        assert_eq!(model_index_json(&[]), "{\"models\": []}\n");
        let q = ModelListing::new("SmolLM2-135M-Instruct.Q4_1.gguf", 7, "ab".into());
        assert_eq!(q.name, "SmolLM2-135M-Instruct");
        assert_eq!(q.variant, "q4_1");
        let e = ModelListing::new("SmolLM2-135M-ECLD.gguf", 5, "cd".into());
        assert_eq!(e.variant, ECLD_MARKER);
        assert_eq!(
            model_index_json(&[q]),
            "{\"models\": [{\"file\": \"SmolLM2-135M-Instruct.Q4_1.gguf\", \
             \"name\": \"SmolLM2-135M-Instruct\", \"variant\": \"q4_1\", \"bytes\": 7, \
             \"sha256\": \"ab\"}]}\n"
        );
    }

    #[test]
    fn gzip_shrinks_repetitive_input() {
        let input = vec![b'a'; 10_000];
        let len = gzip_len(&input).unwrap();
        assert!(len < 100, "gzip of 10k identical bytes took {len} bytes");
    }
}
