//! Pushing blobs and images: a blob the repository has is skipped (`HEAD`),
//! one another repository of the same registry holds is mounted, the rest
//! are uploaded streamed from the store, four at a time; the manifest goes
//! last. A blob is put into a repository once per push session even when
//! several manifests that share it are pushed at the same time: a second
//! upload is not only wasted, a registry of the `distribution` 2.x line
//! rewrites the blob's link file in place when it commits one, and a
//! manifest that refers to the blob fails with `DIGEST_INVALID` if the
//! registry reads the link in that moment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Descriptor;
use crate::registry::{BlobPush, Body, Client, Reference, RegistryError};
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
    /// One slot per `repository@digest`, true once the repository holds the
    /// blob; a thread putting it holds the slot's lock, so another thread
    /// that wants the same blob waits and then finds it known.
    known: Mutex<HashMap<String, Arc<Mutex<bool>>>>,
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
            known: Mutex::new(HashMap::new()),
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
        let slot = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone();
        let mut known = slot.lock().unwrap_or_else(|e| e.into_inner());
        if *known {
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
        *known = true;
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
        let reported = self.put_manifest(target, &reference, media_type, bytes)?;
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
            Err(RegistryError::Status { status: 404, .. }) => crate::image::Index::default(),
            Err(e) => return Err(e.into()),
        };
        if index.manifests.iter().any(|d: &Descriptor| d.digest == referrer.digest) {
            return Ok(());
        }
        index.manifests.push(referrer.clone());
        let bytes = crate::image::to_json(&index);
        self.put_manifest(target, &tag, crate::image::INDEX_MEDIA_TYPE, &bytes)?;
        Ok(())
    }

    /// PUTs a manifest under `reference` in `target`'s repository; returns
    /// the digest the registry reports. `DIGEST_INVALID` is asked again,
    /// twice, after a pause: the digest is worked out here from the very
    /// bytes sent, so that answer means a `distribution` 2.x registry read a
    /// link file that another client's upload of the same blob (or push of
    /// the same manifest) was rewriting in place.
    fn put_manifest(&self, target: &Reference, reference: &str, media_type: &str, bytes: &[u8]) -> Result<String> {
        let (host, repo) = (target.api_host(), &target.repository);
        let mut pause = Duration::from_millis(250);
        loop {
            match self.client.push_manifest(host, repo, reference, media_type, bytes) {
                Err(RegistryError::Status {
                    status: 400,
                    ref detail,
                    ..
                }) if detail.contains("DIGEST_INVALID") && pause <= Duration::from_millis(500) => {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                done => return Ok(done?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// What the fake registry saw: upload starts and manifest PUTs.
    #[derive(Default)]
    struct Seen {
        uploads: usize,
        manifest_puts: usize,
        committed: HashSet<String>,
    }

    /// A registry that is slow to start an upload (so pushes of the same
    /// blob overlap) and answers the first manifest PUT as a `distribution`
    /// 2.x registry does when it reads a link file being rewritten.
    fn fake_registry() -> (String, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let seen = shared.clone();
                std::thread::spawn(move || serve(conn, &seen));
            }
        });
        (addr, seen)
    }

    fn serve(conn: TcpStream, seen: &Mutex<Seen>) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut out = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let (method, path) = {
                let mut f = line.split_whitespace();
                (f.next().unwrap_or("").to_string(), f.next().unwrap_or("").to_string())
            };
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap();
                    }
                }
            }
            std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).unwrap();
            let (status, headers, body) = answer(&method, &path, seen);
            let reply = format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            out.write_all(reply.as_bytes()).unwrap();
        }
    }

    fn answer(method: &str, path: &str, seen: &Mutex<Seen>) -> (&'static str, String, String) {
        let digest_in = |p: &str| p.rsplit_once("digest=").map(|(_, d)| d.to_string());
        match (method, path) {
            ("HEAD", p) if p.contains("/blobs/sha256:") => {
                let digest = p.rsplit_once('/').unwrap().1;
                match seen.lock().unwrap().committed.contains(digest) {
                    true => ("200 OK", String::new(), String::new()),
                    false => ("404 Not Found", String::new(), String::new()),
                }
            }
            ("POST", p) if p.ends_with("/blobs/uploads/") => {
                seen.lock().unwrap().uploads += 1;
                std::thread::sleep(Duration::from_millis(300));
                let location = "Location: /v2/team/cache/blobs/uploads/u\r\n".to_string();
                ("202 Accepted", location, String::new())
            }
            ("PUT", p) if p.contains("/blobs/uploads/") => {
                seen.lock().unwrap().committed.insert(digest_in(p).unwrap());
                ("201 Created", String::new(), String::new())
            }
            ("PUT", p) if p.contains("/manifests/") => {
                let mut seen = seen.lock().unwrap();
                seen.manifest_puts += 1;
                match seen.manifest_puts {
                    1 => (
                        "400 Bad Request",
                        String::new(),
                        r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}"#
                            .to_string(),
                    ),
                    _ => ("201 Created", String::new(), String::new()),
                }
            }
            _ => ("404 Not Found", String::new(), String::new()),
        }
    }

    #[test]
    fn a_blob_wanted_by_several_threads_at_once_is_uploaded_once_and_a_torn_link_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let bytes = b"one layer that four cache entries share";
        let blob = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar",
            store.put_blob(bytes).unwrap(),
            bytes.len() as u64,
        );
        let (addr, seen) = fake_registry();
        let client = Client::new(Vec::new());
        let pusher = Pusher::new(&store, &client);
        let target = Reference::parse(&format!("{addr}/team/cache:strata-x")).unwrap();

        pusher.blobs(&target, &vec![blob.clone(); 4]).unwrap();
        assert_eq!(
            seen.lock().unwrap().uploads,
            1,
            "one upload for four pushes of one blob"
        );
        assert_eq!(
            pusher.stats(),
            PushStats {
                uploaded: 1,
                mounted: 0,
                present: 0,
                bytes_uploaded: bytes.len() as u64,
            }
        );

        let manifest = br#"{"schemaVersion":2}"#;
        let digest = pusher
            .manifest(&target, crate::image::MANIFEST_MEDIA_TYPE, manifest)
            .unwrap();
        assert_eq!(digest, Digest::of(manifest));
        assert_eq!(seen.lock().unwrap().manifest_puts, 2, "DIGEST_INVALID is asked again");
    }
}
