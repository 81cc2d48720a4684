//! Exporters: an image state becomes a manifest in the store (and a tag in
//! its `index.json`), an OCI image layout directory, a docker-archive
//! tarball (`docker load` reads it; so do skopeo and podman), or, for
//! artifact targets, plain files on the host.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsview::{self, View};
use crate::image::{self, Descriptor, Index};
use crate::store::{blobs_of, read_image, read_json, State, Store};

pub mod push;

/// Writes images (each under its tags) into the OCI layout at `dir`,
/// creating it or adding to it.
pub fn to_oci_dir(store: &Store, images: &[(Vec<String>, Descriptor)], dir: &Path) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(Error::io("write", dir.join("oci-layout")))?;
    let index_path = dir.join("index.json");
    let mut index: Index = if index_path.exists() {
        read_json(&index_path)?
    } else {
        Index::default()
    };
    for (tags, desc) in images {
        let img = read_image(store, desc)?;
        for digest in blobs_of(&img) {
            let dest = blobs.join(digest.hex());
            if dest.exists() {
                continue;
            }
            let src = store.blob_path(&digest);
            let tmp = blobs.join(format!(".{}.tmp", digest.hex()));
            if fs::hard_link(&src, &tmp).is_err() {
                fs::copy(&src, &tmp).map_err(Error::io("copy blob to", &tmp))?;
            }
            fs::rename(&tmp, &dest).map_err(Error::io("write", &dest))?;
        }
        for tag in tags {
            index.manifests.retain(|d| d.ref_name() != Some(tag.as_str()));
            let mut d = desc.clone();
            d.annotations = Some(BTreeMap::from([(image::REF_NAME.to_string(), tag.clone())]));
            index.manifests.push(d);
        }
    }
    let tmp = dir.join(".index.json.tmp");
    fs::write(&tmp, image::to_json(&index)).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, &index_path).map_err(Error::io("write", &index_path))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// `name` as docker's RepoTags want it: `repo:tag`.
pub fn docker_tag(name: &str) -> Option<String> {
    if name.contains('@') {
        return None;
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    Some(if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    })
}

/// Writes images into a docker-archive at `file`: `manifest.json` for
/// classic `docker load`, plus an OCI layout (`oci-layout`, `index.json`,
/// `blobs/sha256/…`) like Docker ≥ 25's `docker save`. Deterministic bytes.
pub fn to_docker_archive(store: &Store, images: &[(Vec<String>, Descriptor)], file: &Path) -> Result<()> {
    let mut entries = Vec::new();
    let mut index = Index::default();
    let mut all_blobs: BTreeMap<String, Digest> = BTreeMap::new();
    for (tags, desc) in images {
        let img = read_image(store, desc)?;
        for d in blobs_of(&img) {
            all_blobs.insert(d.hex(), d);
        }
        entries.push(ArchiveEntry {
            config: format!("blobs/sha256/{}", img.manifest.config.digest.hex()),
            repo_tags: tags.iter().filter_map(|t| docker_tag(t)).collect(),
            layers: img
                .manifest
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                .collect(),
        });
        for tag in tags {
            let mut d = desc.clone();
            d.annotations = Some(BTreeMap::from([
                (image::REF_NAME.to_string(), tag.clone()),
                (
                    "io.containerd.image.name".to_string(),
                    docker_tag(tag).unwrap_or_else(|| tag.clone()),
                ),
            ]));
            index.manifests.push(d);
        }
    }
    let tmp = file.with_file_name(format!(
        ".{}.tmp",
        file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    let out = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, out));
    let header = |size: u64, mode: u32, kind: tar::EntryType| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    let add = |tar: &mut tar::Builder<BufWriter<File>>, name: &str, bytes: &[u8]| -> Result<()> {
        let mut h = header(bytes.len() as u64, 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, name, bytes).map_err(Error::io("write", file))
    };
    add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add(&mut tar, "index.json", &image::to_json(&index))?;
    add(&mut tar, "manifest.json", &image::to_json(&entries))?;
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(0, 0o755, tar::EntryType::Directory);
        tar.append_data(&mut h, dir, io::empty())
            .map_err(Error::io("write", file))?;
    }
    for digest in all_blobs.values() {
        let path = store.blob_path(digest);
        let blob = File::open(&path).map_err(Error::io("open", &path))?;
        let size = blob.metadata().map_err(Error::io("stat", &path))?.len();
        let mut h = header(size, 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, format!("blobs/sha256/{}", digest.hex()), blob)
            .map_err(Error::io("write", file))?;
    }
    let mut out = tar.into_inner().map_err(Error::io("write", file))?;
    out.flush().map_err(Error::io("write", file))?;
    drop(out);
    fs::rename(&tmp, file).map_err(Error::io("write", file))
}

/// Copies `path` of `state` to `out_dir`: a directory's contents, or a file
/// under its own name. `out_dir` is replaced as a whole.
pub fn artifact(store: &Store, state: &State, path: &str, out_dir: &Path) -> Result<PathBuf> {
    let dirs = state.layer_dirs(store);
    let view = View { layers: &dirs };
    let missing = || Error::BadImage {
        what: path.to_string(),
        reason: "the path does not exist in its state".into(),
    };
    // A glob's matches land side by side: files under their names, a matched
    // directory's contents merged in.
    let matches: Vec<Vec<String>> = if fsview::is_glob(path) {
        view.glob(path)
    } else {
        vec![view.resolve(path, true).ok_or_else(missing)?]
    };
    if matches.is_empty() {
        return Err(Error::BadImage {
            what: path.to_string(),
            reason: "the pattern matches nothing in its state".into(),
        });
    }
    let parent = out_dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    let staging = parent.join(format!(
        ".{}.strata-{}",
        out_dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    crate::layer::remove_path(&staging)?;
    fs::create_dir(&staging).map_err(Error::io("create", &staging))?;
    for found in matches {
        let name = found.last().cloned().unwrap_or_default();
        let comps = view.resolve(&format!("/{}", found.join("/")), true).unwrap_or(found);
        let (_, meta) = view.lookup(&comps).ok_or_else(missing)?;
        if meta.is_dir() {
            view.materialize(&comps, &staging)?;
        } else {
            view.materialize(&comps, &staging.join(name))?;
        }
    }
    crate::layer::remove_path(out_dir)?;
    fs::rename(&staging, out_dir).map_err(Error::io("write", out_dir))?;
    Ok(fsview::show(out_dir).into())
}
