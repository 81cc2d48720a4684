//! `strata verify`: an image checked against its provenance. What the
//! provenance claims (recipe and its SHA256, target, args, platform,
//! SOURCE_DATE_EPOCH, compression) is read from the store or from the
//! registry a reference names; the target is rebuilt as claimed, in a fresh
//! temporary store with nothing cached; and the verdict is the same digest,
//! or where the rebuild differs: the first layer, and the files in it
//! (content, mode, owner, mtime, type). The CLI loads the recipe (the
//! engine knows no recipe language) and renders the verdict.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::digest::Digest;
use crate::graph::Graph;
use crate::image::{Descriptor, Platform};
use crate::layer::Compression;
use crate::registry::{Client, Reference};
use crate::sched::BuildOptions;
use crate::session::{self, Exports, Finished};
use crate::store::{attestations_of, read_image, Store};

/// Why an image cannot be verified, or was not built from what is here.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("`{0}` has no provenance to verify against: build it with `strata build --provenance`")]
    NoProvenance(String),
    #[error("`{name}` has no image for {platform}")]
    NoImage { name: String, platform: Platform },
    #[error("the provenance of `{name}` {what}")]
    BadProvenance { name: String, what: String },
    #[error("{}: {reason} (the provenance names `{claimed}`)", path.display())]
    Recipe {
        path: PathBuf,
        claimed: String,
        reason: String,
    },
    #[error("{} is not the recipe the image was built from: sha256 {here} here, {claimed} in the provenance", path.display())]
    RecipeChanged {
        path: PathBuf,
        here: String,
        claimed: String,
    },
    #[error("the recipe built no image `{0}`")]
    NoTarget(String),
    #[error(transparent)]
    Engine(#[from] crate::error::Error),
}

impl VerifyError {
    /// True when what is here is not what the image was built from (exit 1,
    /// as a differing rebuild); the rest are the command's usage (exit 2).
    pub fn is_mismatch(&self) -> bool {
        matches!(self, VerifyError::RecipeChanged { .. })
    }
}

impl From<crate::registry::RegistryError> for VerifyError {
    fn from(e: crate::registry::RegistryError) -> VerifyError {
        VerifyError::Engine(e.into())
    }
}

impl From<crate::registry::ReferenceError> for VerifyError {
    fn from(e: crate::registry::ReferenceError) -> VerifyError {
        VerifyError::Engine(e.into())
    }
}

/// What the provenance says the build was, and the layers the image has.
#[derive(Clone, Debug)]
pub struct Claim {
    pub recipe: String,
    pub recipe_sha256: String,
    pub target: String,
    pub args: Vec<(String, String)>,
    pub platform: Platform,
    pub epoch: i64,
    pub compression: Compression,
    pub manifest: Digest,
    /// The image's layers as built (diff IDs), for the files that differ.
    pub built_layers: Vec<Digest>,
}

/// The verdict of a rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The rebuild has the image's digest.
    Same(Digest),
    /// Where it differs, line by line: the digests, the first layer that
    /// differs and its step, and the files in it.
    Differs(Vec<String>),
}

/// The claim of the image `name` for `want`: from the store when it holds
/// the image with its provenance (a tag whose index carries attestations),
/// else from the registry a reference names (the image is then read from
/// there too, its layers into the store, and nothing in the store is tagged
/// or changed: `strata provenance NAME` and `strata sbom NAME` still read
/// what the registry attached).
pub fn claim(store: &Store, client: &Client, name: &str, want: &Platform) -> Result<Claim, VerifyError> {
    // `strata build` tags a bare name as given: `name` and `name:latest` are one.
    let alternate = match name.strip_suffix(":latest") {
        Some(bare) => bare.to_string(),
        None => format!("{name}:latest"),
    };
    let tagged = match store.image(name)? {
        Some(t) => Some(t),
        None => store.image(&alternate)?,
    };
    let stored = match tagged {
        Some(tagged) => {
            let image = crate::store::image_for(store, &tagged, want)?.ok_or_else(|| VerifyError::NoImage {
                name: name.to_string(),
                platform: want.clone(),
            })?;
            attestations_of(store, &tagged, &image.digest)?
                .into_iter()
                .find(|(kind, _)| kind == crate::provenance::SLSA_PREDICATE)
                .map(|(_, bytes)| (image, bytes))
        }
        None => None,
    };
    let (bytes, manifest, layers) = match stored {
        Some((image, bytes)) => {
            let layers = read_image(store, &image)?.config.rootfs.diff_ids;
            (bytes, image.digest, layers)
        }
        None if name.contains('/') => {
            let reference = Reference::parse(name)?;
            let bytes = crate::registry::attestation(client, &reference, want, crate::provenance::SLSA_PREDICATE)?
                .ok_or_else(|| VerifyError::NoProvenance(name.to_string()))?;
            let subject: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| bad(name, format!("is not JSON: {e}")))?;
            let manifest = format!(
                "sha256:{}",
                subject["subject"][0]["digest"]["sha256"].as_str().unwrap_or_default()
            )
            .parse::<Digest>()
            .map_err(|e| bad(name, format!("names no image: {}", e.0)))?;
            // The image as built, for the files of a layer that differs:
            // its layers into the store, no tag.
            let pulled = session::pull_untagged(store, client, name, want, 0, &|_, _| {})?;
            let layers = read_image(store, &pulled)?.config.rootfs.diff_ids;
            (bytes, manifest, layers)
        }
        None => return Err(VerifyError::NoProvenance(name.to_string())),
    };
    parse(name, &bytes, manifest, layers)
}

