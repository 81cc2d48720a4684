//! `strata du` and `strata gc`. What gc keeps: every tagged image (its
//! manifest, config, layer blobs and unpacked layers), every record used
//! within `keep_days` and what it names, and every record whose layers are
//! all kept anyway. A layer strata made that only records need keeps its
//! directory but not its uncompressed tar, which can be made again.
//! Everything else in `records/`, `layers/` and `blobs/` goes. The caller
//! holds the store exclusively (`Store::hold`), so no build is running
//! meanwhile.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{read_image, read_json, LayerBlobs, Record, Store};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::Compression;

/// Space used by each part of the store, in bytes on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    pub images: usize,
    pub image_bytes: u64,
    pub blobs: u64,
    pub layers: u64,
    pub caches: u64,
    /// Downloaded Debian packages and indexes (`debian/`).
    pub packages: u64,
    pub records: usize,
    pub record_bytes: u64,
}

/// What gc removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub records: usize,
    pub layers: usize,
    pub blobs: usize,
    pub caches: usize,
    pub bytes: u64,
}

/// Bytes a tree occupies on disk (hardlinked files counted once).
fn tree_size(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    let mut total = 0;
    if seen.insert((meta.dev(), meta.ino())) {
        total += meta.blocks() * 512;
    }
    if meta.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                total += tree_size(&e.path(), seen);
            }
        }
    }
    total
}

fn size(path: &Path) -> u64 {
    tree_size(path, &mut HashSet::new())
}

/// What tagged images need: blob digests and layer diff ids.
fn tagged(store: &Store) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
    let mut blobs = HashSet::new();
    let mut layers = HashSet::new();
    for (_, desc) in store.images()? {
        let img = read_image(store, &desc)?;
        blobs.insert(desc.digest.clone());
        blobs.insert(img.manifest.config.digest.clone());
        blobs.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
        layers.extend(img.config.rootfs.diff_ids.iter().cloned());
    }
    Ok((blobs, layers))
}

pub fn disk_usage(store: &Store) -> Result<DiskUsage> {
    let root = store.root();
    let (image_blobs, _) = tagged(store)?;
    let mut usage = DiskUsage {
        images: store.images()?.len(),
        blobs: size(&root.join("blobs")),
        layers: size(&root.join("layers")),
        caches: size(&root.join("cache")),
        packages: size(&root.join("debian")),
        ..DiskUsage::default()
    };
    usage.image_bytes = image_blobs
        .iter()
        .map(|d| fs::metadata(store.blob_path(d)).map_or(0, |m| m.blocks() * 512))
        .sum();
    for e in fs::read_dir(root.join("records"))
        .map_err(Error::io("read", root.join("records")))?
        .flatten()
    {
        usage.records += 1;
        usage.record_bytes += e.metadata().map_or(0, |m| m.blocks() * 512);
    }
    Ok(usage)
}

