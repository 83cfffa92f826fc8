//! Running the `edgewise` binary from the CLI tests.
//!
//! The binary is found next to the test's own build (`target/<profile>/edgewise`);
//! `cargo test --workspace` builds it (native/ has integration tests). Set
//! `EDGEWISE_BIN` to test another build.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `edgewise` binary under test.
///
/// # Panics
/// If it has not been built and `EDGEWISE_BIN` is not set.
#[must_use]
pub fn edgewise_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGEWISE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join(format!("edgewise{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p edgewise` (cargo xtask test does), or set EDGEWISE_BIN",
        bin.display()
    );
    bin
}

/// Run `edgewise ARGS...` and collect its output.
///
/// # Panics
/// If the binary cannot be started.
#[must_use]
pub fn run(args: &[&str]) -> Output {
    Command::new(edgewise_bin())
        .args(args)
        .output()
        .expect("run edgewise")
}

/// Standard output as text.
#[must_use]
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
#[must_use]
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
