//! `cargo xtask setup`: install what a local build needs and is cheap to get.
//!
//! Each step is idempotent and quick when already done. Heavier system packages
//! (Chromium for the browser tests) are only checked here; `.ci/run` installs them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::util::{self, Context};

/// The Rust target the browser crates are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The Chromium the browser tests drive (override with `CHROMIUM`).
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

pub fn run(ctx: &Context) -> Result<()> {
    wasm_target()?;
    node_packages(ctx)?;
    check_chromium();
    let model = crate::model::setup_model()?;
    println!("xtask setup: model at {}", model.display());
    println!("xtask setup: done");
    Ok(())
}

/// Adds the wasm32 target to the pinned toolchain if it is missing.
pub fn wasm_target() -> Result<()> {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("could not run `rustc --print sysroot`")?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let installed = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .is_dir();
    if installed {
        println!("xtask setup: Rust target {WASM_TARGET} present");
        return Ok(());
    }
    if !util::has_program("rustup", "--version") {
        bail!(
            "the Rust target {WASM_TARGET} is missing from {sysroot} and rustup is not available \
             to add it; install the target for the toolchain in rust-toolchain.toml"
        );
    }
    util::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Installs the browser-test node packages (`npm ci` in tests/) if they are missing.
pub fn node_packages(ctx: &Context) -> Result<()> {
    let tests = ctx.path("tests");
    if tests.join("node_modules/.package-lock.json").is_file() {
        println!("xtask setup: node packages present in tests/node_modules");
        return Ok(());
    }
    if !util::has_program("npm", "--version") {
        bail!("npm is not installed: the browser tests need Node.js 20+ and npm");
    }
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&tests),
    )
}

/// Warns (does not fail) when the Chromium used by the browser tests is missing.
fn check_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
    if Path::new(&chromium).is_file() {
        println!("xtask setup: Chromium present at {chromium}");
    } else {
        println!(
            "xtask setup: warning: no Chromium at {chromium}; the browser tests need it \
             (Debian: `apt-get install -y chromium chromium-driver`, or set CHROMIUM)"
        );
    }
}
