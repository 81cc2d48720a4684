//! The store: one directory that is itself a valid OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/`), plus strata's own parts:
//!
//! ```text
//! layers/<diff-id hex>/        unpacked layer (overlay format), used as lowerdir
//! layers/<diff-id hex>.json    the blobs that hold this layer, per compression
//! records/<key>.json           node key → result (layers, base config)
//! files/<xx>/<hash>-<attrs>     pool of copied context files, hardlinked into layers
//! cache/<id>/                  persistent RUN cache mounts
//! sources/<blob hex>           registry repositories known to hold a blob (for mounts on push)
//! pathkeys/<memo>              content keys of `state.path(P)` inputs, per (layers, path)
//! debian/index/<sha256>        verified Packages indexes; debian/debs/<sha256>.deb: packages
//! builds/<id>.json            per recipe and target: the last build's facts and misses (`strata explain`)
//! statcache.d/<hash of a dir>  context stat cache, a file per context directory
//!                              (name, size, mtime, ctime, inode → hash)
//! locks/                       flock files (index.json updates, node builds)
//! tmp/<owner>/                per-process scratch; stale once locks/tmp-<owner> is free
//! ```
//!
//! Every write is write-temp-then-rename (records and index fsynced first),
//! so a build killed at any moment leaves either the old or the new file.
//! Several processes may use one store at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{self, Descriptor, Index};
use crate::layer::{Compression, HashWriter};
use crate::sys;

mod check;
mod gc;
mod images;
mod layers;
mod records;
pub use check::{check, repair, Checked, Damage, DamageKind, TreeHash};
pub use gc::{disk_usage, gc, DiskUsage, GcReport};
pub use images::{
    attestations_of, blobs_of, image_for, is_attestation, is_index, manifests_of, read_image, with_compression,
    write_attestation, write_image, write_index, State, StoredImage, IN_TOTO_MEDIA_TYPE, PREDICATE_TYPE,
};
pub use layers::{ensure_blob, import_layer, import_layer_from, write_layer, LayerTimes};
pub use records::{LayerRef, Record, Restored};

/// The blobs known to hold one layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerBlobs {
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    /// True when strata wrote this layer's tar from its directory, so a blob in
    /// another compression can be regenerated with the same diff id.
    pub rewritable: bool,
    /// Compression name → blob.
    pub blobs: BTreeMap<String, Descriptor>,
}

/// A handle on a store directory.
pub struct Store {
    root: PathBuf,
    tmp: PathBuf,
    _tmp_lock: sys::LockGuard,
    /// The file pool's shard directories listed so far (`None`: absent).
    pool: std::sync::Mutex<HashMap<PathBuf, Option<HashSet<std::ffi::OsString>>>>,
}

/// A blob being written: bytes go to a temporary file and are hashed on the way.
pub struct BlobWriter<'a> {
    file: HashWriter<KnownBlobWriter<'a>>,
}

impl BlobWriter<'_> {
    /// Moves the finished blob into `blobs/sha256/` and returns its digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (file, digest, size) = self.file.finish();
        file.commit_as(&digest)?;
        Ok((digest, size))
    }
}

/// A blob whose digest the writer already computes (a layer tar, hashed
/// as it is walked): the bytes are not hashed a second time.
pub struct KnownBlobWriter<'a> {
    store: &'a Store,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl KnownBlobWriter<'_> {
    /// Moves the finished blob into `blobs/sha256/` under `digest`, which
    /// the caller computed over exactly the bytes written.
    pub fn commit_as(self, digest: &Digest) -> Result<()> {
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| Error::io("write blob in", &self.store.tmp)(e.into_error()))?;
        let dest = self.store.blob_path(digest);
        if !dest.exists() {
            tmp.persist(&dest)
                .map_err(|e| Error::io("store blob", &dest)(e.error))?;
        }
        Ok(())
    }
}

impl Write for KnownBlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The store's directories that hold image files (layers with setuid-root
/// binaries, the file pool, cache mounts, scratch trees, extracted
/// packages): only their owner may enter them, whoever made the store's
/// root and with whatever mode (an admin's `mkdir`, a CI cache restore),
/// so that no other user can run a layer's setuid binary as root
/// (CVE-2021-41091's class). The blobs and the layout stay readable.
pub const PRIVATE_DIRS: &[&str] = &["layers", "files", "cache", "tmp", "sources", "debian", "downloads"];

