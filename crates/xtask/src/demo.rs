//! `cargo xtask demo`: set up, build the web bundle and the native binary, then serve.

use anyhow::{Context as _, Result};
use clap::Args;
use std::process::Command;

use crate::util::{self, Context};
use crate::{setup, web};

/// The native CLI package that holds the `serve` subcommand.
pub const NATIVE_PACKAGE: &str = "edgewise";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Port to serve the demo on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Build the web bundle with the dev profile (faster build, slower page).
    #[arg(long)]
    pub dev: bool,
}

pub fn run(ctx: &Context, args: &DemoArgs) -> Result<()> {
    setup::run(ctx)?;
    web::run(ctx, &web::WebArgs { dev: args.dev })?;
    util::run(&mut ctx.cargo(["build", "-p", NATIVE_PACKAGE]))
        .context("building the native `edgewise` binary failed")?;

    let binary = ctx.native_binary("debug");
    let port = args.port.to_string();
    println!("xtask demo: open http://127.0.0.1:{port}/ (Ctrl-C to stop)");
    util::run(
        Command::new(&binary)
            .args([
                "serve",
                "--root",
                "www/dist",
                "--addr",
                "127.0.0.1",
                "--port",
                &port,
            ])
            .current_dir(&ctx.root),
    )
    .context("the demo server stopped with an error")
}
