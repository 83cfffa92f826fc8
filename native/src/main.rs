//! `edgewise` — the command line of the edgewise project.
//!
//! Subcommands live one per module; this file only parses arguments and dispatches.

mod backend;
mod chat;
mod compress;
mod config_file;
mod eval;
mod experiment;
mod experiment_cell;
mod experiment_jobs;
mod experiment_plan;
mod experiment_view;
mod generate;
mod learned;
mod llm_options;
mod logging;
mod mec_env;
mod plots;
mod rollout_clock;
mod serve;
mod simulate;
mod train;

use clap::{Parser, Subcommand};

/// Compact LLM deployment and world-model-assisted offloading in mobile edge computing.
#[derive(Parser, Debug)]
#[command(name = "edgewise", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log each step of long jobs (debug level) to stderr; `RUST_LOG` overrides.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the MEC simulator with a scheduling policy and print its metrics.
    Simulate(simulate::SimulateArgs),
    /// Train an offloading policy (or validate the learner on CartPole).
    Train(train::TrainArgs),
    /// Score model variants (accessibility, energy, hallucination, accuracy); write the catalogue.
    Eval(eval::EvalArgs),
    /// Compare PPO, WM-PPO and the baselines over seeds and populations; write a report.
    Experiment(experiment::ExperimentArgs),
    /// Build a compressed model variant (ECLD or a baseline) and write it as GGUF.
    Compress(compress::CompressArgs),
    /// Talk with the model: interactive, multi-turn, answers streamed with their speed.
    Chat(chat::ChatArgs),
    /// Answer one prompt (scriptable; --json gives the tokens, text and timings).
    Generate(generate::GenerateArgs),
    /// Serve the built web app (www/dist) on the loopback interface.
    Serve(serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let result = match &cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Compress(args) => compress::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Generate(args) => generate::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
