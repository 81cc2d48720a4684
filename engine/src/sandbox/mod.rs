//! The sandbox. [`run`] is the one way a command is started in one (a RUN
//! step, a `debian()` install, `strata run`): it makes the stub mount points
//! the image lacks in the upperdir, writes a spec, starts `strata __sandbox
//! SPEC` in its own process group, then either streams its output while
//! enforcing the timeout and cancellation (killing the whole group; the pid
//! namespace takes every descendant with it) or hands it the terminal, and
//! afterwards leaves the upperdir a layer's worth of files. `steps.rs`
//! prepares build steps, `container.rs` `strata run`, `init.rs` is the
//! sandbox process itself; its kernel calls go through `sys::ns`.

mod container;
pub mod init;
mod profile;
mod spec;
pub mod ssh;
mod steps;
mod terminal;

pub use container::{run_image, RunImage, RunResult};
pub use spec::{MountSpec, Spec};
pub use steps::{run_in_root, run_step};

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::events::Event;
use crate::fsview::{self, View};
use crate::graph::{Node, Origin};
use crate::layer::opaque_xattr;
use crate::step::ExecCtx;
use crate::sys::cgroup::{self, Cgroup, Limits};
use crate::sys::confined::{Attrs, Policy, Tree};
use crate::sys::ns;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const TAIL_LINES: usize = 20;
/// Processes and threads a sandbox may have unless its step says otherwise:
/// far above what a parallel build needs, far below what stalls the host.
pub const DEFAULT_PIDS: u64 = 16384;

/// What a stub mount point is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StubKind {
    Dir,
    File,
    /// The host's resolv.conf or hosts: never left in a layer.
    HostFile,
}

/// How the sandbox's standard streams are used.
pub(crate) enum Io<'a> {
    /// Output captured line by line into `Output` events (secrets masked),
    /// the last lines kept for the error; killed at the timeout or when the
    /// build is cancelled.
    Captured {
        ctx: &'a ExecCtx<'a>,
        timeout: Option<u64>,
        secrets: &'a [Vec<u8>],
    },
    /// The caller's own terminal or streams (`strata run`).
    Terminal { interactive: bool },
}

/// One command to run in a sandbox.
pub(crate) struct Request<'a> {
    /// The strata executable (`strata __sandbox SPEC`).
    pub exe: &'a Path,
    /// Scratch directory holding `upper/` (which may already hold files),
    /// `work/` and `merged/`.
    pub dir: &'a Path,
    /// The image's layers, bottom first.
    pub lowers: Vec<PathBuf>,
    pub argv: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub network_host: bool,
    /// Mounts with the kind of stub their target needs when the image lacks it.
    pub mounts: Vec<(MountSpec, StubKind)>,
    /// Mount /sys read-only when the image has the directory.
    pub sysfs: bool,
    /// Leave the stubs made for `Bind` and `Layers` mounts (cache and state
    /// mounts) in the layer, as BuildKit does.
    pub keep_mount_points: bool,
    /// Skip the security profile (`security: "insecure"`, allowed by the build).
    pub insecure: bool,
    /// The step's own limits; what it leaves unset gets [`default_limits`].
    pub limits: Limits,
    /// Where the command comes from (for errors about its limits).
    pub origin: &'a Origin,
    pub io: Io<'a>,
}

/// The limits a sandbox gets for what its step leaves unset: [`DEFAULT_PIDS`]
/// processes and three quarters of the host's memory (so a runaway step is
/// stopped before the host's OOM killer picks a victim), CPU unlimited.
/// Read once per process: every sandbox asks.
pub fn default_limits() -> Limits {
    static DEFAULTS: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();
    *DEFAULTS.get_or_init(|| {
        let mem_total = fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        Limits {
            memory: mem_total.map(|kb| kb * 1024 / 4 * 3),
            pids: Some(DEFAULT_PIDS),
            cpu_millis: None,
        }
    })
}

/// Where a sandbox's limits live.
enum Group {
    /// The step's own `limits`: a cgroup of its own, which the sandbox
    /// joins between fork and exec.
    Step(Cgroup),
    /// Only the defaults: the build's cgroup, which strata itself is in, so
    /// the sandbox is born there (no move per step). The counters before
    /// the step tell whether it met a limit.
    Build { limits: Limits, before: (u64, u64) },
}

