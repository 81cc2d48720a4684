//! `strata verify IMAGE`: parses the command, loads the recipe the
//! provenance names for the engine's rebuild (`strata_engine::verify`), and
//! renders the verdict: `same digest`, or exit 1 with where the rebuild
//! differs.

use std::path::PathBuf;

use strata_engine::store::Store;
use strata_engine::verify::{self, Verdict, VerifyError};

use super::{CliError, Frontend, RecipeArgs};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The image whose provenance to check: in the store, or a registry reference.
    pub image: String,
    /// The directory with the recipe and its context (default: here).
    #[arg(short = 'C', long = "directory", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

impl From<VerifyError> for CliError {
    fn from(e: VerifyError) -> CliError {
        match e {
            VerifyError::Engine(e) => CliError::Engine(e),
            e if e.is_mismatch() => CliError::Damaged(e.to_string()),
            e => CliError::Usage(e.to_string()),
        }
    }
}

pub fn run(store: &Store, args: VerifyArgs) -> Result<(), CliError> {
    let want = args.registry.platform()?;
    let claim = verify::claim(store, &args.registry.client(), &args.image, &want)?;
    let recipe = claim.recipe_in(&args.dir)?;
    eprintln!(
        "rebuilding `{}` of {} for {} with nothing cached…",
        claim.target,
        recipe.display(),
        claim.platform
    );
    let insecure = args.registry.insecure_registries.clone();
    let verdict = verify::rebuild(store, &claim, &recipe, insecure.clone(), |fresh| {
        let recipe_args = RecipeArgs {
            file: recipe.clone(),
            frontend: Frontend::Auto,
            target: None,
            args: claim.args.clone(),
            allow_import_outside: false,
        };
        recipe_args.load_for(
            &super::BaseReading {
                store: fresh,
                insecure_registries: insecure,
                platform: claim.platform.clone(),
                mode: strata_engine::lock::LockMode::Locked,
            },
            std::slice::from_ref(&claim.platform),
        )
    })?;
    match verdict {
        Verdict::Same(digest) => {
            crate::outln!("same digest: {digest} rebuilds bit for bit");
            Ok(())
        }
        Verdict::Differs(lines) => Err(CliError::Damaged(format!(
            "differs: {} {}",
            args.image,
            lines.join("\n")
        ))),
    }
}
