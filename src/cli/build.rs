//! `strata build`: parse the flags, evaluate the recipe, hand the targets to
//! `session::build`, print what it finished.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use strata_engine::graph::TargetKind;
use strata_engine::layer::Compression;
use strata_engine::lock::LockMode;
use strata_engine::sched::{source_date_epoch, BuildOptions};
use strata_engine::session::{self, Exports, Finished, Output};
use strata_engine::store::Store;

use super::{CliError, RecipeArgs, RegistryArgs};
use crate::render::progress::{Progress, ProgressMode};
use crate::render::signals;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Targets to build (groups expand to their members).
    pub targets: Vec<String>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Also write the image targets to `oci:DIR` or `docker-archive:FILE` (repeatable).
    #[arg(long = "output", short = 'o', value_name = "oci:DIR|docker-archive:FILE")]
    pub outputs: Vec<String>,
    /// Where artifact targets go (each into `DIR/NAME`; default `./out`).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out_dir: PathBuf,
    /// Compression of new layers.
    #[arg(long, value_enum, default_value_t = LayerCompression::Gzip)]
    pub compression: LayerCompression,
    /// Rebuild every step, ignoring cached results.
    #[arg(long)]
    pub no_cache: bool,
    /// After a failure, go on building every target that does not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// Fail when `strata.lock` lacks a registry base of the recipe or pins one it does not use.
    #[arg(long)]
    pub locked: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub remote: super::worker::RemoteArgs,
    /// Push the image target to a registry: `REF` when the build has one image
    /// target, `TARGET=REF` for any of them (repeatable).
    #[arg(long, value_name = "[TARGET=]REF")]
    pub push: Vec<String>,
    /// Look node results up in this registry repository before building them (repeatable).
    #[arg(long, value_name = "REGISTRY/REPO")]
    pub cache_from: Vec<String>,
    /// Push every node result the repository lacks to this registry repository (repeatable).
    #[arg(long, value_name = "REGISTRY/REPO")]
    pub cache_to: Vec<String>,
    /// Most steps running at once.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Progress output: auto is tty on a terminal, else plain.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Entitlements steps may ask for: `insecure` lets a `run` with
    /// `security: "insecure"` keep every capability (repeatable).
    #[arg(long, value_enum, value_name = "ENTITLEMENT")]
    pub allow: Vec<Entitlement>,
    /// A secret for steps that name it by id alone (a Dockerfile's
    /// `--mount=type=secret,id=ID`): `id=ID,src=FILE` or `id=ID,env=VARIABLE` (repeatable).
    #[arg(long = "secret", value_name = "id=ID,src=FILE", value_parser = parse_secret)]
    pub secrets: Vec<(String, strata_engine::graph::SecretSource)>,
    /// An SSH agent for steps with an `ssh` mount (a Dockerfile's
    /// `--mount=type=ssh`): `ID` for the agent of $SSH_AUTH_SOCK, or
    /// `ID=SOCKET` (repeatable; the usual ID is `default`).
    #[arg(long = "ssh", value_name = "ID[=SOCKET]", value_parser = parse_ssh)]
    pub ssh: Vec<(String, std::path::PathBuf)>,
    /// Attach an SPDX SBOM to each image (an attestation manifest in its
    /// index, as BuildKit's `--sbom`): every package its layers hold, with
    /// the layer it came from; `strata sbom IMAGE` prints it.
    #[arg(long)]
    pub sbom: bool,
    /// Attach SLSA v1 provenance to each image (an attestation manifest in
    /// its index): the recipe, args, platform and every resolved input by
    /// digest; `strata provenance IMAGE` prints it.
    #[arg(long)]
    pub provenance: bool,
    /// Also tag the image target as NAME (repeatable; the build must have one image target).
    #[arg(long = "tag", short = 't', value_name = "NAME")]
    pub tags: Vec<String>,
    /// Put the image targets into the local docker or podman (its API
    /// socket: DOCKER_HOST, /var/run/docker.sock, podman's; else `podman load`).
    #[arg(long)]
    pub load: bool,
    /// Write the image's digest to FILE (with --load, the image ID docker
    /// shows: its config's digest), as `docker build --iidfile`.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write what was built to FILE as JSON with BuildKit's keys
    /// (`containerimage.digest`, `image.name`, …; keyed by target with several).
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Open a shell in a RUN step's sandbox on this terminal: `--debug`
    /// when a step fails, `--debug=before` before each step that runs,
    /// `--debug=before:[FILE:]LINE` before the step written there. Steps
    /// run one at a time; Ctrl-C belongs to the shell.
    #[arg(long, value_name = "WHEN", num_args = 0..=1, require_equals = true,
          default_missing_value = "error", value_parser = parse_debug)]
    pub debug: Option<strata_engine::step::Debug>,
    /// Build only shard I of N of the selected targets: a deterministic
    /// share, balanced by their number of nodes (for CI runners in parallel).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Stream every RUN step's output (otherwise only a failed step's last lines are shown).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// `--allow`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entitlement {
    /// `run(…, #{ security: "insecure" })`: no capability dropped, no seccomp filter, /proc and /sys unmasked.
    Insecure,
}