/// The cgroup for a sandbox. A limit the step asked for that the host
/// cannot apply is an error; a default that cannot be applied is a
/// warning (once per process).
fn limit_group(req_limits: Limits, origin: &Origin, io: &Io<'_>) -> Result<Group> {
    let defaults = default_limits();
    if req_limits == Limits::default() {
        let missing = cgroup::join_build(defaults);
        warn_missing(&missing, io);
        let limits = cgroup::build_limits().unwrap_or_default();
        return Ok(Group::Build {
            limits,
            before: cgroup::build_counters(),
        });
    }
    let limits = Limits {
        memory: req_limits.memory.or(defaults.memory),
        pids: req_limits.pids.or(defaults.pids),
        cpu_millis: req_limits.cpu_millis.or(defaults.cpu_millis),
    };
    let group = Cgroup::create(limits);
    if let Some(controller) = group.missing().iter().find(|c| req_limits.asks(c)) {
        return Err(Error::input(
            origin,
            format!(
                "limits: the `{controller}` cgroup controller is not available to strata on this host (not mounted, or not delegated to this user), so the step's `{controller}` limit cannot be applied"
            ),
        ));
    }
    warn_missing(group.missing(), io);
    Ok(Group::Step(group))
}

fn warn_missing(missing: &[&str], io: &Io<'_>) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if missing.is_empty() || WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if let Io::Captured { ctx, .. } = io {
        ctx.event(Event::Warning {
            message: format!(
                "steps run without the default {} limit: no usable cgroup controller for it on this host{}",
                missing.join(" and "),
                if crate::sys::userns::rootless() {
                    " (rootless: none is delegated to this user)"
                } else {
                    ""
                }
            ),
        });
    }
}

/// Runs `req` and returns how the command ended. Stub mount points are
/// removed again and overlay's bookkeeping xattrs dropped, so `upper/` is a
/// layer's worth of files.
pub(crate) fn run(req: Request<'_>) -> Result<Outcome> {
    let upper = req.dir.join("upper");
    let view = View { layers: &req.lowers };
    // Mount points the image lacks are created in the upperdir now, and
    // removed again afterwards, so they never reach the layer.
    let (stubs, has_sys) = mount_points(&upper, &view, &req.mounts, req.keep_mount_points)?;
    let interactive = matches!(req.io, Io::Terminal { interactive: true });
    let spec = Spec {
        lowers: req.lowers.clone(),
        dir: req.dir.to_path_buf(),
        argv: req.argv,
        env: req.env,
        cwd: req.cwd,
        uid: req.uid,
        gid: req.gid,
        groups: vec![req.gid],
        network_host: req.network_host,
        hostname: "strata".into(),
        mounts: req.mounts.into_iter().map(|(m, _)| m).collect(),
        sysfs: req.sysfs && has_sys,
        interactive,
        insecure: req.insecure,
        rootless: crate::sys::userns::rootless(),
    };
    let spec_path = req.dir.join("spec.json");
    fs::write(&spec_path, serde_json::to_vec(&spec).expect("spec serialises"))
        .map_err(Error::io("write", &spec_path))?;
    let group = limit_group(req.limits, req.origin, &req.io)?;
    let mut command = Command::new(req.exe);
    command.arg("__sandbox").arg(&spec_path);
    if let Group::Step(cg) = &group {
        let fds = cg.procs_fds();
        // SAFETY: between fork and exec the child only calls write(2).
        unsafe {
            command.pre_exec(move || cgroup::join(&fds));
        }
    }
    let outcome = match req.io {
        Io::Captured { ctx, timeout, secrets } => launch(ctx, command, timeout, secrets)?,
        Io::Terminal { interactive } => {
            let status = on_terminal(command, interactive).map_err(Error::io("start sandbox", req.exe))?;
            use std::os::unix::process::ExitStatusExt;
            Outcome::Exited(
                status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                Vec::new(),
            )
        }
    };
    let outcome = limited(outcome, &group);
    drop(group);
    remove_empty_stubs(&upper, &stubs)?;
    strip_overlay_xattrs(&upper)?;
    Ok(outcome)
}

