//! Shared helpers: workspace paths, the cargo target directory, running commands.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Where the tasks run: the workspace root and the cargo target directory.
#[derive(Debug)]
pub struct Context {
    /// The workspace root (the directory holding the virtual manifest).
    pub root: PathBuf,
    /// The cargo target directory every spawned cargo command uses.
    pub target_dir: PathBuf,
}

impl Context {
    /// Finds the workspace root and settles `CARGO_TARGET_DIR`.
    ///
    /// The root is the checkout the command was run in ([`find_root`] from the current
    /// directory), never the one this binary was compiled from: checkouts on one machine
    /// share a target directory, so cargo may run a binary another checkout built.
    /// Target directories live outside the clone: unless `CARGO_TARGET_DIR` is already
    /// set, spawned cargo commands use `$HOME/.cache/edgewise/target`.
    pub fn new() -> Result<Self> {
        let cwd = std::env::current_dir().context("could not read the current directory")?;
        let root = find_root(&cwd)?;
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => {
                let dir = PathBuf::from(dir);
                if dir.is_absolute() {
                    dir
                } else {
                    root.join(dir)
                }
            }
            _ => {
                let home = std::env::var_os("HOME").context(
                    "HOME is not set; set CARGO_TARGET_DIR to choose a target directory",
                )?;
                PathBuf::from(home).join(".cache/edgewise/target")
            }
        };
        Ok(Self { root, target_dir })
    }

    /// A `cargo` command run at the workspace root with our target directory.
    pub fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", &self.target_dir);
        cmd
    }

    /// A path relative to the workspace root.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// The native `edgewise` binary built with the given cargo profile directory name.
    pub fn native_binary(&self, profile_dir: &str) -> PathBuf {
        self.target_dir
            .join(profile_dir)
            .join(format!("edgewise{}", std::env::consts::EXE_SUFFIX))
    }

    /// A file built for `wasm32-unknown-unknown` with the given profile directory name.
    pub fn wasm_artifact(&self, profile_dir: &str, file: &str) -> PathBuf {
        self.target_dir
            .join("wasm32-unknown-unknown")
            .join(profile_dir)
            .join(file)
    }
}

/// The edgewise checkout holding `start`: the nearest directory at or above it whose
/// `Cargo.toml` is a workspace manifest listing `crates/xtask` as a member.
///
/// # Errors
/// When no such directory exists, naming where the search started.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    for dir in start.ancestors() {
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if manifest.contains("[workspace]")
            && manifest.contains("\"crates/xtask\"")
            && dir.join("crates/xtask/Cargo.toml").is_file()
        {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "{} is not inside an edgewise checkout (no Cargo.toml at or above it is a workspace \
         with the member \"crates/xtask\"); run `cargo xtask` from within the repository",
        start.display()
    )
}

/// Runs a command to completion with inherited stdio; fails naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("xtask: $ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}` (is it installed and on PATH?)"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Whether a program can be started (used to check for tools before using them).
pub fn has_program(program: &str, version_flag: &str) -> bool {
    Command::new(program)
        .arg(version_flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The command line as a user could retype it (program name and arguments).
pub fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `f`, returning its result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// A duration as `12.3s` or `2m 05.1s`.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let minutes = (secs / 60.0).floor();
        format!("{minutes:.0}m {:04.1}s", secs - minutes * 60.0)
    }
}

/// A byte count as `1.23 MiB`, `45.6 KiB` or `789 B`.
pub fn fmt_bytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_and_sizes() {
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m 05.0s");
        assert_eq!(fmt_bytes(789), "789 B");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(fmt_bytes(3 * 1024 * 1024), "3.00 MiB");
    }

    #[test]
    fn finds_the_root_from_a_subdirectory_and_refuses_outside() {
        let base = std::env::temp_dir().join(format!("xtask-root-{}", std::process::id()));
        let root = base.join("checkout");
        std::fs::create_dir_all(root.join("crates/xtask/src")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/xtask\"]\n",
        )
        .unwrap();
        std::fs::write(root.join("crates/xtask/Cargo.toml"), "[package]\n").unwrap();
        // A nested package manifest is not the workspace root.
        assert_eq!(find_root(&root.join("crates/xtask/src")).unwrap(), root);
        assert_eq!(find_root(&root).unwrap(), root);
        let err = find_root(&base).unwrap_err().to_string();
        assert!(err.contains("not inside an edgewise checkout"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn displays_commands() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["build", "-p", "x"]);
        assert_eq!(display(&cmd), "cargo build -p x");
    }
}
