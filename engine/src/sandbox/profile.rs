//! The security profile every sandbox gets, after Docker's default one:
//! the capabilities a step keeps, the `/proc` and `/sys` paths it cannot see
//! or cannot write, `no_new_privs`, and a seccomp filter.
//!
//! Where strata departs from Docker, it is stricter: Docker keeps
//! `CAP_MKNOD` and relies on its device cgroup to stop block devices;
//! strata has no device cgroup yet, so it drops `CAP_MKNOD` and its seccomp
//! filter also refuses `mknod` of a block device. The filter is a deny list
//! (Docker's is an allow list): kernel modules, kexec, reboot, swap, clocks,
//! keyrings, BPF, perf, ptrace, `open_by_handle_at`, the new mount API,
//! `setns`, user namespaces through `unshare`/`clone`, `ioctl`'s `TIOCSTI`
//! and `TIOCLINUX` (typing into a terminal), and `personality`
//! outside Docker's values; `clone3` answers ENOSYS so libc falls back to
//! `clone`, whose flags the filter can read.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use caps::Capability;
use nix::mount::MsFlags;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::sys::ns::Sys;

/// Docker's default capabilities, less `CAP_MKNOD` (see the module's note).
pub const KEPT_CAPABILITIES: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Hidden: a file becomes `/dev/null`, a directory an empty read-only tmpfs
/// (the OCI runtime spec's defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Visible but read-only.
pub const READ_ONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Masks and write-protects the paths above under `root` (before the pivot;
/// /proc, /sys and /dev are mounted). Paths the kernel does not have are skipped.
pub fn protect_paths(sys: &dyn Sys, root: &Path) -> io::Result<()> {
    let null = root.join("dev/null");
    for path in MASKED_PATHS {
        let host = root.join(path.trim_start_matches('/'));
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.is_dir() => sys.mount(
                Some("tmpfs"),
                &host,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0"),
            )?,
            Ok(_) => sys.bind(&null, &host, false)?,
            Err(_) => {}
        }
    }
    for path in READ_ONLY_PATHS {
        let host = root.join(path.trim_start_matches('/'));
        if std::fs::symlink_metadata(&host).is_ok() {
            sys.bind(&host, &host, true)?;
        }
    }
    Ok(())
}

fn rule(conditions: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions")
}

fn cond(arg: u8, op: Op, value: u64) -> Cond {
    Cond::new(arg, Len::Qword, op, value).expect("a valid condition")
}

fn target() -> TargetArch {
    if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else if cfg!(target_arch = "riscv64") {
        TargetArch::riscv64
    } else {
        TargetArch::x86_64
    }
}