/// Removes what nothing needs. `caches` also empties the RUN cache mounts and
/// the Debian package cache.
pub fn gc(store: &Store, keep_days: f64, caches: bool) -> Result<GcReport> {
    let root = store.root();
    let mut report = GcReport::default();
    let (mut keep_blobs, mut keep_layers) = tagged(store)?;
    let image_layers = keep_layers.clone();
    let horizon = SystemTime::now() - Duration::from_secs_f64((keep_days * 86_400.0).max(0.0));

    // Records: recent ones keep what they name; old ones go unless all they name is kept anyway.
    let records_dir = root.join("records");
    let mut old: Vec<(std::path::PathBuf, Record)> = Vec::new();
    for e in fs::read_dir(&records_dir)
        .map_err(Error::io("read", &records_dir))?
        .flatten()
    {
        let path = e.path();
        let Ok(record) = read_json::<Record>(&path) else {
            old.push((
                path,
                Record {
                    layers: Vec::new(),
                    config: None,
                    restored: None,
                },
            ));
            continue;
        };
        let recent = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= horizon);
        if recent {
            keep_layers.extend(record.layers.iter().map(|l| l.diff_id.clone()));
        } else {
            old.push((path, record));
        }
    }
    for (path, record) in old {
        if record.layers.is_empty() || !record.layers.iter().all(|l| keep_layers.contains(&l.diff_id)) {
            report.bytes += fs::metadata(&path).map_or(0, |m| m.blocks() * 512);
            fs::remove_file(&path).map_err(Error::io("remove", &path))?;
            report.records += 1;
        }
    }

    // Layers: directories and their blob lists.
    let layers_dir = root.join("layers");
    for e in fs::read_dir(&layers_dir)
        .map_err(Error::io("read", &layers_dir))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let hex = name
            .strip_suffix(".json")
            .or_else(|| name.strip_suffix(".tree"))
            .unwrap_or(&name);
        let Ok(diff_id) = format!("sha256:{hex}").parse::<Digest>() else {
            continue;
        };
        if keep_layers.contains(&diff_id) {
            if let Ok(blobs) = read_json::<LayerBlobs>(&e.path()) {
                // The uncompressed tar of a layer strata made and only the
                // cache needs goes: `ensure_blob` makes it again from the
                // directory (checked against the diff id) if it is ever needed.
                let drop_tar = blobs.rewritable && !image_layers.contains(&diff_id);
                keep_blobs.extend(
                    blobs
                        .blobs
                        .iter()
                        .filter(|(name, _)| !(drop_tar && name.as_str() == Compression::None.name()))
                        .map(|(_, d)| d.digest.clone()),
                );
            }
            continue;
        }
        report.bytes += size(&e.path());
        if e.path().is_dir() {
            // Out of sight in one rename first: a kill leaves it whole or gone.
            store.discard_dir(&e.path())?;
            report.layers += 1;
        } else {
            fs::remove_file(e.path()).map_err(Error::io("remove", e.path()))?;
        }
    }

    // Blobs nothing names.
    let blobs_dir = root.join("blobs/sha256");
    for e in fs::read_dir(&blobs_dir)
        .map_err(Error::io("read", &blobs_dir))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let keep = format!("sha256:{name}")
            .parse::<Digest>()
            .is_ok_and(|d| keep_blobs.contains(&d));
        if !keep {
            report.bytes += e.metadata().map_or(0, |m| m.blocks() * 512);
            fs::remove_file(e.path()).map_err(Error::io("remove", e.path()))?;
            // Where registries hold it matters only while we have it.
            let _ = fs::remove_file(root.join("sources").join(&name));
            report.blobs += 1;
        }
    }

    // Pool files no layer links to any more.
    let files_dir = root.join("files");
    for sub in fs::read_dir(&files_dir)
        .map_err(Error::io("read", &files_dir))?
        .flatten()
    {
        for e in fs::read_dir(sub.path())
            .map_err(Error::io("read", sub.path()))?
            .flatten()
        {
            if e.metadata().is_ok_and(|m| m.nlink() == 1) {
                report.bytes += e.metadata().map_or(0, |m| m.blocks() * 512);
                fs::remove_file(e.path()).map_err(Error::io("remove", e.path()))?;
            }
        }
    }

    if caches {
        // Downloaded .debs and indexes, and the memo of path keys: all fetched
        // or computed again when needed.
        for dir in ["debian", "pathkeys"] {
            let path = root.join(dir);
            if path.exists() {
                report.bytes += size(&path);
                crate::layer::remove_path(&path)?;
            }
        }
        let cache_dir = root.join("cache");
        for e in fs::read_dir(&cache_dir)
            .map_err(Error::io("read", &cache_dir))?
            .flatten()
        {
            report.bytes += size(&e.path());
            crate::layer::remove_path(&e.path())?;
            report.caches += 1;
        }
    }
    Ok(report)
}
