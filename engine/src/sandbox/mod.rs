//! RUN steps. The engine side (this file) prepares a step: the user, the
//! environment, the mounts and their stub mount points, a spec for the
//! sandbox process; it starts `strata __sandbox SPEC` in its own process
//! group, streams its output, enforces the timeout and cancellation (killing
//! the whole group; the pid namespace takes every descendant with it), and
//! turns the overlay's upperdir into the step's layer. `init.rs` is the
//! sandbox process itself, `sys.rs` every kernel call it makes.

pub mod init;
mod spec;

pub use spec::{MountSpec, Spec};

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::events::Event;
use crate::fsview::{self, View};
use crate::graph::{Network, Node, RunOp, SecretSource};
use crate::layer::{remove_path, OPAQUE_XATTR};
use crate::step::ExecCtx;
use crate::store::{LayerRef, Record, State};
use crate::sys::ns;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const TAIL_LINES: usize = 20;

fn input_error(node: &Node, message: impl Into<String>) -> Error {
    Error::Input {
        origin: node.origin.clone(),
        message: message.into(),
    }
}

/// What a stub mount point is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StubKind {
    Dir,
    File,
}

/// Executes a `run` node on top of `parent` and returns its record.
pub fn run_step(
    ctx: &ExecCtx<'_>,
    node: &Node,
    run: &RunOp,
    parent: &State,
    states: &std::collections::HashMap<usize, State>,
) -> Result<Record> {
    let store = ctx.store;
    let exe = ctx.sandbox_exe(node, "`run`")?;
    let lowers = parent.layer_dirs(store);
    let view = View { layers: &lowers };

    // User and environment, as the image defines them.
    let Identity { uid, gid, env, cwd } = identity(&view, &parent.config, run.user.as_deref(), &run.env, None)
        .map_err(|e| input_error(node, format!("user: {e}")))?;

    let tmp = scratch(store)?;
    let dir = tmp.path().to_path_buf();
    let upper = dir.join("upper");

    // Mounts, their targets resolved through the image's symlinks.
    let resolve = |target: &str| in_image(&view, target);
    let mut mounts: Vec<(MountSpec, StubKind)> = Vec::new();
    let mut cache_locks: Vec<File> = Vec::new();
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for cache in &run.caches {
        let host = store.cache_mount_dir(&cache.id);
        fs::create_dir_all(&host).map_err(Error::io("create cache directory", &host))?;
        if !cache.shared {
            cache_locks.push(store.lock(&format!(
                "cache-{}",
                host.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ))?);
        }
        mounts.push((
            MountSpec::Bind {
                source: host,
                target: resolve(&cache.target),
                readonly: false,
            },
            StubKind::Dir,
        ));
    }
    for secret in &run.secrets {
        let target = resolve(&secret.target);
        match &secret.source {
            SecretSource::File(path) => {
                let value = fs::read(path).map_err(|e| {
                    input_error(
                        node,
                        format!("secret `{}`: cannot read `{}`: {e}", secret.id, path.display()),
                    )
                })?;
                secrets.push(value);
                mounts.push((
                    MountSpec::Bind {
                        source: path.clone(),
                        target,
                        readonly: true,
                    },
                    StubKind::File,
                ));
            }
            SecretSource::Env(var) => {
                let value = std::env::var_os(var).ok_or_else(|| {
                    input_error(
                        node,
                        format!("secret `{}`: environment variable `{var}` is not set", secret.id),
                    )
                })?;
                secrets.push(std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec());
                mounts.push((
                    MountSpec::SecretEnv {
                        var: var.clone(),
                        target,
                    },
                    StubKind::File,
                ));
            }
        }
    }
    for bind in &run.mounts {
        let source = &states[&bind.node];
        let source_layers = source.layer_dirs(store);
        let source_view = View { layers: &source_layers };
        let comps = source_view
            .resolve(&bind.path, true)
            .filter(|c| source_view.lookup(c).is_some())
            .ok_or_else(|| {
                input_error(
                    node,
                    format!("mount source `{}` does not exist in its state", bind.path),
                )
            })?;
        let is_dir = source_view.lookup(&comps).is_some_and(|(_, m)| m.is_dir());
        let subpath = format!("/{}", comps.join("/"));
        let kind = if is_dir { StubKind::Dir } else { StubKind::File };
        mounts.push((
            MountSpec::Layers {
                lowers: source_layers.clone(),
                subpath,
                target: resolve(&bind.target),
            },
            kind,
        ));
    }
    if run.network == Network::Host {
        mounts.extend(host_name_files(&resolve));
    }
    // Mount points the image lacks are created in the upperdir now, and
    // removed again afterwards, so they never reach the layer.
    let (stubs, sysfs) = mount_points(&upper, &view, &mounts)?;

    let spec = Spec {
        lowers: lowers.clone(),
        dir: dir.clone(),
        argv: run.argv.clone(),
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid,
        gid,
        groups: vec![gid],
        network_host: run.network == Network::Host,
        hostname: "strata".into(),
        mounts: mounts.into_iter().map(|(m, _)| m).collect(),
        sysfs,
        interactive: false,
    };
    let spec_path = dir.join("spec.json");
    fs::write(&spec_path, serde_json::to_vec(&spec).expect("spec serialises"))
        .map_err(Error::io("write", &spec_path))?;

    let outcome = launch(ctx, &exe, &spec_path, run.timeout, &secrets)?;
    drop(cache_locks);
    check(node, &run.argv, run.timeout, outcome)?;

    for stub in stubs.iter().rev() {
        remove_if_empty_stub(stub)?;
    }
    strip_overlay_xattrs(&upper)?;
    fsview::clamp_mtimes(&upper, ctx.opts.epoch)?;
    let diff_id = crate::store::write_layer(store, &upper, ctx.opts.compression, ctx.opts.epoch, &|bytes| {
        ctx.exporting(bytes)
    })?;
    Ok(Record {
        layers: vec![LayerRef { diff_id }],
        config: None,
    })
}

