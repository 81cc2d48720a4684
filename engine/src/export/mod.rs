//! Exporters: an image state becomes a manifest in the store (and a tag in
//! its `index.json`), an OCI image layout directory, a docker-archive
//! tarball (`docker load` reads it; so do skopeo and podman), or, for
//! artifact targets, plain files on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsview::{self, View};
use crate::image::{self, Descriptor, Index};
use crate::store::{blobs_of, read_image, State, Store};
use crate::sys::confined::{self, Root, Tree};

pub mod load;
pub mod push;

/// Writes images (each under its tags) into the OCI layout at `dir`,
/// creating it or adding to it. Every path inside `dir` is resolved within
/// it (a symlink planted in the layout cannot lead a write outside), and
/// every blob is checked against its digest before it leaves the store.
pub fn to_oci_dir(store: &Store, images: &[(Vec<String>, Descriptor)], dir: &Path) -> Result<()> {
    confined::create_user_dir(dir).map_err(Error::io("create", dir))?;
    let root = Root::open(dir).map_err(Error::io("open output directory", dir))?;
    let blobs_dir = dir.join("blobs/sha256");
    let blobs = root
        .mkdir_all("blobs/sha256", 0o755)
        .map_err(Error::io("create", &blobs_dir))?;
    root.replace_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(Error::io("write", dir.join("oci-layout")))?;
    let index_path = dir.join("index.json");
    let mut index: Index = match root.read("index.json").map_err(Error::io("read", &index_path))? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: index_path.clone(),
            source,
        })?,
        None => Index::default(),
    };
    for (tags, desc) in images {
        // An index (a multi-platform target): itself and each image it lists.
        let mut digests = Vec::new();
        if crate::store::is_index(desc) {
            digests.push(desc.digest.clone());
        }
        for manifest in crate::store::manifests_of(store, desc)? {
            digests.extend(blobs_of(&read_image(store, &manifest)?));
        }
        for digest in digests {
            let dest = blobs_dir.join(digest.hex());
            if blobs.exists(digest.hex()).map_err(Error::io("stat", &dest))? {
                continue;
            }
            store.verify_blob(&digest)?;
            blobs
                .copy_in(&store.blob_path(&digest), digest.hex())
                .map_err(Error::io("write", &dest))?;
        }
        for tag in tags {
            index.manifests.retain(|d| d.ref_name() != Some(tag.as_str()));
            let mut d = desc.clone();
            d.annotations = Some(BTreeMap::from([(image::REF_NAME.to_string(), tag.clone())]));
            index.manifests.push(d);
        }
    }
    root.replace_file("index.json", &image::to_json(&index))
        .map_err(Error::io("write", &index_path))
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

/// Where a docker-archive goes.
pub enum ArchiveSink<'a> {
    /// A path: a regular file (or none) is replaced atomically; a FIFO, a
    /// character device or a symlink is opened and written through.
    Path(&'a Path),
    /// The process's standard output (`-o docker-archive:-`).
    Stdout,
}

/// Writes images into a docker-archive: `manifest.json` for classic
/// `docker load`, plus an OCI layout (`oci-layout`, `index.json`,
/// `blobs/sha256/…`) like Docker ≥ 25's `docker save`. Deterministic bytes.
pub fn to_docker_archive(store: &Store, images: &[(Vec<String>, Descriptor)], sink: ArchiveSink<'_>) -> Result<()> {
    // An index holds one image per platform (and attestations, which
    // `docker load` does not read): one platform's image goes in.
    let mut plain = Vec::new();
    for (tags, desc) in images {
        let entries: Vec<Descriptor> = crate::store::manifests_of(store, desc)?
            .into_iter()
            .filter(|d| !crate::store::is_attestation(d))
            .collect();
        match entries.as_slice() {
            [one] => plain.push((tags.clone(), one.clone())),
            _ => {
                return Err(Error::BadImage {
                    what: tags.first().cloned().unwrap_or_default(),
                    reason: "a docker-archive holds one platform's image, and this target was built for several: build one platform (--platform linux/arm64) or write an OCI layout (-o oci:DIR)".into(),
                })
            }
        }
    }
    let images = &plain[..];
    match sink {
        ArchiveSink::Stdout => {
            let out = io::stdout().lock();
            write_docker_archive(store, images, out, Path::new("standard output"))
        }
        ArchiveSink::Path(file) => confined::write_to(file, |out| write_docker_archive(store, images, out, file)),
    }
}

