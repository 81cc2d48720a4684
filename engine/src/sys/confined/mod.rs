//! Writes confined to a directory tree, for the places strata writes into
//! that someone else may have prepared: output directories (`-o oci:`,
//! `--out-dir`) today. Paths inside the tree are resolved by `pathrs`
//! (libpathrs, runc's own library for this: `openat2(RESOLVE_IN_ROOT)` on
//! kernels that have it, a checked emulation elsewhere), so a symlink in
//! the tree resolves inside it and never leads a write out; the last
//! component is then created, replaced or removed relative to its
//! directory's descriptor (`*at` calls, never following a final symlink).
//! Never a string join of the root and a path.

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

mod tree;
mod user;
pub use tree::{extract_limit, parse_size, set_max_extract, too_large, Attrs, Devices, Node, Policy, TooLarge, Tree};
pub use user::{create_user_dir, write_to, UserFileError};

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A `pathrs` error as an `io::Error`: the errno when there is one, else
/// its own words (a safety violation says what it saw).
fn pathrs_error(e: pathrs::error::Error) -> io::Error {
    match e.kind() {
        pathrs::error::ErrorKind::OsError(Some(code)) => io::Error::from_raw_os_error(code),
        _ => io::Error::other(e.to_string()),
    }
}

/// One plain name: no `/`, not empty, not `.` or `..`.
fn plain(name: &OsStr) -> io::Result<&OsStr> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a plain file name", name.to_string_lossy()),
        ));
    }
    Ok(name)
}

/// `rel` split into its parent and its last component.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = rel.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` names no file", rel.display()),
        )
    })?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

/// The root of a confined tree.
pub struct Root {
    root: pathrs::Root,
}

impl Root {
    /// Opens an existing directory as the root.
    pub fn open(dir: &Path) -> io::Result<Root> {
        Ok(Root {
            root: pathrs::Root::open(dir).map_err(pathrs_error)?,
        })
    }

    /// The directory `rel` (created with `mode`, parents too, when
    /// missing); symlinks on the way resolve inside the root.
    pub fn mkdir_all(&self, rel: impl AsRef<Path>, mode: u32) -> io::Result<Dir> {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            return self.dir(".").map(|d| d.expect("the root exists"));
        }
        let handle = self
            .root
            .mkdir_all(rel, &Permissions::from_mode(mode))
            .map_err(pathrs_error)?;
        Ok(Dir { fd: handle.into() })
    }

    /// Opens `dir` as a root in which no path may pass through a symlink at
    /// all (`RESOLVE_NO_SYMLINKS`): for directories strata fills itself
    /// from hostile input, where a link is never a way to go.
    pub fn open_strict(dir: &Path) -> io::Result<Root> {
        let root = pathrs::Root::open(dir)
            .map_err(pathrs_error)?
            .with_resolver_flags(pathrs::flags::ResolverFlags::NO_SYMLINKS);
        Ok(Root { root })
    }

    /// What is at `rel`, not following a final symlink: `None` when nothing
    /// is; an error when a directory on the way is a symlink (strict roots)
    /// or not a directory.
    pub fn lstat(&self, rel: impl AsRef<Path>) -> io::Result<Option<FileStat>> {
        match self.root.resolve_nofollow(rel.as_ref()) {
            Ok(handle) => {
                use std::os::fd::AsFd;
                Ok(Some(nix::sys::stat::fstat(handle.as_fd().as_raw_fd()).map_err(errno)?))
            }
            Err(e) if e.kind() == pathrs::error::ErrorKind::OsError(Some(libc::ENOENT)) => Ok(None),
            Err(e) => Err(pathrs_error(e)),
        }
    }

    /// Creates the directory `rel` (its parent must exist) with `mode`.
    pub fn mkdir(&self, rel: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        self.root
            .create(
                rel.as_ref(),
                &pathrs::InodeType::Directory(Permissions::from_mode(mode)),
            )
            .map_err(pathrs_error)
    }

    /// The existing directory `rel`, or `None`.
    pub fn dir(&self, rel: impl AsRef<Path>) -> io::Result<Option<Dir>> {
        let rel = rel.as_ref();
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        match self.root.resolve(rel) {
            Ok(handle) => {
                let fd: OwnedFd = handle.into();
                let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(errno)?;
                if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) != SFlag::S_IFDIR {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
                Ok(Some(Dir { fd }))
            }
            Err(e) if e.kind() == pathrs::error::ErrorKind::OsError(Some(libc::ENOENT)) => Ok(None),
            Err(e) => Err(pathrs_error(e)),
        }
    }

    /// Opens the regular file `rel` for reading; symlinks on the way (the
    /// last component's too) resolve inside the root, and anything but a
    /// regular file at the end (a device, a FIFO, a directory) is refused.
    pub fn open_file(&self, rel: impl AsRef<Path>) -> io::Result<File> {
        let handle = self.root.resolve(rel.as_ref()).map_err(pathrs_error)?;
        // The type is checked on the O_PATH handle: opening a FIFO would block.
        let st = {
            use std::os::fd::AsFd;
            nix::sys::stat::fstat(handle.as_fd().as_raw_fd()).map_err(errno)?
        };
        if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) != SFlag::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a regular file", rel.as_ref().display()),
            ));
        }
        handle.reopen(pathrs::flags::OpenFlags::O_RDONLY).map_err(pathrs_error)
    }

    /// The contents of the file `rel`, or `None` when there is none.
    pub fn read(&self, rel: impl AsRef<Path>) -> io::Result<Option<Vec<u8>>> {
        let (parent, name) = split(rel.as_ref())?;
        let Some(dir) = self.dir(parent)? else {
            return Ok(None);
        };
        dir.read(name)
    }

    /// Replaces the file `rel` atomically (a temporary file, fsynced, then
    /// renamed over it), creating its directory when missing.
    pub fn replace_file(&self, rel: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
        let (parent, name) = split(rel.as_ref())?;
        self.mkdir_all(parent, 0o755)?.write_file(name, bytes, 0o644)
    }
}

