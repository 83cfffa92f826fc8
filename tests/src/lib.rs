//! Helpers for the workspace's end-to-end tests.
//!
//! [`layering`] checks the dependency graph reported by `cargo metadata` against the
//! project's layering rules (ARCHITECTURE.md); `tests/architecture.rs` runs it on the
//! real workspace, as it runs [`module_imports`] (no two files of a crate import each
//! other) on every crate's sources; [`experiment`] holds what the `edgewise experiment` tests share. The
//! node/browser tests live next door in `tests/browser/`.

pub mod cli;
pub mod experiment;
pub mod layering;
pub mod module_imports;
