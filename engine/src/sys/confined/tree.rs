//! The one writer for trees whose entries come from hostile input: layer
//! tars, `.deb` data members, archives an `ADD` extracts, copies between
//! states, and artifacts on the host. Every entry is named by a relative
//! path whose components are plain names; its directory is opened with
//! `RESOLVE_NO_SYMLINKS` (a symlink anywhere on the way is refused, never
//! followed), and the entry itself is created, replaced, linked or changed
//! through that directory's descriptor with calls that never follow a
//! final symlink. Three more rules hold whatever the caller does:
//!
//! - An inode this tree did not create (a hard link into the store's file
//!   pool, a file another node owns) is never changed in place: changing
//!   its owner, mode or times first breaks the link (a copy is renamed over
//!   the name).
//! - The [`Policy`] decides what may land: device nodes (created, skipped
//!   or refused), setuid and setgid bits, and whose the files are (their
//!   own owners, or one fixed owner for files a user gets on the host).
//! - File contents count against a byte limit; the entry that passes it
//!   fails with [`TooLarge`], which says the limit and how to change it.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use super::{errno, Dir, Root};

/// What a tree accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub devices: Devices,
    /// Overlay whiteouts may be made (layers only).
    pub whiteouts: bool,
    /// Setuid and setgid bits are kept (else cleared).
    pub setid: bool,
    /// Every entry belongs to this owner instead of its own.
    pub owner: Option<(u32, u32)>,
    /// File content bytes the tree may receive in all.
    pub limit: u64,
}

/// What happens to a device node, FIFO or socket entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Devices {
    Create,
    /// Left out; [`Tree::skipped`] lists them.
    Skip,
    /// An error naming the entry.
    Refuse,
}

impl Policy {
    /// A tree in the store (a layer, a root filesystem being assembled):
    /// everything an image may hold, owners as the entries say.
    pub fn image(limit: u64) -> Policy {
        Policy {
            devices: Devices::Create,
            whiteouts: true,
            setid: true,
            owner: None,
            limit,
        }
    }

    /// Files a user gets on the host (artifacts, `-o type=local`): the
    /// invoking user's, no setuid or setgid bit, no device node, as
    /// BuildKit's local exporter hands files to its client.
    pub fn host(limit: u64) -> Policy {
        Policy {
            devices: Devices::Skip,
            whiteouts: false,
            setid: false,
            owner: Some((nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())),
            limit,
        }
    }
}

/// Owner, mode (permission bits with setuid, setgid and sticky) and mtime
/// (`None`: now) of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<i64>,
}

impl Attrs {
    pub fn new(mode: u32, uid: u32, gid: u32) -> Attrs {
        Attrs {
            mode,
            uid,
            gid,
            mtime: None,
        }
    }

    pub fn at(self, mtime: i64) -> Attrs {
        Attrs {
            mtime: Some(mtime),
            ..self
        }
    }
}

/// The error of an entry that takes a tree past its byte limit, or past
/// the entries its file system can spare.
#[derive(Debug, thiserror::Error)]
pub enum TooLarge {
    #[error(
        "the content passes the limit of {limit} bytes (set it with --max-extract-size or STRATA_MAX_EXTRACT_SIZE)"
    )]
    Bytes { limit: u64 },
    #[error("the content passes the limit of {limit} entries (the file system's free inodes less a reserve; set it with STRATA_MAX_EXTRACT_ENTRIES)")]
    Entries { limit: u64 },
}

/// What every entry costs against the byte limit, besides its content: a
/// directory's first block, another entry's inode.
const DIR_COST: u64 = 4096;
const ENTRY_COST: u64 = 256;

/// How many entries a tree written under `dir` may make:
/// `$STRATA_MAX_EXTRACT_ENTRIES`, else the file system's free inodes less
/// a reserve (a twentieth of all, at least 10,000).
pub fn entry_limit(dir: &Path) -> u64 {
    if let Some(n) = std::env::var("STRATA_MAX_EXTRACT_ENTRIES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return n;
    }
    let probe = dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(probe) {
        // A file system without an inode table (btrfs, tmpfs without
        // nr_inodes) reports none: no inode limit there.
        Ok(st) if st.files() > 0 => st.files_available().saturating_sub((st.files() / 20).max(10_000)),
        _ => u64::MAX,
    }
}