/// A strict root (no symlink on any path) that remembers which of its
/// directories it has checked, for writers that put many entries into one
/// tree (the layer unpacker, a copy assembling a layer): each directory is
/// checked once, until an entry replaces it.
pub struct Checked {
    root: Root,
    dir: PathBuf,
    verified: std::collections::HashSet<PathBuf>,
}

impl Checked {
    pub fn open(dir: &Path) -> io::Result<Checked> {
        Ok(Checked {
            root: Root::open_strict(dir)?,
            dir: dir.to_path_buf(),
            verified: Default::default(),
        })
    }

    /// Checks that every parent of `rel` is a directory reached without a
    /// symlink; with `create`, a missing one is made with that mode
    /// (whatever the umask). Returns the first parent that is a symlink or
    /// not a directory, if there is one.
    pub fn parents(&mut self, rel: &Path, create: Option<u32>) -> io::Result<Option<PathBuf>> {
        let comps: Vec<_> = rel.components().collect();
        let mut prefix = PathBuf::new();
        for comp in &comps[..comps.len().saturating_sub(1)] {
            prefix.push(comp);
            if self.verified.contains(&prefix) {
                continue;
            }
            match self.root.lstat(&prefix) {
                Ok(Some(st)) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                Ok(Some(_)) => return Ok(Some(prefix)),
                Ok(None) => match create {
                    Some(mode) => {
                        self.root.mkdir(&prefix, mode)?;
                        std::fs::set_permissions(self.dir.join(&prefix), Permissions::from_mode(mode))?;
                    }
                    None => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
                },
                // A link or a file further up: the loop would have stopped there.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Ok(Some(prefix))
                }
                Err(e) => return Err(e),
            }
            self.verified.insert(prefix.clone());
        }
        Ok(None)
    }

    /// What is at `rel`, not following a final symlink (see [`Root::lstat`]).
    pub fn lstat(&self, rel: &Path) -> io::Result<Option<FileStat>> {
        self.root.lstat(rel)
    }

    /// Forgets `rel` and everything below it (an entry is replacing it).
    pub fn forget(&mut self, rel: &Path) {
        // Every checked directory had its parents checked first: nothing
        // below `rel` is known unless `rel` is.
        if self.verified.contains(rel) {
            self.verified.retain(|d| !d.starts_with(rel));
        }
    }
}

