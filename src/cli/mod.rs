//! Command-line arguments and dispatch. Shared helpers: loading the recipe
//! and opening the store.

mod affected;
mod build;
mod explain;
mod graph;
mod images;
mod lock;
mod pull;
mod push;
mod run;
mod space;
mod verify;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use strata_engine::graph::Graph;
use strata_engine::store::Store;

/// strata builds container images from Rhai recipes.
#[derive(Parser, Debug)]
#[command(name = "strata", version, about, max_term_width = 100)]
pub struct Cli {
    /// The store directory (default: $STRATA_HOME, else $XDG_DATA_HOME/strata).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// The most an archive, a layer or a package may expand to (`64MiB`, `2g`;
    /// default: the store's free space less a twentieth of its disk, or
    /// $STRATA_MAX_EXTRACT_SIZE). Past it, the unpacking stops with an error.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    max_extract_size: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build targets of a recipe (all of them, or the `default` group, when none is named).
    Build(Box<build::BuildArgs>),
    /// Print the recipe a Dockerfile becomes (what `strata build -f Dockerfile` builds).
    Convert(ConvertArgs),
    /// Show the build graph with keys and cache state.
    Graph(graph::GraphArgs),
    /// List the targets whose keys differ between a git revision's tree and the working tree.
    Affected(affected::AffectedArgs),
    /// Why the steps of a target's last build missed the cache.
    Explain(explain::ExplainArgs),
    /// Space used by images, layers, cache mounts and records.
    Du,
    /// Remove what no tagged image and no recently used record needs.
    Gc {
        /// Keep cache records used within this many days.
        #[arg(long, default_value_t = 7.0, value_name = "DAYS")]
        keep_days: f64,
        /// Also empty the RUN cache mounts and the downloaded Debian packages.
        #[arg(long)]
        caches: bool,
    },
    /// Verify every blob, layer, record and tag of the store (`--repair` removes what is damaged).
    Check {
        /// Remove the damaged entries, so the next build rebuilds or re-fetches them.
        #[arg(long)]
        repair: bool,
    },
    /// Pin the recipe's registry bases in strata.lock (`--update` re-resolves them all).
    Lock(lock::LockArgs),
    /// Run a command in an image on a throwaway read-write layer (`--commit NAME` keeps it).
    Run(run::RunArgs),
    /// Fetch an image from a registry into the store.
    Pull(pull::PullArgs),
    /// Push an image of the store to a registry.
    Push(push::PushArgs),
    /// Store credentials for a registry in docker's config.json (after checking them).
    Login(push::LoginArgs),
    /// Remove a registry's credentials from docker's config.json.
    Logout { registry: String },
    /// List the images in the store.
    Images,
    /// Print an image's manifest and config as JSON.
    Inspect { image: String },
    /// Show an image's history: one row per step, with layer sizes.
    History { image: String },
    /// Print the SPDX SBOM attached to an image of the store or a registry (`build --sbom`).
    Sbom {
        /// An image of the store, or a registry reference.
        image: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print the SLSA provenance attached to an image of the store or a registry (`build --provenance`).
    Provenance {
        /// An image of the store, or a registry reference.
        image: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Rebuild an image from the recipe here as its provenance says, in a fresh store with
    /// nothing cached, and report the same digest or the first layer and files that differ.
    Verify(verify::VerifyArgs),
    /// Execute RUN steps for a Remote Execution API service, as one of its
    /// bots (builds reach it with `build --remote-executor`).
    Worker(worker::WorkerArgs),
    /// List the QEMU emulators binfmt_misc has (steps for other platforms run through them);
    /// `--install` registers the installed ones (as root).
    Binfmt {
        /// Register the qemu-user-static emulators of /usr/lib/binfmt.d with the F flag.
        #[arg(long)]
        install: bool,
    },
}

/// Options shared by commands that read a recipe.
#[derive(clap::Args, Debug)]
pub struct RecipeArgs {
    /// The recipe file (or a Dockerfile).
    #[arg(short = 'f', long = "file", default_value = "strata.rhai", value_name = "FILE")]
    pub file: PathBuf,
    /// How to read FILE: `auto` takes a file named Dockerfile, Containerfile,
    /// Dockerfile.* or *.Dockerfile as a Dockerfile, anything else as a recipe.
    #[arg(long, value_enum, default_value_t = Frontend::Auto)]
    pub frontend: Frontend,
    /// Dockerfile: the stage to build (as `docker build --target`).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// A recipe argument, read by `arg(name, default)`; a Dockerfile's ARG.
    #[arg(long = "arg", visible_alias = "build-arg", value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub args: Vec<(String, String)>,
    /// Let the recipe import modules from outside its directory (a hermetic
    /// build reads only its own tree).
    #[arg(long)]
    pub allow_import_outside: bool,
}

/// Which frontend reads the build file.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    Auto,
    Recipe,
    Dockerfile,
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// How to reach registries; shared by every command that talks to one.
#[derive(clap::Args, Debug, Default)]
pub struct RegistryArgs {
    /// A registry (`host[:port]`) to reach over plain HTTP; loopback ones always are (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// The platform to build for and to resolve registry images for
    /// (default: linux on this machine's architecture); `build` takes
    /// several, comma-separated, and makes an image index per target.
    #[arg(long, value_name = "OS/ARCH[/VARIANT][,…]")]
    pub platform: Option<String>,
}

impl RegistryArgs {
    /// The one platform of a command that takes one.
    pub fn platform(&self) -> Result<strata_engine::image::Platform, CliError> {
        match self.platforms()?.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(CliError::Usage(
                "--platform: this command takes one platform (`strata build` takes several)".into(),
            )),
        }
    }

    /// The platforms of `--platform a,b` (this machine's by default), without repeats.
    pub fn platforms(&self) -> Result<Vec<strata_engine::image::Platform>, CliError> {
        let Some(text) = &self.platform else {
            return Ok(vec![strata_engine::image::Platform::host()]);
        };
        let mut out: Vec<strata_engine::image::Platform> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let p = strata_engine::image::Platform::parse(part)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err(CliError::Usage("--platform needs a platform, e.g. linux/arm64".into()));
        }
        Ok(out)
    }

