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
    let lock = args
        .recipe
        .file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("strata.lock");
    if lock.exists() {
        crate::out!("{}", std::fs::read_to_string(&lock).unwrap_or_default());
    } else {
        crate::outln!("the recipe has no registry bases to pin");
    }
    Ok(())
}