fn write_docker_archive<W: Write>(
    store: &Store,
    images: &[(Vec<String>, Descriptor)],
    out: W,
    file: &Path,
) -> Result<()> {
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
    let add = |tar: &mut tar::Builder<BufWriter<W>>, name: &str, bytes: &[u8]| -> Result<()> {
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
        store.verify_blob(digest)?;
        let path = store.blob_path(digest);
        let blob = File::open(&path).map_err(Error::io("open", &path))?;
        let size = blob.metadata().map_err(Error::io("stat", &path))?.len();
        let mut h = header(size, 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, format!("blobs/sha256/{}", digest.hex()), blob)
            .map_err(Error::io("write", file))?;
    }
    let mut out = tar.into_inner().map_err(Error::io("write", file))?;
    out.flush().map_err(Error::io("write", file))
}

/// What an artifact export wrote into its directory, relative paths.
#[derive(Default, Serialize, serde::Deserialize)]
struct ExportRecord {
    files: BTreeSet<String>,
    /// Directories the exports created (a directory that was there first is
    /// never removed).
    dirs: BTreeSet<String>,
}

/// Copies `path` of `state` into `rel` (a target's name, and its
/// platform's when there are several) under `out_dir`: a directory's
/// contents, or a file under its own name. As BuildKit's local exporter
/// does, files are written over what is there, nothing strata did not write
/// is removed, and the files are the invoking user's, with no setuid or
/// setgid bit and no device node (those are left out; the returned list
/// names them). What strata's previous export into the directory wrote and
/// this one does not is removed. Writes stay inside `out_dir/rel`: no
/// symlink is followed below `out_dir` (see `sys::confined`).
pub fn artifact(store: &Store, state: &State, path: &str, out_dir: &Path, rel: &Path) -> Result<Vec<PathBuf>> {
    let shown_dir = out_dir.join(rel);
    let plain = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain || rel.as_os_str().is_empty() {
        return Err(Error::BadImage {
            what: shown_dir.display().to_string(),
            reason: "an artifact's name must be a plain file name (not `.`, `..` or a path)".into(),
        });
    }
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
    // `--out-dir` is the user's to name (a symlink there is theirs); below
    // it nothing is followed.
    confined::create_user_dir(out_dir).map_err(Error::io("create", out_dir))?;
    let out_root = fs::canonicalize(out_dir).map_err(Error::io("resolve", out_dir))?;
    let strict = Root::open_strict(&out_root).map_err(Error::io("open", &out_root))?;
    strict.mkdir_all(rel, 0o755).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => Error::BadImage {
            what: shown_dir.display().to_string(),
            reason:
                "a symlink or a file is in the way below the output directory: strata writes no artifact through it"
                    .into(),
        },
        _ => Error::io("create", &shown_dir)(e),
    })?;
    let canonical = out_root.join(rel);
    // Staged beside it (one file system, so entries are renamed in), as the
    // host policy has them, in `tree/` of a directory only this user can
    // enter: the tree takes the artifact's own modes (a 0777 directory, a
    // 1777 /tmp), and no other user may reach into it while it is staged.
    let staging = tempfile::Builder::new()
        .prefix(".strata-")
        .tempdir_in(&out_root)
        .map_err(Error::io("create a directory in", &out_root))?;
    let staged_root = staging.path().join("tree");
    let mut staged = Tree::create(
        &staged_root,
        0o700,
        confined::Policy::host(confined::extract_limit(&out_root)),
    )
    .map_err(Error::io("create", &staged_root))?;
    for found in matches {
        let name = found.last().cloned().unwrap_or_default();
        let comps = view.resolve(&format!("/{}", found.join("/")), true).unwrap_or(found);
        let (_, meta) = view.lookup(&comps).ok_or_else(missing)?;
        if meta.is_dir() {
            view.materialize(&comps, &mut staged, Path::new(""))?;
        } else {
            view.materialize(&comps, &mut staged, Path::new(&name))?;
        }
    }
    let skipped = staged.skipped().to_vec();
    drop(staged);
    let record_path = store.export_record_path(&canonical);
    let previous: ExportRecord = match fs::read(&record_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => ExportRecord::default(),
    };
    let root = Root::open_strict(&canonical).map_err(Error::io("open", &canonical))?;
    let top = root
        .dir("")
        .map_err(Error::io("open", &canonical))?
        .ok_or_else(|| Error::io("open", &canonical)(io::Error::from(io::ErrorKind::NotFound)))?;
    let mut merge = Merge {
        out: &shown_dir,
        previous: &previous,
        now: ExportRecord::default(),
        tree_dirs: BTreeSet::new(),
    };
    merge.dir(&top, &staged_root, "")?;
    // What the previous export wrote and this one did not: files, then the
    // directories it created, deepest first, when they are empty.
    for rel in previous.files.difference(&merge.now.files) {
        if let Some((dir, name)) = merge.locate(&root, rel) {
            if dir
                .stat(name)
                .ok()
                .flatten()
                .is_some_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR)
            {
                dir.remove_file(name)
                    .map_err(Error::io("remove", shown_dir.join(rel)))?;
            }
        }
    }
    let mut stale: Vec<&String> = previous.dirs.difference(&merge.tree_dirs).collect();
    stale.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for rel in stale {
        if let Some((dir, name)) = merge.locate(&root, rel) {
            let _ = dir.remove_dir(name); // not empty: someone else's files are in it
        }
    }
    let mut record = merge.now;
    record
        .dirs
        .extend(previous.dirs.intersection(&merge.tree_dirs).cloned());
    if let Some(dir) = record_path.parent() {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    store.write_atomic(&record_path, &serde_json::to_vec(&record).expect("record serialises"))?;
    Ok(skipped)
}

