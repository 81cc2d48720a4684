//! `strata verify IMAGE`: rebuilds an image from the recipe and context
//! here, as its provenance says it was built (target, args, platform,
//! SOURCE_DATE_EPOCH, compression), in a fresh temporary store with nothing
//! cached, and reports the same digest or where the rebuild differs: the
//! first layer, and in it the files (content, mode, owner, mtime, type).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use strata_engine::image::Platform;
use strata_engine::layer::Compression;
use strata_engine::sched::BuildOptions;
use strata_engine::session::{self, Exports, Finished};
use strata_engine::store::{attestations_of, read_image, Store};

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

/// What the provenance says the build was.
struct Claimed {
    recipe: String,
    recipe_sha256: String,
    target: String,
    args: Vec<(String, String)>,
    platform: Platform,
    epoch: i64,
    compression: Compression,
    manifest: strata_engine::digest::Digest,
}

/// The provenance of `name` for `want` (from the store, or from the
/// registry a reference names) and the image's layers as built (a
/// registry's image is pulled into the store for them).
fn claimed(
    store: &Store,
    name: &str,
    want: &Platform,
    registry: &super::RegistryArgs,
) -> Result<(Claimed, Vec<strata_engine::digest::Digest>), CliError> {
    let none = || {
        CliError::Usage(format!(
            "`{name}` has no provenance to verify against: build it with `strata build --provenance`"
        ))
    };
    // The store's copy, when it has the provenance (a registry image
    // pulled by an earlier verify is stored without its attestations).
    let stored = match super::images::find_tag(store, name) {
        Ok(tagged) => {
            let image = strata_engine::store::image_for(store, &tagged, want)?
                .ok_or_else(|| CliError::Usage(format!("`{name}` has no image for {want}")))?;
            attestations_of(store, &tagged, &image.digest)?
                .into_iter()
                .find(|(kind, _)| kind == strata_engine::provenance::SLSA_PREDICATE)
                .map(|(_, bytes)| (image, bytes))
                .ok_or_else(none)
        }
        Err(e) => Err(e),
    };
    let (bytes, manifest, layers) = match stored {
        Ok((image, bytes)) => {
            let layers = read_image(store, &image)?.config.rootfs.diff_ids;
            (bytes, image.digest, layers)
        }
        // Not in the store (with its provenance): a registry reference.
        Err(e) if name.contains('/') => {
            let reference = super::reference("IMAGE", name).map_err(|_| e)?;
            let client = registry.client();
            let bytes = strata_engine::registry::attestation(
                &client,
                &reference,
                want,
                strata_engine::provenance::SLSA_PREDICATE,
            )
            .map_err(strata_engine::Error::from)?
            .ok_or_else(none)?;
            let subject: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| CliError::Usage(format!("the provenance of `{name}` is not JSON: {e}")))?;
            let manifest = format!(
                "sha256:{}",
                subject["subject"][0]["digest"]["sha256"].as_str().unwrap_or_default()
            )
            .parse::<strata_engine::digest::Digest>()
            .map_err(|e| CliError::Usage(format!("the provenance of `{name}` names no image: {}", e.0)))?;
            // The image as built, for the files of a layer that differs.
            let pulled = session::pull(store, &client, name, want, 0, &|_, _| {})?;
            let layers = read_image(store, &pulled)?.config.rootfs.diff_ids;
            (bytes, manifest, layers)
        }
        Err(e) => return Err(e),
    };
    let claimed = parse(name, &bytes, manifest)?;
    Ok((claimed, layers))
}

/// What a provenance statement says the build was.
fn parse(name: &str, bytes: &[u8], manifest: strata_engine::digest::Digest) -> Result<Claimed, CliError> {
    let statement: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| CliError::Usage(format!("the provenance of `{name}` is not JSON: {e}")))?;
    let def = &statement["predicate"]["buildDefinition"];
    let params = &def["externalParameters"];
    let text = |v: &serde_json::Value, what: &str| -> Result<String, CliError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| CliError::Usage(format!("the provenance of `{name}` has no {what}")))
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
    Ok(Claimed {
        recipe,
        recipe_sha256,
        target: text(&params["target"], "target")?,
        args,
        platform: Platform::parse(&text(&params["platform"], "platform")?)?,
        epoch: def["internalParameters"]["sourceDateEpoch"].as_i64().unwrap_or(0),
        compression,
        manifest,
    })
}

