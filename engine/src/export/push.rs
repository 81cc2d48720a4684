//! Pushing blobs and images: a blob the repository has is skipped (`HEAD`),
//! one another repository of the same registry holds is mounted, the rest
//! are uploaded streamed from the store, four at a time; the manifest goes
//! last.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Descriptor;
use crate::registry::{BlobPush, Body, Client, Reference};
use crate::store::Store;
use crate::store::StoredImage;

/// What pushes did, summed over a session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushStats {
    pub uploaded: usize,
    pub mounted: usize,
    pub present: usize,
    pub bytes_uploaded: u64,
}

/// A push session: remembers which blobs each repository is known to hold,
/// so pushing many manifests that share layers asks about each blob once.
pub struct Pusher<'a> {
    pub store: &'a Store,
    pub client: &'a Client,
    known: Mutex<HashSet<String>>,
    uploaded: AtomicUsize,
    mounted: AtomicUsize,
    present: AtomicUsize,
    bytes: AtomicU64,
}

impl<'a> Pusher<'a> {
    pub fn new(store: &'a Store, client: &'a Client) -> Pusher<'a> {
        Pusher {
            store,
            client,
            known: Mutex::new(HashSet::new()),
            uploaded: AtomicUsize::new(0),
            mounted: AtomicUsize::new(0),
            present: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> PushStats {
        PushStats {
            uploaded: self.uploaded.load(Ordering::Relaxed),
            mounted: self.mounted.load(Ordering::Relaxed),
            present: self.present.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Puts one blob of the store into `target`'s repository.
    pub fn blob(&self, target: &Reference, blob: &Descriptor) -> Result<()> {
        let host = target.api_host();
        let repo = &target.repository;
        let here = format!("{host}/{repo}");
        let id = format!("{here}@{}", blob.digest);
        if self.known.lock().unwrap_or_else(|e| e.into_inner()).contains(&id) {
            return Ok(());
        }
        let path = self.store.blob_path(&blob.digest);
        if !path.exists() {
            return Err(Error::BadImage {
                what: blob.digest.to_string(),
                reason: "the blob is not in the store".into(),
            });
        }
        // Checked before anything is sent, even when the registry has it:
        // a damaged store must not think its pushes succeed.
        self.store.verify_blob(&blob.digest)?;
        let from = self
            .store
            .blob_sources(&blob.digest)
            .into_iter()
            .find_map(|s| s.strip_prefix(&format!("{host}/")).map(str::to_string))
            .filter(|r| r != repo);
        let done = self.client.push_blob(
            host,
            repo,
            &blob.digest.to_string(),
            Body::File(&path, blob.size),
            from.as_deref(),
        )?;
        match done {
            BlobPush::Present => self.present.fetch_add(1, Ordering::Relaxed),
            BlobPush::Mounted => self.mounted.fetch_add(1, Ordering::Relaxed),
            BlobPush::Uploaded => {
                self.bytes.fetch_add(blob.size, Ordering::Relaxed);
                self.uploaded.fetch_add(1, Ordering::Relaxed)
            }
        };
        self.store.add_blob_source(&blob.digest, &here)?;
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        Ok(())
    }

    /// Puts several blobs, four at a time; the first error wins.
    pub fn blobs(&self, target: &Reference, blobs: &[Descriptor]) -> Result<()> {
        crate::par::try_each(blobs, 4, |blob| self.blob(target, blob))
    }

    /// Puts a manifest (already stored as a blob) under the reference's tag,
    /// or its digest when the reference has none; checks the digest the
    /// registry reports.
    pub fn manifest(&self, target: &Reference, media_type: &str, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let reference = target.tag.clone().unwrap_or_else(|| digest.to_string());
        let reported =
            self.client
                .push_manifest(target.api_host(), &target.repository, &reference, media_type, bytes)?;
        if !reported.is_empty() && reported != digest.to_string() {
            return Err(Error::BadImage {
                what: target.to_string(),
                reason: format!("the registry stored the manifest as {reported}, not {digest}"),
            });
        }
        Ok(digest)
    }

    /// Pushes an image of the store: layers and config, then the manifest.
    pub fn image(&self, image: &StoredImage, target: &Reference) -> Result<Digest> {
        let mut blobs = image.manifest.layers.clone();
        blobs.push(image.manifest.config.clone());
        self.blobs(target, &blobs)?;
        let bytes = self.store.read_blob(&image.descriptor.digest)?;
        self.manifest(target, &image.descriptor.media_type, &bytes)
    }

    /// Makes `referrer` (a manifest with a `subject`, already pushed) findable
    /// from its subject, OCI 1.1's way: a registry with the referrers API
    /// indexes it itself; for one without, the tag `sha256-<subject>` holds
    /// an index of the subject's referrers (the tag schema fallback), to
    /// which it is added.
    pub fn referrer(&self, target: &Reference, subject: &Digest, referrer: &Descriptor) -> Result<()> {
        let host = target.api_host();
        let repo = &target.repository;
        let api = format!("{repo}/referrers/{subject}");
        if self.client.exists(host, repo, &api, "the referrers API")?.is_some() {
            return Ok(());
        }
        let tag = format!("sha256-{}", subject.hex());
        let mut index = match self.client.manifest(host, repo, &tag) {
            Ok((bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(crate::registry::RegistryError::Status { status: 404, .. }) => crate::image::Index::default(),
            Err(e) => return Err(e.into()),
        };
        if index.manifests.iter().any(|d: &Descriptor| d.digest == referrer.digest) {
            return Ok(());
        }
        index.manifests.push(referrer.clone());
        let bytes = crate::image::to_json(&index);
        self.client
            .push_manifest(host, repo, &tag, crate::image::INDEX_MEDIA_TYPE, &bytes)?;
        Ok(())
    }
}
