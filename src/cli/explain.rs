//! `strata explain TARGET`: for every step of the target's last build that
//! missed the cache, which input changed.

use std::path::PathBuf;

use strata_engine::explain;
use strata_engine::store::Store;

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The target (an image or artifact of the recipe).
    pub target: String,
    /// The recipe file.
    #[arg(short = 'f', long = "file", default_value = "strata.rhai", value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(store: &Store, args: ExplainArgs) -> Result<(), CliError> {
    let recipe = std::fs::canonicalize(&args.file).unwrap_or_else(|_| args.file.clone());
    let record = explain::load(store, &recipe, &args.target)?.ok_or_else(|| {
        CliError::Usage(format!(
            "no build of `{}` from `{}` is recorded; build it first",
            args.target,
            args.file.display()
        ))
    })?;
    for change in &record.arg_changes {
        crate::outln!("{change}");
    }
    let (ran, changed): (Vec<_>, Vec<_>) = record.misses.iter().partition(|m| m.ran);
    if ran.is_empty() && changed.is_empty() {
        crate::outln!(
            "every step of `{}` came from the cache in its last build",
            record.target
        );
        return Ok(());
    }
    if ran.is_empty() {
        crate::outln!(
            "no step of `{}` ran in its last build, but these changed:",
            record.target
        );
    } else {
        crate::outln!(
            "{} of {} steps of `{}` missed the cache in its last build:",
            ran.len(),
            record.nodes.len(),
            record.target
        );
        show(&ran);
        if !changed.is_empty() {
            crate::outln!("and these changed without running (metadata, or a result already in the store):");
        }
    }
    show(&changed);
    Ok(())
}

fn show(misses: &[&explain::Miss]) {
    for miss in misses {
        crate::outln!("{} {}", miss.origin, miss.description);
        for reason in &miss.reasons {
            crate::outln!("    {reason}");
        }
    }
}
