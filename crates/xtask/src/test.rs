//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure.
//!
//! Steps: rustfmt, clippy, the shipped model, the native test suite (GPU tests on
//! lavapipe), the wasm32 check of the browser libraries, the web bundle, the wasm
//! determinism probe, the node
//! tests (headless Chromium against `edgewise serve`, native vs wasm digests), and the
//! experiment's Ray driver on a loopback cluster (`ray.rs`).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::setup::{self, WASM_TARGET};
use crate::util::{self, Context};
use crate::web;

/// Library packages meant for the browser: each must build for `wasm32-unknown-unknown`.
/// Add a library here when the web app starts using it.
pub const WASM_LIBRARIES: &[&str] = &[
    "edgewise-env",
    "edgewise-rng",
    "edgewise-mec",
    "edgewise-policy",
    "edgewise-rl",
    "edgewise-llm",
    "edgewise-gpu",
];

/// The cdylib the determinism test loads into node (`tests/wasm-probe`).
pub const PROBE_PACKAGE: &str = "edgewise-wasm-probe";
/// Its wasm file name (cargo turns `-` into `_` for library artifacts).
pub const PROBE_WASM: &str = "edgewise_wasm_probe.wasm";

/// The node test directory (node:test files `*.test.mjs`).
pub const NODE_TESTS: &str = "tests/browser/";

type Step<'a> = (&'static str, Box<dyn Fn() -> Result<()> + 'a>);

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Skip a step (repeatable): fmt, clippy, model, cargo-test, wasm-libs, web, wasm-probe,
    /// node, ray. For local iteration only; CI runs every step.
    #[arg(long, value_name = "STEP")]
    pub skip: Vec<String>,
}

pub fn run(ctx: &Context, args: &TestArgs) -> Result<()> {
    let steps: Vec<Step<'_>> = vec![
        (
            "fmt",
            Box::new(|| util::run(&mut ctx.cargo(["fmt", "--all", "--", "--check"]))),
        ),
        ("clippy", Box::new(|| clippy(ctx))),
        (
            "model", // the LLM tests run on the shipped model
            Box::new(|| crate::model::setup_model().map(|_| ())),
        ),
        (
            "cargo-test",
            // Also builds target/debug/edgewise (native/tests needs it) with the test
            // build's features, for the CLI tests in tests/ and the node step: a separate
            // `cargo build -p edgewise` would resolve other features and rebuild burn.
            Box::new(|| util::run(&mut gpu_env(ctx.cargo(["test", "--workspace"])))),
        ),
        ("wasm-libs", Box::new(|| wasm_libraries(ctx))),
        (
            "web",
            Box::new(|| web::run(ctx, &web::WebArgs::default()).map(|_| ())),
        ),
        ("wasm-probe", Box::new(|| wasm_probe(ctx))),
        ("node", Box::new(|| node_tests(ctx))),
        ("ray", Box::new(|| crate::ray::test(ctx))),
    ];
    for skip in &args.skip {
        if !steps.iter().any(|(name, _)| name == skip) {
            let names: Vec<&str> = steps.iter().map(|(name, _)| *name).collect();
            bail!(
                "unknown step `{skip}` in --skip: expected one of {}",
                names.join(", ")
            );
        }
    }

    let mut done: Vec<(&str, Duration)> = Vec::new();
    for (name, step) in &steps {
        if args.skip.iter().any(|s| s == name) {
            println!("\nxtask test: --- {name} (skipped)");
            continue;
        }
        println!("\nxtask test: ==> {name}");
        let (result, took) = util::timed(step);
        println!("xtask test: <== {name} ({})", util::fmt_duration(took));
        if let Err(err) = result {
            print_summary(&done, Some((name, took)));
            return Err(err.context(format!("xtask test: step `{name}` failed")));
        }
        done.push((name, took));
    }
    print_summary(&done, None);
    if args.skip.is_empty() {
        println!("xtask test: all {} steps passed", done.len());
    } else {
        println!(
            "xtask test: {} steps passed, {} skipped ({})",
            done.len(),
            args.skip.len(),
            args.skip.join(", ")
        );
    }
    Ok(())
}

fn print_summary(done: &[(&str, Duration)], failed: Option<(&str, Duration)>) {
    println!("\nxtask test: summary");
    for (name, took) in done {
        println!("  ok      {name:<20} {:>10}", util::fmt_duration(*took));
    }
    if let Some((name, took)) = failed {
        println!("  FAILED  {name:<20} {:>10}", util::fmt_duration(took));
    }
    let total: Duration =
        done.iter().map(|(_, t)| *t).sum::<Duration>() + failed.map_or(Duration::ZERO, |(_, t)| t);
    println!("  total   {:<20} {:>10}", "", util::fmt_duration(total));
}

/// lavapipe's Vulkan driver manifest (Debian's `mesa-vulkan-drivers`).
const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

/// The GPU tests (crates/gpu) must run, not skip: a missing adapter fails them. They run
/// on lavapipe when it is installed (pinned, so every machine runs the same driver)
/// unless the caller chose a driver already.
fn gpu_env(mut cmd: Command) -> Command {
    if std::env::var_os("EDGEWISE_REQUIRE_GPU").is_none() {
        cmd.env("EDGEWISE_REQUIRE_GPU", "1");
    }
    if std::env::var_os("VK_DRIVER_FILES").is_none() && std::path::Path::new(LAVAPIPE_ICD).is_file()
    {
        cmd.env("VK_DRIVER_FILES", LAVAPIPE_ICD);
    }
    cmd.env("WGPU_ALLOW_UNDERLYING_NONCOMPLIANT_ADAPTER", "1");
    cmd
}

fn clippy(ctx: &Context) -> Result<()> {
    util::run(&mut ctx.cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

fn wasm_libraries(ctx: &Context) -> Result<()> {
    // `check`, not `build`: a library is an rlib, which is never linked on its own, so
    // type-checking for wasm32 catches what a build would at half the cost. The web
    // bundle step does a real wasm32 build and link of what the page uses.
    let mut cmd = ctx.cargo(["check", "--target", WASM_TARGET]);
    for package in WASM_LIBRARIES {
        cmd.args(["-p", package]);
    }
    util::run(&mut cmd)
}

fn wasm_probe(ctx: &Context) -> Result<()> {
    util::run(&mut ctx.cargo([
        "build",
        "-p",
        PROBE_PACKAGE,
        "--target",
        WASM_TARGET,
        "--release",
    ]))
}

fn node_tests(ctx: &Context) -> Result<()> {
    setup::node_packages(ctx)?;
    let binary = ctx.native_binary("debug");
    let dist = ctx.path("www/dist");
    let probe = ctx.wasm_artifact("release", PROBE_WASM);
    for (what, path) in [
        ("native binary", &binary),
        ("web bundle", &dist),
        ("wasm probe", &probe),
    ] {
        if !path.exists() {
            bail!(
                "the {what} is missing at {} (an earlier step should have built it)",
                path.display()
            );
        }
    }
    util::run(
        Command::new("node")
            .args(["--test", NODE_TESTS])
            .current_dir(&ctx.root)
            .env("EDGEWISE_BIN", &binary)
            .env("EDGEWISE_DIST", &dist)
            .env("EDGEWISE_PROBE_WASM", &probe),
    )
    .context("the node tests failed (screenshots, if any, are in tests/artifacts/)")
}
