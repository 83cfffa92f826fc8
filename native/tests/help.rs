//! The binary starts and lists its subcommands. (Having an integration test here also
//! makes `cargo test --workspace` build `target/<profile>/edgewise` with the same
//! features as the rest of the test build, which the end-to-end tests in `tests/` run.)

use std::process::Command;

#[test]
fn help_lists_the_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_edgewise"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["simulate", "train", "serve"] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
}

#[test]
fn unknown_subcommand_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_edgewise"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}
