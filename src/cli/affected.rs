//! `strata affected --since REF`: which targets a change touches, for a
//! monorepo's CI. The recipe is evaluated twice, on the tree of REF (taken
//! with `git archive` into the store's scratch space) and on the working
//! tree, and every target's key is computed in both without building: the
//! keys already cover the context files each step selects, the modules the
//! recipe imports, the bases, the args. A target is affected when its key
//! differs (or it is new).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use strata_engine::sys::confined;

use serde_json::json;
use strata_engine::digest::NodeKey;
use strata_engine::store::Store;

use super::{CliError, RecipeArgs};

#[derive(clap::Args, Debug)]
pub struct AffectedArgs {
    /// Targets to consider (groups expand; default: all, or the `default` group).
    pub targets: Vec<String>,
    /// The git revision (commit, branch, tag) to compare the working tree with.
    #[arg(long, value_name = "REF")]
    pub since: String,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `strata affected --format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The affected targets' names, one per line.
    Text,
    /// `{"since": COMMIT, "affected": [...], "unchanged": [...]}`.
    Json,
}

pub fn run(store: &Store, args: AffectedArgs) -> Result<(), CliError> {
    let recipe =
        std::path::absolute(&args.recipe.file).map_err(strata_engine::Error::io("resolve", &args.recipe.file))?;
    let dir = recipe.parent().unwrap_or(Path::new("/")).to_path_buf();
    let top = PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"]).map_err(|e| {
        CliError::Usage(format!(
            "strata affected compares git trees, and `{}` is not in a git checkout: {e}",
            dir.display()
        ))
    })?);
    let commit = git(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{}^{{commit}}", args.since),
        ],
    )
    .map_err(|_| CliError::Usage(format!("--since `{}` is not a commit of {}", args.since, top.display())))?;
    let rel = recipe
        .strip_prefix(std::fs::canonicalize(&top).unwrap_or(top.clone()))
        .or_else(|_| recipe.strip_prefix(&top))
        .map(Path::to_path_buf)
        .map_err(|_| {
            CliError::Usage(format!(
                "`{}` is outside its checkout {}",
                recipe.display(),
                top.display()
            ))
        })?;

    let now = keys(store, &args.recipe, &recipe, &args.targets)?;
    let scratch = store.tmp_dir()?;
    extract(&top, &commit, scratch.path())?;
    let then_recipe = scratch.path().join(&rel);
    let then = match then_recipe.exists() {
        true => match keys(store, &args.recipe, &then_recipe, &args.targets) {
            Ok(keys) => Some(keys),
            Err(e) => {
                eprintln!(
                    "warning: the recipe of {} does not evaluate, so every target counts as affected: {e}",
                    args.since
                );
                None
            }
        },
        // The recipe is new since REF: so is everything.
        false => None,
    };
    let (mut affected, mut unchanged) = (Vec::new(), Vec::new());
    for (name, key) in &now {
        match then.as_ref().and_then(|t| t.get(name)) == Some(key) {
            true => unchanged.push(name),
            false => affected.push(name),
        }
    }
    match args.format {
        Format::Text => {
            for name in &affected {
                crate::outln!("{name}");
            }
        }
        Format::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "since": commit,
                "affected": affected,
                "unchanged": unchanged,
            }))
            .unwrap_or_default()
        ),
    }
    Ok(())
}

/// The keys of the selected image and artifact targets of the recipe at
/// `file` (each platform variant's, in order), computed without building.
fn keys(
    store: &Store,
    like: &RecipeArgs,
    file: &Path,
    selected: &[String],
) -> Result<BTreeMap<String, Vec<NodeKey>>, CliError> {
    let recipe = RecipeArgs {
        file: file.to_path_buf(),
        frontend: like.frontend,
        target: like.target.clone(),
        args: like.args.clone(),
        allow_import_outside: like.allow_import_outside,
    };
    recipe.with_plan(store, selected, |_, targets, _, plan| {
        let mut out: BTreeMap<String, Vec<NodeKey>> = BTreeMap::new();
        for t in targets {
            if let Some(node) = t.node() {
                out.entry(t.name.clone())
                    .or_default()
                    .push(plan.keys[node].expect("planned"));
            }
        }
        Ok(out)
    })
}

/// `git -C dir ARGS`, its output trimmed, or its error text.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The tree of `commit` into `dest`: `git archive`'s tar, unpacked by the
/// tar crate (which keeps every entry inside `dest`). Git keeps only the
/// executable bit, so modes come from this process's umask, as a checkout
/// here would make them (a copy's key covers modes).
fn extract(top: &Path, commit: &str, dest: &Path) -> Result<(), CliError> {
    // SAFETY: umask only sets and returns the process's mask; it is put back at once.
    let umask = unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(top)
        .arg("-c")
        .arg(format!("tar.umask=0{umask:o}"))
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Usage(format!("cannot run git: {e}")))?;
    // Through the confined writer, within its byte limit: an old commit's
    // tree is as hostile as any archive (a 1 GiB file stops at the limit).
    // The files are this user's, as a checkout's would be.
    let policy = confined::Policy {
        owner: Some((nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())),
        ..confined::Policy::image(confined::extract_limit(dest))
    };
    let mut stdout = child.stdout.take().expect("piped");
    let unpacked = match confined::Tree::open(dest, policy) {
        Ok(mut tree) => strata_engine::exec::extract::unpack_tar(&mut stdout, &mut tree, Path::new(""))
            .map_err(|message| CliError::Usage(format!("git archive {commit}: {message}"))),
        Err(e) => Err(CliError::Usage(format!("cannot open {}: {e}", dest.display()))),
    };
    // The tar crate stops at the first end-of-archive record; git is still
    // writing the rest of its last 10 KiB block, and would die of a broken
    // pipe if the pipe were closed now. Read it to the end.
    let drained = std::io::copy(&mut stdout, &mut std::io::sink());
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::Usage(format!("git archive: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Usage(format!(
            "git archive {commit} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    unpacked?;
    drained.map_err(strata_engine::Error::io("read the tree of", dest))?;
    Ok(())
}
