//! `strata pull REF`: fetch an image from a registry into the store, tagged as REF.

use std::io::IsTerminal;

use strata_engine::graph::BaseSource;
use strata_engine::layer::Compression;
use strata_engine::registry;
use strata_engine::sched::source_date_epoch;
use strata_engine::store::{write_image, State, Store};

use super::{CliError, RegistryArgs};

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// `[registry/]repository[:tag][@sha256:…]`.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(store: &Store, args: PullArgs) -> Result<(), CliError> {
    let reference = super::reference("pull", &args.reference)?;
    let client = args.registry.client();
    let platform = args.registry.platform()?;
    let source = BaseSource::Registry {
        reference: args.reference.clone(),
    };
    // A pull always asks the registry (no strata.lock is involved).
    let identity = *registry::resolve(&client, &reference, &platform)
        .map_err(strata_engine::Error::from)?
        .0
        .bytes();
    let epoch = source_date_epoch()?;
    let tty = std::io::stderr().is_terminal();
    let progress = |done: u64, total: u64| {
        if tty && total > 0 {
            eprint!(
                "\r\x1b[Kdownloading {}: {} / {} ({}%)",
                args.reference,
                super::human(done),
                super::human(total),
                done * 100 / total
            );
        }
    };
    let record = strata_engine::bases::import(
        store,
        &source,
        Some(&identity),
        &client,
        &platform,
        Compression::Gzip,
        epoch,
        &progress,
    );
    if tty {
        eprint!("\r\x1b[K");
    }
    let config = record?
        .config
        .ok_or_else(|| CliError::Usage(format!("`{reference}` has no image config")))?;
    let desc = write_image(store, &State { config }, Compression::Gzip, epoch)?;
    store.tag(&args.reference, &desc)?;
    crate::outln!("{}\t{}", args.reference, desc.digest);
    Ok(())
}
