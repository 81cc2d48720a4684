//! Base images from files: `oci:DIR[:TAG]`, `docker-archive:FILE` and
//! `rootfs:FILE.tar`. At plan time a base is reduced to an identity (the
//! manifest digest, or the archive's content hash) that goes into its key; at
//! build time its blobs are copied into the store, verified, and unpacked.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::Path;

use serde::Deserialize;

use crate::context::StatCache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::graph::BaseSource;
use crate::image::{self, Descriptor, ImageConfig, Index, Manifest, Platform};
use crate::layer::{self, Compression};
use crate::lock::Lock;
use crate::registry::{self, Client, Reference};
use crate::store::{import_layer_from, write_layer, LayerRef, Record, Store};
use crate::sys::confined::Root;

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
        BaseSource::OciLayout { dir, tag } => Ok(*resolve_oci(&Members::open(dir)?, tag.as_deref(), platform)?
            .digest
            .bytes()),
        BaseSource::Debian(_) => Err(debian_elsewhere()),
        BaseSource::DockerArchive { file } | BaseSource::Rootfs { file } => {
            let meta = fs::metadata(file).map_err(Error::io("read", file))?;
            if !meta.is_file() {
                return Err(bad(file, "not a regular file"));
            }
            cache.hash_file(file, &meta).map_err(Error::io("read", file))
        }
    }
}

/// The configuration of a base, read without importing its layers: the
/// Dockerfile frontend reads a base's `ONBUILD` triggers this way before it
/// converts the stages that use it. A registry base is pinned through
/// `lock` exactly as `identity` pins it, and its manifest and config are
/// kept in the store (verified on every read), so the next build reads
/// them without the registry. A root filesystem has no configuration.
pub fn config(
    store: &Store,
    source: &BaseSource,
    client: &Client,
    platform: &Platform,
    lock: &Lock,
) -> Result<Option<ImageConfig>> {
    match source {
        BaseSource::Registry { reference: text } => {
            let mut reference = Reference::parse(text)?;
            if reference.digest.is_none() {
                let name = if *platform == Platform::host() {
                    text.clone()
                } else {
                    format!("{text} {platform}")
                };
                let digest = lock.digest(&name, || Ok(registry::resolve(client, &reference, platform)?.0))?;
                reference.digest = Some(digest);
            }
            let pinned = reference.digest.clone().expect("pinned above");
            let manifest_bytes = if store.has_blob(&pinned) {
                store.read_blob(&pinned)?
            } else {
                let (_, bytes) = registry::resolve(client, &reference, platform)?;
                store.put_blob(&bytes)?;
                bytes
            };
            let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|source| Error::Json {
                path: format!("the manifest of {reference}").into(),
                source,
            })?;
            let digest = &manifest.config.digest;
            let config_bytes = if store.has_blob(digest) {
                store.read_blob(digest)?
            } else {
                let bytes = client
                    .document(reference.api_host(), &reference.repository, &manifest.config)
                    .map_err(Error::Registry)?;
                let actual = Digest::of(&bytes);
                if &actual != digest {
                    return Err(Error::DigestMismatch {
                        what: format!("the config of {reference}"),
                        expected: digest.clone(),
                        actual,
                    });
                }
                store.put_blob(&bytes)?;
                bytes
            };
            let config = serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
                path: format!("the config of {reference}").into(),
                source,
            })?;
            Ok(Some(config))
        }
        BaseSource::OciLayout { dir, tag } => {
            let layout = Members::open(dir)?;
            let desc = resolve_oci(&layout, tag.as_deref(), platform)?;
            let manifest: Manifest = serde_json::from_slice(&layout.blob(&desc)?).map_err(|source| Error::Json {
                path: dir.join("blobs/sha256").join(desc.digest.hex()),
                source,
            })?;
            let config = serde_json::from_slice(&layout.blob(&manifest.config)?).map_err(|source| Error::Json {
                path: dir.join("blobs/sha256").join(manifest.config.digest.hex()),
                source,
            })?;
            Ok(Some(config))
        }
        BaseSource::Debian(_) | BaseSource::DockerArchive { .. } | BaseSource::Rootfs { .. } => Ok(None),
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
            let record = pull(store, client, &reference, &manifest, progress)?;
            check_platform(&reference.to_string(), record.config.as_ref(), platform)?;
            Ok(record)
        }
        BaseSource::OciLayout { dir, tag } => {
            let record = import_oci(store, dir, tag.as_deref(), platform)?;
            let what = format!("oci:{}", dir.display());
            check_platform(&what, record.config.as_ref(), platform)?;
            check_binaries(store, &what, &record, platform)?;
            Ok(record)
        }
        BaseSource::Debian(_) => Err(debian_elsewhere()),
        BaseSource::DockerArchive { file } => {
            let record = import_docker_archive(store, file)?;
            let what = format!("docker-archive:{}", file.display());
            check_platform(&what, record.config.as_ref(), platform)?;
            check_binaries(store, &what, &record, platform)?;
            Ok(record)
        }
        BaseSource::Rootfs { file } => {
            let record = import_rootfs(store, file, epoch)?;
            check_binaries(store, &format!("rootfs:{}", file.display()), &record, platform)?;
            Ok(record)
        }
    }
}

