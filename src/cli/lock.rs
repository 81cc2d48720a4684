//! `strata lock [--update]`: resolve the recipe's registry bases and pin
//! their manifest digests in `strata.lock` beside the recipe.

use std::sync::atomic::AtomicBool;

use strata_engine::lock::LockMode;
use strata_engine::sched::{BuildOptions, Scheduler};
use strata_engine::store::Store;

use super::{CliError, RecipeArgs, RegistryArgs};

#[derive(clap::Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Re-resolve every reference, not only the ones missing from the lock.
    #[arg(long)]
    pub update: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the whole lockfile, every package of every Debian set, instead
    /// of a line per pin.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

pub fn run(store: &Store, args: LockArgs) -> Result<(), CliError> {
    let mode = if args.update { LockMode::Update } else { LockMode::Use };
    let graph = args.recipe.load(&super::BaseReading {
        store,
        insecure_registries: args.registry.insecure_registries.clone(),
        platform: args.registry.platform()?,
        mode,
    })?;
    let nodes: Vec<usize> = (0..graph.len()).collect();
    let opts = BuildOptions {
        recipe: args.recipe.file.clone(),
        // Planning runs nothing: an insecure step is refused only by `build`.
        allow_insecure: true,
        lock_mode: mode,
        platform: args.registry.platform()?,
        insecure_registries: args.registry.insecure_registries,
        ..BuildOptions::default()
    };
    let never = AtomicBool::new(false);
    let warnings = |e: strata_engine::events::Event| {
        if let strata_engine::events::Event::Warning { message } = e {
            eprintln!("warning: {message}");
        }
    };
    Scheduler::new(store, &graph, opts, &warnings, &never).plan(&nodes)?;
    let file = args
        .recipe
        .file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("strata.lock");
    if !file.exists() {
        crate::outln!("the recipe has no registry bases, Debian sets or URLs to pin");
    } else if args.verbose {
        crate::out!("{}", std::fs::read_to_string(&file).unwrap_or_default());
    } else {
        let lock = strata_engine::lock::Lock::open(&args.recipe.file, LockMode::Use)?;
        for line in lock.summary() {
            crate::outln!("{line}");
        }
        crate::outln!("(written to {}; -v prints all of it)", file.display());
    }
    Ok(())
}
