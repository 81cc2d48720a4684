//! `strata pull REF`: fetch an image from a registry into the store, tagged as REF.

use std::io::IsTerminal;

use strata_engine::sched::source_date_epoch;
use strata_engine::session;
use strata_engine::store::Store;

use super::{CliError, RegistryArgs};

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// `[registry/]repository[:tag][@sha256:…]`.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(store: &Store, args: PullArgs) -> Result<(), CliError> {
    super::reference("pull", &args.reference)?;
    let client = args.registry.client();
    let platform = args.registry.platform()?;
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
    let pulled = session::pull(store, &client, &args.reference, &platform, epoch, &progress);
    if tty {
        eprint!("\r\x1b[K");
    }
    crate::outln!("{}\t{}", args.reference, pulled?.digest);
    Ok(())
}