/// `--compression`: of the layer blobs an output gets (`-o oci:`, pushes,
/// `--cache-to`); the store keeps layers uncompressed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    Gzip,
    Zstd,
    /// zstd level 1 on four threads: fast, for registries that take zstd.
    ZstdFast,
}

impl LayerCompression {
    pub fn engine(self) -> Compression {
        match self {
            LayerCompression::Gzip => Compression::Gzip,
            LayerCompression::Zstd => Compression::Zstd,
            LayerCompression::ZstdFast => Compression::ZstdFast,
        }
    }
}

fn parse_output(s: &str) -> Result<Output, CliError> {
    let empty = |kind: &str, what: &str| {
        CliError::Usage(format!(
            "--output `{s}`: `{kind}:` needs a {what} (use `.` for the current directory)"
        ))
    };
    if let Some(dir) = s.strip_prefix("oci:") {
        if dir.is_empty() {
            return Err(empty("oci", "directory"));
        }
        return Ok(Output::Oci(PathBuf::from(dir)));
    }
    if let Some(file) = s.strip_prefix("docker-archive:") {
        return match file {
            "" => Err(CliError::Usage(format!(
                "--output `{s}`: `docker-archive:` needs a file, or `-` for standard output"
            ))),
            "-" if std::io::stdout().is_terminal() => Err(CliError::Usage(
                "--output docker-archive:- would write a tar archive to the terminal; redirect standard output (`| docker load`) or name a file".into(),
            )),
            "-" => Ok(Output::DockerArchiveStdout),
            _ => Ok(Output::DockerArchive(PathBuf::from(file))),
        };
    }
    Err(CliError::Usage(format!(
        "--output `{s}`: expected oci:DIR or docker-archive:FILE"
    )))
}

