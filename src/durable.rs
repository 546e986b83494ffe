//! Durable writes: small files (checkpoints, snapshots, leases, spool marks) written so that a crash at any instant (power loss,
//! `kill -9`, the OOM killer) leaves either the old content or the new one, never a torn
//! mix (Vector lost whole checkpoint files to torn writes after OOM, vectordotdev/vector
//! #20753).
//!
//! The recipe: write the new bytes to a temporary file in the same folder, fsync it,
//! rename it over the target (atomic within one filesystem), then fsync the folder so the
//! rename itself survives a power cut. The temporary file has a fixed name
//! (`.NAME.tmp`), so a crash between the write and the rename leaves at most one stray
//! file, which the next write reuses. One writer per checkpoint file is assumed.
//!
//! Reading treats a missing file as "no checkpoint yet" and a corrupt one as an error of
//! its own kind ([`ReadError::Corrupt`]), so the caller decides whether to start
//! over or refuse to start.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a durable file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file exists but could not be read (permissions, I/O error).
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file was read but does not hold what was expected: not JSON, wrong shape.
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Replaces the content of `path` with `bytes` atomically and durably (see the module
/// doc). On error the old content, if any, is untouched and the temporary file removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} has no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let written = (|| {
        let mut f = private()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        // A temporary file left by a crash keeps its old mode: set it again.
        set_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes a rename in `dir` durable. Folders cannot be opened for fsync on every platform;
/// where they cannot, the rename is as durable as the platform makes it.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Serializes `value` as JSON and writes it with [`write_atomic`].
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file written by [`write_json`] or [`write_atomic`]. `Ok(None)` when the file does not exist; an error when it
/// cannot be read or does not parse (an empty file counts as corrupt).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReadError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ReadError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Options that create a file readable and writable by its owner only (0600), whatever
/// the umask: state, queues, spools and replay output hold patient identifiers.
pub fn private() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Sets an existing file to 0600.
pub fn set_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Opens `path` for appending, created owner-only (0600). An existing file an older
/// version created with the umask's mode is made owner-only too; failing that is logged,
/// not fatal, since the file's content is still written where it always was.
pub fn open_append_private(path: &Path) -> anyhow::Result<File> {
    use anyhow::Context;
    let f = private()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if let Err(e) = set_private(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot make the file owner-only (0600)");
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_owner_only_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap.json");
        // umask is process-wide; 0 (the most permissive) is the case to defend.
        // SAFETY: umask(2) cannot fail.
        let old = unsafe { libc::umask(0) };
        let r = write_atomic(&p, b"{}");
        let q = private()
            .append(true)
            .create(true)
            .open(dir.path().join("q"));
        unsafe { libc::umask(old) };
        r.unwrap();
        q.unwrap();
        for f in ["snap.json", "q"] {
            let mode = fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
}