/// Turns a finished sandbox into `Ok` or the step's error.
fn check(node: &Node, argv: &[String], timeout: Option<u64>, outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Exited(0, _) => Ok(()),
        Outcome::Exited(code, tail) => {
            // Our own failures say so on their last line; a shell's 127 is the command's.
            let ours = code == spec::SETUP_FAILED || code == spec::EXEC_FAILED;
            let setup = tail
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix(spec::SETUP_PREFIX))
                .filter(|_| ours);
            let (message, detail) = if let Some(reason) = setup {
                (format!("`run` could not start: {reason}"), tail.join("\n"))
            } else {
                (
                    format!("`run` failed with exit code {code}: {}", shown(argv)),
                    tail.join("\n"),
                )
            };
            Err(Error::Step {
                origin: node.origin.clone(),
                message,
                detail: indent_tail(&detail),
            })
        }
        Outcome::TimedOut(tail) => Err(Error::Step {
            origin: node.origin.clone(),
            message: format!("`run` timed out after {}s: {}", timeout.unwrap_or(0), shown(argv)),
            detail: indent_tail(&tail.join("\n")),
        }),
        Outcome::Cancelled => Err(Error::Interrupted),
    }
}

/// Runs `argv` as root, network off, on an overlay of `lowers` (bottom
/// first; may be none) under the upper directory `dir/upper` (which may
/// already hold files); `binds` are `(host path, target, read-only)`.
/// Afterwards the upper directory is a layer's worth of files (stubs
/// removed, overlay xattrs gone).
pub fn run_in_root(
    ctx: &ExecCtx<'_>,
    node: &Node,
    dir: &Path,
    lowers: Vec<PathBuf>,
    argv: Vec<String>,
    env: Vec<String>,
    binds: Vec<(PathBuf, String, bool)>,
) -> Result<()> {
    let exe = ctx.sandbox_exe(node, "building this base")?;
    for sub in ["work", "merged"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
    }
    let upper = dir.join("upper");
    let view = View { layers: &lowers };
    let mut stubs = Vec::new();
    let mut mounts = Vec::new();
    for (target, kind) in [("/proc", StubKind::Dir), ("/dev", StubKind::Dir)] {
        make_stub(&upper, &view, target, kind, &mut stubs)?;
    }
    for (source, target, readonly) in binds {
        let kind = if source.is_dir() { StubKind::Dir } else { StubKind::File };
        make_stub(&upper, &view, &target, kind, &mut stubs)?;
        mounts.push(MountSpec::Bind {
            source,
            target,
            readonly,
        });
    }
    let spec = Spec {
        lowers,
        dir: dir.to_path_buf(),
        argv: argv.clone(),
        env,
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        groups: vec![0],
        network_host: false,
        hostname: "strata".into(),
        mounts,
        sysfs: false,
        interactive: false,
    };
    let spec_path = dir.join("spec.json");
    fs::write(&spec_path, serde_json::to_vec(&spec).expect("spec serialises"))
        .map_err(Error::io("write", &spec_path))?;
    let outcome = launch(ctx, &exe, &spec_path, None, &[])?;
    check(node, &argv, None, outcome)?;
    for stub in stubs.iter().rev() {
        remove_if_empty_stub(stub)?;
    }
    strip_overlay_xattrs(&upper)
}

