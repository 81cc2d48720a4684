//! The remote layer cache. A node result is a small OCI artifact in an
//! ordinary registry repository, tagged `strata-<key>`: its config blob is an
//! [`Entry`] (the node's record and the full image state after it), its
//! layers are the blobs of every layer of that state. A hit on a target's
//! final node therefore yields everything needed to export the target
//! without looking at any node below it, and blobs are shared by all entries
//! of the repository, so each is uploaded once.

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, NodeKey};
use crate::error::{Error, Result};
use crate::export::push::Pusher;
use crate::image::{self, Descriptor, ImageConfig, Manifest};
use crate::registry::{Client, Reference, RegistryError};
use crate::store::Record;

/// `artifactType` of a cache entry's manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.strata.cache.v1";
/// Media type of the entry (the manifest's config blob).
pub const ENTRY_MEDIA_TYPE: &str = "application/vnd.strata.cache.entry.v1+json";

/// One layer of a cached state and the blob that holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryLayer {
    pub diff_id: Digest,
    pub blob: Descriptor,
}

/// What a remote cache stores for one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The node's own result, as the local store keeps it.
    pub record: Record,
    /// The image config of the state after the node (all its layers).
    pub state: ImageConfig,
    /// Every layer of `state`, bottom first.
    pub layers: Vec<EntryLayer>,
    /// The node's effective key (its content-based key; the tag may be its
    /// planned key), so later nodes key the same way on every machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The tag a key is filed under.
pub fn tag(key: &NodeKey) -> String {
    format!("strata-{}", key.hex())
}

fn bad(reference: &Reference, key: &NodeKey, reason: impl Into<String>) -> Error {
    Error::BadImage {
        what: format!("{}/{}:{}", reference.registry, reference.repository, tag(key)),
        reason: reason.into(),
    }
}

