//! The sandbox process (`strata __sandbox SPEC`), started by the engine for
//! each RUN. It runs in fresh mount, pid, uts, ipc (and network)
//! namespaces: it mounts the overlay and the step's mounts in its private
//! mount namespace, forks the command as PID 1 of the new pid namespace,
//! which mounts /proc and /dev, pivots into the overlay, drops to the step's
//! user and execs. Nothing it mounts is ever visible on the host, and it all
//! disappears with the namespace when the last process exits.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use super::spec::{overlay_options, MountSpec, Spec, EXEC_FAILED, SETUP_FAILED, SETUP_PREFIX};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::SFlag;

use super::profile;
use crate::sys::ns::{self, ForkResult, Linux, Sys};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_child(_: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        ns::kill(pid, Signal::SIGKILL);
    }
}

fn fail(code: i32, message: String) -> ! {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{SETUP_PREFIX}{message}");
    std::process::exit(code)
}

/// Entry point of `strata __sandbox SPEC`. Never returns.
pub fn main(spec_path: &Path) -> ! {
    // Whatever reached this process besides 0, 1 and 2 goes at the exec.
    crate::sys::cloexec_inherited();
    let spec: Spec = match fs::read(spec_path).map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(spec)) => spec,
        Ok(Err(e)) => fail(SETUP_FAILED, format!("bad spec `{}`: {e}", spec_path.display())),
        Err(e) => fail(SETUP_FAILED, format!("cannot read spec `{}`: {e}", spec_path.display())),
    };
    // If strata itself dies (SIGKILL, a crash), the step dies with it.
    let sys = &Linux;
    if let Err(e) = sys.die_with_parent() {
        fail(SETUP_FAILED, format!("set parent-death signal: {e}"));
    }
    if let Err(e) = setup_outside(sys, &spec) {
        fail(SETUP_FAILED, e.to_string());
    }
    ns::on_signal(Signal::SIGTERM, kill_child);
    if spec.interactive {
        // The terminal sends Ctrl-C to the command itself; PID 1 resets it before exec.
        ns::ignore_signal(Signal::SIGINT);
    } else {
        ns::on_signal(Signal::SIGINT, kill_child);
    }
    let pid = match ns::fork() {
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        Ok(ForkResult::Child) => pid1(sys, &spec),
        Err(e) => fail(SETUP_FAILED, format!("fork: {e}")),
    };
    CHILD.store(pid, Ordering::SeqCst);
    match ns::wait_exit_code(pid) {
        Ok(code) => std::process::exit(code),
        Err(e) => fail(SETUP_FAILED, format!("wait: {e}")),
    }
}

/// Why setting a sandbox up failed; the sandbox prints it and exits 125.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret environment variable `{0}` is not set")]
    SecretUnset(String),
}