fn bad(name: &str, what: String) -> VerifyError {
    VerifyError::BadProvenance {
        name: name.to_string(),
        what,
    }
}

/// What a provenance statement says the build was.
fn parse(name: &str, bytes: &[u8], manifest: Digest, built_layers: Vec<Digest>) -> Result<Claim, VerifyError> {
    let statement: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(name, format!("is not JSON: {e}")))?;
    let def = &statement["predicate"]["buildDefinition"];
    let params = &def["externalParameters"];
    let text = |v: &serde_json::Value, what: &str| -> Result<String, VerifyError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(name, format!("has no {what}")))
    };
    let recipe = text(&params["recipe"], "recipe")?;
    let recipe_sha256 = def["resolvedDependencies"]
        .as_array()
        .and_then(|deps| {
            deps.iter()
                .find(|d| d["uri"] == format!("file:{recipe}"))
                .and_then(|d| d["digest"]["sha256"].as_str().map(str::to_string))
        })
        .unwrap_or_default();
    let args = params["args"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let compression = match def["internalParameters"]["compression"].as_str() {
        Some(name) => Compression::parse(name).unwrap_or(Compression::Gzip),
        None => Compression::Gzip,
    };
    let platform = text(&params["platform"], "platform")?;
    Ok(Claim {
        recipe,
        recipe_sha256,
        target: text(&params["target"], "target")?,
        args,
        platform: Platform::parse(&platform).map_err(|e| bad(name, format!("names a bad platform: {e}")))?,
        epoch: def["internalParameters"]["sourceDateEpoch"].as_i64().unwrap_or(0),
        compression,
        manifest,
        built_layers,
    })
}

impl Claim {
    /// The recipe the provenance names, under `dir`, after checking that it
    /// has the SHA256 the provenance names.
    pub fn recipe_in(&self, dir: &Path) -> Result<PathBuf, VerifyError> {
        let path = dir.join(&self.recipe);
        let bytes = std::fs::read(&path).map_err(|e| VerifyError::Recipe {
            path: path.clone(),
            claimed: self.recipe.clone(),
            reason: e.to_string(),
        })?;
        let here = Digest::of(&bytes);
        if !self.recipe_sha256.is_empty() && here.hex() != self.recipe_sha256 {
            return Err(VerifyError::RecipeChanged {
                path,
                here: here.hex(),
                claimed: self.recipe_sha256.clone(),
            });
        }
        Ok(path)
    }
}