/// Turns a finished sandbox into `Ok` or the step's error.
pub(crate) fn check(node: &Node, argv: &[String], timeout: Option<u64>, outcome: Outcome) -> Result<()> {
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
        Outcome::Limited(reason, tail, _) => Err(Error::Step {
            origin: node.origin.clone(),
            message: format!("`run` {reason}: {}", shown(argv)),
            detail: indent_tail(&tail.join("\n")),
        }),
    }
}

/// Who a command runs as and with what: the user (the override, else the
/// image's, else root) resolved in the image's passwd and group, the
/// image's environment with `extra` over it (plus `PATH` and `HOME` when
/// unset), and the working directory.
pub(crate) fn identity(
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
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub env: Vec<(String, String)>,
    pub cwd: String,
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

/// A step's scratch directory, holding `upper/`, `work/` and `merged/`.
pub(crate) fn scratch(store: &crate::store::Store) -> Result<tempfile::TempDir> {
    let tmp = store.tmp_dir()?;
    for sub in ["upper", "work", "merged"] {
        let d = tmp.path().join(sub);
        fs::create_dir(&d).map_err(Error::io("create", &d))?;
    }
    Ok(tmp)
}

/// `word` as a POSIX shell reads it back: as is when it is plain, else in
/// single quotes (a `'` inside becomes `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c));
    match plain {
        true => word.to_string(),
        false => format!("'{}'", word.replace('\'', "'\\''")),
    }
}

/// `target` with the image's symlinks resolved (as the mount must name it).
pub(crate) fn in_image(view: &View<'_>, target: &str) -> String {
    match view.resolve(target, true) {
        Some(comps) => format!("/{}", comps.join("/")),
        None => target.to_string(),
    }
}

/// The host's resolv.conf and hosts, read-only, for a step on the host network.
pub(crate) fn host_name_files(resolve: &dyn Fn(&str) -> String) -> Vec<(MountSpec, StubKind)> {
    ["/etc/resolv.conf", "/etc/hosts"]
        .into_iter()
        .filter(|file| Path::new(file).exists())
        .map(|file| {
            let bind = MountSpec::Bind {
                source: PathBuf::from(file),
                target: resolve(file),
                readonly: true,
            };
            (bind, StubKind::HostFile)
        })
        .collect()
}

/// Makes the mount points (/proc, /dev, every mount's target) the image
/// lacks as stubs in `upper` (through the confined writer: an upper
/// directory may already hold a hostile package's symlinks); returns them,
/// relative to `upper`, and whether /sys can be mounted.
fn mount_points(
    upper: &Path,
    view: &View<'_>,
    mounts: &[(MountSpec, StubKind)],
    keep_mount_points: bool,
) -> Result<(Vec<PathBuf>, bool)> {
    let sysfs = view
        .lookup(&fsview::components("/sys"))
        .is_some_and(|(_, m)| m.is_dir());
    let mut tree = Tree::open(upper, Policy::image(u64::MAX)).map_err(Error::io("open", upper))?;
    let mut stubs: Vec<PathBuf> = Vec::new();
    for (target, kind, keep) in [("/proc", StubKind::Dir), ("/dev", StubKind::Dir)]
        .into_iter()
        .map(|(t, k)| (t.to_string(), k, false))
        .chain(mounts.iter().map(|(m, k)| {
            // BuildKit leaves the directories made for mounts (a cache's,
            // a secret's parents), not files and not the host's name files.
            let keep = keep_mount_points && *k != StubKind::HostFile;
            (m.target().to_string(), *k, keep)
        }))
    {
        let (dirs, file) = make_stub(&mut tree, view, &target, kind)?;
        if !keep {
            stubs.extend(dirs);
        }
        stubs.extend(file);
    }
    Ok((stubs, sysfs))
}