/// Moving a staged artifact into its directory, entry by entry.
struct Merge<'a> {
    out: &'a Path,
    previous: &'a ExportRecord,
    now: ExportRecord,
    /// Every directory of the new tree (made now or found).
    tree_dirs: BTreeSet<String>,
}

impl Merge<'_> {
    fn dir(&mut self, dest: &confined::Dir, staged: &Path, rel: &str) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(staged)
            .map_err(Error::io("read", staged))?
            .collect::<io::Result<_>>()
            .map_err(Error::io("read", staged))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let child_rel = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            let shown = self.out.join(&child_rel);
            let meta = fs::symlink_metadata(entry.path()).map_err(Error::io("stat", entry.path()))?;
            if meta.is_dir() {
                let mut fresh = || -> Result<confined::Dir> {
                    dest.mkdir(&name, meta.permissions().mode() & 0o7777)
                        .map_err(Error::io("create", &shown))?;
                    self.now.dirs.insert(child_rel.clone());
                    dest.subdir(&name)
                        .map_err(Error::io("open", &shown))?
                        .ok_or_else(|| Error::io("open", &shown)(io::Error::from(io::ErrorKind::NotFound)))
                };
                let sub = match dest.subdir(&name) {
                    Ok(Some(sub)) => sub,
                    Ok(None) => fresh()?,
                    Err(_) if self.previous.files.contains(&child_rel) => {
                        // A file (or link) our last export wrote: ours to replace.
                        dest.remove_file(&name).map_err(Error::io("remove", &shown))?;
                        fresh()?
                    }
                    Err(_) => {
                        return Err(Error::BadImage {
                            what: shown.display().to_string(),
                            reason: "the artifact has a directory here, and the file (or symlink) in the way was not written by strata: not replacing it".into(),
                        })
                    }
                };
                self.tree_dirs.insert(child_rel.clone());
                self.dir(&sub, &entry.path(), &child_rel)?;
            } else {
                dest.take(staged, &name).map_err(|e| {
                    if e.raw_os_error() == Some(libc::EISDIR) {
                        Error::BadImage {
                            what: shown.display().to_string(),
                            reason: "the artifact has a file here, and a directory is in the way: not replacing it"
                                .into(),
                        }
                    } else {
                        Error::io("write", &shown)(e)
                    }
                })?;
                self.now.files.insert(child_rel);
            }
        }
        Ok(())
    }

    /// The directory holding `rel` and its last name, if it is still there.
    fn locate<'r>(&self, root: &Root, rel: &'r str) -> Option<(confined::Dir, &'r str)> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let mut dir = root.dir("").ok()??;
        for comp in parent.split('/').filter(|c| !c.is_empty()) {
            dir = dir.subdir(comp).ok()??;
        }
        Some((dir, name))
    }
}
