//! A RUN step, or a `debian()` base's dpkg run, as a REAPI action, and back.
//!
//! The action's input root:
//!
//! ```text
//! step.json            the job: a RUN step (argv, env, user, mounts, the
//!                      parent's image config…) or a dpkg install
//! layers/<hex>         each layer the job reads, as its tar (CAS digest = diff id)
//! debs/<sha256>        a dpkg install's packages (CAS digest = their SHA256)
//! ```
//!
//! Its command is `strata __remote-step step.json` and its one output file
//! `layer.tar`, the layer the job made. A worker imports the layers and
//! packages it lacks into its own store (checked against their digests),
//! runs the job in the same sandbox a local build uses, and uploads the
//! new layer.
//!
//! Steps with secrets or SSH agents run locally: a secret never leaves the
//! machine it was given on (it would otherwise sit in the CAS, readable by
//! everyone with access to the service). So do steps that ask for the
//! host's network or `security: "insecure"` (the worker's host is not the
//! one the user allowed), steps for another platform, and `--debug`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use serde::{Deserialize, Serialize};

use crate::debian::Install;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::graph::{BindMount, CacheMount, Network, Node, NodeId, Op, Origin, RunOp, TmpfsMount};
use crate::image::ImageConfig;
use crate::layer::Compression;
use crate::reapi::{encoded, Blob, Remote};
use crate::step::{ExecCtx, ExecOptions};
use crate::store::{LayerRef, Record, State, Store};

/// The command of every strata action; a worker refuses any other.
pub const COMMAND: &str = "__remote-step";
/// The actions' salt: what a worker makes of a step. Changed whenever the
/// same step.json would give a different layer, so that results of older
/// workers in the service's ActionCache are not taken for new ones.
pub const SALT: &[u8] = b"strata-step-v2";
/// The step's layer, the action's output.
pub const OUTPUT: &str = "layer.tar";
/// What a failed step's `stderr` starts with, before its error message.
const FAILED: &str = "strata step failed: ";

/// What `step.json` carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    Run(Box<WireStep>),
    Debian(WireInstall),
}

/// A `debian()` base's dpkg install (one of its two layers).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireInstall {
    pub origin: String,
    pub description: String,
    /// `SOURCE_DATE_EPOCH`, for dpkg and the layer's mtimes.
    pub epoch: i64,
    pub install: Install,
}

