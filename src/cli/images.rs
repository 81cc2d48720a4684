//! `strata images`, `strata inspect`, `strata history`: reading the store.

use serde_json::json;
use strata_engine::store::Store;
use strata_engine::store::{read_image, StoredImage};

use super::{human, CliError};

pub(crate) fn find(store: &Store, name: &str) -> Result<StoredImage, CliError> {
    Ok(read_image(store, &find_tag(store, name)?)?)
}

/// The descriptor `name` is tagged with (a manifest, or an index).
pub(crate) fn find_tag(store: &Store, name: &str) -> Result<strata_engine::image::Descriptor, CliError> {
    let desc = match store.image(name)? {
        Some(d) => d,
        None => {
            // `strata build` tags bare names as given; accept `name` for `name:latest` and back.
            let alt = if let Some(bare) = name.strip_suffix(":latest") {
                bare.to_string()
            } else {
                format!("{name}:latest")
            };
            store
                .image(&alt)?
                .ok_or_else(|| CliError::Usage(format!("no image named `{name}` in the store; see `strata images`")))?
        }
    };
    Ok(desc)
}

pub fn list(store: &Store) -> Result<(), CliError> {
    crate::outln!("{:<40} {:<19} {:>10}", "NAME", "DIGEST", "SIZE");
    for (name, desc) in store.images()? {
        let size = match read_image(store, &desc) {
            Ok(img) => human(img.manifest.layers.iter().map(|l| l.size).sum::<u64>() + img.manifest.config.size),
            Err(_) => "?".into(),
        };
        crate::outln!("{:<40} {:<19} {:>10}", name, &desc.digest.to_string()[..19], size);
    }
    Ok(())
}

pub fn inspect(store: &Store, name: &str) -> Result<(), CliError> {
    let img = find(store, name)?;
    let doc = json!({
        "name": name,
        "digest": img.descriptor.digest.to_string(),
        "manifest": img.manifest,
        "config": img.config,
    });
    crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    Ok(())
}

/// `strata sbom IMAGE` and `strata provenance IMAGE` (`[--platform P]`):
/// the predicate of the statement `build --sbom`/`--provenance` attached,
/// for this machine's platform's image unless asked.
pub fn attestation(
    store: &Store,
    name: &str,
    registry: &super::RegistryArgs,
    predicate_type: &str,
    what: &str,
    flag: &str,
) -> Result<(), CliError> {
    use strata_engine::store::attestations_of;
    let platform = registry.platform()?;
    let none = || {
        CliError::Usage(format!(
            "`{name}` has no {what} attached: build it with `strata build {flag}`"
        ))
    };
    let print = |bytes: &[u8]| -> Result<(), CliError> {
        let statement: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| CliError::Usage(format!("the {what} attached to `{name}` is not JSON: {e}")))?;
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&statement["predicate"]).expect("JSON values serialize")
        );
        Ok(())
    };
    let tagged = match find_tag(store, name) {
        Ok(t) => t,
        // Not in the store: a registry reference (`host/repo:tag`).
        Err(e) if name.contains('/') => {
            let reference = super::reference("IMAGE", name).map_err(|_| e)?;
            let found = strata_engine::registry::attestation(&registry.client(), &reference, &platform, predicate_type)
                .map_err(strata_engine::Error::from)?;
            return print(&found.ok_or_else(none)?);
        }
        Err(e) => return Err(e),
    };
    let image = strata_engine::store::image_for(store, &tagged, &platform)?
        .ok_or_else(|| CliError::Usage(format!("`{name}` has no image for {platform}")))?;
    let found = attestations_of(store, &tagged, &image.digest)?
        .into_iter()
        .find(|(kind, _)| kind == predicate_type)
        .ok_or_else(none)?;
    print(&found.1)
}

pub fn history(store: &Store, name: &str) -> Result<(), CliError> {
    let img = find(store, name)?;
    crate::outln!("{:<12} {:>10}  CREATED BY", "LAYER", "SIZE");
    let mut layers = img.config.rootfs.diff_ids.iter();
    let mut rows = Vec::new();
    // Where the recipe wrote each step, when this store built the image.
    let said: Vec<Option<String>> = img.config.history.iter().map(|h| h.created_by.clone()).collect();
    let origins = strata_engine::explain::origins(store, &img.manifest.config.digest, &said);
    for (entry, origin) in img.config.history.iter().zip(origins) {
        // An image's history is anyone's text: no escape sequence reaches the terminal.
        let mut created_by = strata_engine::sandbox::printable(&entry.created_by.clone().unwrap_or_default());
        if let Some(origin) = origin {
            created_by = format!("{created_by} ({origin})");
        }
        if entry.empty_layer {
            rows.push(("-".to_string(), "0B".to_string(), created_by));
            continue;
        }
        let Some(diff_id) = layers.next() else { break };
        let size = store
            .layer_blobs(diff_id)
            .map(|b| human(b.tar_size))
            .unwrap_or_else(|_| "?".into());
        rows.push((diff_id.hex()[..12].to_string(), size, created_by));
    }
    // Layers without history entries (some foreign images) still get a row.
    for diff_id in layers {
        let size = store
            .layer_blobs(diff_id)
            .map(|b| human(b.tar_size))
            .unwrap_or_else(|_| "?".into());
        rows.push((diff_id.hex()[..12].to_string(), size, "(no history entry)".into()));
    }
    for (layer, size, by) in rows.iter().rev() {
        crate::outln!("{layer:<12} {size:>10}  {by}");
    }
    Ok(())
}
