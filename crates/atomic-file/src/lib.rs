//! Writing a file so that a reader never sees half of it.
//!
//! Every file edgewise writes that another run or a person reads later (models, checkpoints,
//! policies, reports, plots) goes through here: a uniquely named temporary file in the
//! target's directory (so the final rename stays on one file system), flushed and synced,
//! then renamed over the target. On any error the temporary file is removed and the target
//! is untouched, so an interrupted job leaves either the old file or the new one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use tempfile::NamedTempFile;

/// A failed write, naming the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("writing {}: {source}", path.display())]
pub struct Error {
    /// The target (or, while creating it, the directory of the temporary file).
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

impl Error {
    fn new(path: &Path, source: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A new temporary file beside `path`, whose name ends in `suffix` (some encoders, such as
/// plotters', pick the format by the extension). Its mode is what `File::create` would give.
///
/// # Errors
/// When the directory of `path` does not exist or is not writable.
pub fn temp_beside(path: &Path, suffix: &str) -> Result<NamedTempFile, Error> {
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
    builder.tempfile_in(dir).map_err(|e| Error::new(dir, e))
}

/// Syncs a finished temporary file and renames it over `path`; returns its length in bytes.
///
/// # Errors
/// I/O errors, naming `path`; the temporary file is then removed.
pub fn persist(tmp: NamedTempFile, path: &Path) -> Result<u64, Error> {
    let file = tmp.as_file();
    file.sync_all().map_err(|e| Error::new(path, e))?;
    let len = file.metadata().map_err(|e| Error::new(path, e))?.len();
    tmp.persist(path).map_err(|e| Error::new(path, e.error))?;
    Ok(len)
}

/// Runs `write` on a buffered temporary file beside `path`, then persists it over `path`;
/// returns the bytes written. `write`'s own error type is kept, so a caller that fails while
/// encoding reports its own error.
///
/// # Errors
/// Whatever `write` returns, or an [`Error`] naming `path`.
pub fn write_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<(), E>,
) -> Result<u64, E> {
    let mut tmp = temp_beside(path, ".tmp")?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush().map_err(|e| Error::new(path, e))?;
    }
    Ok(persist(tmp, path)?)
}

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// I/O errors, naming `path`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_with(path, |w| {
        w.write_all(bytes).map_err(|e| Error::new(path, e))
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["out.json"]);
    }

    #[test]
    fn a_failing_writer_keeps_the_old_file_and_its_own_error() {
        #[derive(Debug)]
        enum Mine {
            Encode,
            Io(Error),
        }
        impl From<Error> for Mine {
            fn from(e: Error) -> Self {
                Mine::Io(e)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"old").unwrap();
        let err = write_with(&path, |w| {
            w.write_all(b"half a file").unwrap();
            Err(Mine::Encode)
        })
        .unwrap_err();
        assert!(matches!(err, Mine::Encode), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["model.gguf"]);
        let n = write_with::<Mine>(&path, |w| {
            w.write_all(b"12345")
                .map_err(|e| Mine::Io(Error::new(&path, e)))
        })
        .unwrap();
        assert_eq!(n, 5);
        let missing = dir.path().join("no-such-dir/model.gguf");
        match write_with::<Mine>(&missing, |_| Ok(())) {
            Err(Mine::Io(e)) => assert!(e.path.ends_with("no-such-dir"), "{e}"),
            other => panic!("expected the I/O error of the missing directory, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_directory_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir/out.json");
        let err = write(&missing, b"x").unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_gets_the_mode_file_create_would_give() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("created");
        std::fs::write(&created, b"").unwrap();
        let atomic = dir.path().join("atomic");
        write(&atomic, b"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&created));
    }
}