pub fn run(store: &Store, args: VerifyArgs) -> Result<(), CliError> {
    let want = args.registry.platform()?;
    let (claimed, built_layers) = claimed(store, &args.image, &want, &args.registry)?;
    let recipe = args.dir.join(&claimed.recipe);
    let bytes = std::fs::read(&recipe).map_err(|e| {
        CliError::Usage(format!(
            "{}: {e} (the provenance names `{}`)",
            recipe.display(),
            claimed.recipe
        ))
    })?;
    let here = strata_engine::digest::Digest::of(&bytes);
    if !claimed.recipe_sha256.is_empty() && here.hex() != claimed.recipe_sha256 {
        return Err(CliError::Damaged(format!(
            "{} is not the recipe the image was built from: sha256 {} here, {} in the provenance",
            recipe.display(),
            here.hex(),
            claimed.recipe_sha256
        )));
    }
    eprintln!(
        "rebuilding `{}` of {} for {} with nothing cached…",
        claimed.target,
        recipe.display(),
        claimed.platform
    );
    // A store of its own, removed afterwards (in the store's temporary space).
    let fresh = store.tmp_dir()?;
    let rebuilt_store = Store::open(fresh.path())?;
    let recipe_args = RecipeArgs {
        file: recipe.clone(),
        frontend: Frontend::Auto,
        target: None,
        args: claimed.args.clone(),
        allow_import_outside: false,
    };
    let graph = recipe_args.load_for(
        &super::BaseReading {
            store: &rebuilt_store,
            insecure_registries: args.registry.insecure_registries.clone(),
            platform: claimed.platform.clone(),
            mode: strata_engine::lock::LockMode::Locked,
        },
        std::slice::from_ref(&claimed.platform),
    )?;
    let targets = graph
        .select_targets(std::slice::from_ref(&claimed.target))
        .map_err(strata_engine::Error::from)?;
    let opts = BuildOptions {
        compression: claimed.compression,
        epoch: claimed.epoch,
        no_cache: true,
        sandbox_exe: std::env::current_exe().ok(),
        platform: claimed.platform.clone(),
        recipe: recipe.clone(),
        lock_mode: strata_engine::lock::LockMode::Locked,
        insecure_registries: args.registry.insecure_registries.clone(),
        ..BuildOptions::default()
    };
    let quiet = |_: strata_engine::events::Event| {};
    let never = AtomicBool::new(false);
    let report = session::build(
        &rebuilt_store,
        &graph,
        &targets,
        opts,
        &Exports::default(),
        &quiet,
        &never,
    )?;
    if let Some(e) = report.errors.into_iter().next() {
        return Err(e.into());
    }
    let rebuilt = report
        .finished
        .iter()
        .find_map(|f| match f {
            Finished::Image { name, descriptor, .. } if *name == claimed.target => Some(descriptor.clone()),
            _ => None,
        })
        .ok_or_else(|| CliError::Usage(format!("the recipe built no image `{}`", claimed.target)))?;
    // The store keeps layers uncompressed; the image was pushed in the
    // compression its provenance names.
    let rebuilt = strata_engine::store::with_compression(&rebuilt_store, &rebuilt, claimed.compression)?.digest;
    if rebuilt == claimed.manifest {
        crate::outln!("same digest: {rebuilt} rebuilds bit for bit");
        return Ok(());
    }
    // Where it differs: the first layer, and the files in it.
    let again = read_image(&rebuilt_store, &image_descriptor(&rebuilt))?;
    let mut lines = vec![format!(
        "differs: {} was built as {}, rebuilds as {rebuilt}",
        args.image, claimed.manifest
    )];
    let (a, b) = (&built_layers, &again.config.rootfs.diff_ids);
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
    Err(CliError::Damaged(lines.join("\n")))
}

fn image_descriptor(digest: &strata_engine::digest::Digest) -> strata_engine::image::Descriptor {
    strata_engine::image::Descriptor::new(strata_engine::image::MANIFEST_MEDIA_TYPE, digest.clone(), 0)
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
                    .map(|b| strata_engine::digest::Digest::of(&b).hex().to_string())
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
