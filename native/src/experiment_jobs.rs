//! Running an experiment's cells on this machine: each cell is a child process of this
//! binary (`edgewise experiment <plan> --cell ID --out DIR`), at most `--jobs` at once.
//!
//! A process per cell, not a thread: burn's `flex` backend keeps one random generator
//! per process, so two runs sharing a process would not be reproducible. Each child runs
//! on one thread (`RAYON_NUM_THREADS=1`, which also sizes the matrix products' pool), so
//! its numbers do not depend on how many cells run beside it, and with glibc allocator
//! settings that spare it a page-fault storm ([`MALLOC_TUNABLES`]). A child's output goes
//! to `OUT/logs/ID.log`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, mpsc};

use anyhow::{Context, bail};
use edgewise_rl::experiment::ExperimentPlan;

use crate::experiment_cell::{CellState, inspect};
use crate::experiment_plan::{Cell, arm_config, command_line, plan_argv};

/// Environment every cell process runs with: one thread.
pub const ONE_THREAD: [(&str, &str); 1] = [("RAYON_NUM_THREADS", "1")];

/// glibc's allocator settings for a cell process, unless `GLIBC_TUNABLES` is already set:
/// serve allocations up to 32 MiB from the heap instead of fresh `mmap`s, and keep freed
/// memory there (no trimming below 1 GiB). The learner allocates and frees
/// megabyte-sized tensors every minibatch, and with glibc's defaults a third of a cell's
/// CPU time was system time spent faulting pages in (10 of 37 s for 8,192 steps of
/// `ppo-eqgrad`; 0.03 s with these). Allocation never changes a result: the policy files
/// are byte-identical either way. Other C libraries ignore the variable.
pub const MALLOC_TUNABLES: (&str, &str) = (
    "GLIBC_TUNABLES",
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824",
);

/// Directory under `--out` holding one log per cell process.
pub const LOGS_DIR: &str = "logs";

/// Run the cells of `todo` not already done, `jobs` at a time; report every failure.
///
/// # Errors
/// When a cell process cannot be started or fails (naming each failed cell, its log and
/// the command that re-runs it).
pub fn run_cells(
    plan: &ExperimentPlan,
    plan_hash: &str,
    todo: &[Cell],
    out: &Path,
    jobs: usize,
) -> anyhow::Result<()> {
    let mut pending: Vec<Cell> = todo
        .iter()
        .filter(|c| !matches!(inspect(out, &c.id, plan_hash), CellState::Done { .. }))
        .cloned()
        .collect();
    // Longest first (the control's extra epochs make its cells the slowest), so that with
    // several jobs no long cell starts last and runs alone; results do not depend on it.
    pending.sort_by_key(|c| std::cmp::Reverse(arm_config(plan, c.arm).epochs));
    let pending: VecDeque<Cell> = pending.into();
    let skipped = todo.len() - pending.len();
    if skipped > 0 {
        println!(
            "{skipped} of {} cells already done in {} (same plan), skipped",
            todo.len(),
            out.display()
        );
    }
    if pending.is_empty() {
        return Ok(());
    }
    let logs = out.join(LOGS_DIR);
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let exe = std::env::current_exe().context("locating the edgewise binary")?;
    let argv = plan_argv(plan);
    let total = pending.len();
    let workers = jobs.clamp(1, total);
    println!("running {total} cells, {workers} at a time (one process and one thread each)");

    let bar = crate::logging::bar(
        total as u64,
        "{bar:40} {pos}/{len} cells  elapsed {elapsed}  eta {eta}  {msg}",
    );
    bar.enable_steady_tick(std::time::Duration::from_secs(1));
    let queue = Mutex::new(pending);
    let (tx, rx) = mpsc::channel::<(Cell, PathBuf, anyhow::Result<()>)>();
    let mut failures = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, exe, argv, logs) = (&queue, &exe, &argv, &logs);
            scope.spawn(move || {
                loop {
                    let next = queue.lock().expect("queue lock").pop_front();
                    let Some(cell) = next else { break };
                    let log = logs.join(format!("{}.log", cell.id));
                    let result = run_child(exe, argv, &cell, out, &log);
                    if tx.send((cell, log, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (cell, log, result) in rx {
            bar.inc(1);
            match result {
                Ok(()) => bar.set_message(format!("{} done", cell.id)),
                Err(e) => {
                    bar.println(format!("cell {} failed: {e:#}", cell.id));
                    failures.push((cell, log));
                }
            }
        }
    });
    bar.finish_with_message("cells done");
    if failures.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failures
        .iter()
        .map(|(c, log)| {
            format!(
                "  {} (log {}): re-run with {}",
                c.id,
                log.display(),
                command_line(
                    plan,
                    &["--cell", &c.id, "--out", &out.display().to_string()]
                )
            )
        })
        .collect();
    bail!(
        "{} of {total} cells failed:\n{}",
        failures.len(),
        lines.join("\n")
    )
}

fn run_child(
    exe: &Path,
    argv: &[String],
    cell: &Cell,
    out: &Path,
    log: &Path,
) -> anyhow::Result<()> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = Command::new(exe);
    if std::env::var_os(MALLOC_TUNABLES.0).is_none() {
        command.env(MALLOC_TUNABLES.0, MALLOC_TUNABLES.1);
    }
    let status = command
        .arg("experiment")
        .args(argv)
        .args(["--cell", &cell.id])
        .arg("--out")
        .arg(out)
        .envs(ONE_THREAD)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    if status.success() {
        Ok(())
    } else {
        bail!("{status}; last lines of its log:\n{}", tail(log, 8))
    }
}

/// The last `n` lines of a text file (empty when unreadable).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
