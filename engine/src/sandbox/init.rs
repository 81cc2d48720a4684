//! The sandbox process (`strata __sandbox SPEC`), started by the engine for
//! each RUN. It runs in fresh mount, pid, uts, ipc (and network)
//! namespaces: it mounts the overlay and the step's mounts in its private
//! mount namespace, forks the command as PID 1 of the new pid namespace,
//! which mounts /proc and /dev, pivots into the overlay, drops to the step's
//! user and execs. Nothing it mounts is ever visible on the host, and it all
//! disappears with the namespace when the last process exits.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use super::spec::{overlay_options, MountSpec, Spec, EXEC_FAILED, SETUP_FAILED, SETUP_PREFIX};
use crate::sys::ns as sys;

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_child(_: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        sys::kill(pid, libc::SIGKILL);
    }
}

fn fail(code: i32, message: String) -> ! {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{SETUP_PREFIX}{message}");
    std::process::exit(code)
}

/// Entry point of `strata __sandbox SPEC`. Never returns.
pub fn main(spec_path: &Path) -> ! {
    let spec: Spec = match fs::read(spec_path).map(|b| serde_json::from_slice(&b)) {
        Ok(Ok(spec)) => spec,
        Ok(Err(e)) => fail(SETUP_FAILED, format!("bad spec `{}`: {e}", spec_path.display())),
        Err(e) => fail(SETUP_FAILED, format!("cannot read spec `{}`: {e}", spec_path.display())),
    };
    // If strata itself dies (SIGKILL, a crash), the step dies with it.
    if let Err(e) = sys::die_with_parent() {
        fail(SETUP_FAILED, format!("set parent-death signal: {e}"));
    }
    if let Err(e) = setup_outside(&spec) {
        fail(SETUP_FAILED, e);
    }
    sys::on_signal(libc::SIGTERM, kill_child);
    if spec.interactive {
        // The terminal sends Ctrl-C to the command itself; PID 1 resets it before exec.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    } else {
        sys::on_signal(libc::SIGINT, kill_child);
    }
    let pid = match sys::fork() {
        Ok(pid) => pid,
        Err(e) => fail(SETUP_FAILED, format!("fork: {e}")),
    };
    if pid == 0 {
        pid1(&spec);
    }
    CHILD.store(pid, Ordering::SeqCst);
    let status = match sys::waitpid(pid) {
        Ok(s) => s,
        Err(e) => fail(SETUP_FAILED, format!("wait: {e}")),
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    std::process::exit(code)
}

fn ctx(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> String {
    let what = what.into();
    move |e| format!("{what}: {e}")
}

fn inside(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// Namespaces, the overlay and every mount that does not need the new pid namespace.
fn setup_outside(spec: &Spec) -> Result<(), String> {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if !spec.network_host {
        flags |= libc::CLONE_NEWNET;
    }
    sys::unshare(flags).map_err(ctx("unshare namespaces"))?;
    sys::mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(ctx("make mounts private"))?;
    if !spec.network_host {
        sys::loopback_up().map_err(ctx("bring up lo"))?;
    }
    sys::sethostname(&spec.hostname).map_err(ctx("set hostname"))?;

    // Short names for the lower layers keep the options within one page.
    let merged = spec.merged();
    mount_layers(
        &spec.dir.join("l"),
        &spec.lowers,
        Some((&spec.upper(), &spec.work())),
        &merged,
    )?;

    let secrets_dir = spec.dir.join("secrets");
    for (i, m) in spec.mounts.iter().enumerate() {
        let target = inside(&merged, m.target());
        match m {
            MountSpec::Bind { source, readonly, .. } => sys::bind(source, &target, *readonly).map_err(ctx(format!(
                "mount `{}` at `{}`",
                source.display(),
                m.target()
            )))?,
            MountSpec::Layers { lowers, subpath, .. } => {
                let view = spec.dir.join(format!("view{i}"));
                mount_layers(&spec.dir.join(format!("l{i}")), lowers, None, &view)?;
                sys::bind(&inside(&view, subpath), &target, true)
                    .map_err(ctx(format!("mount `{subpath}` at `{}`", m.target())))?;
            }
            MountSpec::SecretEnv { var, .. } => {
                if !secrets_dir.exists() {
                    fs::create_dir(&secrets_dir).map_err(ctx("create secrets dir"))?;
                    sys::mount(
                        Some("tmpfs"),
                        &secrets_dir,
                        Some("tmpfs"),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        Some("mode=0700,size=1m"),
                    )
                    .map_err(ctx("mount secrets tmpfs"))?;
                }
                let value =
                    std::env::var_os(var).ok_or_else(|| format!("secret environment variable `{var}` is not set"))?;
                let file = secrets_dir.join(i.to_string());
                fs::write(&file, std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()))
                    .map_err(ctx("write secret"))?;
                fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).map_err(ctx("chmod secret"))?;
                sys::bind(&file, &target, true).map_err(ctx(format!("mount secret at `{}`", m.target())))?;
            }
        }
    }
    Ok(())
}

/// Mounts `lowers` (bottom first) as an overlay at `at`: read-write with an
/// upper and work dir, else read-only.
fn mount_layers(links: &Path, lowers: &[PathBuf], upper: Option<(&Path, &Path)>, at: &Path) -> Result<(), String> {
    fs::create_dir_all(links).map_err(ctx("create layer links"))?;
    let mut names = Vec::new();
    for (i, lower) in lowers.iter().enumerate() {
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
    let (options, flags) = match upper {
        Some((u, w)) => (
            overlay_options(&names, &u.display().to_string(), &w.display().to_string()),
            0,
        ),
        None => {
            let lowers: Vec<&str> = names.iter().rev().map(String::as_str).collect();
            (
                format!("lowerdir={},index=off,redirect_dir=off,metacopy=off", lowers.join(":")),
                libc::MS_RDONLY,
            )
        }
    };
    let cwd = std::env::current_dir().map_err(ctx("getcwd"))?;
    std::env::set_current_dir(links).map_err(ctx("enter layer links"))?;
    let result = sys::mount(Some("overlay"), at, Some("overlay"), flags, Some(&options));
    std::env::set_current_dir(cwd).map_err(ctx("leave layer links"))?;
    result.map_err(ctx(format!("mount overlay of {} layers", lowers.len())))
}

/// PID 1 of the new pid namespace: /proc, /dev, pivot_root, user, exec.
fn pid1(spec: &Spec) -> ! {
    if let Err(e) = setup_inside(spec) {
        fail(SETUP_FAILED, e);
    }
    let path = match find_executable(&spec.argv[0], &spec.env) {
        Some(p) => p,
        None => fail(EXEC_FAILED, format!("`{}`: command not found", spec.argv[0])),
    };
    sys::reset_signals();
    let err = sys::execve(&path, &spec.argv, &spec.env);
    fail(
        EXEC_FAILED,
        format!("cannot run `{}`: {}", spec.argv[0], sys::errno_text(&err)),
    )
}

fn setup_inside(spec: &Spec) -> Result<(), String> {
    sys::die_with_parent().map_err(ctx("set parent-death signal"))?;
    let root = spec.merged();
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    sys::mount(Some("proc"), &root.join("proc"), Some("proc"), nosuid, None).map_err(ctx("mount /proc"))?;
    if spec.sysfs {
        sys::mount(
            Some("sysfs"),
            &root.join("sys"),
            Some("sysfs"),
            nosuid | libc::MS_RDONLY,
            None,
        )
        .map_err(ctx("mount /sys"))?;
    }
    let dev = root.join("dev");
    sys::mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
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
        sys::mknod(&node, libc::S_IFCHR | 0o666, major, minor).map_err(ctx(format!("create /dev/{name}")))?;
        fs::set_permissions(&node, fs::Permissions::from_mode(0o666)).map_err(ctx(format!("chmod /dev/{name}")))?;
    }
    for dir in ["pts", "shm"] {
        fs::create_dir(dev.join(dir)).map_err(ctx(format!("create /dev/{dir}")))?;
    }
    sys::mount(
        Some("devpts"),
        &dev.join("pts"),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(ctx("mount /dev/pts"))?;
    sys::mount(
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

    sys::pivot_into(&root).map_err(ctx("pivot_root"))?;
    sys::umask(0o022);
    fs::create_dir_all(&spec.cwd).map_err(ctx(format!("create workdir `{}`", spec.cwd)))?;
    sys::set_ids(spec.uid, spec.gid, &spec.groups).map_err(ctx(format!("switch to user {}:{}", spec.uid, spec.gid)))?;
    // Credential changes clear the parent-death signal: set it again.
    sys::die_with_parent().map_err(ctx("set parent-death signal"))?;
    std::env::set_current_dir(&spec.cwd).map_err(ctx(format!("enter workdir `{}`", spec.cwd)))
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
        .find(|p| p.is_file() && sys::is_executable(p))
}