pub fn run(store: &Store, args: BuildArgs) -> Result<(), CliError> {
    let started = Instant::now();
    // Shared with other builds; `strata gc` waits until no build holds it.
    let _in_use = store.hold(false, true)?;
    let compression = args.compression.engine();
    let outputs: Vec<Output> = args.outputs.iter().map(|s| parse_output(s)).collect::<Result<_, _>>()?;
    if outputs
        .iter()
        .filter(|o| matches!(o, Output::DockerArchiveStdout))
        .count()
        > 1
    {
        return Err(CliError::Usage("--output docker-archive:- can be given once".into()));
    }
    // The archive owns standard output; the results go to stderr instead.
    let results_to_stderr = outputs.iter().any(|o| matches!(o, Output::DockerArchiveStdout));
    if args.out_dir.as_os_str().is_empty() {
        return Err(CliError::Usage(
            "--out-dir needs a directory (use `.` for the current directory)".into(),
        ));
    }
    let epoch = source_date_epoch()?;
    let platforms = args.registry.platforms()?;
    if platforms.len() > 1
        && outputs
            .iter()
            .any(|o| matches!(o, Output::DockerArchive(_) | Output::DockerArchiveStdout))
    {
        return Err(CliError::Usage(format!(
            "--output docker-archive holds one platform's image, and --platform names {}: build one platform (--platform {}) or write an OCI layout (-o oci:DIR), which holds an image index",
            platforms.len(),
            platforms[0]
        )));
    }
    let mut graph = args.recipe.load_for(
        &super::BaseReading {
            store,
            insecure_registries: args.registry.insecure_registries.clone(),
            platform: platforms[0].clone(),
            mode: if args.locked { LockMode::Locked } else { LockMode::Use },
        },
        &platforms,
    )?;
    add_tags(&mut graph, &args.targets, &args.tags)?;
    let mut targets = graph
        .select_targets(&args.targets)
        .map_err(strata_engine::Error::from)?;
    if let Some((index, count)) = args.shard {
        let names = |ts: &[&strata_engine::graph::Target]| {
            let mut n: Vec<String> = ts
                .iter()
                .filter(|t| t.node().is_some())
                .map(|t| t.name.clone())
                .collect();
            n.dedup();
            n
        };
        let total = names(&targets).len();
        let (share, nodes) = graph.shard(&targets, index, count);
        let mine = names(&share);
        if mine.is_empty() {
            eprintln!("shard {index}/{count}: no targets ({total} targets for {count} shards)");
            return Ok(());
        }
        eprintln!(
            "shard {index}/{count}: {} of {total} targets ({nodes} nodes): {}",
            mine.len(),
            mine.join(", ")
        );
        targets = share;
    }
    let image_names = target_names(&image_targets(&targets));
    if args.iidfile.is_some() && image_names.len() != 1 {
        return Err(CliError::Usage(format!(
            "--iidfile holds one image's id, and the build has {} image targets ({}); name one target",
            image_names.len(),
            image_names.join(", ")
        )));
    }
    // Found before anything is built: a build that cannot be loaded stops here.
    let load = match args.load {
        true => Some(strata_engine::export::load::find_daemon()?),
        false => None,
    };
    let pushes = push_targets(&args.push, &targets)?;
    if args.debug.is_some() {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(CliError::Usage(
                "--debug opens a shell on this terminal, and standard input or error is not one: run it in a terminal (a CI job can give it one: script -qec \"strata build --debug\" /dev/null)".into(),
            ));
        }
        // The shell owns Ctrl-C; SIGTERM still ends strata.
        crate::render::signals::pass_to_container();
    }
    // A debug shell shares the terminal with nothing: plain lines, one step at a time.
    let progress_mode = match args.debug {
        Some(_) => ProgressMode::Plain,
        None => args.progress,
    };
    let progress = Progress::new(progress_mode, args.verbose, &graph);
    let remote = args.remote.connect()?;
    let opts = BuildOptions {
        compression,
        epoch,
        no_cache: args.no_cache,
        jobs: match args.debug {
            Some(_) => 1,
            None => args
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(8, |n| (n.get() * 2).max(8))),
        },
        sandbox_exe: std::env::current_exe().ok(),
        keep_going: args.keep_going,
        insecure_registries: args.registry.insecure_registries.clone(),
        platform: platforms[0].clone(),
        cache_from: args
            .cache_from
            .iter()
            .map(|r| super::reference("--cache-from", r))
            .collect::<Result<_, _>>()?,
        cache_to: args
            .cache_to
            .iter()
            .map(|r| super::reference("--cache-to", r))
            .collect::<Result<_, _>>()?,
        recipe: args.recipe.file.clone(),
        lock_mode: if args.locked { LockMode::Locked } else { LockMode::Use },
        allow_insecure: args.allow.contains(&Entitlement::Insecure),
        secrets: args.secrets.iter().cloned().collect(),
        ssh: args.ssh.iter().cloned().collect(),
        debug: args.debug.clone(),
        remote: remote.clone(),
    };
    let exports = Exports {
        outputs,
        out_dir: args.out_dir.clone(),
        pushes,
        args: args.recipe.args.clone(),
        sbom: args.sbom,
        provenance: args.provenance,
        load,
        load_names: args.tags.clone(),
    };
    let report = session::build(store, &graph, &targets, opts, &exports, &progress, signals::cancelled())?;
    if let Some(remote) = &remote {
        eprintln!("remote executor {}: {}", remote.endpoint, remote.stats);
    }
    for finished in &report.finished {
        match finished {
            Finished::Image { name, tags, descriptor } if results_to_stderr => {
                eprintln!("{name}\t{}\t{}", tags.join(","), descriptor.digest)
            }
            Finished::Artifact { name, dir } if results_to_stderr => eprintln!("{name}\t{}", dir.display()),
            Finished::Image { name, tags, descriptor } => {
                crate::outln!("{name}\t{}\t{}", tags.join(","), descriptor.digest)
            }
            Finished::Artifact { name, dir } => crate::outln!("{name}\t{}", dir.display()),
            Finished::Skipped { name } => eprintln!("skipped {name}: a step it needs failed"),
        }
    }
    if let Some(stats) = &report.cache {
        eprintln!("cache: {} → {}", super::push::summary(stats), args.cache_to.join(", "));
    }
    for pushed in &report.pushed {
        super::push::print_pushed(pushed);
    }
    for loaded in &report.loaded {
        eprintln!("{loaded}");
    }
    write_build_files(store, &args, &report)?;
    progress.finish(started.elapsed(), report.files_hashed, report.files_reused);
    let mut errors = report.errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(first) => {
            for other in errors {
                crate::render::diagnostics::report(&CliError::Engine(other));
            }
            Err(first.into())
        }
    }
}