/// A directory inside a confined tree, held by its descriptor: every call
/// acts on one of its entries by name.
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    fn raw(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    /// The entry `name` itself (a symlink is not followed), or `None`.
    pub fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Option<FileStat>> {
        let name = plain(name.as_ref())?;
        match nix::sys::stat::fstatat(self.raw(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(errno(e)),
        }
    }

    pub fn exists(&self, name: impl AsRef<OsStr>) -> io::Result<bool> {
        Ok(self.stat(name)?.is_some())
    }

    /// The contents of the regular file `name` (not through a symlink).
    pub fn read(&self, name: impl AsRef<OsStr>) -> io::Result<Option<Vec<u8>>> {
        let name = plain(name.as_ref())?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::openat(self.raw(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => return Ok(None),
            Err(e) => return Err(errno(e)),
        };
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        let mut file = unsafe { File::from_raw_fd(fd) };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// A fresh temporary name in this directory, for a file then renamed.
    fn temp_name(name: &OsStr) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        PathBuf::from(format!(
            ".{}.strata-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Creates a new file `name` (never an existing one, never through a link).
    fn create(&self, name: &Path, mode: u32) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(self.raw(), name, flags, Mode::from_bits_truncate(mode)).map_err(errno)?;
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Writes `name` atomically: a temporary file, fsynced, renamed over it.
    pub fn write_file(&self, name: impl AsRef<OsStr>, bytes: &[u8], mode: u32) -> io::Result<()> {
        let name = plain(name.as_ref())?;
        let tmp = Self::temp_name(name);
        let result = self.create(&tmp, mode).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()?;
            self.rename_in(&tmp, name)
        });
        if result.is_err() {
            let _ = self.unlink(&tmp);
        }
        result
    }

    fn rename_in(&self, from: &Path, to: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(self.raw(), from, self.raw(), to).map_err(errno)
    }

    fn unlink(&self, name: &Path) -> io::Result<()> {
        nix::unistd::unlinkat(self.raw(), name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(errno)
    }

    /// Puts a copy of the host file `src` (the store's own) here as `name`,
    /// replacing `name` atomically. A copy, never a hard link: an edit of
    /// the output must not change the store, nor the store the output
    /// (`copy_file_range`: a reflink where the file system has them).
    pub fn copy_in(&self, src: &Path, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = plain(name.as_ref())?;
        let tmp = Self::temp_name(name);
        let result = (|| {
            let mut from = File::open(src)?;
            let mut to = self.create(&tmp, 0o644)?;
            io::copy(&mut from, &mut to)?;
            to.sync_all()
        })()
        .and_then(|()| self.rename_in(&tmp, name));
        if result.is_err() {
            let _ = self.unlink(&tmp);
        }
        result
    }

    /// Moves the entry `name` of the host directory `from` (strata's own
    /// staging directory) here, replacing a file or symlink of that name
    /// (never a directory). Across filesystems a regular file or symlink is
    /// copied instead.
    pub fn take(&self, from: &Path, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = plain(name.as_ref())?;
        if let Some(st) = self.stat(name)? {
            if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) == SFlag::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            }
        }
        let src = from.join(name);
        match nix::fcntl::renameat(None, src.as_path(), self.raw(), name) {
            Ok(()) => Ok(()),
            Err(nix::Error::EXDEV) => {
                let meta = std::fs::symlink_metadata(&src)?;
                let tmp = Self::temp_name(name);
                let result = if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&src)?;
                    nix::unistd::symlinkat(target.as_path(), self.raw(), tmp.as_path()).map_err(errno)
                } else if meta.is_file() {
                    (|| {
                        let mut from = File::open(&src)?;
                        let mut to = self.create(&tmp, meta.permissions().mode() & 0o7777)?;
                        io::copy(&mut from, &mut to)?;
                        Ok(())
                    })()
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "only files and symlinks can be copied across filesystems",
                    ))
                };
                let result = result.and_then(|()| self.rename_in(&tmp, name));
                if result.is_err() {
                    let _ = self.unlink(&tmp);
                }
                result
            }
            Err(e) => Err(errno(e)),
        }
    }

    /// The subdirectory `name`, not through a symlink; `None` when there is
    /// none, `ENOTDIR` when something else has the name.
    pub fn subdir(&self, name: impl AsRef<OsStr>) -> io::Result<Option<Dir>> {
        let name = plain(name.as_ref())?;
        match self.stat(name)? {
            None => return Ok(None),
            Some(st) if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) != SFlag::S_IFDIR => {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR))
            }
            Some(_) => {}
        }
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(self.raw(), name, flags, Mode::empty()).map_err(errno)?;
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        Ok(Some(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    /// Creates the directory `name` with `mode` (less the umask).
    pub fn mkdir(&self, name: impl AsRef<OsStr>, mode: u32) -> io::Result<()> {
        let name = plain(name.as_ref())?;
        nix::sys::stat::mkdirat(self.raw(), name, Mode::from_bits_truncate(mode)).map_err(errno)
    }

    /// The names in this directory, sorted.
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        Ok(names)
    }

    /// Removes the file or symlink `name`.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = plain(name.as_ref())?;
        self.unlink(Path::new(name))
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = plain(name.as_ref())?;
        nix::unistd::unlinkat(self.raw(), name, nix::unistd::UnlinkatFlags::RemoveDir).map_err(errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_in_the_tree_resolve_inside_it() {
        let outside = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        symlink(outside.path(), tree.path().join("escape")).unwrap();
        symlink("/", tree.path().join("rootlink")).unwrap();
        let root = Root::open(tree.path()).unwrap();
        // The link's target does not exist inside the tree: refused, nothing written.
        let e = root.replace_file("escape/pwned", b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{e}");
        assert!(!outside.path().join("pwned").exists());
        // `/` is the tree's root: the file lands inside.
        root.replace_file("rootlink/etc/pwned", b"x").unwrap();
        assert!(!Path::new("/etc/pwned").exists());
        assert_eq!(fs::read(tree.path().join("etc/pwned")).unwrap(), b"x");
        // `..` stops at the root.
        let sub = tree.path().join("sub");
        fs::create_dir(&sub).unwrap();
        symlink("../../../../../..", sub.join("up")).unwrap();
        root.replace_file("sub/up/pwned2", b"y").unwrap();
        assert_eq!(fs::read(tree.path().join("pwned2")).unwrap(), b"y");
    }

    #[test]
    fn a_final_symlink_is_replaced_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let tree = tempfile::tempdir().unwrap();
        symlink(&victim, tree.path().join("index.json")).unwrap();
        let root = Root::open(tree.path()).unwrap();
        root.replace_file("index.json", b"{}").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read(tree.path().join("index.json")).unwrap(), b"{}");
        // Reading does not follow a final link either.
        symlink(&victim, tree.path().join("peek")).unwrap();
        assert!(root.read("peek").is_err());
    }

    #[test]
    fn open_file_resolves_inside_and_takes_regular_files_only() {
        let tree = tempfile::tempdir().unwrap();
        fs::write(tree.path().join("real"), "inside").unwrap();
        symlink("/dev/zero", tree.path().join("zero")).unwrap();
        symlink("/etc/hostname", tree.path().join("host")).unwrap();
        symlink("../../../../real", tree.path().join("up")).unwrap();
        let root = Root::open(tree.path()).unwrap();
        let mut text = String::new();
        root.open_file("up").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "inside", "a link resolves within the root");
        assert_eq!(root.open_file("zero").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(root.open_file("host").unwrap_err().kind(), io::ErrorKind::NotFound);
        fs::create_dir(tree.path().join("dev")).unwrap();
        nix::unistd::mkfifo(&tree.path().join("dev/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            root.open_file("dev/fifo").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(root.open_file("dev").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_strict_root_refuses_every_symlink_on_the_way() {
        let tree = tempfile::tempdir().unwrap();
        fs::create_dir(tree.path().join("d")).unwrap();
        symlink("d", tree.path().join("inside")).unwrap();
        let root = Root::open_strict(tree.path()).unwrap();
        assert!(root.lstat("d").unwrap().is_some());
        // The link itself is seen; going through it is refused, even inside.
        assert!(root.lstat("inside").unwrap().is_some());
        assert_eq!(root.lstat("inside/x").unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(
            root.mkdir("inside/new", 0o755).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
        root.mkdir("d/new", 0o755).unwrap();
        assert!(tree.path().join("d/new").is_dir());
    }

    #[test]
    fn names_are_single_components() {
        let tree = tempfile::tempdir().unwrap();
        let root = Root::open(tree.path()).unwrap();
        let dir = root.mkdir_all("a/b", 0o755).unwrap();
        for bad in ["", ".", "..", "x/y"] {
            let e = dir.write_file(bad, b"", 0o644).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        dir.write_file("ok", b"1", 0o600).unwrap();
        let meta = fs::metadata(tree.path().join("a/b/ok")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn take_moves_a_file_and_refuses_to_replace_a_directory() {
        let staging = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        fs::write(staging.path().join("f"), "new").unwrap();
        fs::write(tree.path().join("f"), "old").unwrap();
        fs::create_dir(tree.path().join("d")).unwrap();
        fs::write(staging.path().join("d"), "file").unwrap();
        let root = Root::open(tree.path()).unwrap();
        let top = root.dir("").unwrap().unwrap();
        top.take(staging.path(), "f").unwrap();
        assert_eq!(fs::read_to_string(tree.path().join("f")).unwrap(), "new");
        let e = top.take(staging.path(), "d").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
    }
}
