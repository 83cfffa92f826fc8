//! `cargo xtask` acts on the checkout it is run in, not the one its binary was built from.
//!
//! Checkouts on one machine share a target directory, so cargo can run an xtask binary
//! that another checkout compiled. This test clones the current commit into a temporary
//! directory, runs this checkout's xtask binary there, and checks it names the clone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout this test was built from.
fn this_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn xtask(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the xtask binary runs")
}

/// A scratch directory removed on drop, also when an assertion fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn acts_on_the_checkout_it_runs_in() {
    let scratch = Scratch(
        std::env::temp_dir().join(format!("edgewise-second-checkout-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).unwrap();
    let second = scratch.0.join("edgewise");
    // `--shared` borrows the objects instead of copying them: fast, and a full checkout.
    let status = Command::new("git")
        .args(["clone", "--quiet", "--shared"])
        .arg(this_checkout())
        .arg(&second)
        .status()
        .expect("git runs (the test clones the repository)");
    assert!(
        status.success(),
        "git clone of {} failed",
        this_checkout().display()
    );
    let second = second.canonicalize().unwrap();

    // From a subdirectory of the clone, as `cargo xtask` would be run there.
    let out = xtask(&["root"], &second.join("crates/mec"));
    assert!(
        out.status.success(),
        "xtask root failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(printed, second, "xtask must act on the clone it was run in");
    assert_ne!(printed, this_checkout());

    // Outside any checkout: a clear error, not a guess.
    let out = xtask(&["root"], &scratch.0);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not inside an edgewise checkout"),
        "unexpected error: {stderr}"
    );
}
