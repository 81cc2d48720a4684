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
}

impl State {
    /// The unpacked layer directories, bottom first.
    pub fn layer_dirs(&self, store: &Store) -> Vec<PathBuf> {
        self.config.rootfs.diff_ids.iter().map(|d| store.layer_dir(d)).collect()
    }
}

/// Writes the config and manifest of `state` into the store and returns the
/// manifest's descriptor.
pub fn write_image(store: &Store, state: &State, compression: Compression, epoch: i64) -> Result<Descriptor> {
    let mut layers = Vec::new();
    for diff_id in &state.config.rootfs.diff_ids {
        layers.push(super::ensure_blob(store, diff_id, compression, epoch)?);
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