/// The seccomp filters, in the order they are installed: the deny list
/// (EPERM), then `clone3` (ENOSYS), then (x86_64) the x32 ABI (EPERM).
pub fn seccomp_filters() -> Vec<BpfProgram> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in [
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_acct,
        libc::SYS_add_key,
        libc::SYS_keyctl,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kcmp,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_userfaultfd,
        libc::SYS_lookup_dcookie,
        libc::SYS_quotactl,
        libc::SYS_setns,
        libc::SYS_pivot_root,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_syslog,
        libc::SYS_vhangup,
    ] {
        deny.insert(nr, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    for nr in [libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_uselib] {
        deny.insert(nr, Vec::new());
    }
    let block = u64::from(libc::S_IFBLK);
    let kind = Op::MaskedEq(u64::from(libc::S_IFMT));
    #[cfg(target_arch = "x86_64")]
    deny.insert(libc::SYS_mknod, vec![rule(vec![cond(1, kind.clone(), block)])]);
    deny.insert(libc::SYS_mknodat, vec![rule(vec![cond(2, kind, block)])]);
    // Typing into a terminal (`TIOCSTI`) or reaching the console's
    // selection and keyboard (`TIOCLINUX`): runc's filter refuses both, and
    // a sandbox has no terminal but its own pty anyway.
    deny.insert(
        libc::SYS_ioctl,
        [libc::TIOCSTI, libc::TIOCLINUX]
            .into_iter()
            .map(|request| {
                rule(vec![
                    Cond::new(1, Len::Dword, Op::Eq, request).expect("a valid condition")
                ])
            })
            .collect(),
    );
    let newuser = libc::CLONE_NEWUSER as u64;
    deny.insert(
        libc::SYS_unshare,
        vec![rule(vec![cond(0, Op::MaskedEq(newuser), newuser)])],
    );
    deny.insert(
        libc::SYS_clone,
        vec![rule(vec![cond(0, Op::MaskedEq(newuser), newuser)])],
    );
    // Docker's personality values: Linux, and with UNAME26 / ADDR_NO_RANDOMIZE, and the query.
    deny.insert(
        libc::SYS_personality,
        vec![rule(
            [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff]
                .into_iter()
                .map(|v| cond(0, Op::Ne, v))
                .collect(),
        )],
    );
    let eperm = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target(),
    )
    .expect("a valid filter");
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        target(),
    )
    .expect("a valid filter");
    let mut filters: Vec<BpfProgram> = [eperm, clone3]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).expect("the filter compiles"))
        .collect();
    #[cfg(target_arch = "x86_64")]
    filters.push(no_x32());
    filters
}

/// x86_64's x32 ABI: the same calls under numbers with bit 30 set, which no
/// rule above names (seccompiler matches exact numbers), so every refusal
/// would be a call away. On a kernel built with x32, they are refused
/// whole (Docker's profile allows none of them either).
#[cfg(target_arch = "x86_64")]
fn no_x32() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 4),                             // seccomp_data.arch
        op(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),                // another arch: the others decide
        op(LD_W_ABS, 0, 0, 0),                             // seccomp_data.nr
        op(JSET_K, 0, 1, X32_SYSCALL_BIT),                 // an x32 number?
        op(RET_K, 0, 0, 0x0005_0000 | libc::EPERM as u32), // SECCOMP_RET_ERRNO
        op(RET_K, 0, 0, 0x7fff_0000),                      // SECCOMP_RET_ALLOW
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, Recording};

    #[test]
    fn the_kept_capabilities_are_dockers_without_mknod_and_nothing_that_reaches_the_kernel() {
        assert_eq!(KEPT_CAPABILITIES.len(), 13);
        for cap in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_SYS_MODULE,
            Capability::CAP_SYS_PTRACE,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_SYS_RAWIO,
            Capability::CAP_SYS_TIME,
            Capability::CAP_MKNOD,
            Capability::CAP_DAC_READ_SEARCH,
        ] {
            assert!(!KEPT_CAPABILITIES.contains(&cap), "{cap} is kept");
        }
    }

    #[test]
    fn masked_files_become_dev_null_masked_directories_an_empty_tmpfs_and_proc_sys_is_read_only() {
        let root = tempfile::tempdir().unwrap();
        for dir in ["proc/acpi", "proc/sys", "dev"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("proc/keys"), "").unwrap();
        let sys = Recording::new(root.path());
        protect_paths(&sys, root.path()).unwrap();
        let mount = Call::mount;
        let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
        assert_eq!(
            sys.calls(),
            vec![
                mount(
                    Some("tmpfs"),
                    "/proc/acpi",
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    Some("size=0")
                ),
                mount(Some("/dev/null"), "/proc/keys", None, bind, None),
                mount(Some("/proc/sys"), "/proc/sys", None, bind, None),
                mount(
                    None,
                    "/proc/sys",
                    None,
                    bind | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None
                ),
            ]
        );
    }

    #[test]
    fn the_seccomp_filters_compile_for_this_machine() {
        let filters = seccomp_filters();
        assert_eq!(filters.len(), if cfg!(target_arch = "x86_64") { 3 } else { 2 });
        assert!(filters.iter().all(|f| !f.is_empty()));
    }
}