/// What `strata run` asks for.
#[derive(Clone, Debug, Default)]
pub struct RunImage {
    /// The command; empty means the image's entrypoint and cmd.
    pub command: Vec<String>,
    /// `-e NAME=VALUE`, over the image's environment.
    pub env: Vec<(String, String)>,
    /// `-v HOST:TARGET[:ro]`.
    pub binds: Vec<(PathBuf, String, bool)>,
    pub network_host: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// Standard input is a terminal (Ctrl-C goes to the command).
    pub interactive: bool,
}

/// A finished `strata run`: the command's exit status, and the scratch
/// directory whose `upper/` holds what it changed (for `--commit`).
pub struct RunResult {
    pub code: i32,
    pub scratch: tempfile::TempDir,
}

/// Runs a command in an image (its layers read-only, a throwaway read-write
/// layer on top), with the caller's standard input, output and error.
pub fn run_image(store: &crate::store::Store, exe: &Path, image: &State, req: &RunImage) -> Result<RunResult> {
    let input = |message: String| Error::Input {
        origin: Default::default(),
        message,
    };
    let lowers = image.layer_dirs(store);
    if let Some(missing) = image.config.rootfs.diff_ids.iter().find(|d| !store.has_layer(d)) {
        return Err(input(format!(
            "layer {missing} of the image is not unpacked in the store (was it collected? build or pull it again)"
        )));
    }
    let view = View { layers: &lowers };
    let config = &image.config.config;
    let argv: Vec<String> = if req.command.is_empty() {
        config
            .entrypoint
            .iter()
            .flatten()
            .chain(config.cmd.iter().flatten())
            .cloned()
            .collect()
    } else {
        let mut v: Vec<String> = config.entrypoint.iter().flatten().cloned().collect();
        if v.is_empty() {
            req.command.clone()
        } else {
            v.extend(req.command.iter().cloned());
            v
        }
    };
    if argv.is_empty() {
        return Err(input(
            "the image has no entrypoint or cmd: give a command after `--`".into(),
        ));
    }
    let Identity { uid, gid, mut env, cwd } = identity(
        &view,
        &image.config,
        req.user.as_deref(),
        &req.env,
        req.workdir.as_deref(),
    )
    .map_err(|e| input(format!("user: {e}")))?;
    if req.interactive && !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), std::env::var("TERM").unwrap_or_else(|_| "xterm".into())));
    }

    let scratch = scratch(store)?;
    let dir = scratch.path().to_path_buf();
    let upper = dir.join("upper");
    let resolve = |target: &str| in_image(&view, target);
    let mut mounts: Vec<(MountSpec, StubKind)> = Vec::new();
    for (source, target, readonly) in &req.binds {
        let source = fs::canonicalize(source).map_err(|e| input(format!("-v `{}`: {e}", source.display())))?;
        let kind = if source.is_dir() { StubKind::Dir } else { StubKind::File };
        mounts.push((
            MountSpec::Bind {
                source,
                target: resolve(target),
                readonly: *readonly,
            },
            kind,
        ));
    }
    if req.network_host {
        mounts.extend(host_name_files(&resolve));
    }
    let (stubs, sysfs) = mount_points(&upper, &view, &mounts)?;
    let spec = Spec {
        lowers: lowers.clone(),
        dir: dir.clone(),
        argv,
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid,
        gid,
        groups: vec![gid],
        network_host: req.network_host,
        hostname: "strata".into(),
        mounts: mounts.into_iter().map(|(m, _)| m).collect(),
        sysfs,
        interactive: req.interactive,
    };
    let spec_path = dir.join("spec.json");
    fs::write(&spec_path, serde_json::to_vec(&spec).expect("spec serialises"))
        .map_err(Error::io("write", &spec_path))?;
    let status = Command::new(exe)
        .arg("__sandbox")
        .arg(&spec_path)
        .status()
        .map_err(Error::io("start sandbox", exe))?;
    let code = {
        use std::os::unix::process::ExitStatusExt;
        status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    };
    for stub in stubs.iter().rev() {
        remove_if_empty_stub(stub)?;
    }
    strip_overlay_xattrs(&upper)?;
    Ok(RunResult { code, scratch })
}