/// The directories whose executables say what machine a base is for.
const BINARY_DIRS: &[&str] = &["bin", "usr/bin", "sbin", "usr/sbin", "usr/local/bin", "app"];

/// A base whose programs are for another machine than the build's is an
/// error naming both: a `rootfs:` tarball is labelled with the platform it
/// is given, and an `oci:` image's config may say anything, but an ELF
/// header says what it runs on. The first executable ELF file found in
/// [`BINARY_DIRS`] decides; a base with none takes the platform it is given.
fn check_binaries(store: &Store, what: &str, record: &Record, platform: &Platform) -> Result<()> {
    let dirs: Vec<std::path::PathBuf> = record.layers.iter().map(|l| store.layer_dir(&l.diff_id)).collect();
    let view = crate::fsview::View { layers: &dirs };
    for dir in BINARY_DIRS {
        let Some(resolved) = view.resolve(&format!("/{dir}"), true) else {
            continue;
        };
        if view.lookup(&resolved).is_none_or(|(_, m)| !m.is_dir()) {
            continue;
        }
        for name in view.list(&resolved).into_iter().take(256) {
            let mut file = resolved.clone();
            file.push(name.clone());
            let Some((host, meta)) = view.lookup(&file) else {
                continue;
            };
            use std::os::unix::fs::PermissionsExt;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                continue;
            }
            let Some(arch) = elf_arch(&host) else { continue };
            if arch == platform.architecture {
                return Ok(());
            }
            return Err(Error::BadImage {
                what: what.to_string(),
                reason: format!(
                    "its `/{dir}/{name}` is a program for {}/{arch}, and this build is for {platform}: build for {}/{arch} (--platform), or use a base for {platform}",
                    platform.os, platform.os
                ),
            });
        }
    }
    Ok(())
}

/// The GOARCH an ELF file is for, from its header; `None` when it is no ELF
/// (or one strata does not know).
pub fn elf_arch(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 20];
    File::open(path).ok()?.read_exact(&mut head).ok()?;
    if &head[..4] != b"\x7fELF" {
        return None;
    }
    let (class64, little) = (head[4] == 2, head[5] == 1);
    let machine = if little {
        u16::from_le_bytes([head[18], head[19]])
    } else {
        u16::from_be_bytes([head[18], head[19]])
    };
    Some(match (machine, class64, little) {
        (3, _, _) => "386",
        (62, _, _) => "amd64",
        (40, _, _) => "arm",
        (183, _, _) => "arm64",
        (21, _, true) => "ppc64le",
        (21, _, false) => "ppc64",
        (22, _, _) => "s390x",
        (243, true, _) => "riscv64",
        (8, true, true) => "mips64le",
        (8, true, false) => "mips64",
        (8, false, true) => "mipsle",
        (8, false, false) => "mips",
        (258, _, _) => "loong64",
        _ => return None,
    })
}

/// A base whose configuration names another platform than the build's is
/// an error: it is never relabelled.
fn check_platform(what: &str, config: Option<&ImageConfig>, platform: &Platform) -> Result<()> {
    let Some(config) = config else { return Ok(()) };
    let have = config.platform();
    if have.variant.is_none() || platform.variant.is_none() {
        let (a, b) = (have.normalized(), platform.normalized());
        if a.os == b.os && a.architecture == b.architecture {
            return Ok(());
        }
    }
    if have.serves(platform) {
        return Ok(());
    }
    Err(Error::BadImage {
        what: what.to_string(),
        reason: format!("it is an image for {have}, and this build is for {platform}"),
    })
}

/// The largest JSON document (index, manifest, config) an import reads.
const MAX_JSON: u64 = 16 << 20;

/// A directory of someone else's (an OCI layout, an unpacked archive):
/// members are read by name, symlinks resolve inside it (`sys::confined`),
/// and only regular files are read, so a member that is a link to
/// `/dev/zero` or to a host file reads nothing outside.
struct Members<'a> {
    dir: &'a Path,
    root: Root,
}