/// Makes [`PRIVATE_DIRS`] mode 0700; one that belongs to someone else is
/// an error that says how to fix it.
fn protect(root: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for dir in PRIVATE_DIRS {
        let d = root.join(dir);
        let meta = fs::symlink_metadata(&d).map_err(Error::io("stat", &d))?;
        if !meta.is_dir() {
            return Err(Error::Damaged {
                what: format!("`{dir}/`"),
                reason: "not a directory".into(),
            });
        }
        if meta.mode() & 0o077 == 0 {
            continue;
        }
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(|e| Error::BadImage {
            what: d.display().to_string(),
            reason: format!(
                "other users can enter it (mode {:o}) and strata cannot make it 0700 ({e}): it holds image files such as setuid binaries; run `chmod 700 {}` as its owner (uid {})",
                meta.mode() & 0o7777,
                d.display(),
                meta.uid()
            ),
        })?;
    }
    Ok(())
}

impl Store {
    /// `$STRATA_HOME`, else `$XDG_DATA_HOME/strata`, else `~/.local/share/strata`.
    pub fn default_root() -> PathBuf {
        if let Some(home) = std::env::var_os("STRATA_HOME") {
            return PathBuf::from(home);
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
            return PathBuf::from(data).join("strata");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".local/share/strata")
    }