/// A step's scratch directory, holding `upper/`, `work/` and `merged/`.
fn scratch(store: &crate::store::Store) -> Result<tempfile::TempDir> {
    let tmp = store.tmp_dir()?;
    for sub in ["upper", "work", "merged"] {
        let d = tmp.path().join(sub);
        fs::create_dir(&d).map_err(Error::io("create", &d))?;
    }
    Ok(tmp)
}

/// `target` with the image's symlinks resolved (as the mount must name it).
fn in_image(view: &View<'_>, target: &str) -> String {
    match view.resolve(target, true) {
        Some(comps) => format!("/{}", comps.join("/")),
        None => target.to_string(),
    }
}

/// The host's resolv.conf and hosts, read-only, for a step on the host network.
fn host_name_files(resolve: &dyn Fn(&str) -> String) -> Vec<(MountSpec, StubKind)> {
    ["/etc/resolv.conf", "/etc/hosts"]
        .into_iter()
        .filter(|file| Path::new(file).exists())
        .map(|file| {
            let bind = MountSpec::Bind {
                source: PathBuf::from(file),
                target: resolve(file),
                readonly: true,
            };
            (bind, StubKind::File)
        })
        .collect()
}

/// Makes the mount points (/proc, /dev, every mount's target) the image
/// lacks as stubs in `upper`; returns them, and whether /sys can be mounted.
fn mount_points(upper: &Path, view: &View<'_>, mounts: &[(MountSpec, StubKind)]) -> Result<(Vec<PathBuf>, bool)> {
    let sysfs = view
        .lookup(&fsview::components("/sys"))
        .is_some_and(|(_, m)| m.is_dir());
    let mut stubs: Vec<PathBuf> = Vec::new();
    for (target, kind) in [("/proc", StubKind::Dir), ("/dev", StubKind::Dir)]
        .into_iter()
        .map(|(t, k)| (t.to_string(), k))
        .chain(mounts.iter().map(|(m, k)| (m.target().to_string(), *k)))
    {
        make_stub(upper, view, &target, kind, &mut stubs)?;
    }
    Ok((stubs, sysfs))
}

/// Who a command runs as and with what: the user (the override, else the
/// image's, else root) resolved in the image's passwd and group, the
/// image's environment with `extra` over it (plus `PATH` and `HOME` when
/// unset), and the working directory.
fn identity(
    view: &View<'_>,
    image: &crate::image::ImageConfig,
    user: Option<&str>,
    extra: &[(String, String)],
    workdir: Option<&str>,
) -> std::result::Result<Identity, fsview::UserError> {
    let user_spec = user
        .map(str::to_string)
        .or_else(|| image.config.user.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "0".into());
    let (uid, gid) = fsview::resolve_user(view, &user_spec)?;
    let mut env = image.env_pairs();
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home_of(view, uid)));
    }
    let cwd = workdir
        .map(str::to_string)
        .or_else(|| image.config.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Identity { uid, gid, env, cwd })
}

/// See [`identity`].
struct Identity {
    uid: u32,
    gid: u32,
    env: Vec<(String, String)>,
    cwd: String,
}

fn shown(argv: &[String]) -> String {
    if argv.len() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" {
        argv[2].clone()
    } else {
        argv.join(" ")
    }
}

fn indent_tail(tail: &str) -> String {
    if tail.is_empty() {
        return String::new();
    }
    format!("  ┆ {}", tail.replace('\n', "\n  ┆ "))
}

fn home_of(view: &View<'_>, uid: u32) -> String {
    let passwd = view.read_file("/etc/passwd").unwrap_or_default();
    String::from_utf8_lossy(&passwd)
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2] == uid.to_string() && !f[5].is_empty()).then(|| f[5].to_string())
        })
        .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() })
}