/// The byte limit set on the command line (`--max-extract-size`), if any.
static MAX_EXTRACT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sets the limit every tree gets (the command line's `--max-extract-size`).
pub fn set_max_extract(bytes: u64) {
    let _ = MAX_EXTRACT.set(bytes);
}

/// `512MiB`, `2g`, `100000`: a size as people write it, in bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().ok()?;
    let unit = match t[digits..].trim().trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// How many content bytes a tree written under `dir` may hold: the
/// command line's `--max-extract-size`, else `$STRATA_MAX_EXTRACT_SIZE`,
/// else what the file system has free less a reserve (a twentieth of its
/// size, at least 1 GiB), so that an archive bomb stops with an error
/// before the disk is full, not after.
pub fn extract_limit(dir: &Path) -> u64 {
    if let Some(n) = MAX_EXTRACT.get() {
        return *n;
    }
    if let Some(n) = std::env::var("STRATA_MAX_EXTRACT_SIZE")
        .ok()
        .and_then(|v| parse_size(&v))
    {
        return n;
    }
    let probe = dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(probe) {
        Ok(st) => {
            let block = st.fragment_size();
            let free = st.blocks_available() * block;
            let reserve = (st.blocks() * block / 20).max(1 << 30);
            free.saturating_sub(reserve)
        }
        Err(_) => u64::MAX,
    }
}

/// The limit of `err` when it is a [`TooLarge`].
pub fn too_large(err: &io::Error) -> Option<u64> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<TooLarge>())
        .map(|t| match t {
            TooLarge::Bytes { limit } | TooLarge::Entries { limit } => *limit,
        })
}

/// The kind of a special entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Char,
    Block,
    Fifo,
}

fn invalid(rel: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("`{}` {why}", rel.display()))
}

/// `rel` as plain components: `.` dropped; `..`, a root or nothing at all refused.
fn clean(rel: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for comp in rel.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return Err(invalid(rel, "is not a relative path inside the tree")),
        }
    }
    Ok(out)
}

fn split(rel: &Path) -> io::Result<(PathBuf, OsString)> {
    let rel = clean(rel)?;
    let name = rel
        .file_name()
        .ok_or_else(|| invalid(&rel, "names no entry"))?
        .to_os_string();
    Ok((rel.parent().unwrap_or(Path::new("")).to_path_buf(), name))
}

fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT)
}

/// A path the `*xattr` calls can use for `name` in the directory `fd`
/// without following a symlink on the way (the descriptor's magic link).
fn proc_path(fd: RawFd, name: Option<&OsStr>) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{fd}"));
    if let Some(name) = name {
        p.push(name);
    }
    p
}

/// A tree being written; see the module's rules.
pub struct Tree {
    root: Root,
    path: PathBuf,
    policy: Policy,
    written: u64,
    entries: u64,
    entry_limit: u64,
    /// Inodes this tree created, `(dev, ino)`: the ones it may change in place.
    ours: HashSet<(u64, u64)>,
    /// Directories known to exist (made or checked), relative.
    dirs: HashSet<PathBuf>,
    /// The last directory an entry was in, by its descriptor.
    cached: Option<(PathBuf, Arc<Dir>)>,
    skipped: Vec<PathBuf>,
}

impl Tree {
    /// Opens the existing directory `dir` as the root of a tree.
    pub fn open(dir: &Path, policy: Policy) -> io::Result<Tree> {
        Ok(Tree {
            root: Root::open_strict(dir)?,
            path: dir.to_path_buf(),
            policy,
            written: 0,
            entries: 0,
            entry_limit: if policy.limit == u64::MAX {
                u64::MAX
            } else {
                entry_limit(dir)
            },
            ours: HashSet::new(),
            dirs: HashSet::new(),
            cached: None,
            skipped: Vec::new(),
        })
    }

