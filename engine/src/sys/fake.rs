//! A recording [`Sys`] for unit tests: every call is appended to a list
//! (paths relative to a root, so tests read like the sandbox's plan) and
//! nothing reaches the kernel.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;

use super::ns::Sys;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Unshare(CloneFlags),
    Mount {
        source: Option<String>,
        target: String,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount(String),
    PivotInto(String),
    Chdir(String),
    Hostname(String),
    LoopbackUp,
    Mknod(String, SFlag, u32, u64, u64),
    Lchown(String, u32, u32),
    Chmod(String, u32),
    SetIds(u32, u32, Vec<u32>),
    Umask(u32),
    DieWithParent,
    DropCapabilities(Vec<caps::Capability>),
    InstallSeccomp,
}

impl Call {
    /// A recorded mount, as tests write it.
    pub fn mount(source: Option<&str>, target: &str, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Call {
        Call::Mount {
            source: source.map(str::to_string),
            target: target.to_string(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        }
    }
}

/// Records calls; paths under `root` are shown relative to it (`/` alone for the root).
pub struct Recording {
    root: PathBuf,
    calls: Mutex<Vec<Call>>,
}

impl Recording {
    pub fn new(root: &Path) -> Recording {
        Recording {
            root: root.to_path_buf(),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
    }

    fn push(&self, call: Call) -> io::Result<()> {
        self.calls.lock().unwrap().push(call);
        Ok(())
    }
}

impl Sys for Recording {
    /// The recording mounts nothing: no flags to keep.
    fn mount_flags(&self, _path: &Path) -> io::Result<MsFlags> {
        Ok(MsFlags::empty())
    }

    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        self.push(Call::Unshare(flags))
    }

    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.push(Call::Mount {
            source: source.map(|s| self.show(Path::new(s))),
            target: self.show(target),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(|d| d.replace(&*self.root.to_string_lossy(), "")),
        })
    }

    fn umount(&self, target: &Path, _flags: MntFlags) -> io::Result<()> {
        self.push(Call::Umount(self.show(target)))
    }

    fn pivot_into(&self, new_root: &Path) -> io::Result<()> {
        self.push(Call::PivotInto(self.show(new_root)))
    }

    fn chdir(&self, dir: &Path) -> io::Result<()> {
        self.push(Call::Chdir(self.show(dir)))
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.push(Call::Hostname(name.to_string()))
    }

    fn loopback_up(&self) -> io::Result<()> {
        self.push(Call::LoopbackUp)
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64) -> io::Result<()> {
        self.push(Call::Mknod(self.show(path), kind, perm, major, minor))
    }

    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.push(Call::Lchown(self.show(path), uid, gid))
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.push(Call::Chmod(self.show(path), mode))
    }

    fn set_ids(&self, uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
        self.push(Call::SetIds(uid, gid, groups.to_vec()))
    }

    fn umask(&self, mask: u32) {
        let _ = self.push(Call::Umask(mask));
    }

    fn die_with_parent(&self) -> io::Result<()> {
        self.push(Call::DieWithParent)
    }

    fn drop_capabilities(&self, keep: &[caps::Capability]) -> io::Result<()> {
        self.push(Call::DropCapabilities(keep.to_vec()))
    }

    fn install_seccomp(&self, _filter: &seccompiler::BpfProgram) -> io::Result<()> {
        self.push(Call::InstallSeccomp)
    }
}
