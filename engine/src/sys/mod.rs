//! Thin, safe wrappers over the few libc calls the store and the layer code
//! need that `std` does not offer (device nodes, ownership of symlinks,
//! timestamps without following links, extended attributes, `flock`).
//! The sandbox's namespace and process calls are in `ns`.

pub mod ns;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Creates a device node or FIFO. `mode` includes the file type bits.
pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let p = cpath(path)?;
    check(unsafe { libc::mknod(p.as_ptr(), mode as libc::mode_t, libc::makedev(major, minor)) })
}

/// Creates an overlay whiteout: a character device 0/0.
pub fn mknod_whiteout(path: &Path) -> io::Result<()> {
    mknod(path, libc::S_IFCHR, 0, 0)
}

/// `lchown`: changes owner without following a symlink.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let p = cpath(path)?;
    check(unsafe { libc::lchown(p.as_ptr(), uid, gid) })
}

/// Sets atime and mtime to `secs` without following a symlink.
pub fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    let p = cpath(path)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

/// Sets an extended attribute on the path itself (not a symlink's target).
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    check(unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// Reads an extended attribute; `None` when it is not set.
pub fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let p = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 256];
    loop {
        let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if len >= 0 {
            buf.truncate(len as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => return Ok(None),
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            _ => return Err(err),
        }
    }
}

/// Takes an advisory lock on an open file. Returns `false` when
/// `nonblocking` and another process holds a conflicting lock.
pub fn flock(file: &File, exclusive: bool, nonblocking: bool) -> io::Result<bool> {
    let mut op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    if nonblocking {
        op |= libc::LOCK_NB;
    }
    loop {
        let ret = unsafe { libc::flock(file.as_raw_fd(), op) };
        if ret == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) if nonblocking => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// `(major, minor)` of a device number.
pub fn dev_parts(rdev: u64) -> (u32, u32) {
    (libc::major(rdev as libc::dev_t), libc::minor(rdev as libc::dev_t))
}

/// The names of a path's extended attributes (not following a symlink).
pub fn llistxattr(path: &Path) -> io::Result<Vec<String>> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 1024];
    loop {
        let len = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if len >= 0 {
            buf.truncate(len as usize);
            return Ok(buf
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(err),
        }
    }
}

/// Removes an extended attribute (not following a symlink).
pub fn lremovexattr(path: &Path, name: &str) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets a path's atime and mtime to now.
pub fn touch(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0) })
}