/// Creates `target` (and missing parents) in the upperdir when the image
/// lacks it; new directories copy the attributes the image gives them.
fn make_stub(upper: &Path, view: &View<'_>, target: &str, kind: StubKind, stubs: &mut Vec<PathBuf>) -> Result<()> {
    let comps = fsview::components(target);
    if view.lookup(&comps).is_some() {
        return Ok(());
    }
    let mut host = upper.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        host.push(c);
        let last = i + 1 == comps.len();
        if fsview::exists(&host) {
            continue;
        }
        if last && kind == StubKind::File {
            File::create(&host).map_err(Error::io("create mount point", &host))?;
        } else {
            fs::create_dir(&host).map_err(Error::io("create mount point", &host))?;
            let (mode, uid, gid) = match view.lookup(&comps[..=i]) {
                Some((_, meta)) if meta.is_dir() => (meta.mode() & 0o7777, meta.uid(), meta.gid()),
                _ => (0o755, 0, 0),
            };
            crate::sys::lchown(&host, uid, gid).map_err(Error::io("chown", &host))?;
            fs::set_permissions(&host, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &host))?;
        }
        stubs.push(host.clone());
    }
    Ok(())
}

/// Removes a stub that is still an empty file or directory.
fn remove_if_empty_stub(path: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    let empty = if meta.is_dir() {
        fs::read_dir(path).map_err(Error::io("read", path))?.next().is_none()
    } else {
        meta.is_file() && meta.len() == 0
    };
    if empty {
        remove_path(path)?;
    }
    Ok(())
}

/// Drops overlay's bookkeeping xattrs (origin, impure, …) from an upperdir,
/// keeping only the opaque marker the layer format needs.
fn strip_overlay_xattrs(dir: &Path) -> Result<()> {
    for name in crate::sys::llistxattr(dir).map_err(Error::io("list xattrs of", dir))? {
        if name.starts_with("trusted.overlay.") && name != OPAQUE_XATTR {
            crate::sys::lremovexattr(dir, &name).map_err(Error::io("remove xattr from", dir))?;
        }
    }
    if fs::symlink_metadata(dir).map_err(Error::io("stat", dir))?.is_dir() {
        for entry in fs::read_dir(dir).map_err(Error::io("read", dir))? {
            let entry = entry.map_err(Error::io("read", dir))?;
            strip_overlay_xattrs(&entry.path())?;
        }
    }
    Ok(())
}

enum Outcome {
    Exited(i32, Vec<String>),
    TimedOut(Vec<String>),
    Cancelled,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::io("create pipe for", "run output")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn redact(line: &str, secrets: &[Vec<u8>]) -> String {
    let mut out = line.to_string();
    for s in secrets {
        let s = String::from_utf8_lossy(s);
        let s = s.trim_end_matches('\n');
        if s.len() >= 4 {
            out = out.replace(s, "****");
        }
    }
    out
}

/// Starts the sandbox and waits for it, streaming output and watching for
/// cancellation and the timeout.
fn launch(ctx: &ExecCtx<'_>, exe: &Path, spec: &Path, timeout: Option<u64>, secrets: &[Vec<u8>]) -> Result<Outcome> {
    let (read, write) = pipe()?;
    let write2 = write
        .try_clone()
        .map_err(Error::io("duplicate pipe for", "run output"))?;
    let mut child = Command::new(exe)
        .arg("__sandbox")
        .arg(spec)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .process_group(0)
        .spawn()
        .map_err(Error::io("start sandbox", exe))?;
    let pgid = child.id() as libc::pid_t;
    let node_id = ctx.node;
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));

    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut lines = BufReader::new(File::from(read));
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match lines.by_ref().take(1 << 16).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = redact(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']), secrets);
                        ctx.event(Event::Output {
                            node: node_id,
                            line: line.clone(),
                        });
                        if tail.len() == TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            }
            tail.into_iter().collect::<Vec<String>>()
        });
        let (tx, rx) = mpsc::channel();
        scope.spawn(move || {
            let _ = tx.send(child.wait());
        });
        let mut killed: Option<bool> = None; // Some(true) = timeout, Some(false) = cancelled
        let status = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(status) => break status,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if killed.is_none() {
                        if ctx.cancelled() {
                            killed = Some(false);
                        } else if deadline.is_some_and(|d| Instant::now() >= d) {
                            killed = Some(true);
                        }
                        if killed.is_some() {
                            ns::kill(-pgid, nix::sys::signal::Signal::SIGKILL);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(std::io::Error::other("sandbox waiter vanished"))
                }
            }
        };
        let tail = reader.join().unwrap_or_default();
        let status = status.map_err(Error::io("wait for sandbox", exe))?;
        Ok(match killed {
            Some(true) => Outcome::TimedOut(tail),
            Some(false) => Outcome::Cancelled,
            None => {
                use std::os::unix::process::ExitStatusExt;
                let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                Outcome::Exited(code, tail)
            }
        })
    })
}