/// The image targets among `targets`, once per name (a multi-platform
/// target's variants are one image).
fn image_targets<'a>(targets: &[&'a strata_engine::graph::Target]) -> Vec<&'a strata_engine::graph::Target> {
    let mut images: Vec<&strata_engine::graph::Target> = Vec::new();
    for t in targets.iter().copied() {
        if matches!(t.kind, TargetKind::Image { .. }) && !images.iter().any(|i| i.name == t.name) {
            images.push(t);
        }
    }
    images
}

/// The names of `targets`.
fn target_names(targets: &[&strata_engine::graph::Target]) -> Vec<String> {
    targets.iter().map(|t| t.name.clone()).collect()
}

/// `-t/--tag`: the extra names go to the one image target the build selects.
fn add_tags(graph: &mut strata_engine::graph::Graph, selected: &[String], tags: &[String]) -> Result<(), CliError> {
    if tags.is_empty() {
        return Ok(());
    }
    if let Some(bad) = tags.iter().find(|t| !strata_dsl::valid_tag(t)) {
        return Err(CliError::Usage(format!(
            "--tag `{bad}` is not a valid image name (lowercase `repo/name:tag`)"
        )));
    }
    let targets = graph.select_targets(selected).map_err(strata_engine::Error::from)?;
    let names = target_names(&image_targets(&targets));
    let [name] = names.as_slice() else {
        return Err(CliError::Usage(format!(
            "--tag names one image, and the build has {} image targets{}; name the target to tag (strata build TARGET -t NAME)",
            names.len(),
            match names.is_empty() {
                true => String::new(),
                false => format!(" ({})", names.join(", ")),
            }
        )));
    };
    let name = name.clone();
    for target in graph.targets.iter_mut().filter(|t| t.name == name) {
        if let TargetKind::Image { tags: own, .. } = &mut target.kind {
            for tag in tags {
                if !own.contains(tag) {
                    own.push(tag.clone());
                }
            }
        }
    }
    Ok(())
}

/// `--iidfile` and `--metadata-file`, as BuildKit writes them.
fn write_build_files(store: &Store, args: &BuildArgs, report: &session::Report) -> Result<(), CliError> {
    if args.iidfile.is_none() && args.metadata_file.is_none() {
        return Ok(());
    }
    let mut entries = serde_json::Map::new();
    let mut ids = Vec::new();
    for finished in &report.finished {
        let Finished::Image { name, tags, descriptor } = finished else {
            continue;
        };
        let config = config_digest(store, descriptor)?;
        let mut entry = serde_json::Map::new();
        entry.insert("containerimage.digest".into(), descriptor.digest.to_string().into());
        if let Some(config) = &config {
            entry.insert("containerimage.config.digest".into(), config.to_string().into());
        }
        entry.insert(
            "containerimage.descriptor".into(),
            serde_json::json!({
                "mediaType": descriptor.media_type,
                "digest": descriptor.digest.to_string(),
                "size": descriptor.size,
            }),
        );
        entry.insert("image.name".into(), tags.join(",").into());
        entries.insert(name.clone(), entry.into());
        ids.push(match (args.load, config) {
            (true, Some(config)) => config,
            _ => descriptor.digest.clone(),
        });
    }
    if let Some(file) = &args.iidfile {
        if let [id] = ids.as_slice() {
            std::fs::write(file, id.to_string()).map_err(strata_engine::Error::io("write", file))?;
        }
    }
    if let Some(file) = &args.metadata_file {
        // One image: its keys at the top, as `docker buildx build`; several:
        // by target name, as `docker buildx bake`.
        let doc = match entries.len() {
            1 => entries.into_iter().next().map(|(_, v)| v).unwrap_or_default(),
            _ => entries.into(),
        };
        let text = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
        std::fs::write(file, text + "\n").map_err(strata_engine::Error::io("write", file))?;
    }
    Ok(())
}