    /// Opens (creating if needed) the store at `root` and removes scratch
    /// space left by processes that are gone. A store this process creates
    /// is mode 0700: its layers hold setuid files and device nodes that
    /// other users must not reach (the CVE-2021-41091 class).
    pub fn open(root: &Path) -> Result<Store> {
        // A relative root is taken from the current directory once, here:
        // the sandbox runs elsewhere and must get absolute paths.
        let root = &std::path::absolute(root).map_err(Error::io("resolve store directory", root))?;
        if !root.exists() {
            fs::create_dir_all(root).map_err(Error::io("create store directory", root))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(Error::io("chmod", root))?;
        }
        for dir in [
            "blobs/sha256",
            "layers",
            "records",
            "cache",
            "locks",
            "tmp",
            "builds",
            "files",
            "sources",
            "debian",
            "downloads",
        ] {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(Error::io("create store directory", &d))?;
        }
        protect(root)?;
        create_once(root, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        create_once(root, "index.json", &image::to_json(&Index::default()))?;
        clean_stale_tmp(root)?;
        // The stat cache of earlier versions, one file: now `statcache.d`.
        let _ = fs::remove_file(root.join("statcache"));
        // Lock first, then create the directory: another process only ever
        // sees our scratch directory once its lock is held.
        let owner = format!("{}-{:x}", std::process::id(), rand_u64());
        let lock_path = root.join("locks").join(format!("tmp-{owner}"));
        let lock = File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
        let lock = sys::flock(lock, true, false)
            .map_err(Error::io("lock", &lock_path))?
            .expect("a blocking lock is always taken");
        let tmp = root.join("tmp").join(&owner);
        fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
        Ok(Store {
            root: root.to_path_buf(),
            tmp,
            _tmp_lock: lock,
            pool: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh temporary directory inside the store (same filesystem as everything else).
    pub fn tmp_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("t")
            .tempdir_in(&self.tmp)
            .map_err(Error::io("create temporary directory in", &self.tmp))
    }

    /// Writes `bytes` to `dest` atomically (temp file, rename): a killed
    /// process leaves the old file or the new one, never a torn one.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic_in(&self.tmp, dest, bytes, false)
    }

    /// Like `write_atomic`, and fsynced before the rename so that it also
    /// survives a power loss (tags: `index.json`).
    pub fn write_durable(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic_in(&self.tmp, dest, bytes, true)
    }

    // ---- blobs ----

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    /// Starts writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        Ok(BlobWriter {
            file: HashWriter::new(self.known_blob_writer()?),
        })
    }

    /// Starts writing a blob whose digest the caller computes as it writes.
    pub fn known_blob_writer(&self) -> Result<KnownBlobWriter<'_>> {
        let tmp = tempfile::NamedTempFile::new_in(&self.tmp).map_err(Error::io("create blob in", &self.tmp))?;
        Ok(KnownBlobWriter {
            store: self,
            file: BufWriter::with_capacity(1 << 20, tmp),
        })
    }

    /// Stores a small blob (config, manifest) and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let dest = self.blob_path(&digest);
        if !dest.exists() {
            self.write_atomic(&dest, bytes)?;
        }
        Ok(digest)
    }

    /// Registry repositories (`host/repo`) known to hold a blob, so a push
    /// to another repository of the same registry can mount it.
    pub fn blob_sources(&self, digest: &Digest) -> Vec<String> {
        fs::read_to_string(self.root.join("sources").join(digest.hex()))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Notes that `repository` (`host/repo`) holds the blob.
    pub fn add_blob_source(&self, digest: &Digest, repository: &str) -> Result<()> {
        let mut sources = self.blob_sources(digest);
        if sources.iter().any(|s| s == repository) {
            return Ok(());
        }
        sources.insert(0, repository.to_string());
        sources.truncate(8);
        let text = sources.join("\n") + "\n";
        self.write_atomic(&self.root.join("sources").join(digest.hex()), text.as_bytes())
    }

    /// Checks a blob of any size against its digest (streaming), before it
    /// leaves the store: an export, a push, a hard link out.
    pub fn verify_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        let mut file = File::open(&path).map_err(Error::io("open blob", &path))?;
        let mut hasher = sha2::Sha256::default();
        io::copy(&mut file, &mut hasher).map_err(Error::io("read blob", &path))?;
        let actual = Digest::from_hasher(hasher);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Reads a small blob and checks it against its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        read_verified(&self.blob_path(digest), digest)
    }

    /// Where strata notes what it wrote into an artifact directory (the
    /// canonical path `dir`), so its next export there can remove what it
    /// no longer writes and nothing else.
    pub fn export_record_path(&self, dir: &Path) -> PathBuf {
        let key = Digest::of(dir.as_os_str().as_encoded_bytes());
        self.root.join("exports").join(format!("{}.json", key.hex()))
    }

    // ---- layers ----

    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    fn layer_blobs_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(format!("{}.json", diff_id.hex()))
    }

    fn layer_tree_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(format!("{}.tree", diff_id.hex()))
    }

    /// The tree hash recorded when the layer was committed.
    pub fn layer_tree(&self, diff_id: &Digest) -> Option<check::TreeHash> {
        read_json(&self.layer_tree_path(diff_id)).ok()
    }

    /// True when the layer is unpacked, looks whole and has its blob list
    /// (a layer strata made may have no blob yet). "Looks whole" is the cheap check made on every use: as many
    /// entries at its top as when it was committed (an emptied or half
    /// removed directory fails it); `strata check` compares the whole tree.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        if !self.layer_dir(diff_id).is_dir() || !self.layer_blobs_path(diff_id).exists() {
            return false;
        }
        // A layer committed by a strata that wrote no tree hash is taken as it is.
        self.layer_looks_whole(diff_id) || !self.layer_tree_path(diff_id).exists()
    }

    /// Moves a finished layer directory into place, with its tree hash
    /// (`tree`, when the caller hashed it while writing the tar). If another
    /// process got there first, ours is discarded: both hold the same
    /// content. A damaged directory in the way is discarded first.
    pub fn commit_layer_dir(&self, tmp_dir: &Path, diff_id: &Digest, tree: Option<TreeHash>) -> Result<()> {
        let dest = self.layer_dir(diff_id);
        if dest.is_dir() && self.layer_looks_whole(diff_id) {
            return self.discard_dir(tmp_dir);
        }
        let tree = match tree {
            Some(tree) => tree,
            None => check::tree_hash(tmp_dir)?,
        };
        let _guard = self.lock(&format!("layer-{}", diff_id.hex()))?;
        if dest.exists() {
            if self.layer_looks_whole(diff_id) {
                return self.discard_dir(tmp_dir);
            }
            self.discard_dir(&dest)?;
        }
        // Not fsynced: a tree hash torn by a power loss makes its layer look
        // damaged, and a damaged layer is made again.
        self.write_atomic(&self.layer_tree_path(diff_id), &image::to_json(&tree))?;
        match fs::rename(tmp_dir, &dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.is_dir() => self.discard_dir(tmp_dir),
            Err(e) => Err(Error::io("store layer", dest)(e)),
        }
    }

    /// As many entries at the layer's top as its tree hash recorded.
    fn layer_looks_whole(&self, diff_id: &Digest) -> bool {
        match self.layer_tree(diff_id) {
            Some(tree) => fs::read_dir(self.layer_dir(diff_id)).is_ok_and(|e| e.count() as u64 == tree.top),
            None => false,
        }
    }

    /// Takes a directory out of sight in one rename, into this process's
    /// scratch space, which is removed when the store is closed (or by a
    /// later process if this one dies): a kill at any instant leaves it
    /// whole or gone. Deleting at the end rather than now keeps a build's
    /// file creations off the inodes it just freed (ext4 without a journal
    /// scans past every inode freed in the last 30 s on each creation).
    pub fn discard_dir(&self, dir: &Path) -> Result<()> {
        let aside = self.tmp.join(format!("discarded-{:x}", rand_u64()));
        match fs::rename(dir, &aside) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("move aside", dir)(e)),
        }
    }

    /// Removes an unpacked layer (directory first, out of sight), its tree
    /// hash and its blob list.
    pub fn discard_layer(&self, diff_id: &Digest) -> Result<()> {
        self.discard_dir(&self.layer_dir(diff_id))?;
        for path in [self.layer_tree_path(diff_id), self.layer_blobs_path(diff_id)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::io("remove", &path)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The blobs known for a layer.
    pub fn layer_blobs(&self, diff_id: &Digest) -> Result<LayerBlobs> {
        let path = self.layer_blobs_path(diff_id);
        read_json(&path)
    }

    /// Records a layer strata made from a directory: no blob yet (one is
    /// written when an output needs it), and any it already had are kept.
    pub fn add_layer(&self, diff_id: &Digest, tar_size: u64) -> Result<()> {
        self.update_layer_blobs(diff_id, |blobs| {
            blobs.tar_size = tar_size;
            blobs.rewritable = true;
        })
    }

    /// Reads, changes and writes back a layer's blob list, under its lock.
    fn update_layer_blobs(&self, diff_id: &Digest, change: impl FnOnce(&mut LayerBlobs)) -> Result<()> {
        let _guard = self.lock(&format!("layer-{}", diff_id.hex()))?;
        let path = self.layer_blobs_path(diff_id);
        let mut blobs: LayerBlobs = if path.exists() {
            read_json(&path)?
        } else {
            LayerBlobs::default()
        };
        change(&mut blobs);
        self.write_atomic(&path, &image::to_json(&blobs))
    }

    /// Adds a blob to a layer's list.
    pub fn add_layer_blob(
        &self,
        diff_id: &Digest,
        tar_size: u64,
        rewritable: bool,
        compression: Compression,
        blob: Descriptor,
    ) -> Result<()> {
        self.update_layer_blobs(diff_id, |blobs| {
            blobs.tar_size = tar_size;
            blobs.rewritable |= rewritable;
            blobs.blobs.insert(compression.name().to_string(), blob);
        })
    }

    // ---- file pool ----

    /// Tagged images: `(name, manifest descriptor)`.
    pub fn images(&self) -> Result<Vec<(String, Descriptor)>> {
        let index = self.read_index()?;
        Ok(index
            .manifests
            .into_iter()
            .filter_map(|d| Some((d.ref_name()?.to_string(), d)))
            .collect())
    }

    /// The manifest descriptor stored under `name`.
    pub fn image(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self.images()?.into_iter().find(|(n, _)| n == name).map(|(_, d)| d))
    }

    /// Points `name` at a manifest (replacing what it named before).
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<()> {
        self.tag_all(&[(name.to_string(), manifest.clone())])
    }

    /// Points every name at its manifest in one update of `index.json`
    /// (60,000 tags are one write, not 60,000).
    pub fn tag_all(&self, tags: &[(String, Descriptor)]) -> Result<()> {
        let current: std::collections::HashMap<String, Digest> =
            self.images()?.into_iter().map(|(n, d)| (n, d.digest)).collect();
        if tags.iter().all(|(n, d)| current.get(n) == Some(&d.digest)) {
            return Ok(());
        }
        let _guard = self.lock("index")?;
        let mut index = self.read_index()?;
        let names: std::collections::HashSet<&str> = tags.iter().map(|(n, _)| n.as_str()).collect();
        index
            .manifests
            .retain(|d| d.ref_name().is_none_or(|n| !names.contains(n)));
        let mut seen = std::collections::HashSet::new();
        // The last descriptor given for a name wins.
        for (name, manifest) in tags.iter().rev() {
            if seen.insert(name.as_str()) {
                let mut desc = manifest.clone();
                desc.annotations = Some(BTreeMap::from([(image::REF_NAME.to_string(), name.clone())]));
                index.manifests.push(desc);
            }
        }
        index.manifests.sort_by(|a, b| a.ref_name().cmp(&b.ref_name()));
        self.write_tags(&index)
    }

    /// Removes a tag.
    pub fn untag(&self, name: &str) -> Result<()> {
        let _guard = self.lock("index")?;
        let mut index = self.read_index()?;
        index.manifests.retain(|d| d.ref_name() != Some(name));
        self.write_tags(&index)
    }

    /// Where the store keeps a copy of `index.json`, from which `strata
    /// check --repair` rebuilds a damaged one with its tags.
    pub fn index_copy_path(&self) -> PathBuf {
        self.root.join("index.json.copy")
    }

    /// Writes the tag list (the index lock held): `index.json`, durably,
    /// then its copy (atomically; a copy a power loss tore is only a lost
    /// spare).
    fn write_tags(&self, index: &Index) -> Result<()> {
        let json = image::to_json(index);
        self.write_durable(&self.root.join("index.json"), &json)?;
        self.write_atomic(&self.index_copy_path(), &json)
    }

    /// `index.json`; damage is reported as such, with the way out.
    fn read_index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        read_json(&path).map_err(|e| match e {
            Error::Json { source, .. } => Error::Damaged {
                what: format!("tag list `{}`", path.display()),
                reason: source.to_string(),
            },
            other => other,
        })
    }

    /// Marks this process as using the store until the guard is dropped:
    /// builds share the lock, `gc` takes it alone (and so waits for builds).
    pub fn hold(&self, exclusive: bool, wait: bool) -> Result<Option<sys::LockGuard>> {
        let path = self.root.join("locks").join("store-use");
        let file = File::create(&path).map_err(Error::io("create lock", &path))?;
        sys::flock(file, exclusive, !wait).map_err(Error::io("lock", &path))
    }

    /// Takes an exclusive lock named `name` until the guard is dropped.
    pub fn lock(&self, name: &str) -> Result<sys::LockGuard> {
        let path = self.root.join("locks").join(name);
        let file = File::create(&path).map_err(Error::io("create lock", &path))?;
        let guard = sys::flock(file, true, false).map_err(Error::io("lock", &path))?;
        Ok(guard.expect("a blocking lock is always taken"))
    }

    /// The HMAC-SHA256 of a secret's `value` under this store's own key:
    /// 32 random bytes made on first use, kept mode 0600 in `secret.key`,
    /// never pushed anywhere (the remote cache holds node results, not the
    /// store's files). Keys of steps whose secrets say `invalidate` take it,
    /// so a changed secret re-runs the step while its value (and anything
    /// that would let another store test a guess of it) stays here.
    pub fn secret_mac(&self, value: &[u8]) -> Result<[u8; 32]> {
        let path = self.root.join("secret.key");
        if !path.exists() {
            let mut key = [0u8; 32];
            File::open("/dev/urandom")
                .and_then(|mut f| io::Read::read_exact(&mut f, &mut key))
                .map_err(Error::io("read", "/dev/urandom"))?;
            // A temporary file is 0600 from the start; the rename makes it whole.
            create_once(&self.root, "secret.key", &key)?;
        }
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(&path).map_err(Error::io("stat", &path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(Error::io("chmod", &path))?;
        }
        let key = fs::read(&path).map_err(Error::io("read", &path))?;
        if key.len() != 32 {
            return Err(Error::Damaged {
                what: "secret key (secret.key)".into(),
                reason: format!("it has {} bytes, not 32", key.len()),
            });
        }
        Ok(crate::digest::hmac_sha256(&key, value))
    }

    pub fn statcache_path(&self) -> PathBuf {
        self.root.join("statcache.d")
    }

    pub fn cache_mount_dir(&self, id: &str) -> PathBuf {
        self.root
            .join("cache")
            .join(hex::encode(blake3::hash(id.as_bytes()).as_bytes()))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.tmp);
        if let Some(name) = self.tmp.file_name() {
            let lock = self.root.join("locks").join(format!("tmp-{}", name.to_string_lossy()));
            let _ = fs::remove_file(lock);
        }
    }
}