    pub fn client(&self) -> strata_engine::registry::Client {
        strata_engine::registry::Client::new(self.insecure_registries.clone())
    }
}

/// Parses an image reference given on the command line.
pub fn reference(flag: &str, s: &str) -> Result<strata_engine::registry::Reference, CliError> {
    strata_engine::registry::Reference::parse(s).map_err(|e| CliError::Usage(format!("{flag}: {e}")))
}

/// Errors the CLI reports; each knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Recipe(#[from] strata_dsl::DslError),
    #[error(transparent)]
    Engine(#[from] strata_engine::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Epoch(#[from] strata_engine::sched::EpochError),
    #[error("--platform: {0}")]
    Platform(#[from] strata_engine::image::PlatformError),
    /// `strata run`: the command's own exit status, passed on silently.
    #[error("exit status {0}")]
    Exit(u8),
    /// `strata check` found damage.
    #[error("{0}")]
    Damaged(String),
    /// A command that needs strata's user namespace, which an ordinary
    /// user's strata could not enter.
    #[error("{0}")]
    Rootless(String),
}

/// How a Dockerfile's bases are read for their ONBUILD triggers: resolved
/// and pinned in `strata.lock` as the build resolves them, their manifest
/// and config kept in the store.
pub struct BaseReading<'a> {
    pub store: &'a Store,
    pub insecure_registries: Vec<String>,
    pub platform: strata_engine::image::Platform,
    pub mode: strata_engine::lock::LockMode,
}