    /// Creates the directory `dir` (its parent must exist; `mode` whatever
    /// the umask) and opens it as the root of a tree.
    pub fn create(dir: &Path, mode: u32, policy: Policy) -> io::Result<Tree> {
        std::fs::create_dir(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Tree::open(dir, policy)
    }

    /// The tree's directory on the host, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Content bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Special entries the policy left out.
    pub fn skipped(&self) -> &[PathBuf] {
        &self.skipped
    }

    /// The directory holding `rel` and its last name.
    fn entry(&mut self, rel: &Path) -> io::Result<(Arc<Dir>, OsString)> {
        let (parent, name) = split(rel)?;
        if let Some((p, dir)) = &self.cached {
            if *p == parent {
                return Ok((dir.clone(), name));
            }
        }
        let dir = Arc::new(self.open_dir(&parent)?);
        self.cached = Some((parent, dir.clone()));
        Ok((dir, name))
    }

    fn open_dir(&self, rel: &Path) -> io::Result<Dir> {
        self.root
            .dir(rel)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("`{}` does not exist", rel.display())))
    }

    /// Everything known about `rel` and below it is stale (it is being replaced).
    fn forget(&mut self, rel: &Path) {
        if self.cached.as_ref().is_some_and(|(p, _)| p.starts_with(rel)) {
            self.cached = None;
        }
        if self.dirs.iter().any(|d| d.starts_with(rel)) {
            self.dirs.retain(|d| !d.starts_with(rel));
        }
    }

    /// What is at `rel` (not following a final symlink), or `None`; an
    /// error when the way there passes a symlink or a file.
    pub fn stat(&mut self, rel: &Path) -> io::Result<Option<FileStat>> {
        if clean(rel)?.as_os_str().is_empty() {
            return self.root.lstat(".");
        }
        let (dir, name) = match self.entry(rel) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        dir.stat(&name)
    }

    /// Makes every missing directory above `rel` with `attrs`; one on the
    /// way that is a symlink or a file is an error (`ELOOP`, `ENOTDIR`).
    pub fn parents(&mut self, rel: &Path, attrs: Attrs) -> io::Result<()> {
        let rel = clean(rel)?;
        let Some(parent) = rel.parent() else { return Ok(()) };
        let mut at = PathBuf::new();
        for comp in parent.components() {
            at.push(comp);
            if self.dirs.contains(&at) {
                continue;
            }
            match self.stat(&at)? {
                Some(st) if kind_of(&st) == SFlag::S_IFDIR => {}
                Some(st) if kind_of(&st) == SFlag::S_IFLNK => return Err(io::Error::from_raw_os_error(libc::ELOOP)),
                Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                None => {
                    self.charge(true)?;
                    let (dir, name) = self.entry(&at)?;
                    dir.mkdir(&name, 0o700)?;
                    self.adopt(&dir, &name)?;
                    self.apply(&dir, &name, attrs, SFlag::S_IFDIR)?;
                }
            }
            self.dirs.insert(at.clone());
        }
        Ok(())
    }

    /// Records the inode at `name` as this tree's own.
    fn adopt(&mut self, dir: &Dir, name: &OsStr) -> io::Result<FileStat> {
        let st = dir
            .stat(name)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.ours.insert((st.st_dev, st.st_ino));
        Ok(st)
    }

    /// Removes whatever is at `name` in `dir` (a directory with its contents).
    fn clear(&mut self, dir: &Dir, name: &OsStr, rel: &Path) -> io::Result<()> {
        match dir.stat(name)? {
            None => Ok(()),
            Some(st) if kind_of(&st) == SFlag::S_IFDIR => {
                self.forget(rel);
                remove_tree(dir.fd.as_raw_fd(), name)
            }
            Some(_) => dir.remove_file(name),
        }
    }

    /// Removes `rel` and everything below it; nothing there is fine
    /// (`""`: everything in the root, the root itself stays).
    pub fn remove(&mut self, rel: &Path) -> io::Result<()> {
        let rel = clean(rel)?;
        if rel.as_os_str().is_empty() {
            for name in self.list(&rel)? {
                self.remove(Path::new(&name))?;
            }
            return Ok(());
        }
        let (dir, name) = match self.entry(&rel) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.clear(&dir, &name, &rel)
    }

    /// The directory `rel` with `attrs`: an existing one keeps its
    /// contents, anything else in its place is replaced.
    pub fn dir(&mut self, rel: &Path, attrs: Attrs) -> io::Result<()> {
        let rel = clean(rel)?;
        let (dir, name) = self.entry(&rel)?;
        match dir.stat(&name)? {
            Some(st) if kind_of(&st) == SFlag::S_IFDIR => {}
            _ => {
                self.charge(true)?;
                self.clear(&dir, &name, &rel)?;
                dir.mkdir(&name, 0o700)?;
                self.adopt(&dir, &name)?;
            }
        }
        self.apply(&dir, &name, attrs, SFlag::S_IFDIR)?;
        self.dirs.insert(rel);
        Ok(())
    }

    /// A new file at `rel` (replacing anything there) with the content of
    /// `content`, then `attrs`. Returns its size.
    pub fn write(&mut self, rel: &Path, content: &mut dyn Read, attrs: Attrs) -> io::Result<u64> {
        let (dir, name, mut file) = self.create_file(rel)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        let result = (|| loop {
            let n = match content.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.count(n as u64)?;
            size += n as u64;
            file.write_all(&buf[..n])?;
        })();
        if let Err(e) = result {
            let _ = dir.remove_file(&name);
            return Err(e);
        }
        self.finish(&dir, &name, &file, attrs)?;
        Ok(size)
    }

    /// A new file at `rel` with the content of the host file `src` (one of
    /// strata's own: a store download, a layer's file), copied by the
    /// kernel (`copy_file_range`, a reflink where the file system has them).
    pub fn copy_from(&mut self, rel: &Path, src: &Path, attrs: Attrs) -> io::Result<u64> {
        let mut from = File::open(src)?;
        let size = from.metadata()?.len();
        self.count(size)?;
        let (dir, name, mut file) = self.create_file(rel)?;
        if let Err(e) = io::copy(&mut (&mut from).take(size), &mut file) {
            let _ = dir.remove_file(&name);
            return Err(e);
        }
        self.finish(&dir, &name, &file, attrs)?;
        Ok(size)
    }

    /// Puts the host file `src` (the store's own) at `rel` as a hard link:
    /// a shared inode, which this tree never changes in place. `false` when
    /// the file systems differ (the caller copies instead).
    pub fn link_from(&mut self, rel: &Path, src: &Path) -> io::Result<bool> {
        let rel = clean(rel)?;
        self.charge(false)?;
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        match nix::unistd::linkat(None, src, dir.raw(), Path::new(&name), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(nix::Error::EXDEV) => Ok(false),
            Err(e) => Err(errno(e)),
        }
    }

    /// The inode at `rel` is shared from now on (the store linked it into
    /// its pool): it is copied before any change, as one this tree did not make.
    pub fn share(&mut self, rel: &Path) -> io::Result<()> {
        if let Some(st) = self.stat(rel)? {
            self.ours.remove(&(st.st_dev, st.st_ino));
        }
        Ok(())
    }

    fn count(&mut self, n: u64) -> io::Result<()> {
        if self.written.saturating_add(n) > self.policy.limit {
            return Err(io::Error::other(TooLarge::Bytes {
                limit: self.policy.limit,
            }));
        }
        self.written += n;
        Ok(())
    }

    /// One more entry: against the entry limit, and its cost against the byte limit.
    fn charge(&mut self, dir: bool) -> io::Result<()> {
        if self.entries >= self.entry_limit {
            return Err(io::Error::other(TooLarge::Entries {
                limit: self.entry_limit,
            }));
        }
        self.entries += 1;
        self.count(if dir { DIR_COST } else { ENTRY_COST })
    }

    fn create_file(&mut self, rel: &Path) -> io::Result<(Arc<Dir>, OsString, File)> {
        let rel = clean(rel)?;
        self.charge(false)?;
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        let file = dir.create(Path::new(&name), 0o600)?;
        let st = nix::sys::stat::fstat(file.as_raw_fd()).map_err(errno)?;
        self.ours.insert((st.st_dev, st.st_ino));
        Ok((dir, name, file))
    }

    /// Owner, then mode (chown clears setuid bits), then times, through the
    /// new file's own descriptor.
    fn finish(&self, dir: &Dir, name: &OsStr, file: &File, attrs: Attrs) -> io::Result<()> {
        let attrs = self.allowed(attrs);
        let fd = file.as_raw_fd();
        nix::unistd::fchown(fd, Some(Uid::from_raw(attrs.uid)), Some(Gid::from_raw(attrs.gid)))
            .map_err(|e| owner_error(e, attrs))?;
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(attrs.mode)).map_err(errno)?;
        if let Some(t) = attrs.mtime {
            let t = nix::sys::time::TimeSpec::new(t, 0);
            nix::sys::stat::futimens(fd, &t, &t).map_err(errno)?;
        }
        let _ = (dir, name);
        Ok(())
    }

    /// `attrs` as the policy lets them land.
    fn allowed(&self, mut attrs: Attrs) -> Attrs {
        if let Some((uid, gid)) = self.policy.owner {
            attrs.uid = uid;
            attrs.gid = gid;
        }
        attrs.mode &= if self.policy.setid { 0o7777 } else { 0o1777 };
        attrs
    }

    /// Sets `attrs` on the entry `name` of `dir`, of type `kind`.
    fn apply(&self, dir: &Dir, name: &OsStr, attrs: Attrs, kind: SFlag) -> io::Result<()> {
        let attrs = self.allowed(attrs);
        nix::unistd::fchownat(
            dir.raw(),
            name,
            Some(Uid::from_raw(attrs.uid)),
            Some(Gid::from_raw(attrs.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| owner_error(e, attrs))?;
        if kind != SFlag::S_IFLNK {
            nix::sys::stat::fchmodat(
                dir.raw(),
                name,
                Mode::from_bits_truncate(attrs.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(errno)?;
        }
        if let Some(t) = attrs.mtime {
            let t = nix::sys::time::TimeSpec::new(t, 0);
            nix::sys::stat::utimensat(dir.raw(), name, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(errno)?;
        }
        Ok(())
    }

    /// Sets owner, mode and times of the existing entry `rel` (a symlink
    /// keeps its mode). A file whose inode this tree did not create and
    /// that has other names is copied first, so the other names keep theirs.
    pub fn set_attrs(&mut self, rel: &Path, attrs: Attrs) -> io::Result<()> {
        let rel = clean(rel)?;
        if rel.as_os_str().is_empty() {
            let top = self.open_dir(Path::new(""))?;
            let fd = top.fd.as_raw_fd();
            let attrs = self.allowed(attrs);
            // An `O_PATH` descriptor: through its magic link in /proc.
            nix::unistd::fchownat(
                None,
                &proc_path(fd, None),
                Some(Uid::from_raw(attrs.uid)),
                Some(Gid::from_raw(attrs.gid)),
                AtFlags::empty(),
            )
            .map_err(|e| owner_error(e, attrs))?;
            return nix::sys::stat::fchmodat(
                None,
                &proc_path(fd, None),
                Mode::from_bits_truncate(attrs.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(errno);
        }
        let (dir, name) = self.entry(&rel)?;
        let st = dir
            .stat(&name)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("`{}` does not exist", rel.display())))?;
        let kind = kind_of(&st);
        if kind == SFlag::S_IFREG && st.st_nlink > 1 && !self.ours.contains(&(st.st_dev, st.st_ino)) {
            self.break_link(&dir, &name)?;
        }
        self.apply(&dir, &name, attrs, kind)
    }

    /// Sets only the mtime of `rel`.
    pub fn set_mtime(&mut self, rel: &Path, secs: i64) -> io::Result<()> {
        let rel = clean(rel)?;
        let t = nix::sys::time::TimeSpec::new(secs, 0);
        if rel.as_os_str().is_empty() {
            let top = self.open_dir(Path::new(""))?;
            return nix::sys::stat::utimensat(
                None,
                &proc_path(top.fd.as_raw_fd(), None),
                &t,
                &t,
                UtimensatFlags::FollowSymlink,
            )
            .map_err(errno);
        }
        let (dir, name) = self.entry(&rel)?;
        if let Some(st) = dir.stat(&name)? {
            if kind_of(&st) == SFlag::S_IFREG && st.st_nlink > 1 && !self.ours.contains(&(st.st_dev, st.st_ino)) {
                self.break_link(&dir, &name)?;
            }
        }
        nix::sys::stat::utimensat(dir.raw(), name.as_os_str(), &t, &t, UtimensatFlags::NoFollowSymlink).map_err(errno)
    }

    /// Gives `name` an inode of its own: a copy renamed over it.
    fn break_link(&mut self, dir: &Dir, name: &OsStr) -> io::Result<()> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(dir.raw(), name, flags, Mode::empty()).map_err(errno)?;
        // SAFETY: openat just returned this descriptor; nothing else owns it.
        let mut from = unsafe { File::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(fd).map_err(errno)?;
        let tmp = Dir::temp_name(name);
        let mut to = dir.create(&tmp, st.st_mode & 0o777)?;
        let copied = io::copy(&mut from, &mut to)
            .and_then(|_| {
                nix::unistd::fchown(
                    to.as_raw_fd(),
                    Some(Uid::from_raw(st.st_uid)),
                    Some(Gid::from_raw(st.st_gid)),
                )
                .map_err(errno)
            })
            .and_then(|()| {
                let at = nix::sys::time::TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
                nix::sys::stat::futimens(to.as_raw_fd(), &at, &at).map_err(errno)
            })
            .and_then(|()| dir.rename_in(&tmp, name));
        if let Err(e) = copied {
            let _ = dir.unlink(&tmp);
            return Err(e);
        }
        let st = nix::sys::stat::fstat(to.as_raw_fd()).map_err(errno)?;
        self.ours.insert((st.st_dev, st.st_ino));
        Ok(())
    }

    /// A symlink at `rel` to `target` (which may point anywhere: it is
    /// never followed by this tree), replacing anything there.
    pub fn symlink(&mut self, rel: &Path, target: &OsStr, attrs: Attrs) -> io::Result<()> {
        let rel = clean(rel)?;
        self.charge(false)?;
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        nix::unistd::symlinkat(target, dir.raw(), name.as_os_str()).map_err(errno)?;
        self.adopt(&dir, &name)?;
        self.apply(&dir, &name, attrs, SFlag::S_IFLNK)
    }

    /// A hard link at `rel` to the earlier entry `target` of this tree (not
    /// a directory; reached without a symlink, a final one included).
    pub fn hardlink(&mut self, rel: &Path, target: &Path) -> io::Result<()> {
        let rel = clean(rel)?;
        let target = clean(target)?;
        if rel == target {
            return Err(invalid(&rel, "is a hard link to itself"));
        }
        self.charge(false)?;
        let (tdir, tname) = self.entry(&target)?;
        match tdir.stat(&tname)? {
            Some(st) if kind_of(&st) != SFlag::S_IFDIR => {}
            Some(_) => return Err(invalid(&target, "is a directory: no hard link can point at it")),
            None => return Err(invalid(&target, "is not an earlier entry of this tree")),
        }
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        nix::unistd::linkat(
            tdir.raw(),
            tname.as_os_str(),
            dir.raw(),
            name.as_os_str(),
            AtFlags::empty(),
        )
        .map_err(errno)
    }

    /// A device node or FIFO, as the policy allows. Returns whether it was made.
    pub fn node(&mut self, rel: &Path, kind: Node, dev: (u32, u32), attrs: Attrs) -> io::Result<bool> {
        let rel = clean(rel)?;
        match self.policy.devices {
            Devices::Create => {}
            Devices::Skip => {
                self.skipped.push(rel);
                return Ok(false);
            }
            Devices::Refuse => return Err(invalid(&rel, "is a device node or FIFO, which this tree does not take")),
        }
        self.charge(false)?;
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        let bits = match kind {
            Node::Char => libc::S_IFCHR,
            Node::Block => libc::S_IFBLK,
            Node::Fifo => libc::S_IFIFO,
        };
        mknodat(&dir, &name, bits | 0o600, dev)?;
        self.adopt(&dir, &name)?;
        self.apply(&dir, &name, attrs, SFlag::from_bits_truncate(bits))?;
        Ok(true)
    }

    /// An overlay whiteout at `rel` (a character device 0/0), replacing
    /// anything there: only in trees that take whiteouts (layers).
    pub fn whiteout(&mut self, rel: &Path) -> io::Result<()> {
        let rel = clean(rel)?;
        if !self.policy.whiteouts {
            return Err(invalid(&rel, "is a whiteout, which only a layer takes"));
        }
        self.charge(false)?;
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        mknodat(&dir, &name, libc::S_IFCHR, (0, 0))
    }

    /// Sets the extended attribute `key` on `rel` itself (`""`: the root).
    pub fn set_xattr(&mut self, rel: &Path, key: &str, value: &[u8]) -> io::Result<()> {
        let rel = clean(rel)?;
        if rel.as_os_str().is_empty() {
            // The root itself: through a descriptor of it (the /proc magic
            // link is a symlink to `lsetxattr`).
            let top = self.open_dir(Path::new(""))?;
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            let fd =
                nix::fcntl::openat(None, &proc_path(top.fd.as_raw_fd(), None), flags, Mode::empty()).map_err(errno)?;
            // SAFETY: openat just returned this descriptor; nothing else owns it.
            let dir = unsafe { File::from_raw_fd(fd) };
            return xattr::FileExt::set_xattr(&dir, key, value);
        }
        let (dir, name) = self.entry(&rel)?;
        xattr::set(proc_path(dir.fd.as_raw_fd(), Some(&name)), key, value)
    }

    /// Moves the entry `src_rel` of the tree `src` (on the same file
    /// system) to `rel` here, replacing anything there.
    pub fn take(&mut self, rel: &Path, src: &mut Tree, src_rel: &Path) -> io::Result<()> {
        let rel = clean(rel)?;
        let (sdir, sname) = src.entry(src_rel)?;
        let st = sdir
            .stat(&sname)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        src.forget(&clean(src_rel)?);
        let (dir, name) = self.entry(&rel)?;
        self.clear(&dir, &name, &rel)?;
        nix::fcntl::renameat(sdir.raw(), sname.as_os_str(), dir.raw(), name.as_os_str()).map_err(errno)?;
        if src.ours.contains(&(st.st_dev, st.st_ino)) {
            self.ours.insert((st.st_dev, st.st_ino));
        }
        Ok(())
    }

    /// The names in the directory `rel` (`""`: the root), sorted.
    pub fn list(&mut self, rel: &Path) -> io::Result<Vec<OsString>> {
        let rel = clean(rel)?;
        let dir = self.open_dir(&rel)?;
        let mut names: Vec<OsString> = std::fs::read_dir(proc_path(dir.fd.as_raw_fd(), None))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        Ok(names)
    }
}

fn owner_error(e: nix::Error, attrs: Attrs) -> io::Error {
    match e {
        nix::Error::EINVAL if crate::sys::userns::rootless() => crate::sys::userns::unmapped(attrs.uid, attrs.gid),
        e => errno(e),
    }
}

fn mknodat(dir: &Dir, name: &OsStr, mode: u32, (major, minor): (u32, u32)) -> io::Result<()> {
    let name = std::ffi::CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let dev = libc::makedev(major, minor);
    // SAFETY: a valid descriptor and a NUL-terminated name.
    let rc = unsafe { libc::mknodat(dir.fd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the directory `name` of the directory `parent` with everything
/// in it, never following a symlink.
fn remove_tree(parent: RawFd, name: &OsStr) -> io::Result<()> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(Some(parent), name, flags, Mode::empty()).map_err(errno)?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    for entry in std::fs::read_dir(proc_path(dir.as_raw_fd(), None))? {
        let child = entry?.file_name();
        let st = nix::sys::stat::fstatat(Some(dir.as_raw_fd()), child.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(errno)?;
        if kind_of(&st) == SFlag::S_IFDIR {
            remove_tree(dir.as_raw_fd(), &child)?;
        } else {
            nix::unistd::unlinkat(Some(dir.as_raw_fd()), child.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(errno)?;
        }
    }
    nix::unistd::unlinkat(Some(parent), name, UnlinkatFlags::RemoveDir).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    const BIG: u64 = 1 << 30;

    fn file(tree: &mut Tree, rel: &str, text: &str, attrs: Attrs) {
        tree.write(Path::new(rel), &mut text.as_bytes(), attrs).unwrap();
    }

    #[test]
    fn a_directory_entry_over_a_symlink_replaces_the_link_and_never_touches_its_target() {
        let victim = tempfile::tempdir().unwrap();
        fs::set_permissions(victim.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(victim.path().join("hostfile"), "precious").unwrap();
        let t = tempfile::tempdir().unwrap();
        let mut tree = Tree::open(t.path(), Policy::image(BIG)).unwrap();
        tree.symlink(Path::new("x"), victim.path().as_os_str(), Attrs::new(0o777, 0, 0))
            .unwrap();
        // Through the link: refused, whatever the entry.
        let e = tree
            .write(Path::new("x/pwned"), &mut &b"x"[..], Attrs::new(0o4755, 0, 0))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let e = tree.hardlink(Path::new("stolen"), Path::new("x/hostfile")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        // A directory entry of the link's name: a directory of the tree.
        tree.dir(Path::new("x"), Attrs::new(0o777, 0, 0)).unwrap();
        assert!(fs::symlink_metadata(t.path().join("x")).unwrap().is_dir());
        assert_eq!(fs::metadata(victim.path()).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 1);
        assert_eq!(fs::read_to_string(victim.path().join("hostfile")).unwrap(), "precious");
    }

    #[test]
    fn a_shared_inode_is_copied_before_its_attributes_change() {
        let pool = tempfile::tempdir().unwrap();
        let pooled = pool.path().join("a");
        fs::write(&pooled, "shared").unwrap();
        fs::set_permissions(&pooled, fs::Permissions::from_mode(0o644)).unwrap();
        let t = tempfile::tempdir().unwrap();
        let mut tree = Tree::open(t.path(), Policy::image(BIG)).unwrap();
        assert!(tree.link_from(Path::new("a.txt"), &pooled).unwrap());
        tree.hardlink(Path::new("b"), Path::new("a.txt")).unwrap();
        tree.set_attrs(Path::new("b"), Attrs::new(0o4777, 4242, 4242)).unwrap();
        let pooled_meta = fs::metadata(&pooled).unwrap();
        assert_eq!(
            (pooled_meta.mode() & 0o7777, pooled_meta.uid()),
            (0o644, pooled_meta.uid())
        );
        assert_eq!(pooled_meta.nlink(), 2, "a.txt still shares the pool's inode");
        let b = fs::metadata(t.path().join("b")).unwrap();
        assert_eq!(
            (b.mode() & 0o7777, b.uid(), b.gid(), b.nlink()),
            (0o4777, 4242, 4242, 1)
        );
        assert_eq!(fs::read_to_string(t.path().join("b")).unwrap(), "shared");
        // Its own files it changes in place: their hard links stay.
        file(&mut tree, "c", "own", Attrs::new(0o644, 0, 0));
        tree.hardlink(Path::new("d"), Path::new("c")).unwrap();
        tree.set_attrs(Path::new("d"), Attrs::new(0o600, 0, 0)).unwrap();
        assert_eq!(fs::metadata(t.path().join("c")).unwrap().nlink(), 2);
        assert_eq!(fs::metadata(t.path().join("c")).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_host_policy_takes_no_devices_no_setuid_and_the_users_ownership() {
        let t = tempfile::tempdir().unwrap();
        let mut tree = Tree::open(t.path(), Policy::host(BIG)).unwrap();
        file(&mut tree, "su", "x", Attrs::new(0o6755, 0, 0));
        assert_eq!(fs::metadata(t.path().join("su")).unwrap().mode() & 0o7777, 0o755);
        assert!(!tree
            .node(Path::new("mem"), Node::Char, (1, 1), Attrs::new(0o666, 0, 0))
            .unwrap());
        assert!(!tree
            .node(Path::new("sda"), Node::Block, (8, 0), Attrs::new(0o660, 0, 0))
            .unwrap());
        assert!(!t.path().join("mem").exists() && !t.path().join("sda").exists());
        assert_eq!(tree.skipped(), [PathBuf::from("mem"), PathBuf::from("sda")]);
        tree.dir(Path::new("d"), Attrs::new(0o2775, 4242, 4242)).unwrap();
        let d = fs::metadata(t.path().join("d")).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o775);
        assert_eq!(d.uid(), nix::unistd::getuid().as_raw());
        assert!(tree.whiteout(Path::new("gone")).is_err());
    }

    #[test]
    fn content_past_the_limit_fails_and_leaves_no_file() {
        let t = tempfile::tempdir().unwrap();
        let limit = 2 * ENTRY_COST + 10;
        let mut tree = Tree::open(t.path(), Policy::image(limit)).unwrap();
        file(&mut tree, "a", "123456", Attrs::new(0o644, 0, 0));
        let e = tree
            .write(Path::new("b"), &mut &b"123456"[..], Attrs::new(0o644, 0, 0))
            .unwrap_err();
        assert_eq!(too_large(&e), Some(limit), "{e}");
        assert!(e.to_string().contains(&format!("limit of {limit} bytes")), "{e}");
        assert!(!t.path().join("b").exists());
    }

    #[test]
    fn empty_entries_count_against_the_limits_too() {
        let t = tempfile::tempdir().unwrap();
        // 10 KiB: a handful of directories and empty files, not thousands.
        let mut tree = Tree::open(t.path(), Policy::image(10 << 10)).unwrap();
        let mut made = 0;
        let e = loop {
            match tree.dir(Path::new(&format!("d{made}")), Attrs::new(0o755, 0, 0)) {
                Ok(()) => made += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(made, 2, "two 4 KiB directories fit in 10 KiB");
        assert_eq!(too_large(&e), Some(10 << 10), "{e}");
        let mut tree = Tree::open(t.path(), Policy::image(1 << 30)).unwrap();
        tree.entry_limit = 3;
        for name in ["a", "b", "c"] {
            tree.write(Path::new(name), &mut &b""[..], Attrs::new(0o644, 0, 0))
                .unwrap();
        }
        let e = tree
            .symlink(Path::new("l"), "a".as_ref(), Attrs::new(0o777, 0, 0))
            .unwrap_err();
        assert!(
            e.to_string().contains("the content passes the limit of 3 entries"),
            "{e}"
        );
    }

    #[test]
    fn an_opaque_marker_on_the_root_is_set_on_the_directory() {
        let t = tempfile::tempdir().unwrap();
        let mut tree = Tree::open(t.path(), Policy::image(BIG)).unwrap();
        tree.set_xattr(Path::new(""), "user.strata-test", b"y").unwrap();
        assert_eq!(
            xattr::get(t.path(), "user.strata-test").unwrap().as_deref(),
            Some(&b"y"[..])
        );
    }

    #[test]
    fn names_that_climb_or_are_absolute_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let mut tree = Tree::open(t.path(), Policy::image(BIG)).unwrap();
        for bad in ["../x", "/etc/x", "a/../../x", ""] {
            let e = tree
                .write(Path::new(bad), &mut &b""[..], Attrs::new(0o644, 0, 0))
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }

    #[test]
    fn replacing_a_directory_removes_it_without_following_links_inside() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "k").unwrap();
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("d/e")).unwrap();
        symlink(outside.path(), t.path().join("d/e/out")).unwrap();
        let mut tree = Tree::open(t.path(), Policy::image(BIG)).unwrap();
        file(&mut tree, "d", "now a file", Attrs::new(0o644, 0, 0));
        assert_eq!(fs::read_to_string(t.path().join("d")).unwrap(), "now a file");
        assert!(outside.path().join("keep").exists());
        tree.parents(Path::new("p/q/r"), Attrs::new(0o755, 0, 0)).unwrap();
        assert!(t.path().join("p/q").is_dir());
        let e = tree.parents(Path::new("d/x/y"), Attrs::new(0o755, 0, 0)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    }
}
