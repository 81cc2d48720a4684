//! Base images from files: `oci:DIR[:TAG]`, `docker-archive:FILE` and
//! `rootfs:FILE.tar`. At plan time a base is reduced to an identity (the
//! manifest digest, or the archive's content hash) that goes into its key; at
//! build time its blobs are copied into the store, verified, and unpacked.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::context::StatCache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph::BaseSource;
use crate::image::{self, Descriptor, ImageConfig, Index, Manifest, Platform};
use crate::layer::{self, Compression};
use crate::lock::Lock;
use crate::registry::{self, Client, Reference};
use crate::store::{import_layer, write_layer, LayerRef, Record, Store};

mod pull;
pub use pull::pull;

fn bad(what: &Path, reason: impl Into<String>) -> Error {
    Error::BadImage {
        what: what.display().to_string(),
        reason: reason.into(),
    }
}

/// `debian(...)` bases are planned and built by `crate::debian`, which needs the builder.
fn debian_elsewhere() -> Error {
    Error::BadImage {
        what: "debian(...)".into(),
        reason: "a Debian base is built by the builder, not imported".into(),
    }
}

/// The bytes that decide a base's key.
/// A registry base is resolved for `platform`; `strata.lock` files it under
/// the reference, with the platform appended when it is not the host's.
pub fn identity(
    source: &BaseSource,
    cache: &StatCache,
    client: &Client,
    platform: &Platform,
    lock: &Lock,
) -> Result<[u8; 32]> {
    match source {
        BaseSource::Registry { reference: text } => {
            let reference = Reference::parse(text)?;
            if let Some(d) = &reference.digest {
                // Already pinned by the recipe itself.
                return Ok(*d.bytes());
            }
            let name = if *platform == Platform::host() {
                text.clone()
            } else {
                format!("{text} {platform}")
            };
            let digest = lock.digest(&name, || Ok(registry::resolve(client, &reference, platform)?.0))?;
            Ok(*digest.bytes())
        }
        BaseSource::OciLayout { dir, tag } => Ok(*resolve_oci(dir, tag.as_deref())?.digest.bytes()),
        BaseSource::Debian(_) => Err(debian_elsewhere()),
        BaseSource::DockerArchive { file } | BaseSource::Rootfs { file } => {
            let meta = fs::metadata(file).map_err(Error::io("read", file))?;
            cache.hash_file(file, &meta).map_err(Error::io("read", file))
        }
    }
}

/// Imports a base into the store and returns its record.
/// `identity` is what planning resolved (for a registry base, the manifest
/// digest); `progress` hears (bytes, total) of a registry download.
#[allow(clippy::too_many_arguments)]
pub fn import(
    store: &Store,
    source: &BaseSource,
    identity: Option<&[u8; 32]>,
    client: &Client,
    platform: &Platform,
    compression: Compression,
    epoch: i64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Record> {
    match source {
        BaseSource::Registry { reference } => {
            let mut reference = Reference::parse(reference)?;
            if let Some(id) = identity {
                // Pull exactly what planning resolved.
                reference.digest = Some(format!("sha256:{}", hex::encode(id)).parse().expect("a sha256 digest"));
            }
            let (_, manifest) = registry::resolve(client, &reference, platform)?;
            pull(store, client, &reference, &manifest, progress)
        }
        BaseSource::OciLayout { dir, tag } => import_oci(store, dir, tag.as_deref()),
        BaseSource::Debian(_) => Err(debian_elsewhere()),
        BaseSource::DockerArchive { file } => import_docker_archive(store, file),
        BaseSource::Rootfs { file } => import_rootfs(store, file, compression, epoch),
    }
}

fn read_layout_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(Error::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_layout_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>> {
    crate::store::read_verified(&dir.join("blobs/sha256").join(digest.hex()), digest)
}

/// Finds the image manifest an `oci:DIR[:TAG]` names, descending into an
/// index to the host's platform.
fn resolve_oci(dir: &Path, tag: Option<&str>) -> Result<Descriptor> {
    if !dir.join("oci-layout").exists() {
        return Err(bad(dir, "not an OCI image layout (no `oci-layout` file)"));
    }
    let index: Index = read_layout_json(&dir.join("index.json"))?;
    let desc = match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| d.ref_name() == Some(tag))
            .cloned()
            .ok_or_else(|| bad(dir, format!("no image tagged `{tag}`")))?,
        None => match index.manifests.as_slice() {
            [one] => one.clone(),
            [] => return Err(bad(dir, "the layout holds no image")),
            many => {
                let names: Vec<&str> = many.iter().filter_map(|d| d.ref_name()).collect();
                return Err(bad(
                    dir,
                    format!(
                        "the layout holds several images; name one as oci:DIR:TAG (tags: {})",
                        names.join(", ")
                    ),
                ));
            }
        },
    };
    descend_to_platform(dir, desc)
}