fn rand_u64() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut buf);
    }
    u64::from_le_bytes(buf)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
}

/// Removes `tmp/<owner>` directories whose `locks/tmp-<owner>` nobody holds
/// (or that have no lock file at all: their owner died before locking).
fn clean_stale_tmp(root: &Path) -> Result<()> {
    let tmp = root.join("tmp");
    for entry in fs::read_dir(&tmp).map_err(Error::io("read", &tmp))? {
        let entry = entry.map_err(Error::io("read", &tmp))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let lock_path = root.join("locks").join(format!("tmp-{name}"));
        let stale = match File::open(&lock_path) {
            Ok(lock) => matches!(sys::flock(lock, true, true), Ok(Some(_))),
            Err(_) => true,
        };
        if stale {
            let _ = crate::layer::remove_path(&entry.path());
            let _ = fs::remove_file(&lock_path);
        }
    }
    Ok(())
}

/// Creates `root/name` with `bytes` unless it exists; never replaces it,
/// so two processes opening a new store cannot undo each other's tags.
fn create_once(root: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let dest = root.join(name);
    if dest.exists() {
        return Ok(());
    }
    let mut file = tempfile::NamedTempFile::new_in(root).map_err(Error::io("create temporary file in", root))?;
    file.write_all(bytes).map_err(Error::io("write", &dest))?;
    file.as_file().sync_all().map_err(Error::io("sync", &dest))?;
    match file.persist_noclobber(&dest) {
        Ok(_) => Ok(()),
        Err(_) if dest.exists() => Ok(()),
        Err(e) => Err(Error::io("write", dest)(e.error)),
    }
}

