//! The `ray` step of `cargo xtask test`: the experiment's Ray driver end to end on a
//! one-machine cluster bound to 127.0.0.1 (`tests/tests/ray_loopback.rs`).
//!
//! Ray comes from PyPI into a virtual environment outside the clone
//! (`$HOME/.cache/edgewise/venv-ray`, or `EDGEWISE_RAY_VENV`), created here when missing
//! (`.ci/run` creates it too, so a fresh CI machine has it before the tests start).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::util::{self, Context};

/// The Ray release the driver and the docs were checked with.
pub const RAY_VERSION: &str = "2.60.0";

/// Where the virtual environment with Ray lives.
pub fn venv_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("EDGEWISE_RAY_VENV").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .context("HOME is not set; set EDGEWISE_RAY_VENV to choose where Ray is installed")?;
    Ok(PathBuf::from(home).join(".cache/edgewise/venv-ray"))
}

/// The virtual environment with Ray `RAY_VERSION`, created and filled if missing.
pub fn ensure_venv() -> Result<PathBuf> {
    let venv = venv_dir()?;
    let python = venv.join("bin/python");
    let check = format!("import ray, sys; sys.exit(ray.__version__ != {RAY_VERSION:?})");
    let present = Command::new(&python)
        .args(["-c", &check])
        .status()
        .is_ok_and(|s| s.success());
    if present {
        println!("xtask: Ray {RAY_VERSION} present in {}", venv.display());
        return Ok(venv);
    }
    if !python.exists() {
        if !util::has_program("python3", "--version") {
            bail!("python3 is missing: the Ray test needs Python 3.10+ with the venv module");
        }
        util::run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).context(
            "creating the Ray virtual environment (on Debian: apt-get install python3-venv)",
        )?;
    }
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("ray[default]=={RAY_VERSION}")),
    )
    .context("installing Ray into its virtual environment")?;
    Ok(venv)
}

/// Run the Ray loopback test (the native binary must be built: the `cargo-test` step
/// builds it).
pub fn test(ctx: &Context) -> Result<()> {
    let venv = ensure_venv()?;
    let binary = ctx.native_binary("debug");
    if !binary.exists() {
        bail!(
            "the native binary is missing at {} (the cargo-test step builds it)",
            binary.display()
        );
    }
    util::run(
        ctx.cargo([
            "test",
            "-p",
            "edgewise-tests",
            "--test",
            "ray_loopback",
            "--",
            "--ignored",
            "--nocapture",
        ])
        .env("EDGEWISE_RAY_VENV", &venv),
    )
}