fn descend_to_platform(dir: &Path, desc: Descriptor) -> Result<Descriptor> {
    if desc.media_type != image::INDEX_MEDIA_TYPE && desc.media_type != image::DOCKER_LIST_MEDIA_TYPE {
        return Ok(desc);
    }
    let nested: Index =
        serde_json::from_slice(&read_layout_blob(dir, &desc.digest)?).map_err(|source| Error::Json {
            path: dir.join("blobs/sha256").join(desc.digest.hex()),
            source,
        })?;
    let chosen = nested.for_this_platform().cloned().ok_or_else(|| {
        bad(
            dir,
            format!("no image for linux/{} in index `{}`", image::host_arch(), desc.digest),
        )
    })?;
    descend_to_platform(dir, chosen)
}

fn import_oci(store: &Store, dir: &Path, tag: Option<&str>) -> Result<Record> {
    let desc = resolve_oci(dir, tag)?;
    let manifest_bytes = read_layout_blob(dir, &desc.digest)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|source| Error::Json {
        path: dir.join("blobs/sha256").join(desc.digest.hex()),
        source,
    })?;
    let config_bytes = read_layout_blob(dir, &manifest.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
        path: dir.join("blobs/sha256").join(manifest.config.digest.hex()),
        source,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(bad(
            dir,
            "the manifest's layers and the config's diff_ids differ in number",
        ));
    }
    let mut layers = Vec::new();
    for (blob, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let path = dir.join("blobs/sha256").join(blob.digest.hex());
        import_layer(store, &path, Some(&blob.digest), diff_id)?;
        layers.push(LayerRef {
            diff_id: diff_id.clone(),
        });
    }
    Ok(Record {
        layers,
        config: Some(config),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    layers: Vec<String>,
}

fn import_docker_archive(store: &Store, file: &Path) -> Result<Record> {
    let tmp = store.tmp_dir()?;
    let input = File::open(file).map_err(Error::io("open", file))?;
    layer::unpack(BufReader::new(input), tmp.path()).map_err(|e| bad(file, format!("not a readable tar: {e}")))?;
    let entries: Vec<ArchiveManifest> = read_layout_json(&tmp.path().join("manifest.json"))
        .map_err(|_| bad(file, "no readable manifest.json; is this a `docker save` archive?"))?;
    let entry = entries
        .first()
        .ok_or_else(|| bad(file, "manifest.json lists no image"))?;
    let inside = |name: &str| -> Result<PathBuf> {
        let rel = crate::context::clean_relative(name)
            .ok_or_else(|| bad(file, format!("path `{name}` leaves the archive")))?;
        Ok(tmp.path().join(rel))
    };
    let config_path = inside(&entry.config)?;
    let config_bytes = fs::read(&config_path).map_err(Error::io("read", &config_path))?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
        path: config_path.clone(),
        source,
    })?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(bad(
            file,
            "manifest.json's layers and the config's diff_ids differ in number",
        ));
    }
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
        import_layer(store, &inside(name)?, None, diff_id)?;
        layers.push(LayerRef {
            diff_id: diff_id.clone(),
        });
    }
    Ok(Record {
        layers,
        config: Some(config),
    })
}

fn import_rootfs(store: &Store, file: &Path, compression: Compression, epoch: i64) -> Result<Record> {
    let tmp = store.tmp_dir()?;
    let root = tmp.path().join("layer");
    fs::create_dir(&root).map_err(Error::io("create", &root))?;
    let input = BufReader::new(File::open(file).map_err(Error::io("open", file))?);
    let reader = Compression::decoder(input).map_err(Error::io("decompress", file))?;
    layer::unpack(reader, &root).map_err(|e| match e {
        Error::UnsafeEntry { .. } => e,
        other => bad(file, format!("not a readable root filesystem tar: {other}")),
    })?;
    let diff_id = write_layer(store, &root, compression, epoch, &|_| {})?;
    Ok(Record {
        layers: vec![LayerRef { diff_id }],
        config: None,
    })
}
