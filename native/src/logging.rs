//! The long jobs' logs (`tracing`) and progress bars (`indicatif`), sharing stderr.
//!
//! Logs go to stderr at `info` for this binary (`debug` with `--verbose`); `RUST_LOG`
//! overrides both (e.g. `RUST_LOG=edgewise=debug`). Every bar is drawn through one
//! [`MultiProgress`], and a log line is written with the bars suspended, so the two never
//! overwrite each other. Without a terminal the bars are hidden and the logs are the record.

use std::io::{IsTerminal, Write};
use std::sync::LazyLock;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// Installs the log subscriber. Call once, first thing in `main`.
pub fn init(verbose: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(if verbose {
            "warn,edgewise=debug"
        } else {
            "warn,edgewise=info"
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| BarSafeStderr)
        .init();
}

/// A progress bar of `len` steps drawn with `template` (an indicatif template).
///
/// # Panics
/// If `template` is not a valid indicatif template (a programming error).
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = BARS.add(ProgressBar::new(len));
    bar.set_style(ProgressStyle::with_template(template).expect("a valid progress template"));
    bar
}

/// Stderr, written with every progress bar cleared first and redrawn after.
struct BarSafeStderr;

impl Write for BarSafeStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BARS.suspend(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        BARS.suspend(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