impl BaseReading<'_> {
    /// The ONBUILD triggers of a Dockerfile's base.
    fn onbuild(
        &self,
        lock: &strata_engine::lock::Lock,
        source: &strata_engine::graph::BaseSource,
    ) -> Result<Vec<String>, String> {
        let client = strata_engine::registry::Client::new(self.insecure_registries.clone());
        strata_engine::bases::config(self.store, source, &client, &self.platform, lock)
            .map(|c| c.and_then(|c| c.config.on_build).unwrap_or_default())
            .map_err(|e| format!("reading its ONBUILD triggers: {e}"))
    }
}

impl RecipeArgs {
    /// Evaluates the recipe once per platform of `platforms` (its states
    /// are for that platform) and merges the graphs: one target variant per
    /// platform, nodes they share kept once.
    pub fn load_for(
        &self,
        bases: &BaseReading<'_>,
        platforms: &[strata_engine::image::Platform],
    ) -> Result<Graph, CliError> {
        if let [only] = platforms {
            if *only == strata_engine::image::Platform::host() {
                return self.load(bases);
            }
        }
        let mut graphs = Vec::new();
        for platform in platforms {
            let reading = BaseReading {
                store: bases.store,
                insecure_registries: bases.insecure_registries.clone(),
                platform: platform.clone(),
                mode: bases.mode,
            };
            graphs.push(self.load_one(&reading, Some(platform.clone()), graphs.is_empty())?);
        }
        let mut merged = Graph::merge(graphs);
        if platforms.len() == 1 {
            // One platform, not this machine's: plain targets.
            for t in &mut merged.targets {
                t.platform = None;
            }
        }
        Ok(merged)
    }

    /// Evaluates the recipe for this machine's platform; a `--arg` it never
    /// read is a warning that lists the args it does read. A Dockerfile's
    /// bases are read for their ONBUILD triggers through `bases`.
    /// Evaluates the recipe for this machine and plans the nodes of the
    /// `selected` targets (keys, nothing built), as `strata graph` and
    /// `strata affected` show them; `f` gets the graph, the targets, their
    /// nodes and the plan.
    pub fn with_plan<R>(
        &self,
        store: &Store,
        selected: &[String],
        f: impl FnOnce(
            &Graph,
            &[&strata_engine::graph::Target],
            &[usize],
            &strata_engine::sched::Plan,
        ) -> Result<R, CliError>,
    ) -> Result<R, CliError> {
        let graph = self.load(&BaseReading {
            store,
            insecure_registries: Vec::new(),
            platform: strata_engine::image::Platform::host(),
            mode: strata_engine::lock::LockMode::Use,
        })?;
        let targets = graph.select_targets(selected).map_err(strata_engine::Error::from)?;
        let nodes = graph.nodes_for(&targets);
        let never = std::sync::atomic::AtomicBool::new(false);
        let quiet = |_: strata_engine::events::Event| {};
        let opts = strata_engine::sched::BuildOptions {
            recipe: self.file.clone(),
            // Planning runs nothing: an insecure step is refused only by `build`.
            allow_insecure: true,
            ..strata_engine::sched::BuildOptions::default()
        };
        let plan = strata_engine::sched::Scheduler::new(store, &graph, opts, &quiet, &never).plan(&nodes)?;
        f(&graph, &targets, &nodes, &plan)
    }

    pub fn load(&self, bases: &BaseReading<'_>) -> Result<Graph, CliError> {
        self.load_one(bases, None, true)
    }