fn ctx(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SetupError {
    let what = what.into();
    move |source| SetupError::Sys { what, source }
}

fn inside(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// Namespaces, the overlay and every mount that does not need the new pid namespace.
fn setup_outside(sys: &dyn Sys, spec: &Spec) -> Result<(), SetupError> {
    // No cgroup namespace: on this kind of host (cgroup v1) creating one
    // cost 3 ms per step, and Docker's default there is the host's too.
    let mut flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if !spec.network_host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    sys.unshare(flags).map_err(ctx("unshare namespaces"))?;
    sys.mount(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
        .map_err(ctx("make mounts private"))?;
    if !spec.network_host {
        sys.loopback_up().map_err(ctx("bring up lo"))?;
    }
    sys.sethostname(&spec.hostname).map_err(ctx("set hostname"))?;

    // Short names for the lower layers keep the options within one page.
    let merged = spec.merged();
    mount_layers(
        sys,
        spec.rootless,
        &spec.dir.join("l"),
        &spec.lowers,
        Some((&spec.upper(), &spec.work())),
        &merged,
    )?;

    let secrets_dir = spec.dir.join("secrets");
    for (i, m) in spec.mounts.iter().enumerate() {
        let target = inside(&merged, m.target());
        match m {
            MountSpec::Bind { source, readonly, .. } => {
                let what = || format!("mount `{}` at `{}`", source.display(), m.target());
                let src = source
                    .to_str()
                    .ok_or_else(|| ctx(what())(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
                sys.mount(Some(src), &target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                    .map_err(ctx(what()))?;
                // No device node of a cache (or any bound path) opens: a
                // restored cache or a host directory cannot hand a step the
                // host's disk. Docker's device cgroup refuses them the same.
                let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV;
                if *readonly {
                    flags |= MsFlags::MS_RDONLY;
                }
                let kept = sys.mount_flags(&target).map_err(ctx(what()))?;
                sys.mount(None, &target, None, flags | kept, None)
                    .map_err(ctx(what()))?;
            }
            MountSpec::Layers { lowers, subpath, .. } => {
                let view = spec.dir.join(format!("view{i}"));
                mount_layers(sys, spec.rootless, &spec.dir.join(format!("l{i}")), lowers, None, &view)?;
                sys.bind(&inside(&view, subpath), &target, true)
                    .map_err(ctx(format!("mount `{subpath}` at `{}`", m.target())))?;
            }
            MountSpec::Tmpfs { size, .. } => {
                let data = size.map(|s| format!("size={s}"));
                sys.mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    data.as_deref(),
                )
                .map_err(ctx(format!("mount tmpfs at `{}`", m.target())))?
            }
            MountSpec::SecretEnv { .. } | MountSpec::SecretFile { .. } => {
                if !secrets_dir.exists() {
                    fs::create_dir(&secrets_dir).map_err(ctx("create secrets dir"))?;
                    sys.mount(
                        Some("tmpfs"),
                        &secrets_dir,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                        Some("mode=0700,size=1m"),
                    )
                    .map_err(ctx("mount secrets tmpfs"))?;
                }
                let value = match m {
                    MountSpec::SecretEnv { var, .. } => {
                        let value = std::env::var_os(var).ok_or_else(|| SetupError::SecretUnset(var.clone()))?;
                        std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec()
                    }
                    MountSpec::SecretFile { source, .. } => {
                        fs::read(source).map_err(ctx(format!("read secret `{}`", source.display())))?
                    }
                    _ => unreachable!("secret mounts only"),
                };
                // In the sandbox's own tmpfs, readable by the step's user alone.
                let file = secrets_dir.join(i.to_string());
                fs::write(&file, value).map_err(ctx("write secret"))?;
                let access = match m {
                    MountSpec::SecretEnv { access, .. } | MountSpec::SecretFile { access, .. } => *access,
                    _ => unreachable!("secret mounts only"),
                };
                sys.lchown(&file, access.uid, access.gid).map_err(ctx("chown secret"))?;
                sys.chmod(&file, access.mode).map_err(ctx("chmod secret"))?;
                sys.bind(&file, &target, true)
                    .map_err(ctx(format!("mount secret at `{}`", m.target())))?;
            }
        }
    }
    Ok(())
}

/// `lowers` (bottom first) with each layer once, at its topmost place. Two
/// equal steps make one layer (two empty ones most often), and overlay
/// refuses a directory twice in `lowerdir` ("conflicting lowerdir path",
/// ELOOP). Dropping the lower copy changes nothing: every entry, whiteout
/// and opaque directory it has, the higher copy has too, above it.
fn distinct_lowers(lowers: &[PathBuf]) -> Vec<&PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<&PathBuf> = lowers.iter().rev().filter(|l| seen.insert(*l)).collect();
    kept.reverse();
    kept
}

/// Mounts `lowers` (bottom first) as an overlay at `at`: read-write with an
/// upper and work dir, else read-only.
fn mount_layers(
    sys: &dyn Sys,
    rootless: bool,
    links: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    at: &Path,
) -> Result<(), SetupError> {
    fs::create_dir_all(links).map_err(ctx("create layer links"))?;
    let mut names = Vec::new();
    for (i, lower) in distinct_lowers(lowers).into_iter().enumerate() {
        let name = i.to_string();
        std::os::unix::fs::symlink(lower, links.join(&name)).map_err(ctx("link layer"))?;
        names.push(name);
    }
    // Overlay needs one lower (two when read-only): empty directories stand in.
    while names.len() < if upper.is_some() { 1 } else { 2 } {
        let name = format!("e{}", names.len());
        fs::create_dir(links.join(&name)).map_err(ctx("create empty layer"))?;
        names.insert(0, name);
    }
    fs::create_dir_all(at).map_err(ctx("create mount point"))?;
    // nodev: a device node a layer carries (a hostile base's block device)
    // does not open; /dev is a tmpfs of the sandbox's own with its six nodes.
    let (mut options, flags) = match upper {
        Some((u, w)) => (
            overlay_options(&names, &u.display().to_string(), &w.display().to_string()),
            MsFlags::MS_NODEV,
        ),
        None => {
            let lowers: Vec<&str> = names.iter().rev().map(String::as_str).collect();
            (
                format!("lowerdir={},index=off,redirect_dir=off,metacopy=off", lowers.join(":")),
                MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            )
        }
    };
    if rootless {
        // With `userxattr`, overlay takes no redirects to follow.
        options = options.replace("redirect_dir=off", "redirect_dir=nofollow") + ",userxattr";
    }
    let cwd = std::env::current_dir().map_err(ctx("getcwd"))?;
    sys.chdir(links).map_err(ctx("enter layer links"))?;
    let result = sys.mount(Some("overlay"), at, Some("overlay"), flags, Some(&options));
    sys.chdir(&cwd).map_err(ctx("leave layer links"))?;
    let what = if rootless {
        format!(
            "mount overlay of {} layers (rootless builds need Linux 5.11 or later, where overlay can be mounted in a user namespace; this is {})",
            lowers.len(),
            fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|r| format!("Linux {}", r.trim()))
                .unwrap_or_else(|_| "an unknown kernel".into())
        )
    } else {
        format!("mount overlay of {} layers", lowers.len())
    };
    result.map_err(ctx(what))
}

/// PID 1 of the new pid namespace: /proc, /dev, pivot_root, user, exec.
fn pid1(sys: &dyn Sys, spec: &Spec) -> ! {
    if let Err(e) = setup_inside(sys, spec) {
        fail(SETUP_FAILED, e.to_string());
    }
    let path = match find_executable(&spec.argv[0], &spec.env) {
        Some(p) => p,
        None => fail(EXEC_FAILED, format!("`{}`: command not found", spec.argv[0])),
    };
    ns::reset_signals();
    let err = ns::execve(&path, &spec.argv, &spec.env);
    fail(EXEC_FAILED, format!("cannot run `{}`: {err}", spec.argv[0]))
}

fn setup_inside(sys: &dyn Sys, spec: &Spec) -> Result<(), SetupError> {
    mount_dev_and_proc(sys, spec)?;
    enter_root(sys, spec)
}

/// /proc, a read-only /sys when asked, a minimal /dev: mounted inside the
/// new pid namespace, before the pivot.
fn mount_dev_and_proc(sys: &dyn Sys, spec: &Spec) -> Result<(), SetupError> {
    sys.die_with_parent().map_err(ctx("set parent-death signal"))?;
    let root = spec.merged();
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(Some("proc"), &root.join("proc"), Some("proc"), nosuid, None)
        .map_err(ctx("mount /proc"))?;
    if spec.sysfs && spec.rootless && spec.network_host {
        // sysfs can only be mounted by the owner of the network namespace.
        sys.bind(Path::new("/sys"), &root.join("sys"), true)
            .map_err(ctx("mount /sys"))?;
    } else if spec.sysfs {
        sys.mount(
            Some("sysfs"),
            &root.join("sys"),
            Some("sysfs"),
            nosuid | MsFlags::MS_RDONLY,
            None,
        )
        .map_err(ctx("mount /sys"))?;
    }
    let dev = root.join("dev");
    sys.mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(ctx("mount /dev"))?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let node = dev.join(name);
        if spec.rootless {
            // No device nodes in a user namespace: the host's, bound.
            fs::File::create(&node).map_err(ctx(format!("create /dev/{name}")))?;
            sys.bind(&Path::new("/dev").join(name), &node, false)
                .map_err(ctx(format!("mount /dev/{name}")))?;
            continue;
        }
        sys.mknod(&node, SFlag::S_IFCHR, 0o666, major, minor)
            .map_err(ctx(format!("create /dev/{name}")))?;
        sys.chmod(&node, 0o666).map_err(ctx(format!("chmod /dev/{name}")))?;
    }
    for dir in ["pts", "shm"] {
        fs::create_dir(dev.join(dir)).map_err(ctx(format!("create /dev/{dir}")))?;
    }
    sys.mount(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(ctx("mount /dev/pts"))?;
    sys.mount(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        nosuid,
        Some("mode=1777,size=65536k"),
    )
    .map_err(ctx("mount /dev/shm"))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link)).map_err(ctx(format!("link /dev/{link}")))?;
    }
    if !spec.insecure {
        profile::protect_paths(sys, &root).map_err(ctx("mask /proc and /sys paths"))?;
    }
    Ok(())
}

