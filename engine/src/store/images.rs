//! Images in the store: an image state (its config), its manifest written
//! into the store's blobs, and stored images read back.

use std::path::PathBuf;

use super::Store;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{self, Descriptor, ImageConfig, Manifest};
use crate::layer::Compression;

/// An image state: its config (with `rootfs.diff_ids` and `history`).
#[derive(Clone, Debug)]
pub struct State {
    pub config: ImageConfig,
    /// Where each variable of the config's `env` is, by name, once an ENV
    /// step has needed it: a chain of ENV steps folds in linear time.
    pub env_index: Option<std::collections::HashMap<String, usize>>,
}

impl State {
    pub fn new(config: ImageConfig) -> State {
        State {
            config,
            env_index: None,
        }
    }

    /// The unpacked layer directories, bottom first.
    pub fn layer_dirs(&self, store: &Store) -> Vec<PathBuf> {
        self.config.rootfs.diff_ids.iter().map(|d| store.layer_dir(d)).collect()
    }
}

/// Writes the config and manifest of `state`, its layers in `compression`,
/// into the store and returns the manifest's descriptor.
pub fn write_image(store: &Store, state: &State, compression: Compression) -> Result<Descriptor> {
    let mut layers = Vec::new();
    for diff_id in &state.config.rootfs.diff_ids {
        layers.push(super::ensure_blob(store, diff_id, compression)?);
    }
    let config_bytes = image::to_json(&state.config);
    let config = Descriptor::new(
        image::CONFIG_MEDIA_TYPE,
        store.put_blob(&config_bytes)?,
        config_bytes.len() as u64,
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: None,
    };
    let bytes = image::to_json(&manifest);
    let digest = store.put_blob(&bytes)?;
    let mut desc = Descriptor::new(image::MANIFEST_MEDIA_TYPE, digest, bytes.len() as u64);
    desc.platform = Some(image::Platform {
        architecture: state.config.architecture.clone(),
        os: state.config.os.clone(),
        variant: state.config.variant.clone(),
    });
    Ok(desc)
}

/// The image `descriptor` names (a manifest, or an index of them) with
/// every layer in `compression`: what an output that wants compressed
/// blobs (`-o oci:`, a push) gets. A layer's blob in that compression is
/// made once (`ensure_blob`) and kept; manifests whose layers already are
/// in it, and attestation manifests, stay as they are. Deterministic: the
/// same image and compression give the same digests.
pub fn with_compression(store: &Store, descriptor: &Descriptor, compression: Compression) -> Result<Descriptor> {
    if !is_index(descriptor) {
        let image = read_image(store, descriptor)?;
        if image
            .manifest
            .layers
            .iter()
            .all(|l| l.media_type == compression.media_type())
        {
            return Ok(descriptor.clone());
        }
        // Every image of the store was written by `write_image`: again, in `compression`.
        let mut desc = write_image(store, &State::new(image.config), compression)?;
        desc.annotations = descriptor.annotations.clone();
        return Ok(desc);
    }
    let mut index: image::Index =
        serde_json::from_slice(&store.read_blob(&descriptor.digest)?).map_err(|source| Error::Json {
            path: store.blob_path(&descriptor.digest),
            source,
        })?;
    let mut changed = false;
    for entry in &mut index.manifests {
        if is_attestation(entry) {
            continue;
        }
        let converted = with_compression(store, entry, compression)?;
        changed |= converted.digest != entry.digest;
        *entry = converted;
    }
    if !changed {
        return Ok(descriptor.clone());
    }
    let bytes = image::to_json(&index);
    let mut desc = Descriptor::new(&descriptor.media_type, store.put_blob(&bytes)?, bytes.len() as u64);
    desc.annotations = descriptor.annotations.clone();
    Ok(desc)
}

/// A stored image: its manifest and config, read back from the store.
pub struct StoredImage {
    pub descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: image::ImageConfig,
}

/// Stores an image index of `manifests` (each with its platform) and
/// returns its descriptor: a target built for several platforms.
pub fn write_index(store: &Store, manifests: &[Descriptor]) -> Result<Descriptor> {
    let index = image::Index {
        manifests: manifests.to_vec(),
        ..image::Index::default()
    };
    let bytes = image::to_json(&index);
    let digest = store.put_blob(&bytes)?;
    Ok(Descriptor::new(image::INDEX_MEDIA_TYPE, digest, bytes.len() as u64))
}

pub use image::{ATTESTATION_MANIFEST, IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE, REFERENCE_DIGEST, REFERENCE_TYPE};