    fn load_one(
        &self,
        bases: &BaseReading<'_>,
        platform: Option<strata_engine::image::Platform>,
        warn: bool,
    ) -> Result<Graph, CliError> {
        let args: BTreeMap<String, String> = self.args.iter().cloned().collect();
        let opts = strata_dsl::Options {
            allow_import_outside: self.allow_import_outside,
            platform,
            cancel: Some(crate::render::signals::cancelled()),
        };
        let dockerfile = match self.frontend {
            Frontend::Auto => strata_dsl::dockerfile::is_dockerfile(&self.file),
            Frontend::Recipe => false,
            Frontend::Dockerfile => true,
        };
        let compiled = if dockerfile {
            let lock = strata_engine::lock::Lock::open(&self.file, bases.mode)?;
            let read = |source: &strata_engine::graph::BaseSource| bases.onbuild(&lock, source);
            let (compiled, warnings) =
                strata_dsl::compile_dockerfile(&self.file, &args, &opts, self.target.as_deref(), Some(&read))?;
            for w in warnings.iter().filter(|_| warn) {
                eprintln!("warning: {}: {w}", self.file.display());
            }
            compiled
        } else {
            if let Some(target) = &self.target {
                return Err(CliError::Usage(format!(
                    "--target {target}: --target picks a Dockerfile's stage; a recipe's targets are named as arguments"
                )));
            }
            strata_dsl::compile_with(&self.file, &args, &opts)?
        };
        for name in args.keys().filter(|n| warn && !compiled.args_read.contains(*n)) {
            let read: Vec<String> = compiled.args_read.iter().map(|a| format!("`{a}`")).collect();
            let reads = if read.is_empty() {
                "it reads none".to_string()
            } else {
                format!("it reads {}", read.join(", "))
            };
            eprintln!(
                "warning: --arg `{name}` is not read by {} ({reads})",
                self.file.display()
            );
        }
        Ok(compiled.graph)
    }
}

fn open_store(path: &Option<PathBuf>) -> Result<Store, CliError> {
    let root = path.clone().unwrap_or_else(Store::default_root);
    Ok(Store::open(Path::new(&root))?)
}

/// Commands that create files with their image owners, mount overlays or
/// remove what they created: as an ordinary user, only in strata's user
/// namespace.
fn needs_namespace(command: &Command) -> Option<&'static str> {
    match command {
        Command::Build(_) => Some("build"),
        Command::Run(_) => Some("run"),
        Command::Pull(_) => Some("pull"),
        Command::Lock(_) => Some("lock"),
        Command::Gc { .. } => Some("gc"),
        Command::Check { .. } => Some("check"),
        Command::Verify(_) => Some("verify"),
        Command::Worker(_) => Some("worker"),
        _ => None,
    }
}

/// Rootless mode: an ordinary user's strata moves into a user namespace of
/// its own before it starts a thread (see `sys::userns`). The commands
/// that need it fail when it cannot be had, saying why; the others (which
/// only read the store or talk to registries) then run as the user.
pub fn enter_rootless(cli: &Cli) -> Result<(), CliError> {
    if nix::unistd::geteuid().is_root()
        || matches!(
            cli.command,
            Command::Login(_) | Command::Logout { .. } | Command::Convert(_) | Command::Binfmt { .. }
        )
    {
        return Ok(());
    }
    match strata_engine::sys::userns::enter() {
        Ok(()) => Ok(()),
        Err(e) => match needs_namespace(&cli.command) {
            Some(name) => Err(CliError::Rootless(format!("`strata {name}` as an ordinary user: {e}"))),
            None => Ok(()),
        },
    }
}

