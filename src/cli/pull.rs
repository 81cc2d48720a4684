//! `strata pull REF`: fetch an image from a registry into the store, tagged as REF.

use strata_engine::base;
use strata_engine::build::{source_date_epoch, State};
use strata_engine::export;
use strata_engine::graph::BaseSource;
use strata_engine::layer::Compression;
use strata_engine::registry::{self, Client, Reference};
use strata_engine::store::Store;

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// `[registry/]repository[:tag][@sha256:…]`.
    pub reference: String,
    /// A registry (`host[:port]`) to reach over plain HTTP; loopback ones always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

pub fn run(store: &Store, args: PullArgs) -> Result<(), CliError> {
    let reference = Reference::parse(&args.reference).map_err(CliError::Usage)?;
    let client = Client::new(args.insecure_registries);
    let source = BaseSource::Registry {
        reference: args.reference.clone(),
    };
    // A pull always asks the registry (no strata.lock is involved).
    let identity = *registry::resolve(&client, &reference)?.0.bytes();
    let epoch = source_date_epoch().map_err(CliError::Usage)?;
    let record = base::import(store, &source, Some(&identity), &client, Compression::Gzip, epoch)?;
    let config = record
        .config
        .ok_or_else(|| CliError::Usage(format!("`{reference}` has no image config")))?;
    let desc = export::write_image(store, &State { config }, Compression::Gzip, epoch)?;
    store.tag(&args.reference, &desc)?;
    println!("{}\t{}", args.reference, desc.digest);
    Ok(())
}