/// A step as `step.json` carries it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireStep {
    /// Where the recipe wrote it, for messages.
    pub origin: String,
    pub description: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub timeout: Option<u64>,
    pub keep_mount_points: bool,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpu_millis: Option<u64>,
    /// `SOURCE_DATE_EPOCH`: the new layer's mtimes are clamped to it.
    pub epoch: i64,
    pub caches: Vec<WireCache>,
    pub tmpfs: Vec<(String, Option<u64>)>,
    /// The state the step runs on.
    pub parent: ImageConfig,
    /// Files of other states mounted into the step.
    pub mounts: Vec<WireMount>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireCache {
    pub id: String,
    pub target: String,
    pub shared: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WireMount {
    pub state: ImageConfig,
    pub path: String,
    pub target: String,
}

/// Whether `node` must run here (see the module's documentation for why).
pub fn runs_locally(node: &Node, opts: &ExecOptions) -> bool {
    let needs_this_host = match &node.op {
        Op::Run(run) => !run.secrets.is_empty() || !run.ssh.is_empty() || run.network == Network::Host || run.insecure,
        _ => false,
    };
    needs_this_host || node.platform != crate::platform::Platform::host() || opts.debug.is_some()
}

/// `outcome` of a remote execution, or `None` when it is to run here
/// instead: the service failed (not the step) and `--remote-fallback` says
/// so, with a warning.
pub fn or_locally<T>(ctx: &ExecCtx<'_>, remote: &Remote, node: &Node, outcome: Result<T>) -> Option<Result<T>> {
    match outcome {
        Err(e @ Error::Remote { .. }) if remote.fallback => {
            ctx.event(Event::Warning {
                message: format!(
                    "{}; running `{}` locally (--remote-fallback)",
                    e.chain(),
                    node.description
                ),
            });
            None
        }
        outcome => Some(outcome),
    }
}

/// Runs a `debian()` base's dpkg install `job` on the remote service (the
/// ActionCache first), its packages sent as CAS blobs; returns its layer.
pub fn install_remote(ctx: &ExecCtx<'_>, remote: &Remote, node: &Node, job: &Install) -> Result<Digest> {
    let mut debs = Vec::new();
    for sha256 in job.debs.values() {
        let path = crate::debian::deb_path(ctx.store, sha256);
        let size = std::fs::metadata(&path).map_err(Error::io("read", &path))?.len();
        debs.push((
            re::Digest {
                hash: sha256.clone(),
                size_bytes: size as i64,
            },
            Blob::File(path),
        ));
    }
    let wire = Job::Debian(WireInstall {
        origin: node.origin.to_string(),
        description: node.description.clone(),
        epoch: ctx.opts.epoch,
        install: job.clone(),
    });
    let layers = job.lowers.iter().cloned().collect();
    execute(ctx, remote, node, &wire, &layers, debs)
}

/// Executes `run` on the remote service: the ActionCache first, else an
/// execution; imports the layer it made.
pub fn run_remote(
    ctx: &ExecCtx<'_>,
    remote: &Remote,
    node: &Node,
    run: &RunOp,
    parent: &State,
    states: &HashMap<NodeId, State>,
) -> Result<Record> {
    let step = WireStep {
        origin: node.origin.to_string(),
        description: node.description.clone(),
        argv: run.argv.clone(),
        env: run.env.clone(),
        user: run.user.clone(),
        timeout: run.timeout,
        keep_mount_points: run.keep_mount_points,
        memory: run.limits.memory,
        pids: run.limits.pids,
        cpu_millis: run.limits.cpu_millis,
        epoch: ctx.opts.epoch,
        caches: run
            .caches
            .iter()
            .map(|c| WireCache {
                id: c.id.clone(),
                target: c.target.clone(),
                shared: c.shared,
            })
            .collect(),
        tmpfs: run.tmpfs.iter().map(|t| (t.target.clone(), t.size)).collect(),
        parent: parent.config.clone(),
        mounts: run
            .mounts
            .iter()
            .map(|m| WireMount {
                state: states[&m.node].config.clone(),
                path: m.path.clone(),
                target: m.target.clone(),
            })
            .collect(),
    };
    // Every layer read, as its tar (made once if the store has none).
    let mut layers: BTreeSet<Digest> = parent.config.rootfs.diff_ids.iter().cloned().collect();
    for m in &step.mounts {
        layers.extend(m.state.rootfs.diff_ids.iter().cloned());
    }
    let diff_id = execute(ctx, remote, node, &Job::Run(Box::new(step)), &layers, Vec::new())?;
    Ok(Record {
        layers: vec![LayerRef { diff_id }],
        config: None,
        restored: None,
    })
}

/// Runs `job` as an action whose input root holds it, the `layers` it
/// reads and `debs` (the ActionCache first, then only the blobs the CAS
/// lacks uploaded); returns the layer it made, imported into the store.
fn execute(
    ctx: &ExecCtx<'_>,
    remote: &Remote,
    node: &Node,
    job: &Job,
    layers: &BTreeSet<Digest>,
    debs: Vec<(re::Digest, Blob)>,
) -> Result<Digest> {
    let store = ctx.store;
    let step_json = serde_json::to_vec(job).expect("a job serializes");
    let mut blobs: Vec<(re::Digest, Blob)> = Vec::new();
    let layer_blobs = layers
        .iter()
        .map(|diff_id| layer_blob(store, diff_id))
        .collect::<Result<Vec<_>>>()?;
    let mut root_dirs = vec![hash_named_dir("layers", layer_blobs, &mut blobs)];
    if !debs.is_empty() {
        root_dirs.push(hash_named_dir("debs", debs, &mut blobs));
    }
    root_dirs.sort_by(|a, b| a.name.cmp(&b.name));
    let step_digest = crate::reapi::digest_of(&step_json);
    let (root, root_digest) = encoded(&re::Directory {
        files: vec![re::FileNode {
            name: "step.json".into(),
            digest: Some(step_digest.clone()),
            ..Default::default()
        }],
        directories: root_dirs,
        ..Default::default()
    });
    let (command, command_digest) = encoded(&re::Command {
        arguments: vec!["strata".into(), COMMAND.into(), "step.json".into()],
        output_paths: vec![OUTPUT.into()],
        ..Default::default()
    });
    let (action, action_digest) = encoded(&re::Action {
        command_digest: Some(command_digest.clone()),
        input_root_digest: Some(root_digest.clone()),
        salt: SALT.to_vec(),
        ..Default::default()
    });

    let result = match remote.cached_result(&action_digest)? {
        Some(result) if result.exit_code == 0 && output_of(&result).is_some() => {
            remote.stats.cached.fetch_add(1, Ordering::Relaxed);
            result
        }
        _ => {
            blobs.push((step_digest, Blob::Bytes(step_json)));
            blobs.push((root_digest, Blob::Bytes(root)));
            blobs.push((command_digest, Blob::Bytes(command)));
            blobs.push((action_digest.clone(), Blob::Bytes(action)));
            remote.upload_missing(blobs)?;
            let result = remote.execute(&action_digest)?;
            remote.stats.executed.fetch_add(1, Ordering::Relaxed);
            result
        }
    };
    for line in String::from_utf8_lossy(&result.stdout_raw).lines() {
        ctx.event(Event::Output {
            node: ctx.node,
            line: line.to_string(),
        });
    }
    if result.exit_code != 0 {
        let stderr = String::from_utf8_lossy(&result.stderr_raw);
        let message = stderr
            .strip_prefix(FAILED)
            .map(str::to_string)
            .unwrap_or_else(|| format!("the remote step exited with code {}: {stderr}", result.exit_code));
        return Err(Error::Step {
            origin: node.origin.clone(),
            message,
            detail: String::from_utf8_lossy(&result.stdout_raw).into_owned(),
        });
    }
    let output = output_of(&result).ok_or_else(|| remote.fail(format!("the action's result has no `{OUTPUT}`")))?;
    let diff_id = diff_id_of(remote, &output, &format!("`{OUTPUT}`"))?;
    if !store.has_layer(&diff_id) {
        fetch_layer(store, remote, &output, &diff_id)?;
    }
    Ok(diff_id)
}

/// A directory of the input root named `name` whose files are `contents`,
/// each named by its hash (sorted, as REAPI wants); the directory's
/// encoding and the contents go to `blobs`.
fn hash_named_dir(
    name: &str,
    contents: Vec<(re::Digest, Blob)>,
    blobs: &mut Vec<(re::Digest, Blob)>,
) -> re::DirectoryNode {
    let mut files: Vec<re::FileNode> = contents
        .iter()
        .map(|(digest, _)| re::FileNode {
            name: digest.hash.clone(),
            digest: Some(digest.clone()),
            ..Default::default()
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let (dir, digest) = encoded(&re::Directory {
        files,
        ..Default::default()
    });
    blobs.push((digest.clone(), Blob::Bytes(dir)));
    blobs.extend(contents);
    re::DirectoryNode {
        name: name.into(),
        digest: Some(digest),
    }
}

fn output_of(result: &re::ActionResult) -> Option<re::Digest> {
    result
        .output_files
        .iter()
        .find(|f| f.path == OUTPUT)
        .and_then(|f| f.digest.clone())
}

/// A layer as a CAS blob: its uncompressed tar (made if the store has
/// none), whose digest is the layer's diff id.
fn layer_blob(store: &Store, diff_id: &Digest) -> Result<(re::Digest, Blob)> {
    let tar = crate::store::ensure_blob(store, diff_id, Compression::None)?;
    let digest = re::Digest {
        hash: diff_id.hex(),
        size_bytes: tar.size as i64,
    };
    Ok((digest, Blob::File(store.blob_path(&tar.digest))))
}

/// The diff id a layer tar's CAS digest names; `what` names it in the error.
fn diff_id_of(remote: &Remote, digest: &re::Digest, what: &str) -> Result<Digest> {
    format!("sha256:{}", digest.hash)
        .parse()
        .map_err(|_| remote.fail(format!("{what} has a malformed digest `{}`", digest.hash)))
}

/// Downloads a layer tar from the CAS into the store, checked against its diff id.
fn fetch_layer(store: &Store, remote: &Remote, digest: &re::Digest, diff_id: &Digest) -> Result<()> {
    let _guard = store.lock(&format!("fetch-{}", diff_id.hex()))?;
    if store.has_layer(diff_id) {
        return Ok(());
    }
    let tmp = store.tmp_dir()?;
    let path = tmp.path().join("layer.tar");
    let mut file = std::fs::File::create(&path).map_err(Error::io("create", &path))?;
    remote.download(digest, &mut file)?;
    drop(file);
    let file = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
    let what = format!("{}/blobs/{}", remote.endpoint, digest.hash);
    crate::store::import_layer_from(
        store,
        std::io::BufReader::new(file),
        Path::new(&what),
        Some(diff_id),
        diff_id,
    )
}

/// Refuses an action that is not a strata step (another command), or one
/// for another version of strata (another salt).
fn refuse_foreign(action: &re::Action, command: &re::Command) -> std::result::Result<(), String> {
    if command.arguments.get(1).map(String::as_str) != Some(COMMAND) {
        return Err(format!(
            "not a strata step: the command is {:?} (a strata worker runs only `strata {COMMAND}`)",
            command.arguments
        ));
    }
    if action.salt != SALT {
        return Err(format!(
            "the action is salted {:?}, this worker makes {:?}: client and worker are different strata versions",
            String::from_utf8_lossy(&action.salt),
            String::from_utf8_lossy(SALT)
        ));
    }
    Ok(())
}

/// A worker's side: runs the action `action` (fetched from the CAS) in the
/// sandbox on `store`; returns its result, its layer uploaded.
pub fn execute_action(
    store: &Store,
    remote: &Remote,
    action: &re::Action,
    sandbox_exe: &Path,
    log: &dyn Fn(&str),
) -> Result<re::ActionResult> {
    let command: re::Command = remote.read_message(
        action
            .command_digest
            .as_ref()
            .ok_or_else(|| remote.fail("the action has no command"))?,
    )?;
    refuse_foreign(action, &command).map_err(|message| remote.fail(message))?;
    let root: re::Directory = remote.read_message(
        action
            .input_root_digest
            .as_ref()
            .ok_or_else(|| remote.fail("the action has no input root"))?,
    )?;
    let step_file = root
        .files
        .iter()
        .find(|f| f.name == "step.json")
        .and_then(|f| f.digest.clone())
        .ok_or_else(|| remote.fail("the input root has no step.json"))?;
    let job: Job = serde_json::from_slice(&remote.read_blob(&step_file)?)
        .map_err(|e| remote.fail(format!("step.json is not a strata step: {e}")))?;
    let subdir = |name: &str| -> Result<re::Directory> {
        match root.directories.iter().find(|d| d.name == name) {
            Some(dir) => remote.read_message(
                dir.digest
                    .as_ref()
                    .ok_or_else(|| remote.fail(format!("`{name}` has no digest")))?,
            ),
            None => Ok(re::Directory::default()),
        }
    };
    // The layers this worker lacks, checked against their names.
    let mut given: BTreeSet<Digest> = BTreeSet::new();
    for file in &subdir("layers")?.files {
        let digest = file
            .digest
            .clone()
            .ok_or_else(|| remote.fail(format!("layer {} has no digest", file.name)))?;
        let diff_id = diff_id_of(remote, &digest, &format!("layer {}", file.name))?;
        if !store.has_layer(&diff_id) {
            log(&format!("fetching layer {}", &digest.hash[..12]));
            fetch_layer(store, remote, &digest, &diff_id)?;
        }
        given.insert(diff_id);
    }
    // Only what the input root holds: a hand-made step.json could name
    // any layer another tenant left in this worker's store.
    let named: Vec<&Digest> = match &job {
        Job::Run(step) => step
            .parent
            .rootfs
            .diff_ids
            .iter()
            .chain(step.mounts.iter().flat_map(|m| m.state.rootfs.diff_ids.iter()))
            .collect(),
        Job::Debian(wire) => wire.install.lowers.iter().collect(),
    };
    if let Some(absent) = named.iter().find(|d| !given.contains(**d)) {
        return Err(remote.fail(format!(
            "step.json names the layer {absent}, which the action's input root does not hold"
        )));
    }

    let output = Collect::default();
    let cancel = AtomicBool::new(false);
    let epoch = match &job {
        Job::Run(step) => step.epoch,
        Job::Debian(wire) => wire.epoch,
    };
    let opts = ExecOptions {
        compression: Compression::None,
        epoch,
        sandbox_exe: Some(sandbox_exe.to_path_buf()),
        platform: crate::platform::Platform::host(),
        secrets: Default::default(),
        ssh: Default::default(),
        debug: None,
        remote: None,
    };
    let registry = crate::registry::Client::new(Vec::new());
    let ctx = ExecCtx {
        store,
        events: &output,
        cancel: &cancel,
        node: 0,
        opts: &opts,
        registry: &registry,
        phases: Default::default(),
        image_layer: true,
        cpu: None,
        cpu_held: Default::default(),
    };
    let outcome = match &job {
        Job::Run(step) => run_step(&ctx, step, &remote.instance),
        Job::Debian(wire) => {
            let debs = subdir("debs")?;
            install(&ctx, remote, wire, &debs, log)
        }
    };
    let stdout = output.lines.into_inner().unwrap_or_else(|e| e.into_inner()).join("\n");
    let diff_id = match outcome {
        Ok(diff_id) => diff_id,
        Err(Error::Step { message, .. }) => {
            return Ok(re::ActionResult {
                exit_code: 1,
                stdout_raw: stdout.into_bytes(),
                stderr_raw: format!("{FAILED}{message}").into_bytes(),
                ..Default::default()
            })
        }
        Err(e) => return Err(e),
    };
    let (digest, blob) = layer_blob(store, &diff_id)?;
    let sent = remote.upload_missing(vec![(digest.clone(), blob)])?;
    log(&format!(
        "layer {} ({} bytes, {sent} uploaded)",
        &digest.hash[..12],
        digest.size_bytes
    ));
    Ok(re::ActionResult {
        output_files: vec![re::OutputFile {
            path: OUTPUT.into(),
            digest: Some(digest),
            ..Default::default()
        }],
        exit_code: 0,
        stdout_raw: stdout.into_bytes(),
        ..Default::default()
    })
}

/// A worker's RUN step, as the scheduler would have given it; its layer.
/// Cache mounts belong to the instance the action came from: tenants of
/// one worker under other instance names never see each other's caches.
fn run_step(ctx: &ExecCtx<'_>, step: &WireStep, instance: &str) -> Result<Digest> {
    let mut states = HashMap::new();
    let mut mounts = Vec::new();
    for (i, m) in step.mounts.iter().enumerate() {
        states.insert(i + 1, State::new(m.state.clone()));
        mounts.push(BindMount {
            node: i + 1,
            path: m.path.clone(),
            target: m.target.clone(),
        });
    }
    let mut run = RunOp::new(step.argv.clone());
    run.env = step.env.clone();
    run.user = step.user.clone();
    run.timeout = step.timeout;
    run.keep_mount_points = step.keep_mount_points;
    run.limits.memory = step.memory;
    run.limits.pids = step.pids;
    run.limits.cpu_millis = step.cpu_millis;
    run.caches = step
        .caches
        .iter()
        .map(|c| CacheMount {
            target: c.target.clone(),
            id: format!("instance {instance:?}: {}", c.id),
            shared: c.shared,
            export: None,
        })
        .collect();
    run.tmpfs = step
        .tmpfs
        .iter()
        .map(|(target, size)| TmpfsMount {
            target: target.clone(),
            size: *size,
        })
        .collect();
    run.mounts = mounts;
    let node = Node {
        op: Op::Run(run.clone()),
        parent: Some(0),
        origin: parse_origin(&step.origin),
        description: step.description.clone(),
        platform: crate::platform::Platform::host(),
    };
    let parent = State::new(step.parent.clone());
    let record = crate::sandbox::run_step(ctx, &node, &run, &parent, &states)?;
    Ok(record.layers[0].diff_id.clone())
}

/// A worker's dpkg install: the packages it lacks fetched from the CAS
/// (`debs`, checked against their SHA256), then the same install a local
/// build runs; its layer.
fn install(
    ctx: &ExecCtx<'_>,
    remote: &Remote,
    wire: &WireInstall,
    debs: &re::Directory,
    log: &dyn Fn(&str),
) -> Result<Digest> {
    let node = Node {
        op: Op::Scratch,
        parent: None,
        origin: parse_origin(&wire.origin),
        description: wire.description.clone(),
        platform: crate::platform::Platform::host(),
    };
    let job = &wire.install;
    // Before any name becomes a path.
    job.check().map_err(|e| remote.fail(format!("step.json: {e}")))?;
    let missing: Vec<&String> = job
        .debs
        .values()
        .filter(|sha256| !crate::debian::has_deb(ctx.store, sha256))
        .collect();
    if !missing.is_empty() {
        log(&format!("fetching {} packages", missing.len()));
    }
    let scratch = ctx.store.tmp_dir()?;
    for sha256 in missing {
        let digest = debs
            .files
            .iter()
            .find(|f| &f.name == sha256)
            .and_then(|f| f.digest.clone())
            .ok_or_else(|| remote.fail(format!("the input root lacks the package {sha256}")))?;
        let expected: Digest = format!("sha256:{sha256}")
            .parse()
            .map_err(|_| remote.fail(format!("malformed package digest {sha256}")))?;
        crate::debian::put_deb(
            ctx.store,
            scratch.path(),
            sha256,
            |out| remote.download(&digest, out),
            |actual, _| {
                if actual == &expected {
                    return Ok(());
                }
                Err(Error::DigestMismatch {
                    what: format!("{}/blobs/{}", remote.endpoint, digest.hash),
                    expected: expected.clone(),
                    actual: actual.clone(),
                })
            },
        )?;
    }
    crate::debian::install(ctx, &node, job)
}

fn parse_origin(text: &str) -> Origin {
    let mut parts = text.rsplitn(3, ':');
    let col = parts.next().and_then(|c| c.parse().ok());
    let line = parts.next().and_then(|l| l.parse().ok());
    match (parts.next(), line, col) {
        (Some(file), Some(line), Some(col)) => Origin {
            file: file.to_string(),
            line,
            col,
        },
        _ => Origin::default(),
    }
}

/// Keeps a step's output lines (they go back in the action's result).
#[derive(Default)]
struct Collect {
    lines: std::sync::Mutex<Vec<String>>,
}

impl EventSink for Collect {
    fn event(&self, event: Event) {
        if let Event::Output { line, .. } = event {
            self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_refuses_other_commands_and_other_versions_salts() {
        let command = |args: &[&str]| re::Command {
            arguments: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        };
        let salted = |salt: &[u8]| re::Action {
            salt: salt.to_vec(),
            ..Default::default()
        };
        let ours = command(&["strata", COMMAND, "step.json"]);
        assert_eq!(refuse_foreign(&salted(SALT), &ours), Ok(()));
        assert_eq!(
            refuse_foreign(&salted(SALT), &command(&["sh", "-c", "id"])),
            Err(r#"not a strata step: the command is ["sh", "-c", "id"] (a strata worker runs only `strata __remote-step`)"#.into())
        );
        assert_eq!(
            refuse_foreign(&salted(b""), &ours),
            Err(r#"the action is salted "", this worker makes "strata-step-v2": client and worker are different strata versions"#.into())
        );
    }

    #[test]
    fn an_origin_survives_the_wire() {
        let o = Origin {
            file: "dir/strata.rhai".into(),
            line: 12,
            col: 3,
        };
        assert_eq!(parse_origin(&o.to_string()), o);
        assert_eq!(parse_origin("nonsense"), Origin::default());
    }
}