/// A size as people write it (`512MiB`, `2g`, `100000`).
fn parse_size(text: &str) -> Result<u64, String> {
    strata_engine::sys::confined::parse_size(text).ok_or_else(|| format!("`{text}` is not a size like 512MiB or 2g"))
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    if let Some(bytes) = cli.max_extract_size {
        strata_engine::sys::confined::set_max_extract(bytes);
    }
    if let Command::Convert(args) = cli.command {
        return convert(cli.store.as_deref(), args);
    }
    if let Command::Binfmt { install } = cli.command {
        return binfmt(install);
    }
    let store = open_store(&cli.store)?;
    match cli.command {
        Command::Build(args) => build::run(&store, *args),
        Command::Graph(args) => graph::run(&store, args),
        Command::Affected(args) => affected::run(&store, args),
        Command::Convert(_) => unreachable!("converted above"),
        Command::Binfmt { .. } => unreachable!("listed above"),
        Command::Explain(args) => explain::run(&store, args),
        Command::Lock(args) => lock::run(&store, args),
        Command::Pull(args) => pull::run(&store, args),
        Command::Run(args) => run::run(&store, args),
        Command::Push(args) => push::run(&store, args),
        Command::Login(args) => push::login(args),
        Command::Logout { registry } => push::logout(&registry),
        Command::Du => space::du(&store),
        Command::Gc { keep_days, caches } => space::gc(&store, keep_days, caches),
        Command::Check { repair } => space::check(&store, repair),
        Command::Images => images::list(&store),
        Command::Inspect { image } => images::inspect(&store, &image),
        Command::History { image } => images::history(&store, &image),
        Command::Sbom { image, registry } => images::attestation(
            &store,
            &image,
            &registry,
            strata_engine::sbom::SPDX_PREDICATE,
            "SBOM",
            "--sbom",
        ),
        Command::Verify(args) => verify::run(&store, args),
        Command::Worker(args) => worker::run(&store, args),
        Command::Provenance { image, registry } => images::attestation(
            &store,
            &image,
            &registry,
            strata_engine::provenance::SLSA_PREDICATE,
            "provenance",
            "--provenance",
        ),
    }
}

/// `strata binfmt [--install]`.
fn binfmt(install: bool) -> Result<(), CliError> {
    use strata_engine::sys::binfmt;
    if install {
        if !nix::unistd::geteuid().is_root() {
            return Err(CliError::Usage(
                "strata binfmt --install registers emulators for the whole machine: run it as root".into(),
            ));
        }
        let registered = binfmt::install(std::path::Path::new(binfmt::BINFMT_D)).map_err(CliError::Usage)?;
        if registered.is_empty() {
            eprintln!("every installed emulator is already registered with the F flag");
        } else {
            eprintln!("registered: {}", registered.join(", "));
        }
    }
    let handlers = binfmt::handlers();
    if handlers.is_empty() {
        crate::outln!(
            "no binfmt_misc handlers: steps for other platforms cannot run here (apt-get install qemu-user-static; strata binfmt --install)"
        );
        return Ok(());
    }
    for h in handlers {
        let state = if !h.enabled {
            "disabled"
        } else if h.flags.contains('F') {
            "usable"
        } else {
            "no F flag: not usable in the sandbox (strata binfmt --install)"
        };
        crate::outln!("{}	{}	{}	{}", h.name, h.flags, h.interpreter, state);
    }
    Ok(())
}

/// `strata convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The Dockerfile.
    #[arg(default_value = "Dockerfile", value_name = "DOCKERFILE")]
    pub file: PathBuf,
    /// The stage to make the image of (default: every stage no other uses).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn convert(store: Option<&Path>, args: ConvertArgs) -> Result<(), CliError> {
    let store = open_store(&store.map(Path::to_path_buf))?;
    let bases = BaseReading {
        store: &store,
        insecure_registries: args.registry.insecure_registries.clone(),
        platform: args.registry.platform()?,
        mode: strata_engine::lock::LockMode::Use,
    };
    let lock = strata_engine::lock::Lock::open(&args.file, bases.mode)?;
    let read = |source: &strata_engine::graph::BaseSource| bases.onbuild(&lock, source);
    let (converted, own_ignore) = strata_dsl::convert_dockerfile(&args.file, args.target.as_deref(), Some(&read))?;
    let name = args.file.display();
    for w in &converted.warnings {
        eprintln!("warning: {name}: {w}");
    }
    if let Some(own) = own_ignore.as_ref().and_then(|p| p.file_name()) {
        eprintln!(
            "warning: {} applies to `strata build -f {name}`; the recipe reads the context's .strataignore or .dockerignore: copy it to .strataignore for the recipe to see the same files",
            own.to_string_lossy()
        );
    }
    print!("{}", converted.recipe().0);
    Ok(())
}

/// Bytes for people: `512B`, `3.4kB`, `1.2GB`.
pub(crate) fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}
