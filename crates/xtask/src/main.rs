//! Project automation for edgewise, run as `cargo xtask <task>`.
//!
//! Each task lives in its own module; [`util`] holds what they share (the workspace
//! root, the cargo target directory, running a command with a clear error). xtask
//! never contains product logic: it only builds, bundles and tests the other crates.

mod demo;
mod model;
mod ray;
mod setup;
mod test;
mod util;
mod web;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "edgewise build, bundle and test automation"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Install what a local build needs and is cheap to get (wasm target, node packages).
    Setup,
    /// Build the browser app and assemble `www/dist/`.
    Web(web::WebArgs),
    /// Set up, build the web bundle and the native binary, then serve the demo.
    Demo(demo::DemoArgs),
    /// Run every check CI runs: fmt, clippy, tests, wasm builds, browser tests.
    Test(test::TestArgs),
    /// Print the checkout this command acts on (found from the current directory).
    Root,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let ctx = util::Context::new()?;
    if !matches!(cli.task, Task::Root) {
        println!(
            "xtask: checkout {}, CARGO_TARGET_DIR={}",
            ctx.root.display(),
            ctx.target_dir.display()
        );
    }
    match cli.task {
        Task::Root => {
            // Alone on stdout, for scripts and the second-checkout test.
            println!("{}", ctx.root.display());
            Ok(())
        }
        Task::Setup => setup::run(&ctx),
        Task::Web(args) => web::run(&ctx, &args).map(|_| ()),
        Task::Demo(args) => demo::run(&ctx, &args),
        Task::Test(args) => test::run(&ctx, &args),
    }
}