fn write_atomic_in(tmp: &Path, dest: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(Error::io("create temporary file in", tmp))?;
    file.write_all(bytes)
        .map_err(Error::io("write", file.path().to_path_buf()))?;
    if durable {
        file.as_file()
            .sync_all()
            .map_err(Error::io("sync", file.path().to_path_buf()))?;
    }
    file.persist(dest).map_err(|e| Error::io("write", dest)(e.error))?;
    Ok(())
}

/// Reads a file that must hash to `digest`.
pub fn read_verified(path: &Path, digest: &Digest) -> Result<Vec<u8>> {
    let bytes = fs::read(path).map_err(Error::io("read blob", path))?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(Error::DigestMismatch {
            what: path.display().to_string(),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Reads a JSON file of the store.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(Error::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let index: Index = read_json(&dir.path().join("index.json")).unwrap();
        assert!(index.manifests.is_empty());
    }

    #[test]
    fn scratch_of_dead_processes_is_removed_and_live_scratch_kept() {
        let dir = tempfile::tempdir().unwrap();
        let live = Store::open(dir.path()).unwrap();
        let live_tmp = live.tmp_dir().unwrap();
        fs::create_dir_all(dir.path().join("tmp/999-dead")).unwrap();
        fs::write(dir.path().join("locks/tmp-999-dead"), b"").unwrap();
        let _other = Store::open(dir.path()).unwrap();
        assert!(!dir.path().join("tmp/999-dead").exists());
        assert!(live_tmp.path().exists());
    }

    #[test]
    fn tagging_replaces_the_previous_image_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = Descriptor::new(image::MANIFEST_MEDIA_TYPE, store.put_blob(b"a").unwrap(), 1);
        let b = Descriptor::new(image::MANIFEST_MEDIA_TYPE, store.put_blob(b"b").unwrap(), 1);
        store.tag("x:1", &a).unwrap();
        store.tag("x:1", &b).unwrap();
        store.tag("y:1", &a).unwrap();
        let images = store.images().unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(store.image("x:1").unwrap().unwrap().digest, b.digest);
    }
}