impl<'a> Members<'a> {
    fn open(dir: &'a Path) -> Result<Members<'a>> {
        Ok(Members {
            dir,
            root: Root::open(dir).map_err(Error::io("open", dir))?,
        })
    }

    fn file(&self, rel: &str) -> Result<File> {
        let shown = self.dir.join(rel);
        self.root.open_file(rel).map_err(Error::io("open", shown))
    }

    /// A member of at most `limit` bytes.
    fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>> {
        let shown = self.dir.join(rel);
        let mut bytes = Vec::new();
        self.file(rel)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io("read", &shown))?;
        if bytes.len() as u64 > limit {
            return Err(bad(&shown, format!("larger than {limit} bytes")));
        }
        Ok(bytes)
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, rel: &str) -> Result<T> {
        let bytes = self.read(rel, MAX_JSON)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: self.dir.join(rel),
            source,
        })
    }

    /// A blob of an OCI layout, checked against its digest and size.
    fn blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let rel = format!("blobs/sha256/{}", desc.digest.hex());
        let bytes = self.read(&rel, desc.size.min(MAX_JSON))?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what: self.dir.join(rel).display().to_string(),
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Finds the image manifest an `oci:DIR[:TAG]` names, descending into an
/// index to the host's platform.
fn resolve_oci(layout: &Members<'_>, tag: Option<&str>, platform: &Platform) -> Result<Descriptor> {
    let dir = layout.dir;
    if layout.file("oci-layout").is_err() {
        return Err(bad(dir, "not an OCI image layout (no `oci-layout` file)"));
    }
    let index: Index = layout.json("index.json")?;
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
    descend_to_platform(layout, desc, platform)
}

fn descend_to_platform(layout: &Members<'_>, desc: Descriptor, platform: &Platform) -> Result<Descriptor> {
    let dir = layout.dir;
    if desc.media_type != image::INDEX_MEDIA_TYPE && desc.media_type != image::DOCKER_LIST_MEDIA_TYPE {
        return Ok(desc);
    }
    let nested: Index = serde_json::from_slice(&layout.blob(&desc)?).map_err(|source| Error::Json {
        path: dir.join("blobs/sha256").join(desc.digest.hex()),
        source,
    })?;
    let chosen = nested
        .for_platform(platform)
        .cloned()
        .ok_or_else(|| bad(dir, format!("no image for {platform} in index `{}`", desc.digest)))?;
    descend_to_platform(layout, chosen, platform)
}

fn import_oci(store: &Store, dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Record> {
    let layout = Members::open(dir)?;
    let desc = resolve_oci(&layout, tag, platform)?;
    let manifest_bytes = layout.blob(&desc)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|source| Error::Json {
        path: dir.join("blobs/sha256").join(desc.digest.hex()),
        source,
    })?;
    let config_bytes = layout.blob(&manifest.config)?;
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
        let rel = format!("blobs/sha256/{}", blob.digest.hex());
        if !store.has_layer(diff_id) {
            let input = layout.file(&rel)?.take(blob.size);
            import_layer_from(store, input, &dir.join(&rel), Some(&blob.digest), diff_id)?;
        }
        layers.push(LayerRef {
            diff_id: diff_id.clone(),
        });
    }
    Ok(Record {
        layers,
        config: Some(config),
        restored: None,
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
    layer::unpack(BufReader::new(input), tmp.path())
        .map_err(|e| bad(file, format!("not a readable tar: {}", e.chain())))?;
    let archive = Members::open(tmp.path())?;
    let entries: Vec<ArchiveManifest> = archive
        .json("manifest.json")
        .map_err(|_| bad(file, "no readable manifest.json; is this a `docker save` archive?"))?;
    let entry = entries
        .first()
        .ok_or_else(|| bad(file, "manifest.json lists no image"))?;
    // Members are named relative to the archive; a name that climbs out is
    // refused, a symlink member resolves inside the archive (docker save
    // links identical layers), and only regular files are read.
    let inside = |name: &str| -> Result<String> {
        crate::context::clean_relative(name)
            .map(|rel| rel.to_string_lossy().into_owned())
            .ok_or_else(|| bad(file, format!("path `{name}` leaves the archive")))
    };
    let member = |name: &str| -> Result<File> {
        archive
            .file(&inside(name)?)
            .map_err(|e| bad(file, format!("member `{name}`: {}", e.chain())))
    };
    let config_rel = inside(&entry.config)?;
    let config: ImageConfig = archive
        .json(&config_rel)
        .map_err(|e| bad(file, format!("config `{}`: {}", entry.config, e.chain())))?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(bad(
            file,
            "manifest.json's layers and the config's diff_ids differ in number",
        ));
    }
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
        if !store.has_layer(diff_id) {
            import_layer_from(store, member(name)?, &file.join(name), None, diff_id)?;
        }
        layers.push(LayerRef {
            diff_id: diff_id.clone(),
        });
    }
    Ok(Record {
        layers,
        config: Some(config),
        restored: None,
    })
}

fn import_rootfs(store: &Store, file: &Path, epoch: i64) -> Result<Record> {
    let tmp = store.tmp_dir()?;
    let root = tmp.path().join("layer");
    fs::create_dir(&root).map_err(Error::io("create", &root))?;
    let input = BufReader::new(File::open(file).map_err(Error::io("open", file))?);
    let reader = Compression::decoder(input).map_err(Error::io("decompress", file))?;
    layer::unpack(reader, &root).map_err(|e| match e {
        Error::UnsafeEntry { .. } => e,
        other => bad(file, format!("not a readable root filesystem tar: {}", other.chain())),
    })?;
    let (diff_id, _) = write_layer(store, &root, epoch, true, &|_| {})?;
    Ok(Record {
        layers: vec![LayerRef { diff_id }],
        config: None,
        restored: None,
    })
}
