//! The sandbox's kernel calls behind one trait, [`Sys`], after youki's
//! `syscall` module: [`Linux`] makes the calls (through `nix`), the
//! recording fake in `sys::fake` lets unit tests check the order and the
//! arguments of mounts, ownership and mode changes without root.
//!
//! `libc` remains only where `nix` has no wrapper: the `SIOCGIFFLAGS` /
//! `SIOCSIFFLAGS` ioctls that bring `lo` up, and `signal()` with a plain
//! `extern "C"` handler in the sandbox's supervisor.

use std::ffi::CString;
use std::io;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

pub use nix::sys::wait::WaitStatus;
pub use nix::unistd::ForkResult;

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Every call the sandbox makes that changes the kernel's state.
pub trait Sys: Sync {
    fn unshare(&self, flags: CloneFlags) -> io::Result<()>;
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// `pivot_root(new_root, new_root)`, then detach the old root and enter `/`.
    fn pivot_into(&self, new_root: &Path) -> io::Result<()>;
    fn chdir(&self, dir: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// Brings the loopback interface of the current network namespace up.
    fn loopback_up(&self) -> io::Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64) -> io::Result<()>;
    /// Owner of `path` itself (a symlink is not followed).
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Supplementary groups, then gid, then uid.
    fn set_ids(&self, uid: u32, gid: u32, groups: &[u32]) -> io::Result<()>;
    fn umask(&self, mask: u32);
    /// SIGKILL when the parent dies (`PR_SET_PDEATHSIG`).
    fn die_with_parent(&self) -> io::Result<()>;
    /// Cuts the bounding, inheritable, permitted and effective sets to
    /// `keep` and clears the ambient set.
    fn drop_capabilities(&self, keep: &[caps::Capability]) -> io::Result<()>;
    /// Installs a seccomp filter on this thread (and what it execs).
    fn install_seccomp(&self, filter: &seccompiler::BpfProgram) -> io::Result<()>;

    /// The `nosuid`, `nodev` and `noexec` flags of the mount `path` is on.
    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags>;