/// Rebuilds the claimed target of `recipe` in a fresh store (in `store`'s
/// temporary space, removed afterwards) with nothing cached; `load` makes
/// the graph of the recipe for that store (reading bases through it, the
/// lock as it is: `--locked`). Returns the verdict.
pub fn rebuild<E: From<VerifyError>>(
    store: &Store,
    claim: &Claim,
    recipe: &Path,
    insecure_registries: Vec<String>,
    load: impl FnOnce(&Store) -> Result<Graph, E>,
) -> Result<Verdict, E> {
    let fresh = store.tmp_dir().map_err(VerifyError::from)?;
    let rebuilt_store = Store::open(fresh.path()).map_err(VerifyError::from)?;
    let graph = load(&rebuilt_store)?;
    let targets = graph
        .select_targets(std::slice::from_ref(&claim.target))
        .map_err(|e| VerifyError::Engine(e.into()))?;
    let opts = BuildOptions {
        compression: claim.compression,
        epoch: claim.epoch,
        no_cache: true,
        sandbox_exe: std::env::current_exe().ok(),
        platform: claim.platform.clone(),
        recipe: recipe.to_path_buf(),
        lock_mode: crate::lock::LockMode::Locked,
        insecure_registries,
        ..BuildOptions::default()
    };
    let quiet = |_: crate::events::Event| {};
    let never = AtomicBool::new(false);
    let report = session::build(
        &rebuilt_store,
        &graph,
        &targets,
        opts,
        &Exports::default(),
        &quiet,
        &never,
    )
    .map_err(VerifyError::from)?;
    if let Some(e) = report.errors.into_iter().next() {
        return Err(VerifyError::from(e).into());
    }
    let rebuilt = report
        .finished
        .iter()
        .find_map(|f| match f {
            Finished::Image { name, descriptor, .. } if *name == claim.target => Some(descriptor.clone()),
            _ => None,
        })
        .ok_or_else(|| VerifyError::NoTarget(claim.target.clone()))?;
    // The store keeps layers uncompressed; the image was pushed in the
    // compression its provenance names.
    let rebuilt = crate::store::with_compression(&rebuilt_store, &rebuilt, claim.compression)
        .map_err(VerifyError::from)?
        .digest;
    if rebuilt == claim.manifest {
        return Ok(Verdict::Same(rebuilt));
    }
    let descriptor = Descriptor::new(crate::image::MANIFEST_MEDIA_TYPE, rebuilt.clone(), 0);
    let again = read_image(&rebuilt_store, &descriptor).map_err(VerifyError::from)?;
    let mut lines = vec![format!("was built as {}, rebuilds as {rebuilt}", claim.manifest)];
    let (a, b) = (&claim.built_layers, &again.config.rootfs.diff_ids);
    match (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        None => lines.push("every layer is the same: the configuration differs".into()),
        Some(i) => {
            let step = again
                .config
                .history
                .iter()
                .filter(|h| !h.empty_layer)
                .nth(i)
                .and_then(|h| h.created_by.clone())
                .unwrap_or_default();
            lines.push(format!("layer {} of {} differs ({step}):", i + 1, b.len()));
            match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) => {
                    let diff = files_differ(&store.layer_dir(x), &rebuilt_store.layer_dir(y));
                    let shown = diff.len().min(20);
                    lines.extend(diff[..shown].iter().map(|d| format!("  {d}")));
                    if diff.len() > shown {
                        lines.push(format!("  … and {} more", diff.len() - shown));
                    }
                }
                _ => lines.push("  the rebuild has a different number of layers".into()),
            }
        }
    }
    Ok(Verdict::Differs(lines))
}

/// Everything of a file that a layer carries: type, mode, owner, mtime,
/// content (or link target).
#[derive(PartialEq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    mtime: i64,
    content: String,
}

fn entries(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else { continue };
        for e in read.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = format!("/{}", path.strip_prefix(root).unwrap_or(&path).display());
            let ft = meta.file_type();
            let (kind, content) = if ft.is_dir() {
                stack.push(path.clone());
                ("directory", String::new())
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                ("symlink", target)
            } else if ft.is_file() {
                let hash = std::fs::read(&path)
                    .map(|b| Digest::of(&b).hex().to_string())
                    .unwrap_or_default();
                ("file", hash)
            } else {
                ("special file", String::new())
            };
            out.insert(
                rel,
                Entry {
                    kind,
                    mode: meta.mode() & 0o7777,
                    owner: (meta.uid(), meta.gid()),
                    mtime: meta.mtime(),
                    content,
                },
            );
        }
    }
    out
}

/// The paths that differ between two unpacked layers, and how.
fn files_differ(a: &Path, b: &Path) -> Vec<String> {
    let (a, b) = (entries(a), entries(b));
    let mut out = Vec::new();
    for path in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        match (a.get(path), b.get(path)) {
            (Some(_), None) => out.push(format!("{path}: only in the image")),
            (None, Some(_)) => out.push(format!("{path}: only in the rebuild")),
            (Some(x), Some(y)) if x != y => {
                let mut what = Vec::new();
                if x.kind != y.kind {
                    what.push(format!("type ({} vs {})", x.kind, y.kind));
                } else if x.content != y.content {
                    what.push(if x.kind == "symlink" {
                        "target".to_string()
                    } else {
                        "content".to_string()
                    });
                }
                if x.mode != y.mode {
                    what.push(format!("mode ({:o} vs {:o})", x.mode, y.mode));
                }
                if x.owner != y.owner {
                    what.push(format!(
                        "owner ({}:{} vs {}:{})",
                        x.owner.0, x.owner.1, y.owner.0, y.owner.1
                    ));
                }
                if x.mtime != y.mtime {
                    what.push(format!("mtime ({} vs {})", x.mtime, y.mtime));
                }
                out.push(format!("{path}: {}", what.join(", ")));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_that_differ_say_how() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("same"), "s").unwrap();
        std::fs::write(b.path().join("same"), "s").unwrap();
        std::fs::write(a.path().join("changed"), "1").unwrap();
        std::fs::write(b.path().join("changed"), "2").unwrap();
        std::fs::write(a.path().join("gone"), "g").unwrap();
        std::fs::write(b.path().join("new"), "n").unwrap();
        let diff = files_differ(a.path(), b.path());
        assert_eq!(
            diff,
            [
                "/changed: content",
                "/gone: only in the image",
                "/new: only in the rebuild"
            ]
        );
    }
}
