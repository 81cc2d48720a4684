//! Every kernel call the sandbox makes, as thin safe wrappers. Nothing else
//! in `sandbox/` calls libc directly.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `unshare(2)`.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    check(unsafe { libc::unshare(flags) })
}

/// `mount(2)`; `None` arguments are passed as NULL.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cpath(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    check(unsafe { libc::mount(ptr(&source), target.as_ptr(), ptr(&fstype), flags, ptr(&data).cast()) })
}

/// A bind mount of `source` at `target`, made read-only if asked.
pub fn bind(source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
    let src = source
        .to_str()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    mount(Some(src), target, None, libc::MS_BIND | libc::MS_REC, None)?;
    if readonly {
        mount(
            None,
            target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
            None,
        )?;
    }
    Ok(())
}

/// `umount2(2)`.
pub fn umount(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let t = cpath(target)?;
    check(unsafe { libc::umount2(t.as_ptr(), flags) })
}

/// `pivot_root(".", ".")` in `new_root`, then detaches the old root.
pub fn pivot_into(new_root: &Path) -> io::Result<()> {
    std::env::set_current_dir(new_root)?;
    let dot = cstr(".")?;
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } as libc::c_int)?;
    umount(Path::new("."), libc::MNT_DETACH)?;
    std::env::set_current_dir("/")
}

pub fn sethostname(name: &str) -> io::Result<()> {
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
}

/// Brings the loopback interface up (a new network namespace starts with it down).
pub fn loopback_up() -> io::Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    for (i, b) in b"lo".iter().enumerate() {
        req.name[i] = *b as libc::c_char;
    }
    let result = (|| {
        check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) })?;
        req.flags |= libc::IFF_UP as libc::c_short;
        check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })
    })();
    unsafe { libc::close(fd) };
    result
}

pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    super::mknod(path, mode, major, minor)
}

/// `fork(2)`. Returns 0 in the child.
pub fn fork() -> io::Result<libc::pid_t> {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// Waits for `pid`, retrying on EINTR; returns the raw wait status.
pub fn waitpid(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    unsafe { libc::kill(pid, sig) };
}

/// Asks the kernel to SIGKILL this process when its parent dies.
pub fn die_with_parent() -> io::Result<()> {
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) })
}

/// Switches to `uid`/`gid` with exactly `groups` as supplementary groups.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    check(unsafe { libc::setgid(gid) })?;
    check(unsafe { libc::setuid(uid) })
}

pub fn umask(mask: u32) {
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &Path, argv: &[String], env: &[String]) -> io::Error {
    let to_c =
        |items: &[String]| -> Option<Vec<CString>> { items.iter().map(|s| CString::new(s.as_bytes()).ok()).collect() };
    let (Ok(path), Some(argv), Some(env)) = (cpath(path), to_c(argv), to_c(env)) else {
        return io::Error::from(io::ErrorKind::InvalidInput);
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Installs `handler` for `sig`.
pub fn on_signal(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    unsafe { libc::signal(sig, handler as extern "C" fn(libc::c_int) as libc::sighandler_t) };
}

/// `access(path, X_OK)`.
pub fn is_executable(path: &Path) -> bool {
    match cpath(path) {
        Ok(p) => unsafe { libc::access(p.as_ptr(), libc::X_OK) == 0 },
        Err(_) => false,
    }
}

/// A C string constant for messages.
pub fn errno_text(err: &io::Error) -> String {
    err.to_string()
}

/// Restores default dispositions for the signals a Rust program changes
/// (SIGPIPE is ignored by Rust's runtime, and ignored signals survive exec)
/// and unblocks every signal, so the command starts like from a shell.
pub fn reset_signals() {
    unsafe {
        for sig in [
            libc::SIGPIPE,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGCHLD,
        ] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