    /// A recursive bind mount, remounted read-only when asked. The remount
    /// keeps the source's `nosuid`, `nodev` and `noexec`: in a user
    /// namespace (rootless) the kernel refuses to clear flags a mount came
    /// from the host with.
    fn bind(&self, source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
        let src = source
            .to_str()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.mount(Some(src), target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        if readonly {
            let kept = self.mount_flags(target)?;
            self.mount(
                None,
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | kept,
                None,
            )?;
        }
        Ok(())
    }
}

/// The real kernel.
pub struct Linux;

impl Sys for Linux {
    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        nix::sched::unshare(flags).map_err(errno)
    }

    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(errno)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(errno)
    }

    fn mount_flags(&self, path: &Path) -> io::Result<MsFlags> {
        use nix::sys::statvfs::FsFlags;
        let flags = nix::sys::statvfs::statvfs(path).map_err(errno)?.flags();
        let mut kept = MsFlags::empty();
        for (st, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        ] {
            if flags.contains(st) {
                kept |= ms;
            }
        }
        Ok(kept)
    }

    fn pivot_into(&self, new_root: &Path) -> io::Result<()> {
        nix::unistd::chdir(new_root).map_err(errno)?;
        nix::unistd::pivot_root(".", ".").map_err(errno)?;
        self.umount(Path::new("."), MntFlags::MNT_DETACH)?;
        nix::unistd::chdir("/").map_err(errno)
    }

    fn chdir(&self, dir: &Path) -> io::Result<()> {
        nix::unistd::chdir(dir).map_err(errno)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(errno)
    }

    fn loopback_up(&self) -> io::Result<()> {
        #[repr(C)]
        struct IfReq {
            name: [libc::c_char; libc::IFNAMSIZ],
            flags: libc::c_short,
            _pad: [u8; 22],
        }
        let socket = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(errno)?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        for (i, b) in b"lo".iter().enumerate() {
            req.name[i] = *b as libc::c_char;
        }
        use std::os::fd::AsRawFd;
        let fd = socket.as_raw_fd();
        // SAFETY: `req` is a valid `struct ifreq` prefix for these two ioctls.
        if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64) -> io::Result<()> {
        nix::sys::stat::mknod(
            path,
            kind,
            Mode::from_bits_truncate(perm),
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(errno)
    }

    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        super::lchown(path, uid, gid)
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    fn set_ids(&self, uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
        let unmapped = |e: nix::Error| match e {
            nix::Error::EINVAL if super::userns::rootless() => super::userns::unmapped(uid, gid),
            e => errno(e),
        };
        let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
        nix::unistd::setgroups(&groups).map_err(unmapped)?;
        nix::unistd::setgid(Gid::from_raw(gid)).map_err(unmapped)?;
        nix::unistd::setuid(Uid::from_raw(uid)).map_err(unmapped)
    }

    fn umask(&self, mask: u32) {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }

    fn die_with_parent(&self) -> io::Result<()> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(errno)
    }

    fn drop_capabilities(&self, keep: &[caps::Capability]) -> io::Result<()> {
        use caps::CapSet;
        let failed = |e: caps::errors::CapsError| io::Error::other(e.to_string());
        // The bounding set first: dropping from it needs CAP_SETPCAP in the
        // effective set, which the sets below may not keep.
        for cap in caps::all() {
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap).map_err(failed)?;
            }
        }
        let kept: caps::CapsHashSet = keep.iter().copied().collect();
        // Effective before permitted: the effective set must stay a subset.
        for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
            let now = caps::read(None, set).map_err(failed)?;
            let wanted: caps::CapsHashSet = now.intersection(&kept).copied().collect();
            caps::set(None, set, &wanted).map_err(failed)?;
        }
        caps::clear(None, CapSet::Ambient).map_err(failed)
    }

    fn install_seccomp(&self, filter: &seccompiler::BpfProgram) -> io::Result<()> {
        seccompiler::apply_filter(filter).map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Forks; the child must only make async-signal-safe calls until it execs
/// (the sandbox process is single-threaded, so it may do more).
pub fn fork() -> io::Result<ForkResult> {
    // SAFETY: the sandbox process has one thread when it forks.
    unsafe { nix::unistd::fork() }.map_err(errno)
}

/// Waits for `pid`, retrying on EINTR; returns its exit code, or 128 + the
/// signal that killed it.
pub fn wait_exit_code(pid: i32) -> io::Result<i32> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Sends `sig` to `pid` (a negative pid is a process group); a process that
/// is already gone is not an error.
pub fn kill(pid: i32, sig: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
}

/// Replaces the process; returns only the error.
pub fn execve(path: &Path, argv: &[String], env: &[String]) -> io::Error {
    let to_c =
        |items: &[String]| -> Option<Vec<CString>> { items.iter().map(|s| CString::new(s.as_bytes()).ok()).collect() };
    let path = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()));
    let (Ok(path), Some(argv), Some(env)) = (path, to_c(argv), to_c(env)) else {
        return io::Error::from(io::ErrorKind::InvalidInput);
    };
    match nix::unistd::execve(&path, &argv, &env) {
        Err(e) => errno(e),
        Ok(never) => match never {},
    }
}

/// Installs a plain handler for `sig`.
pub fn on_signal(sig: Signal, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: the handlers only read an atomic and call kill(2).
    let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::Handler(handler)) };
}

/// Ignores `sig`.
pub fn ignore_signal(sig: Signal) {
    // SAFETY: SIG_IGN runs no code.
    let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
}

/// True when the calling process may execute `path`.
pub fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Default dispositions for the signals strata changes, and no blocked
/// signals: what a command expects to inherit.
pub fn reset_signals() {
    for sig in [
        Signal::SIGPIPE,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        // SAFETY: SIG_DFL runs no code.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