/// Creates `target` (and missing parents) in the upperdir when the image
/// lacks it; new directories copy the attributes the image gives them.
/// Returns the directories made (parents first) and the file made.
fn make_stub(
    tree: &mut Tree,
    view: &View<'_>,
    target: &str,
    kind: StubKind,
) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let mut dirs = Vec::new();
    let comps = fsview::components(target);
    if view.lookup(&comps).is_some() {
        return Ok((dirs, None));
    }
    let mut rel = PathBuf::new();
    for (i, c) in comps.iter().enumerate() {
        rel.push(c);
        let shown = tree.path().join(&rel);
        let last = i + 1 == comps.len();
        if tree
            .stat(&rel)
            .map_err(Error::io("create mount point", &shown))?
            .is_some()
        {
            continue;
        }
        if last && kind != StubKind::Dir {
            tree.write(&rel, &mut std::io::empty(), Attrs::new(0o644, 0, 0))
                .map_err(Error::io("create mount point", &shown))?;
            return Ok((dirs, Some(rel)));
        } else {
            let (mode, uid, gid) = match view.lookup(&comps[..=i]) {
                Some((_, meta)) if meta.is_dir() => (meta.mode() & 0o7777, meta.uid(), meta.gid()),
                _ => (0o755, 0, 0),
            };
            tree.dir(&rel, Attrs::new(mode, uid, gid))
                .map_err(Error::io("create mount point", &shown))?;
        }
        dirs.push(rel.clone());
    }
    Ok((dirs, None))
}

/// Removes the stubs (relative to `upper`) that are still an empty file or
/// directory, last first. The step may have replaced a stub's directory
/// with a symlink: the confined writer follows none.
fn remove_empty_stubs(upper: &Path, stubs: &[PathBuf]) -> Result<()> {
    let mut tree = Tree::open(upper, Policy::image(u64::MAX)).map_err(Error::io("open", upper))?;
    for stub in stubs.iter().rev() {
        let shown = upper.join(stub);
        let Ok(Some(st)) = tree.stat(stub) else { continue };
        let empty = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => tree.list(stub).map_err(Error::io("read", &shown))?.is_empty(),
            libc::S_IFREG => st.st_size == 0,
            _ => false,
        };
        if empty {
            tree.remove(stub).map_err(Error::io("remove", &shown))?;
        }
    }
    Ok(())
}

