//! Registries: references, the distribution-protocol client (auth, retries,
//! blobs and manifests), and resolving a reference to this platform's
//! manifest. Protocol only: this module knows no store and no export
//! (pulls into the store live in `bases::registry`, pushes in `export::push`).

mod client;
mod credentials;
pub mod download;
mod reference;

pub use client::{BlobPush, Body, Client, RegistryError};
pub use credentials::docker_config_dir;
pub use reference::{Reference, ReferenceError};

use crate::digest::Digest;
use crate::image::{self, Descriptor, Index, Platform};

/// What a manifest document (`bytes`, served as `media`) says to do for
/// `platform`: `None` when it is an image manifest (the end), else the
/// entry of the index to follow. Hostile input: any bytes are an answer
/// or an error, never a panic (a fuzz target holds it to that).
pub fn index_entry(
    bytes: &[u8],
    media: &str,
    platform: &Platform,
    what: &str,
) -> Result<Option<Descriptor>, RegistryError> {
    let kind = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string));
    let is_index = [media, kind.as_deref().unwrap_or("")]
        .iter()
        .any(|m| *m == image::INDEX_MEDIA_TYPE || *m == image::DOCKER_LIST_MEDIA_TYPE);
    if !is_index {
        return Ok(None);
    }
    let index: Index = serde_json::from_slice(bytes).map_err(|source| RegistryError::Json {
        what: format!("the index of {what}"),
        source,
    })?;
    let chosen = index.for_platform(platform).ok_or_else(|| RegistryError::BadManifest {
        what: what.to_string(),
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
    Ok(Some(chosen.clone()))
}

/// Resolves `reference` to the digest of the image manifest for `platform`
/// (following an index), without downloading layers.
pub fn resolve(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
) -> Result<(Digest, Vec<u8>), RegistryError> {
    let host = reference.api_host();
    let repo = &reference.repository;
    let (mut bytes, mut media) = client.manifest(host, repo, &reference.target())?;
    let mut digest = Digest::of(&bytes);
    if let Some(pinned) = &reference.digest {
        if pinned != &digest {
            return Err(RegistryError::DigestMismatch {
                what: reference.to_string(),
                expected: pinned.clone(),
                actual: digest,
            });
        }
    }
    for _ in 0..4 {
        let Some(chosen) = index_entry(&bytes, &media, platform, &reference.to_string())? else {
            return Ok((digest, bytes));
        };
        let (b, m) = client.manifest(host, repo, &chosen.digest.to_string())?;
        let actual = Digest::of(&b);
        if actual != chosen.digest {
            return Err(RegistryError::DigestMismatch {
                what: reference.to_string(),
                expected: chosen.digest.clone(),
                actual,
            });
        }
        (bytes, media, digest) = (b, m, actual);
    }
    Err(RegistryError::BadManifest {
        what: reference.to_string(),
        reason: "indexes nested too deeply".into(),
    })
}

/// The in-toto statement of `predicate_type` attached (as BuildKit attaches
/// attestations: an attestation manifest in the image's index) to the
/// image for `platform` that `reference` names in its registry; `None`
/// when there is none. Every manifest and blob read is checked against
/// its digest.
pub fn attestation(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    predicate_type: &str,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let host = reference.api_host();
    let repo = &reference.repository;
    let (bytes, _) = client.manifest(host, repo, &reference.target())?;
    let Ok(index) = serde_json::from_slice::<Index>(&bytes) else {
        return Ok(None);
    };
    let Some(image) = index.for_platform(platform) else {
        return Ok(None);
    };
    let about = image.digest.to_string();
    let fetch =
        |digest: &Digest, read: &dyn Fn() -> Result<Vec<u8>, RegistryError>| -> Result<Vec<u8>, RegistryError> {
            let bytes = read()?;
            let actual = Digest::of(&bytes);
            if &actual != digest {
                return Err(RegistryError::DigestMismatch {
                    what: reference.to_string(),
                    expected: digest.clone(),
                    actual,
                });
            }
            Ok(bytes)
        };
    for entry in &index.manifests {
        let annotations = entry.annotations.clone().unwrap_or_default();
        if annotations.get(image::REFERENCE_TYPE).map(String::as_str) != Some(image::ATTESTATION_MANIFEST)
            || annotations.get(image::REFERENCE_DIGEST) != Some(&about)
        {
            continue;
        }
        let manifest = fetch(&entry.digest, &|| {
            Ok(client.manifest(host, repo, &entry.digest.to_string())?.0)
        })?;
        let manifest: image::Manifest = serde_json::from_slice(&manifest).map_err(|source| RegistryError::Json {
            what: format!("the attestation manifest of {reference}"),
            source,
        })?;
        for layer in manifest.layers {
            let kind = layer.annotations.as_ref().and_then(|a| a.get(image::PREDICATE_TYPE));
            if kind.map(String::as_str) != Some(predicate_type) {
                continue;
            }
            let statement = fetch(&layer.digest, &|| {
                let mut body = Vec::new();
                if layer.size > 64 << 20 {
                    return Err(RegistryError::BadManifest {
                        what: format!("the attestation of {reference}"),
                        reason: format!("{} bytes, more than the 64 MiB an attestation may be", layer.size),
                    });
                }
                let blob = client.blob(host, repo, &layer)?;
                std::io::Read::read_to_end(&mut std::io::Read::take(blob, 64 << 20), &mut body).map_err(|e| {
                    RegistryError::Transport {
                        registry: host.to_string(),
                        repository: repo.clone(),
                        reason: format!("reading the attestation of {reference}: {e}"),
                    }
                })?;
                Ok(body)
            })?;
            return Ok(Some(statement));
        }
    }
    Ok(None)
}
