//! Files and directories the user names on the command line (`-o
//! docker-archive:FILE`, `--out-dir`, `-o oci:DIR`): the one place a path
//! is taken as the user wrote it, symlinks and all, since it is theirs and
//! no input's. Below such a directory every write goes through the confined
//! root or tree. An exported file: a regular file (or a path with
//! nothing there yet) is replaced atomically: written beside it, fsynced,
//! renamed over it. Anything else the user named is written through, as a
//! shell's `>` would: a FIFO's reader or a character device gets the bytes,
//! and a symlink's target is written (replaced atomically when it is a
//! regular file), never the link replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// A failed write of a file or directory the user named: what was done to
/// which path, and why.
#[derive(Debug, thiserror::Error)]
#[error("failed to {op} `{}`", path.display())]
pub struct UserFileError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn fail(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UserFileError {
    let path = path.to_path_buf();
    move |source| UserFileError { op, path, source }
}

/// Creates the directory the user named (and its parents) when missing.
pub fn create_user_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Runs `write` on a writer for `file` and makes the result visible there.
pub fn write_to<E: From<UserFileError>>(
    file: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    match fs::metadata(file) {
        Ok(meta) if meta.is_dir() => Err(fail("write", file)(std::io::Error::from_raw_os_error(libc::EISDIR)).into()),
        Ok(meta) if meta.file_type().is_fifo() || meta.file_type().is_char_device() || meta.file_type().is_socket() => {
            let out = OpenOptions::new().write(true).open(file).map_err(fail("open", file))?;
            let mut out = BufWriter::new(out);
            write(&mut out)?;
            Ok(out.flush().map_err(fail("write", file))?)
        }
        Ok(_) => replace(&fs::canonicalize(file).map_err(fail("resolve", file))?, write),
        // A dangling symlink: its target is created, as `>` would.
        Err(_) if fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) => {
            replace(&dangling_target(file).map_err(E::from)?, write)
        }
        Err(_) => replace(file, write),
    }
}

/// The path a dangling symlink chain ends at.
fn dangling_target(link: &Path) -> Result<PathBuf, UserFileError> {
    let mut path = link.to_path_buf();
    for _ in 0..40 {
        match fs::read_link(&path) {
            Ok(target) => {
                path = path.parent().unwrap_or(Path::new("/")).join(target);
            }
            Err(_) => return Ok(path),
        }
    }
    Err(fail("resolve", link)(std::io::Error::from_raw_os_error(libc::ELOOP)))
}

/// Writes a temporary file beside `dest`, fsyncs it and renames it over `dest`.
fn replace<E: From<UserFileError>>(dest: &Path, write: impl FnOnce(&mut dyn Write) -> Result<(), E>) -> Result<(), E> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail("create a file in", dir))?;
    let mut out = BufWriter::new(tmp);
    write(&mut out)?;
    let tmp = out.into_inner().map_err(|e| fail("write", dest)(e.into_error()))?;
    tmp.as_file().sync_all().map_err(fail("sync", dest))?;
    tmp.persist(dest).map_err(|e| fail("write", dest)(e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn hello(out: &mut dyn Write) -> Result<(), UserFileError> {
        out.write_all(b"hello").map_err(fail("write", Path::new("test")))
    }

    #[test]
    fn a_symlink_is_written_through_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.tar");
        fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.tar");
        symlink(&target, &link).unwrap();
        write_to(&link, hello).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "hello");
        // A dangling link: its target is created.
        let dangling = dir.path().join("dangling");
        symlink("made.tar", &dangling).unwrap();
        write_to(&dangling, hello).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("made.tar")).unwrap(), "hello");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.tar");
        fs::write(&file, "old").unwrap();
        let e = write_to(&file, |out| {
            out.write_all(b"partial").unwrap();
            Err(fail("interrupt", Path::new("x"))(std::io::Error::from_raw_os_error(
                libc::EINTR,
            )))
        });
        assert!(matches!(e, Err(UserFileError { op: "interrupt", .. })));
        assert_eq!(fs::read_to_string(&file).unwrap(), "old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_to(dir.path(), hello).unwrap_err();
        let cause = std::error::Error::source(&e).map(|c| c.to_string()).unwrap_or_default();
        assert!(cause.contains("Is a directory"), "{e}: {cause}");
    }
}
