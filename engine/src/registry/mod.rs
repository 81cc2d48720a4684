//! Registries: references, the distribution-protocol client, and pulling an
//! image into the store (index → this platform's manifest → config and
//! layers, verified, layers fetched in parallel).

pub mod cache;
mod client;
pub mod push;
mod reference;

pub use client::{docker_config_dir, BlobPush, Body, Client, RegistryError};
pub use reference::Reference;

use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{self, Descriptor, ImageConfig, Index, Manifest, Platform};
use crate::store::{LayerRef, Record, Store};

fn registry_error(e: RegistryError) -> Error {
    Error::Registry(e)
}

/// Resolves `reference` to the digest of the image manifest for `platform`
/// (following an index), without downloading layers.
pub fn resolve(client: &Client, reference: &Reference, platform: &Platform) -> Result<(Digest, Vec<u8>)> {
    let host = reference.api_host();
    let repo = &reference.repository;
    let (mut bytes, mut media) = client
        .manifest(host, repo, &reference.target())
        .map_err(registry_error)?;
    let mut digest = Digest::of(&bytes);
    if let Some(pinned) = &reference.digest {
        if pinned != &digest {
            return Err(Error::DigestMismatch {
                what: reference.to_string(),
                expected: pinned.clone(),
                actual: digest,
            });
        }
    }
    for _ in 0..4 {
        let kind = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string));
        let is_index = [media.as_str(), kind.as_deref().unwrap_or("")]
            .iter()
            .any(|m| *m == image::INDEX_MEDIA_TYPE || *m == image::DOCKER_LIST_MEDIA_TYPE);
        if !is_index {
            return Ok((digest, bytes));
        }
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::BadImage {
            what: reference.to_string(),
            reason: e.to_string(),
        })?;
        let chosen: &Descriptor = index.for_platform(platform).ok_or_else(|| Error::BadImage {
            what: reference.to_string(),
            reason: format!(
                "no image for {platform} (the index has {})",
                index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let (b, m) = client
            .manifest(host, repo, &chosen.digest.to_string())
            .map_err(registry_error)?;
        let actual = Digest::of(&b);
        if actual != chosen.digest {
            return Err(Error::DigestMismatch {
                what: reference.to_string(),
                expected: chosen.digest.clone(),
                actual,
            });
        }
        (bytes, media, digest) = (b, m, actual);
    }
    Err(Error::BadImage {
        what: reference.to_string(),
        reason: "indexes nested too deeply".into(),
    })
}

/// Counts the bytes read through it and reports the running total.
struct Counted<'a, R> {
    inner: R,
    total: &'a std::sync::atomic::AtomicU64,
    report: &'a (dyn Fn(u64) + Sync),
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.total.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        // Report about every 4 MiB, and at the end.
        if (before + n as u64) >> 22 != before >> 22 || n == 0 {
            (self.report)(before + n as u64);
        }
        Ok(n)
    }
}

/// Pulls the image manifest `manifest_bytes` of `reference` into the store.
/// `progress` hears (bytes downloaded, bytes to download) as layers arrive.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &Reference,
    manifest_bytes: &[u8],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Record> {
    let host = reference.api_host();
    let repo = &reference.repository;
    let what = reference.to_string();
    let manifest: Manifest = serde_json::from_slice(manifest_bytes).map_err(|e| Error::BadImage {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    let mut config_bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut client
            .blob(host, repo, &manifest.config.digest.to_string())
            .map_err(registry_error)?,
        &mut config_bytes,
    )
    .map_err(Error::io("download config of", what.clone()))?;
    let actual = Digest::of(&config_bytes);
    if actual != manifest.config.digest {
        return Err(Error::DigestMismatch {
            what,
            expected: manifest.config.digest.clone(),
            actual,
        });
    }
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| Error::BadImage {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::BadImage {
            what,
            reason: "the manifest's layers and the config's diff_ids differ in number".into(),
        });
    }
    // Layers in parallel, a few at a time.
    let pairs: Vec<(&Descriptor, &Digest)> = manifest.layers.iter().zip(&config.rootfs.diff_ids).collect();
    let missing: u64 = pairs
        .iter()
        .filter(|(_, d)| !store.has_layer(d))
        .map(|(b, _)| b.size)
        .sum();
    let downloaded = std::sync::atomic::AtomicU64::new(0);
    let report = |done: u64| progress(done, missing);
    crate::par::try_each(&pairs, 4, |(blob, diff_id)| {
        if store.has_layer(diff_id) {
            return Ok(());
        }
        let body = client
            .blob(host, repo, &blob.digest.to_string())
            .map_err(registry_error)?;
        let body = Counted {
            inner: body,
            total: &downloaded,
            report: &report,
        };
        crate::base::import_layer_from(store, body, Path::new(&what), Some(&blob.digest), diff_id)?;
        store.add_blob_source(&blob.digest, &format!("{host}/{repo}"))
    })?;
    store.put_blob(&config_bytes)?;
    let layers = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| LayerRef { diff_id: d.clone() })
        .collect();
    Ok(Record {
        layers,
        config: Some(config),
    })
}
