//! `strata build`: evaluate, plan, build, then store and export the targets.

use std::path::PathBuf;
use std::time::Instant;

use std::collections::HashSet;
use strata_engine::build::{source_date_epoch, BuildOptions, Builder};

use strata_engine::explain;
use strata_engine::export;
use strata_engine::graph::TargetKind;
use strata_engine::layer::Compression;
use strata_engine::lock::LockMode;
use strata_engine::store::Store;

use super::{CliError, RecipeArgs, RegistryArgs};
use crate::render::progress::Progress;
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
    /// Compression of new layers: gzip or zstd.
    #[arg(long, default_value = "gzip", value_name = "gzip|zstd")]
    pub compression: String,
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
    /// Progress output: auto (tty on a terminal, else plain), tty, plain or json.
    #[arg(long, default_value = "auto", value_name = "auto|tty|plain|json")]
    pub progress: String,
    /// Stream every RUN step's output (otherwise only a failed step's last lines are shown).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

enum Output {
    Oci(PathBuf),
    DockerArchive(PathBuf),
}

fn parse_output(s: &str) -> Result<Output, CliError> {
    if let Some(dir) = s.strip_prefix("oci:") {
        return Ok(Output::Oci(PathBuf::from(dir)));
    }
    if let Some(file) = s.strip_prefix("docker-archive:") {
        return Ok(Output::DockerArchive(PathBuf::from(file)));
    }
    Err(CliError::Usage(format!(
        "--output `{s}`: expected oci:DIR or docker-archive:FILE"
    )))
}

pub fn run(store: &Store, args: BuildArgs) -> Result<(), CliError> {
    let started = Instant::now();
    // Shared with other builds; `strata gc` waits until no build holds it.
    let _in_use = store.hold(false, true)?;
    let compression = Compression::parse(&args.compression)
        .filter(|c| *c != Compression::None)
        .ok_or_else(|| CliError::Usage(format!("--compression `{}`: expected gzip or zstd", args.compression)))?;
    let outputs: Vec<Output> = args.outputs.iter().map(|s| parse_output(s)).collect::<Result<_, _>>()?;
    let epoch = source_date_epoch().map_err(CliError::Usage)?;
    let graph = args.recipe.load()?;
    let targets = graph
        .select_targets(&args.targets)
        .map_err(strata_engine::Error::from)?;
    let nodes = graph.nodes_for(&targets);
    let pushes = push_targets(&args.push, &targets)?;
    let progress = Progress::new(&args.progress, args.verbose, &graph).map_err(CliError::Usage)?;
    let opts = BuildOptions {
        compression,
        epoch,
        no_cache: args.no_cache,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(8, |n| (n.get() * 2).max(8))),
        sandbox_exe: std::env::current_exe().ok(),
        keep_going: args.keep_going,
        insecure_registries: args.registry.insecure_registries.clone(),
        platform: args.registry.platform()?,
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
    };
    let builder = Builder::new(store, &graph, opts, &progress, signals::cancelled());
    let plan = builder.plan(&nodes)?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut outcome = std::thread::scope(|scope| {
        if progress.is_live() {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    progress.tick();
                }
            });
        }
        let outcome = builder.run(&plan, &nodes);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        outcome
    });
    if !outcome.errors.is_empty() && !args.keep_going {
        // Nothing is exported from a failed build unless asked to keep going.
        outcome.states.clear();
    }
    let states = &outcome.states;

    let mut images = Vec::new();
    for target in &targets {
        match &target.kind {
            TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. } if !states.contains_key(node) => {
                if args.keep_going {
                    eprintln!("skipped {}: a step it needs failed", target.name);
                }
            }
            TargetKind::Image { node, tags } => {
                builder.materialize(&states[node], None)?;
                let desc = export::write_image(store, &states[node], compression, epoch)?;
                for tag in tags {
                    store.tag(tag, &desc)?;
                }
                println!("{}\t{}\t{}", target.name, tags.join(","), desc.digest);
                images.push((tags.clone(), desc));
            }
            TargetKind::Artifact { node, path } => {
                let dest = args.out_dir.join(&target.name);
                builder.materialize(&states[node], None)?;
                export::artifact(store, &states[node], path, &dest)?;
                println!("{}\t{}", target.name, dest.display());
            }
            TargetKind::Group { .. } => {}
        }
    }
    for output in &outputs {
        match output {
            Output::Oci(dir) => export::to_oci_dir(store, &images, dir)?,
            Output::DockerArchive(file) => export::to_docker_archive(store, &images, file)?,
        }
    }
    record_explanations(store, &graph, &plan, &targets, &outcome, &args)?;
    if !builder.opts.cache_to.is_empty() && (outcome.errors.is_empty() || args.keep_going) {
        let stats = builder.push_cache(&plan, &outcome)?;
        eprintln!("cache: {} → {}", super::push::summary(&stats), args.cache_to.join(", "));
    }
    if outcome.errors.is_empty() {
        let client = args.registry.client();
        for (target, reference) in &pushes {
            let TargetKind::Image { node, .. } = &target.kind else {
                continue;
            };
            let desc = export::write_image(store, &states[node], compression, epoch)?;
            super::push::push_stored(store, &client, &desc, reference)?;
        }
    }
    progress.finish(started.elapsed(), plan.files_hashed, plan.files_reused);
    let mut errors = outcome.errors.into_iter().map(|(_, e)| e);
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

/// Pairs `--push` values with the image targets they name.
fn push_targets<'g>(
    values: &[String],
    targets: &[&'g strata_engine::graph::Target],
) -> Result<Vec<(&'g strata_engine::graph::Target, strata_engine::registry::Reference)>, CliError> {
    let images: Vec<&strata_engine::graph::Target> = targets
        .iter()
        .copied()
        .filter(|t| matches!(t.kind, TargetKind::Image { .. }))
        .collect();
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
        pushes.push((target, super::reference("--push", text)?));
    }
    Ok(pushes)
}

/// Stores, per built target, its nodes' facts and why each executed node missed.
fn record_explanations(
    store: &Store,
    graph: &strata_engine::graph::Graph,
    plan: &strata_engine::build::Plan,
    targets: &[&strata_engine::graph::Target],
    outcome: &strata_engine::build::Outcome,
    args: &BuildArgs,
) -> Result<(), CliError> {
    let recipe = std::fs::canonicalize(&args.recipe.file).unwrap_or_else(|_| args.recipe.file.clone());
    for target in targets {
        let (TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. }) = &target.kind else {
            continue;
        };
        if !outcome.states.contains_key(node) {
            continue;
        }
        let nodes = graph.closure(&[*node]);
        let facts = explain::facts(graph, plan, &nodes);
        let executed: HashSet<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| outcome.executed.contains(n))
            .map(|(i, _)| i)
            .collect();
        let previous = explain::load(store, &recipe, &target.name)?;
        let misses = explain::explain(previous.as_ref(), &facts, &executed, args.no_cache);
        let record = explain::BuildRecord {
            target: target.name.clone(),
            args: args.recipe.args.iter().cloned().collect(),
            nodes: facts,
            misses,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| CliError::Usage(e.to_string()))?;
        let path = explain::record_path(store, &recipe, &target.name);
        // A fully cached build writes nothing it already has.
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            store.write_atomic(&path, &bytes)?;
        }
    }
    Ok(())
}