/// Pivots into the overlay, takes the security profile (the seccomp filter
/// while the capability to install it is still there, then the capabilities
/// cut to the kept set), then becomes the step's user in its workdir.
fn enter_root(sys: &dyn Sys, spec: &Spec) -> Result<(), SetupError> {
    sys.pivot_into(&spec.merged()).map_err(ctx("pivot_root"))?;
    sys.umask(0o022);
    fs::create_dir_all(&spec.cwd).map_err(ctx(format!("create workdir `{}`", spec.cwd)))?;
    if !spec.insecure {
        for filter in profile::seccomp_filters() {
            sys.install_seccomp(&filter)
                .map_err(ctx("install the seccomp filter"))?;
        }
        sys.drop_capabilities(profile::KEPT_CAPABILITIES)
            .map_err(ctx("drop capabilities"))?;
    }
    sys.set_ids(spec.uid, spec.gid, &spec.groups)
        .map_err(ctx(format!("switch to user {}:{}", spec.uid, spec.gid)))?;
    // Credential changes clear the parent-death signal: set it again.
    sys.die_with_parent().map_err(ctx("set parent-death signal"))?;
    sys.chdir(Path::new(&spec.cwd))
        .map_err(ctx(format!("enter workdir `{}`", spec.cwd)))
}