/// The manifest tagged `tag` in `reference`: `None` when the registry does
/// not have it; `bad_manifest` names what a manifest that does not parse is.
fn manifest_at(
    client: &Client,
    reference: &Reference,
    tag: &str,
    bad_manifest: impl FnOnce(String) -> Error,
) -> Result<Option<Manifest>> {
    match client.manifest(reference.api_host(), &reference.repository, tag) {
        Ok((bytes, _)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad_manifest(e.to_string())),
        Err(RegistryError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// True when `reference` already holds a manifest tagged `tag` (`what` names it in errors).
fn has_tag(client: &Client, reference: &Reference, tag: &str, what: &str) -> Result<bool> {
    let repo = &reference.repository;
    let path = format!("{repo}/manifests/{tag}");
    Ok(client
        .exists(reference.api_host(), repo, &path, &format!("{what} {tag}"))?
        .is_some())
}

/// Looks `key` up in the cache repository `reference`: `None` when the
/// registry does not have it.
pub fn lookup(client: &Client, reference: &Reference, key: &NodeKey) -> Result<Option<Entry>> {
    let host = reference.api_host();
    let repo = &reference.repository;
    let Some(manifest) = manifest_at(client, reference, &tag(key), |e| bad(reference, key, e))? else {
        return Ok(None);
    };
    if manifest.config.media_type != ENTRY_MEDIA_TYPE {
        return Err(bad(reference, key, "not a strata cache entry"));
    }
    let bytes = client.document(host, repo, &manifest.config)?;
    let actual = Digest::of(&bytes);
    if actual != manifest.config.digest {
        return Err(Error::DigestMismatch {
            what: format!("cache entry {}", tag(key)),
            expected: manifest.config.digest,
            actual,
        });
    }
    let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| bad(reference, key, e.to_string()))?;
    let diff_ids: Vec<&Digest> = entry.layers.iter().map(|l| &l.diff_id).collect();
    if diff_ids != entry.state.rootfs.diff_ids.iter().collect::<Vec<_>>() {
        return Err(bad(reference, key, "its layers do not match its state"));
    }
    Ok(Some(entry))
}

/// True when the cache repository already holds `key`.
pub fn contains(client: &Client, reference: &Reference, key: &NodeKey) -> Result<bool> {
    has_tag(client, reference, &tag(key), "cache entry")
}

/// Pushes `entry` under `key`: layer blobs (from the store), the entry, then
/// the manifest.
pub fn store(pusher: &Pusher, reference: &Reference, key: &NodeKey, entry: &Entry) -> Result<()> {
    let blobs: Vec<Descriptor> = entry.layers.iter().map(|l| l.blob.clone()).collect();
    push_artifact(
        pusher,
        reference,
        &tag(key),
        ARTIFACT_TYPE,
        (ENTRY_MEDIA_TYPE, &image::to_json(entry)),
        blobs,
    )
}

/// Pushes an artifact tagged `tag`: its layer blobs (from the store), its
/// config `(media type, bytes)`, then a manifest with `artifact_type`.
fn push_artifact(
    pusher: &Pusher,
    reference: &Reference,
    tag: &str,
    artifact_type: &str,
    (config_type, config_bytes): (&str, &[u8]),
    layers: Vec<Descriptor>,
) -> Result<()> {
    pusher.blobs(reference, &layers)?;
    let config = Descriptor::new(
        config_type,
        pusher.store.put_blob(config_bytes)?,
        config_bytes.len() as u64,
    );
    pusher.blob(reference, &config)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(artifact_type.into()),
        config,
        layers,
        subject: None,
        annotations: None,
    };
    let target = Reference {
        tag: Some(tag.to_string()),
        digest: None,
        ..reference.clone()
    };
    pusher.manifest(&target, image::MANIFEST_MEDIA_TYPE, &image::to_json(&manifest))?;
    Ok(())
}

/// `artifactType` of an exported cache mount's manifest.
pub const MOUNT_ARTIFACT_TYPE: &str = "application/vnd.strata.cache-mount.v1";
/// Media type of its config blob: `{"id": MOUNT ID}`.
pub const MOUNT_CONFIG_MEDIA_TYPE: &str = "application/vnd.strata.cache-mount.config.v1+json";

/// The tag an exported cache mount's content is filed under.
pub fn mount_tag(key: &NodeKey) -> String {
    format!("strata-mount-{}", key.hex())
}

/// The blob (a deterministic tar, zstd) holding the cache mount filed
/// under `key` in `reference`, if the registry has one.
pub fn lookup_mount(client: &Client, reference: &Reference, key: &NodeKey) -> Result<Option<Descriptor>> {
    let what = || format!("{}/{}:{}", reference.registry, reference.repository, mount_tag(key));
    let bad_manifest = |reason| Error::BadImage { what: what(), reason };
    let Some(manifest) = manifest_at(client, reference, &mount_tag(key), bad_manifest)? else {
        return Ok(None);
    };
    match (manifest.artifact_type.as_deref(), manifest.layers.as_slice()) {
        (Some(MOUNT_ARTIFACT_TYPE), [blob]) => Ok(Some(blob.clone())),
        _ => Err(Error::BadImage {
            what: what(),
            reason: "not a strata cache mount (one layer, artifactType application/vnd.strata.cache-mount.v1)".into(),
        }),
    }
}

/// True when the cache repository already holds the mount filed under `key`.
pub fn contains_mount(client: &Client, reference: &Reference, key: &NodeKey) -> Result<bool> {
    has_tag(client, reference, &mount_tag(key), "cache mount")
}

/// Pushes the mount `id`'s content (`blob`, in the store) under `key`.
pub fn store_mount(pusher: &Pusher, reference: &Reference, key: &NodeKey, id: &str, blob: &Descriptor) -> Result<()> {
    push_artifact(
        pusher,
        reference,
        &mount_tag(key),
        MOUNT_ARTIFACT_TYPE,
        (
            MOUNT_CONFIG_MEDIA_TYPE,
            &image::to_json(&serde_json::json!({ "id": id })),
        ),
        vec![blob.clone()],
    )
}
