//! `strata run`: a command in an image of the store, on a throwaway
//! read-write layer, with the caller's terminal.

use std::fs;
use std::path::{Path, PathBuf};

use super::{host_name_files, identity, in_image, scratch, Identity, Io, MountSpec, Outcome, Request, StubKind};
use crate::error::{Error, Result};
use crate::fsview::View;
use crate::store::State;

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
    /// `--memory`, `--pids`, `--cpus`: a cgroup of its own; else the defaults.
    pub limits: crate::sys::cgroup::Limits,
}

/// A finished `strata run`: the command's exit status, and the scratch
/// directory whose `upper/` holds what it changed (for `--commit`).
pub struct RunResult {
    pub code: i32,
    pub scratch: tempfile::TempDir,
    /// The limit the command met (`killed: memory limit 64 MiB reached`).
    pub limit: Option<String>,
}

/// Runs a command in an image (its layers read-only, a throwaway read-write
/// layer on top), with the caller's standard input, output and error.
pub fn run_image(store: &crate::store::Store, exe: &Path, image: &State, req: &RunImage) -> Result<RunResult> {
    let input = |message: String| Error::input(&Default::default(), message);
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
    let outcome = super::run(Request {
        exe,
        dir: &dir,
        lowers: lowers.clone(),
        argv,
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd,
        uid,
        gid,
        network_host: req.network_host,
        mounts,
        sysfs: true,
        keep_mount_points: false,
        insecure: false,
        limits: req.limits,
        origin: &Default::default(),
        io: Io::Terminal {
            interactive: req.interactive,
        },
    })?;
    let (code, limit) = match outcome {
        Outcome::Exited(code, _) => (code, None),
        Outcome::TimedOut(_) | Outcome::Cancelled => (130, None),
        Outcome::Limited(message, _, code) => (code, Some(message)),
    };
    Ok(RunResult { code, scratch, limit })
}