/// Looks `cmd` up in the step's PATH (inside the new root).
fn find_executable(cmd: &str, env: &[String]) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file() && ns::is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, Recording};

    #[test]
    fn a_layer_that_appears_twice_is_mounted_once_at_its_topmost_place() {
        let l = |n: &str| PathBuf::from(format!("/s/layers/{n}"));
        let lowers = vec![l("base"), l("empty"), l("b"), l("empty"), l("c"), l("empty")];
        let kept: Vec<&PathBuf> = distinct_lowers(&lowers);
        assert_eq!(kept, [&l("base"), &l("b"), &l("c"), &l("empty")]);
        assert_eq!(distinct_lowers(&[l("a"), l("a")]), [&l("a")]);
    }

    fn spec(dir: &Path) -> Spec {
        Spec {
            lowers: vec![dir.join("layers/a"), dir.join("layers/b")],
            dir: dir.join("step"),
            argv: vec!["/bin/true".into()],
            env: Vec::new(),
            cwd: "/".into(),
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
            network_host: false,
            hostname: "strata".into(),
            mounts: vec![MountSpec::Bind {
                source: dir.join("cache"),
                target: "/root/.cache".into(),
                readonly: true,
            }],
            sysfs: false,
            interactive: false,
            insecure: false,
            rootless: false,
        }
    }

    #[test]
    fn outside_the_pid_namespace_the_sandbox_unshares_then_mounts_the_overlay_then_the_steps_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let sys = Recording::new(dir.path());
        setup_outside(&sys, &spec).unwrap();
        let cwd = std::env::current_dir().unwrap().display().to_string();
        assert_eq!(
            sys.calls(),
            vec![
                Call::Unshare(
                    CloneFlags::CLONE_NEWNS
                        | CloneFlags::CLONE_NEWPID
                        | CloneFlags::CLONE_NEWUTS
                        | CloneFlags::CLONE_NEWIPC
                        | CloneFlags::CLONE_NEWNET
                ),
                Call::mount(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None),
                Call::LoopbackUp,
                Call::Hostname("strata".into()),
                Call::Chdir("/step/l".into()),
                Call::mount(
                    Some("overlay"),
                    "/step/merged",
                    Some("overlay"),
                    MsFlags::MS_NODEV,
                    Some(
                        "lowerdir=1:0,upperdir=/step/upper,workdir=/step/work,index=off,redirect_dir=off,metacopy=off"
                    )
                ),
                Call::Chdir(cwd),
                Call::mount(
                    Some("/cache"),
                    "/step/merged/root/.cache",
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None
                ),
                Call::mount(
                    None,
                    "/step/merged/root/.cache",
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | MsFlags::MS_RDONLY,
                    None
                ),
            ]
        );
        // The short names point at the layers, bottom first.
        assert_eq!(
            fs::read_link(spec.dir.join("l/0")).unwrap(),
            dir.path().join("layers/a")
        );
    }

    #[test]
    fn inside_the_pid_namespace_proc_and_a_minimal_dev_are_mounted_without_suid_or_devices() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        fs::create_dir_all(spec.merged().join("dev")).unwrap();
        let sys = Recording::new(dir.path());
        mount_dev_and_proc(&sys, &spec).unwrap();
        let calls = sys.calls();
        let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        assert_eq!(calls[0], Call::DieWithParent);
        assert_eq!(
            calls[1],
            Call::mount(Some("proc"), "/step/merged/proc", Some("proc"), nosuid, None)
        );
        assert_eq!(
            calls[2],
            Call::mount(
                Some("tmpfs"),
                "/step/merged/dev",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                Some("mode=755,size=65536k")
            )
        );
        let nodes: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::Mknod(..))).collect();
        assert_eq!(nodes.len(), 6);
        assert!(
            nodes
                .iter()
                .all(|c| matches!(c, Call::Mknod(_, kind, 0o666, _, _) if *kind == SFlag::S_IFCHR)),
            "only character devices: {nodes:?}"
        );
        assert_eq!(
            calls.last().unwrap(),
            &Call::mount(
                Some("shm"),
                "/step/merged/dev/shm",
                Some("tmpfs"),
                nosuid,
                Some("mode=1777,size=65536k")
            )
        );
        assert!(!calls
            .iter()
            .any(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs")));
    }
}