/// The config digest of an image manifest, or of an index's one image
/// (attestations aside); none for an index of several platforms.
fn config_digest(
    store: &Store,
    descriptor: &strata_engine::image::Descriptor,
) -> Result<Option<strata_engine::digest::Digest>, CliError> {
    let manifests: Vec<_> = strata_engine::store::manifests_of(store, descriptor)?
        .into_iter()
        .filter(|d| !strata_engine::store::is_attestation(d))
        .collect();
    let [manifest] = manifests.as_slice() else {
        return Ok(None);
    };
    let bytes = store.read_blob(&manifest.digest)?;
    let manifest: strata_engine::image::Manifest =
        serde_json::from_slice(&bytes).map_err(|e| strata_engine::Error::BadImage {
            what: manifest.digest.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Some(manifest.config.digest))
}

/// Pairs `--push` values with the image targets they name.
fn push_targets(
    values: &[String],
    targets: &[&strata_engine::graph::Target],
) -> Result<Vec<(String, strata_engine::registry::Reference)>, CliError> {
    let images = image_targets(targets);
    let mut pushes = Vec::new();
    for value in values {
        let named = value
            .split_once('=')
            .and_then(|(name, r)| images.iter().find(|t| t.name == name).map(|t| (*t, r)));
        let (target, text) = match (named, images.as_slice()) {
            (Some(pair), _) => pair,
            (None, [only]) => (*only, value.as_str()),
            (None, []) => return Err(CliError::Usage("--push: the build has no image target".into())),
            (None, _) => {
                return Err(CliError::Usage(format!(
                    "--push `{value}`: the build has several image targets; write TARGET=REF (one of {})",
                    images.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                )))
            }
        };
        pushes.push((target.name.clone(), super::reference("--push", text)?));
    }
    Ok(pushes)
}

/// `error`, `before`, `before:LINE` or `before:FILE:LINE`.
fn parse_debug(s: &str) -> Result<strata_engine::step::Debug, String> {
    use strata_engine::step::Debug;
    let bad = || format!("`{s}`: --debug takes nothing (a shell when a step fails), `before`, or `before:[FILE:]LINE`");
    match s {
        "error" => return Ok(Debug::OnError),
        "before" => return Ok(Debug::Before { file: None, line: None }),
        _ => {}
    }
    let at = s.strip_prefix("before:").ok_or_else(bad)?;
    let (file, line) = match at.rsplit_once(':') {
        Some((file, line)) => (Some(file.to_string()), line),
        None => (None, at),
    };
    let line = line.parse::<u32>().map_err(|_| bad())?;
    Ok(Debug::Before { file, line: Some(line) })
}

/// `I/N` with 1 ≤ I ≤ N.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let parsed = s
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
    match parsed {
        Some((i, n)) if i >= 1 && i <= n => Ok((i, n)),
        _ => Err(format!("`{s}` is not I/N with 1 ≤ I ≤ N (e.g. 2/4)")),
    }
}

/// `id=ID,src=FILE` (also `source=`) or `id=ID,env=VARIABLE`.
fn parse_ssh(s: &str) -> Result<(String, std::path::PathBuf), String> {
    let (id, socket) = match s.split_once('=') {
        Some((id, socket)) => (id, std::path::PathBuf::from(socket)),
        None => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(socket) => (s, std::path::PathBuf::from(socket)),
            None => {
                return Err(format!(
                    "`{s}`: SSH_AUTH_SOCK is not set (start an agent: `eval $(ssh-agent)` and `ssh-add`), or give its socket: --ssh {s}=SOCKET"
                ))
            }
        },
    };
    if id.is_empty() {
        return Err(format!("`{s}` has no id (--ssh default or --ssh ID=SOCKET)"));
    }
    let socket = std::path::absolute(&socket).map_err(|e| format!("`{}`: {e}", socket.display()))?;
    let meta = std::fs::metadata(&socket).map_err(|e| format!("ssh agent `{id}`: `{}`: {e}", socket.display()))?;
    if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
        return Err(format!(
            "ssh agent `{id}`: `{}` is not a socket; strata forwards an agent, not key files: `eval $(ssh-agent)`, `ssh-add KEY`, then --ssh {id}",
            socket.display()
        ));
    }
    Ok((id.to_string(), socket))
}

fn parse_secret(s: &str) -> Result<(String, strata_engine::graph::SecretSource), String> {
    use strata_engine::graph::SecretSource;
    let mut id = None;
    let mut source = None;
    for field in s.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| format!("`{field}` is not KEY=VALUE (id=ID,src=FILE or id=ID,env=VARIABLE)"))?;
        match k {
            "id" => id = Some(v.to_string()),
            "src" | "source" => {
                let path = std::path::absolute(v).map_err(|e| format!("`{v}`: {e}"))?;
                source = Some(SecretSource::File(path));
            }
            "env" => source = Some(SecretSource::Env(v.to_string())),
            other => return Err(format!("unknown secret field `{other}` (id, src, env)")),
        }
    }
    let id = id.filter(|i| !i.is_empty()).ok_or("a secret needs `id=`")?;
    let source = source.ok_or_else(|| format!("secret `{id}` needs `src=FILE` or `env=VARIABLE`"))?;
    Ok((id, source))
}
