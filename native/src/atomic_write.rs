//! Writing output files so that a reader never sees half of one.
//!
//! Every file the CLI writes (reports, metrics, policies, plots) goes through a uniquely
//! named temporary file in the target's directory, synced, then renamed over the target;
//! on any error the temporary file is removed and the target is untouched.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A temporary file beside `path`, with `suffix` (plotters picks its encoder by it).
pub fn temp_beside(path: &Path, suffix: &str) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    #[cfg_attr(not(unix), allow(unused_mut))] // only unix sets the mode
    let mut builder = tempfile::Builder::new();
    builder.prefix(".edgewise-").suffix(suffix);
    // Mode 0666 less the umask, as `File::create` gives (tempfile's default is 0600).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Moves a finished temporary file over `path`.
pub fn persist(tmp: NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = temp_beside(path, ".tmp")?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    persist(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing = dir.path().join("no-such-dir/out.json");
        let err = write_atomic(&missing, b"x").unwrap_err();
        assert!(format!("{err:#}").contains("no-such-dir"), "{err:#}");
    }
}