/// Stores an attestation manifest about the image `subject`, as BuildKit
/// attaches them: one in-toto statement per layer (`(predicate type,
/// statement bytes)`), platform `unknown/unknown`, and annotations that
/// point at the subject. Returns its descriptor, ready for an index.
pub fn write_attestation(store: &Store, subject: &Descriptor, statements: &[(String, Vec<u8>)]) -> Result<Descriptor> {
    let mut layers = Vec::new();
    let mut config = image::ImageConfig::empty_for(&image::Platform {
        architecture: "unknown".into(),
        os: "unknown".into(),
        variant: None,
    });
    for (predicate_type, bytes) in statements {
        let digest = store.put_blob(bytes)?;
        let mut layer = Descriptor::new(IN_TOTO_MEDIA_TYPE, digest.clone(), bytes.len() as u64);
        layer.annotations = Some(std::collections::BTreeMap::from([(
            PREDICATE_TYPE.to_string(),
            predicate_type.clone(),
        )]));
        config.rootfs.diff_ids.push(digest);
        layers.push(layer);
    }
    let config_bytes = image::to_json(&config);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(IN_TOTO_MEDIA_TYPE.into()),
        config: Descriptor::new(
            image::CONFIG_MEDIA_TYPE,
            store.put_blob(&config_bytes)?,
            config_bytes.len() as u64,
        ),
        layers,
        // OCI 1.1: a referrer of the image it is about.
        subject: Some(Descriptor::new(
            &subject.media_type,
            subject.digest.clone(),
            subject.size,
        )),
        annotations: None,
    };
    let bytes = image::to_json(&manifest);
    let mut desc = Descriptor::new(image::MANIFEST_MEDIA_TYPE, store.put_blob(&bytes)?, bytes.len() as u64);
    desc.platform = Some(config.platform());
    desc.annotations = Some(std::collections::BTreeMap::from([
        (REFERENCE_DIGEST.to_string(), subject.digest.to_string()),
        (REFERENCE_TYPE.to_string(), ATTESTATION_MANIFEST.to_string()),
    ]));
    Ok(desc)
}

/// The image for `platform` a tag names: an index's entry for it
/// (attestations aside), or the one image there is.
pub fn image_for(store: &Store, tagged: &Descriptor, platform: &image::Platform) -> Result<Option<Descriptor>> {
    let images: Vec<Descriptor> = manifests_of(store, tagged)?
        .into_iter()
        .filter(|d| !is_attestation(d))
        .collect();
    let matching = images.iter().find(|d| d.platform.as_ref() == Some(platform)).cloned();
    Ok(matching.or_else(|| {
        if images.len() == 1 {
            images.into_iter().next()
        } else {
            None
        }
    }))
}

/// True for an index entry that is an attestation manifest.
pub fn is_attestation(descriptor: &Descriptor) -> bool {
    descriptor
        .annotations
        .as_ref()
        .and_then(|a| a.get(REFERENCE_TYPE))
        .is_some_and(|t| t == ATTESTATION_MANIFEST)
}

/// The statements (predicate type, bytes) attached to `manifest` in the
/// store's index `index`.
pub fn attestations_of(store: &Store, index: &Descriptor, manifest: &Digest) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in manifests_of(store, index)? {
        let about = entry.annotations.as_ref().and_then(|a| a.get(REFERENCE_DIGEST));
        if !is_attestation(&entry) || about != Some(&manifest.to_string()) {
            continue;
        }
        let m: Manifest = serde_json::from_slice(&store.read_blob(&entry.digest)?).map_err(|source| Error::Json {
            path: store.blob_path(&entry.digest),
            source,
        })?;
        for layer in m.layers {
            let kind = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(PREDICATE_TYPE))
                .cloned()
                .unwrap_or_default();
            out.push((kind, store.read_blob(&layer.digest)?));
        }
    }
    Ok(out)
}

/// True when `descriptor` is an image index (a multi-platform target).
pub fn is_index(descriptor: &Descriptor) -> bool {
    descriptor.media_type == image::INDEX_MEDIA_TYPE || descriptor.media_type == image::DOCKER_LIST_MEDIA_TYPE
}

/// The manifests an index of the store lists (or the one manifest itself).
pub fn manifests_of(store: &Store, descriptor: &Descriptor) -> Result<Vec<Descriptor>> {
    if !is_index(descriptor) {
        return Ok(vec![descriptor.clone()]);
    }
    let index: image::Index =
        serde_json::from_slice(&store.read_blob(&descriptor.digest)?).map_err(|source| Error::Json {
            path: store.blob_path(&descriptor.digest),
            source,
        })?;
    Ok(index.manifests)
}

/// Reads the image a manifest descriptor points at; for an index, its
/// entry for this machine's platform (else its first).
pub fn read_image(store: &Store, descriptor: &Descriptor) -> Result<StoredImage> {
    if is_index(descriptor) {
        let manifests = manifests_of(store, descriptor)?;
        let host = image::Platform::host();
        let chosen = manifests
            .iter()
            .find(|d| d.platform.as_ref() == Some(&host))
            .or(manifests.first())
            .ok_or_else(|| Error::BadImage {
                what: descriptor.digest.to_string(),
                reason: "an image index with no image".into(),
            })?;
        return read_image(store, chosen);
    }
    let manifest: Manifest =
        serde_json::from_slice(&store.read_blob(&descriptor.digest)?).map_err(|source| Error::Json {
            path: store.blob_path(&descriptor.digest),
            source,
        })?;
    let config = serde_json::from_slice(&store.read_blob(&manifest.config.digest)?).map_err(|source| Error::Json {
        path: store.blob_path(&manifest.config.digest),
        source,
    })?;
    Ok(StoredImage {
        descriptor: descriptor.clone(),
        manifest,
        config,
    })
}

/// Every blob an image needs: manifest, config, layers.
pub fn blobs_of(img: &StoredImage) -> Vec<Digest> {
    let mut v = vec![img.descriptor.digest.clone(), img.manifest.config.digest.clone()];
    v.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
    v
}