/// Drops overlay's bookkeeping xattrs (origin, impure, …) from an upperdir,
/// keeping only the opaque marker the layer format needs.
fn strip_overlay_xattrs(dir: &Path) -> Result<()> {
    for name in crate::sys::llistxattr(dir).map_err(Error::io("list xattrs of", dir))? {
        if name.starts_with(crate::layer::overlay_xattr_prefix()) && name != opaque_xattr() {
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

pub(crate) enum Outcome {
    Exited(i32, Vec<String>),
    TimedOut(Vec<String>),
    Cancelled,
    /// Failed or timed out after reaching a limit (the message says which),
    /// with the exit status (137 for a timeout).
    Limited(String, Vec<String>, i32),
}

/// `outcome`, said to be the limit's doing when the command failed and
/// its cgroup reached one.
fn limited(outcome: Outcome, group: &Group) -> Outcome {
    let failed = matches!(outcome, Outcome::Exited(code, _) if code != 0) || matches!(outcome, Outcome::TimedOut(_));
    if !failed {
        return outcome;
    }
    let (limits, memory, pids, whose) = match group {
        Group::Step(cg) => (cg.limits(), cg.memory_exhausted(), cg.pids_exhausted(), ""),
        Group::Build { limits, before } => {
            let after = cgroup::build_counters();
            (
                *limits,
                after.0 > before.0,
                after.1 > before.1,
                " (the default for all of a build's steps)",
            )
        }
    };
    let message = if memory {
        format!(
            "killed: memory limit {}{whose} reached",
            human_bytes(limits.memory.unwrap_or(0))
        )
    } else if pids {
        format!(
            "failed: pids limit {}{whose} reached (a process could not fork)",
            limits.pids.unwrap_or(0)
        )
    } else {
        return outcome;
    };
    match outcome {
        Outcome::Exited(code, tail) => Outcome::Limited(message, tail, code),
        Outcome::TimedOut(tail) => Outcome::Limited(message, tail, 137),
        other => other,
    }
}

/// `2 GiB`, `512 MiB`, `1536 KiB`, `100 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} bytes")
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("create pipe for", "run output")(std::io::Error::from_raw_os_error(e as i32)))
}

/// `text` with every control character but a tab made visible: `^[` for
/// ESC, `^G` for BEL, `^M` for CR, `<U+009B>` for the C1 controls. A step's
/// output (and an image's history) reaches the user's terminal: an escape
/// sequence in it would set the terminal's title, write its clipboard
/// (OSC 52) or move its cursor over what strata printed.
pub fn printable(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\u{7f}' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            c if c.is_control() => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Masks every line of every secret in a step's output, which arrives in
/// pieces: a line longer than a piece is cut at an arbitrary byte, so a
/// secret can straddle two pieces. Each piece is masked with what came
/// before it on its line, and a tail that may be the start of a secret is
/// held back until the next piece (or the end of the line) says. Values
/// are masked line by line (a multi-line or CRLF value too), short ones
/// too, longer ones first so a value that contains another goes whole.
struct Masker {
    parts: Vec<Vec<u8>>,
    pending: Vec<u8>,
}

impl Masker {
    fn new(secrets: &[Vec<u8>]) -> Masker {
        let mut parts: Vec<Vec<u8>> = secrets
            .iter()
            .flat_map(|s| s.split(|&b| b == b'\n'))
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
            .collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        parts.dedup();
        Masker {
            parts,
            pending: Vec::new(),
        }
    }

    /// The masked text of `piece` that is safe to show now; at the end of
    /// a line, everything left.
    fn feed(&mut self, piece: &[u8], end_of_line: bool) -> String {
        self.pending.extend_from_slice(piece);
        let buf = std::mem::take(&mut self.pending);
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        'scan: while i < buf.len() {
            let rest = &buf[i..];
            for part in &self.parts {
                if rest.starts_with(part) {
                    out.extend_from_slice(b"****");
                    i += part.len();
                    continue 'scan;
                }
            }
            if !end_of_line && self.parts.iter().any(|p| p.len() > rest.len() && p.starts_with(rest)) {
                break;
            }
            out.push(buf[i]);
            i += 1;
        }
        self.pending = buf[i..].to_vec();
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Runs the sandbox for the user's terminal, in a session of its own: an
/// interactive one on a pty of strata's own (`terminal`), another with the
/// caller's streams. Ctrl-C reaches an interactive command through its
/// pty; for another, strata passes SIGINT on (the sandbox then stops it).
fn on_terminal(mut command: Command, interactive: bool) -> std::io::Result<std::process::ExitStatus> {
    if interactive {
        let pty = terminal::open()?;
        command
            .stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        // SAFETY: between fork and exec the child only calls setsid and ioctl.
        unsafe {
            command.pre_exec(terminal::take_as_controlling_terminal);
        }
        let mut child = command.spawn()?;
        // The slave's last copy here goes with the command.
        drop(command);
        return terminal::relay(pty.master, &mut child);
    }
    // SAFETY: between fork and exec the child only calls setsid.
    unsafe {
        command.pre_exec(terminal::new_session);
    }
    // Output through pipes, copied here, as `docker run` without -t: the
    // command never holds the user's terminal (standard output may be it),
    // where it could change the terminal's modes or read its keystrokes.
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn()?;
    drop(command);
    let out = child.stdout.take().map(|from| pump(from, std::io::stdout()));
    let err = child.stderr.take().map(|from| pump(from, std::io::stderr()));
    // Our own handler while the command runs (the caller may have ignored
    // SIGINT, or handed it to a build's cancel flag); the old one after.
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    extern "C" fn note(_: libc::c_int) {
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
    let ours = SigAction::new(SigHandler::Handler(note), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only stores to an atomic.
    let previous = unsafe { sigaction(Signal::SIGINT, &ours) }.ok();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if INTERRUPTED.swap(false, std::sync::atomic::Ordering::SeqCst) {
            ns::kill(child.id() as libc::pid_t, Signal::SIGINT);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(previous) = previous {
        // SAFETY: puts back the disposition sigaction returned.
        unsafe {
            let _ = sigaction(Signal::SIGINT, &previous);
        }
    }
    for thread in [out, err].into_iter().flatten() {
        let _ = thread.join();
    }
    status
}

/// Copies `from` to `to` on a thread of its own until `from` ends.
fn pump(
    mut from: impl std::io::Read + Send + 'static,
    mut to: impl std::io::Write + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.flush();
    })
}

/// Starts the sandbox and waits for it, streaming output and watching for
/// cancellation and the timeout.
fn launch(ctx: &ExecCtx<'_>, mut command: Command, timeout: Option<u64>, secrets: &[Vec<u8>]) -> Result<Outcome> {
    let (read, write) = pipe()?;
    let write2 = write
        .try_clone()
        .map_err(Error::io("duplicate pipe for", "run output"))?;
    let exe = PathBuf::from(command.get_program());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2));
    // A session of its own (and so a process group, which a kill ends
    // whole): the sandbox has no controlling terminal, and `/dev/tty` in it
    // reaches nobody's.
    // SAFETY: between fork and exec the child only calls setsid.
    unsafe {
        command.pre_exec(terminal::new_session);
    }
    let mut child = command.spawn().map_err(Error::io("start sandbox", &exe))?;
    // The command holds the pipe's write ends: the reader sees the end of
    // the output only once they are closed here.
    drop(command);
    let pgid = child.id() as libc::pid_t;
    let node_id = ctx.node;
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));

    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut lines = BufReader::new(File::from(read));
            let mut buf = Vec::new();
            let mut masker = Masker::new(secrets);
            loop {
                buf.clear();
                match lines.by_ref().take(1 << 16).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => {
                        let rest = printable(&masker.feed(b"", true));
                        if !rest.is_empty() {
                            ctx.event(Event::Output {
                                node: node_id,
                                line: rest,
                            });
                        }
                        break;
                    }
                    Ok(_) => {
                        let end = buf.ends_with(b"\n");
                        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
                        let text = if end {
                            text.strip_suffix(b"\r").unwrap_or(text)
                        } else {
                            text
                        };
                        let line = printable(&masker.feed(text, end));
                        if line.is_empty() && !end {
                            continue;
                        }
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
        let status = status.map_err(Error::io("wait for sandbox", &exe))?;
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

#[cfg(test)]
mod tests {
    use super::{shell_quote, Masker};

    #[test]
    fn words_are_quoted_so_a_shell_reads_them_back() {
        assert_eq!(shell_quote("ls"), "ls");
        assert_eq!(shell_quote("/etc/os-release"), "/etc/os-release");
        assert_eq!(shell_quote("echo hi > /x"), "'echo hi > /x'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::human_bytes(2 << 30), "2 GiB");
        assert_eq!(super::human_bytes(64 << 20), "64 MiB");
        assert_eq!(super::human_bytes(1536 << 20), "1536 MiB");
        assert_eq!(super::human_bytes((3 << 29) + 1), "1.5 GiB");
        assert_eq!(super::human_bytes(100), "100 bytes");
    }

    #[test]
    fn secrets_are_masked_line_by_line_short_ones_too() {
        let secrets = vec![b"first-line\r\nsecond\n".to_vec(), b"xy".to_vec()];
        let redact = |line: &str| Masker::new(&secrets).feed(line.as_bytes(), true);
        assert_eq!(redact("got first-line and second"), "got **** and ****");
        assert_eq!(redact("xy=1"), "****=1");
        assert_eq!(redact("nothing here"), "nothing here");
    }

    #[test]
    fn control_characters_are_shown_not_sent_to_the_terminal() {
        assert_eq!(super::printable("plain\ttext"), "plain\ttext");
        assert_eq!(super::printable("\x1b]52;c;cGF5bG9hZA==\x07"), "^[]52;c;cGF5bG9hZA==^G");
        assert_eq!(super::printable("a\rb\x7f\u{9b}c"), "a^Mb^?<U+009B>c");
    }

    #[test]
    fn a_secret_cut_between_two_pieces_of_a_long_line_is_masked_whole() {
        let secret = b"s3cr3t-t0ken".to_vec();
        for cut in 1..secret.len() {
            let mut masker = Masker::new(std::slice::from_ref(&secret));
            let mut first = vec![b'a'; 10];
            first.extend_from_slice(&secret[..cut]);
            let shown = format!(
                "{}{}",
                masker.feed(&first, false),
                masker.feed(&[&secret[cut..], b" end"].concat(), true)
            );
            assert_eq!(shown, format!("{}**** end", "a".repeat(10)), "cut at {cut}");
        }
        // Text that only looks like a start is shown once the line says otherwise.
        let mut masker = Masker::new(std::slice::from_ref(&secret));
        assert_eq!(masker.feed(b"xs3c", false), "x");
        assert_eq!(masker.feed(b"ret", true), "s3cret");
    }
}
