//! The kernel calls `std` does not offer. Here, for the store and the layer
//! code: device nodes, ownership of symlinks, timestamps without following
//! links and `flock` (all through `nix`), extended attributes (through the
//! `xattr` crate: `nix` has no xattr calls). In `ns`: the sandbox's
//! namespace, mount and process calls behind the [`Sys`] trait, with a
//! recording fake in `fake` for unit tests.

pub mod binfmt;
pub mod cgroup;
pub mod confined;
#[cfg(test)]
pub mod fake;
pub mod interrupt;
pub mod ns;
pub mod userns;

pub use ns::{Linux, Sys};

/// The executable `tool` in `$PATH` (the usual directories without one).
pub fn find_on_path(tool: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

use std::fs::File;
use std::io;
use std::path::Path;

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Marks every descriptor above standard error close-on-exec: what the
/// invoking process left open (a `flock` on a directory, a harness's
/// pipes) must never reach a sandbox, where a directory descriptor is a way
/// out of its root (runc's CVE-2024-21626). strata opens its own
/// descriptors close-on-exec; those it hands a child on purpose are dup'ed
/// onto 0, 1 and 2.
pub fn cloexec_inherited() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on this
    // process's descriptors.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: one by one.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; a closed one fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Creates a device node or FIFO. `mode` includes the file type bits.
/// Opens `path` for reading only, refusing a symlink in its last part.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let kind = nix::sys::stat::SFlag::from_bits_truncate(mode & libc::S_IFMT);
    let perm = nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777);
    let dev = nix::sys::stat::makedev(u64::from(major), u64::from(minor));
    nix::sys::stat::mknod(path, kind, perm, dev).map_err(errno)
}

/// Creates an overlay whiteout: a character device 0/0.
pub fn mknod_whiteout(path: &Path) -> io::Result<()> {
    mknod(path, libc::S_IFCHR, 0, 0)
}

/// `lchown`: changes owner without following a symlink. In rootless mode
/// an owner the namespace has no id for says so.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        None,
        path,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| match e {
        nix::Error::EINVAL if userns::rootless() => userns::unmapped(uid, gid),
        e => errno(e),
    })
}

/// Sets atime and mtime to `secs` without following a symlink.
pub fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(None, path, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink).map_err(errno)
}

/// Sets an extended attribute on the path itself (not a symlink's target).
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    xattr::set(path, name, value)
}

/// Reads an extended attribute; `None` when it is not set.
pub fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match xattr::get(path, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(None),
        other => other,
    }
}

/// An advisory lock on a file (`flock`), released when dropped.
pub type LockGuard = nix::fcntl::Flock<File>;

/// Takes an advisory lock on `file`, retrying on EINTR. Returns `None` when
/// `nonblocking` and another process holds a conflicting lock.
pub fn flock(file: File, exclusive: bool, nonblocking: bool) -> io::Result<Option<LockGuard>> {
    use nix::fcntl::{Flock, FlockArg};
    let arg = match (exclusive, nonblocking) {
        (true, false) => FlockArg::LockExclusive,
        (true, true) => FlockArg::LockExclusiveNonblock,
        (false, false) => FlockArg::LockShared,
        (false, true) => FlockArg::LockSharedNonblock,
    };
    let mut file = file;
    loop {
        match Flock::lock(file, arg) {
            Ok(guard) => return Ok(Some(guard)),
            Err((f, nix::Error::EINTR)) => file = f,
            Err((_, nix::Error::EWOULDBLOCK)) if nonblocking => return Ok(None),
            Err((_, e)) => return Err(errno(e)),
        }
    }
}

/// `(major, minor)` of a device number.
pub fn dev_parts(rdev: u64) -> (u32, u32) {
    (libc::major(rdev as libc::dev_t), libc::minor(rdev as libc::dev_t))
}

/// The names of a path's extended attributes (not following a symlink).
pub fn llistxattr(path: &Path) -> io::Result<Vec<String>> {
    match xattr::list(path) {
        Ok(names) => Ok(names.map(|n| n.to_string_lossy().into_owned()).collect()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Removes an extended attribute (not following a symlink).
pub fn lremovexattr(path: &Path, name: &str) -> io::Result<()> {
    xattr::remove(path, name)
}

/// Sets a path's atime and mtime to now.
pub fn touch(path: &Path) -> io::Result<()> {
    nix::sys::stat::utimensat(
        None,
        path,
        &nix::sys::time::TimeSpec::UTIME_NOW,
        &nix::sys::time::TimeSpec::UTIME_NOW,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .map_err(errno)
}
