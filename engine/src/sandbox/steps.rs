//! The sandbox for build steps: a RUN step on its parent state (its
//! user, environment, cache, secret and state mounts; its changes become a
//! layer), and the root-owned installs of `debian()` bases.

use std::fs;
use std::path::{Path, PathBuf};

use super::{check, host_name_files, identity, in_image, scratch, Identity, Io, MountSpec, Request, StubKind};
use crate::error::{Error, Result};
use crate::fsview::View;
use crate::graph::{Network, Node, RunOp, SecretSource};
use crate::step::ExecCtx;
use crate::store::{LayerRef, Record, State};

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
    let Identity { uid, gid, mut env, cwd } = identity(&view, &parent.config, run.user.as_deref(), &run.env, None)
        .map_err(|e| Error::input(&node.origin, format!("user: {e}")))?;

    let tmp = scratch(store)?;
    let dir = tmp.path().to_path_buf();
    let upper = dir.join("upper");

    // Mounts, their targets resolved through the image's symlinks.
    let resolve = |target: &str| in_image(&view, target);
    let mut mounts: Vec<(MountSpec, StubKind)> = Vec::new();
    let mut cache_locks: Vec<crate::sys::LockGuard> = Vec::new();
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
        let access = super::spec::SecretAccess {
            mode: secret.mode.unwrap_or(0o400),
            uid: secret.uid.unwrap_or(uid),
            gid: secret.gid.unwrap_or(gid),
        };
        // A secret the command line gives: its source there, if any.
        let source = match &secret.source {
            SecretSource::Given => match ctx.opts.secrets.get(&secret.id) {
                Some(given) => given,
                None if secret.required => {
                    return Err(Error::input(
                        &node.origin,
                        format!(
                            "secret `{0}` is not given: pass `--secret id={0},src=FILE` (or `env=VARIABLE`) to strata build",
                            secret.id
                        ),
                    ))
                }
                None => continue,
            },
            other => other,
        };
        match source {
            SecretSource::Given => unreachable!("the command line gives files and variables"),
            SecretSource::File(path) => {
                let value = fs::read(path).map_err(|e| {
                    Error::input(
                        &node.origin,
                        format!("secret `{}`: cannot read `{}`: {e}", secret.id, path.display()),
                    )
                })?;
                secrets.push(value);
                mounts.push((
                    MountSpec::SecretFile {
                        source: path.clone(),
                        target,
                        access,
                    },
                    StubKind::File,
                ));
            }
            SecretSource::Env(var) => {
                let value = std::env::var_os(var).ok_or_else(|| {
                    Error::input(
                        &node.origin,
                        format!("secret `{}`: environment variable `{var}` is not set", secret.id),
                    )
                })?;
                secrets.push(std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()).to_vec());
                mounts.push((
                    MountSpec::SecretEnv {
                        var: var.clone(),
                        target,
                        access,
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
                Error::input(
                    &node.origin,
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
    for t in &run.tmpfs {
        mounts.push((
            MountSpec::Tmpfs {
                target: resolve(&t.target),
                size: t.size,
            },
            StubKind::Dir,
        ));
    }
    // SSH agents: a socket of the step's own, forwarding to the agent given.
    let mut agents: Vec<super::ssh::AgentProxy> = Vec::new();
    for (i, ssh) in run.ssh.iter().enumerate() {
        let Some(agent) = ctx.opts.ssh.get(&ssh.id) else {
            if ssh.required {
                return Err(Error::input(
                    &node.origin,
                    format!(
                        "ssh agent `{0}` is not given: pass `--ssh {0}` (the agent of $SSH_AUTH_SOCK) or `--ssh {0}=SOCKET` to strata build",
                        ssh.id
                    ),
                ));
            }
            continue;
        };
        let socket = dir.join(format!("ssh{i}.sock"));
        let proxy = super::ssh::AgentProxy::start(
            agent,
            &socket,
            ssh.uid.unwrap_or(0),
            ssh.gid.unwrap_or(0),
            ssh.mode.unwrap_or(0o600),
        )
        .map_err(|e| {
            Error::input(
                &node.origin,
                format!("ssh agent `{}` at `{}`: {e}", ssh.id, agent.display()),
            )
        })?;
        agents.push(proxy);
        if !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
            env.push(("SSH_AUTH_SOCK".into(), ssh.target.clone()));
        }
        mounts.push((
            MountSpec::Bind {
                source: socket,
                target: resolve(&ssh.target),
                readonly: false,
            },
            StubKind::File,
        ));
    }
    if run.network == Network::Host {
        mounts.extend(host_name_files(&resolve));
    }
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let sandbox = Sandbox {
        exe: &exe,
        lowers: &lowers,
        mounts: &mounts,
        env: &env,
        cwd: &cwd,
        uid,
        gid,
    };
    if ctx.opts.debug.as_ref().is_some_and(|d| d.stops_before(node)) {
        debug_shell(ctx, node, run, &sandbox, "stopped before it runs")?;
    }
    let running = std::time::Instant::now();
    let outcome = super::run(Request {
        exe: &exe,
        dir: &dir,
        lowers: lowers.clone(),
        argv: run.argv.clone(),
        env: env.clone(),
        cwd: cwd.clone(),
        uid,
        gid,
        network_host: run.network == Network::Host,
        mounts: mounts.clone(),
        sysfs: true,
        keep_mount_points: run.keep_mount_points,
        insecure: run.insecure,
        limits: run.limits,
        origin: &node.origin,
        io: Io::Captured {
            ctx,
            timeout: run.timeout,
            secrets: &secrets,
        },
    })?;
    ctx.add_phases(crate::events::Phases {
        run: running.elapsed(),
        ..Default::default()
    });
    let checked = check(node, &run.argv, run.timeout, outcome);
    if let Err(e) = &checked {
        let cancelled = ctx.cancel.load(std::sync::atomic::Ordering::SeqCst);
        if ctx.opts.debug == Some(crate::step::Debug::OnError) && !cancelled {
            let why = match e {
                Error::Step { message, .. } => message.clone(),
                other => other.to_string(),
            };
            debug_shell(ctx, node, run, &sandbox, &why)?;
        }
    }
    drop(cache_locks);
    drop(agents);
    checked?;
    let diff_id = ctx.commit_layer(&upper)?;
    Ok(Record {
        layers: vec![LayerRef { diff_id }],
        config: None,
        restored: None,
    })
}

/// How a RUN step's sandbox is set up, for a debug shell in the same one.
struct Sandbox<'a> {
    exe: &'a Path,
    lowers: &'a [PathBuf],
    mounts: &'a [(MountSpec, StubKind)],
    env: &'a [String],
    cwd: &'a str,
    uid: u32,
    gid: u32,
}

/// Where the debug shell finds the step's command in its history.
const DEBUG_HISTORY: &str = "/.strata-debug-history";

/// `--debug`: an interactive shell on this terminal in the step's sandbox
/// (its parent state, mounts, env, user and workdir) on a throwaway upper
/// directory, with the step's command in the shell's history (the up
/// arrow recalls it). Whatever the shell changes is gone when it exits.
fn debug_shell(ctx: &ExecCtx<'_>, node: &Node, run: &RunOp, sandbox: &Sandbox<'_>, why: &str) -> Result<()> {
    let view = View { layers: sandbox.lowers };
    let has = |path: &str| view.resolve(path, true).is_some_and(|c| view.lookup(&c).is_some());
    let Some(shell) = ["/bin/bash", "/bin/sh"].into_iter().find(|s| has(s)) else {
        ctx.event(crate::events::Event::Debugging {
            node: ctx.node,
            message: format!("{}: {why}, and the image has no /bin/sh to debug it with", node.origin),
        });
        return Ok(());
    };
    // The command as a shell reads it back: a shell step's own text.
    let command = match run.argv.as_slice() {
        [sh, c, text] if sh.ends_with("sh") && c == "-c" => text.clone(),
        argv => argv.iter().map(|w| super::shell_quote(w)).collect::<Vec<_>>().join(" "),
    };
    let tmp = scratch(ctx.store)?;
    let history = tmp.path().join("history");
    fs::write(&history, format!("{command}\n")).map_err(Error::io("write", &history))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&history, fs::Permissions::from_mode(0o644)).map_err(Error::io("chmod", &history))?;
    let mut mounts = sandbox.mounts.to_vec();
    mounts.push((
        MountSpec::Bind {
            source: history,
            target: DEBUG_HISTORY.into(),
            readonly: true,
        },
        StubKind::File,
    ));
    let mut env = sandbox.env.to_vec();
    env.push(format!("HISTFILE={DEBUG_HISTORY}"));
    if !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push(format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
        ));
    }
    for message in [
        format!("{}: {why}", node.origin),
        format!(
            "a shell ({shell}) in the step's sandbox: its parent state, mounts, env, user and workdir; \
             what you change is thrown away when you exit. The step's command (the up arrow recalls it \
             where the shell reads $HISTFILE, as bash does):"
        ),
        format!("    {command}"),
    ] {
        ctx.event(crate::events::Event::Debugging {
            node: ctx.node,
            message,
        });
    }
    super::run(Request {
        exe: sandbox.exe,
        dir: tmp.path(),
        lowers: sandbox.lowers.to_vec(),
        argv: vec![shell.to_string(), "-i".into()],
        env,
        cwd: sandbox.cwd.to_string(),
        uid: sandbox.uid,
        gid: sandbox.gid,
        network_host: run.network == Network::Host,
        mounts,
        sysfs: true,
        keep_mount_points: false,
        insecure: run.insecure,
        limits: run.limits,
        origin: &node.origin,
        io: Io::Terminal { interactive: true },
    })?;
    ctx.event(crate::events::Event::Debugging {
        node: ctx.node,
        message: format!("{}: the shell exited; its changes are gone", node.origin),
    });
    Ok(())
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
    let mounts = binds
        .into_iter()
        .map(|(source, target, readonly)| {
            let kind = if source.is_dir() { StubKind::Dir } else { StubKind::File };
            (
                MountSpec::Bind {
                    source,
                    target,
                    readonly,
                },
                kind,
            )
        })
        .collect();
    let outcome = super::run(Request {
        exe: &exe,
        dir,
        lowers,
        argv: argv.clone(),
        env,
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        network_host: false,
        mounts,
        sysfs: false,
        keep_mount_points: false,
        insecure: false,
        limits: Default::default(),
        origin: &node.origin,
        io: Io::Captured {
            ctx,
            timeout: None,
            secrets: &[],
        },
    })?;
    check(node, &argv, None, outcome)
}
