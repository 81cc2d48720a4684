//! Registry bases pulled into the store: the manifest's config and layers
//! are downloaded in parallel, each verified against its digest and
//! unpacked through the store's layer import.

use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Descriptor, ImageConfig, Manifest};
use crate::registry::{Client, Reference, RegistryError};
use crate::store::{LayerRef, Record, Store};

fn registry_error(e: RegistryError) -> Error {
    Error::Registry(e)
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
    let manifest: Manifest = serde_json::from_slice(manifest_bytes).map_err(|source| Error::Json {
        path: format!("the manifest of {what}").into(),
        source,
    })?;
    let config_bytes = client.document(host, repo, &manifest.config).map_err(registry_error)?;
    let actual = Digest::of(&config_bytes);
    if actual != manifest.config.digest {
        return Err(Error::DigestMismatch {
            what,
            expected: manifest.config.digest.clone(),
            actual,
        });
    }
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
        path: format!("the config of {what}").into(),
        source,
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
        let body = client.blob(host, repo, blob).map_err(registry_error)?;
        let body = Counted {
            inner: body,
            total: &downloaded,
            report: &report,
        };
        crate::store::import_layer_from(store, body, Path::new(&what), Some(&blob.digest), diff_id)?;
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
        restored: None,
    })
}
