//! The store checks itself. Each unpacked layer carries a tree hash
//! written when it was committed (`layers/<hex>.tree`: every entry's path,
//! type, mode, owner, size, device, link target and extended attributes,
//! and every file's content); a layer whose directory no longer matches it
//! is damaged. `strata check` verifies every blob against its digest,
//! every layer against its tree hash (reading every file: it takes the
//! time reading the store takes), every record and the tag list; `--repair`
//! removes what is damaged so the next build rebuilds or re-fetches it,
//! then every tag whose image lost a part with it, and replaces a damaged
//! `index.json` by the copy the store keeps of it (`index.json.copy`,
//! written with every change of the tags), keeping each tag whose image is
//! whole.

use std::fs;
use std::path::{Path, PathBuf};

use super::{read_json, LayerBlobs, Record, Store};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Index, Manifest};
pub use crate::layer::TreeHash;
use crate::layer::{content_of, hash_content, hash_entry, xattrs_of};

/// Hashes the tree at `root`, its files' contents included (see the
/// module's doc).
pub fn tree_hash(root: &Path) -> Result<TreeHash> {
    tree_hash_with(root, true)
}

/// [`tree_hash`], without the contents when `contents` is false (a tree
/// hash an older strata recorded).
fn tree_hash_with(root: &Path, contents: bool) -> Result<TreeHash> {
    let mut hasher = blake3::Hasher::new();
    let mut entries = 0;
    let top = fs::read_dir(root).map_err(Error::io("read", root))?.count() as u64;
    walk(root, root, (&mut hasher, contents), &mut entries)?;
    Ok(TreeHash {
        tree: hasher.finalize().to_hex().to_string(),
        entries,
        top,
        contents,
    })
}

fn walk(root: &Path, dir: &Path, (hasher, contents): (&mut blake3::Hasher, bool), entries: &mut u64) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(Error::io("read", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("read", dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(Error::io("stat", &path))?;
        *entries += 1;
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let target = match meta.file_type().is_symlink() {
            true => Some(fs::read_link(&path).map_err(Error::io("read link", &path))?),
            false => None,
        };
        let xattrs = xattrs_of(&path)?;
        hash_entry(hasher, rel, &meta, target.as_deref(), &xattrs);
        if contents && meta.is_file() {
            hash_content(hasher, &content_of(&path)?);
        }
        if meta.is_dir() {
            walk(root, &path, (&mut *hasher, contents), entries)?;
        }
    }
    Ok(())
}

/// One damaged thing in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub kind: DamageKind,
    /// The blob digest, layer diff id, record key or tag.
    pub name: String,
    pub reason: String,
    pub path: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    Blob,
    Layer,
    Record,
    Tag,
    /// `index.json` itself.
    Index,
}

impl DamageKind {
    pub fn name(self) -> &'static str {
        match self {
            DamageKind::Blob => "blob",
            DamageKind::Layer => "layer",
            DamageKind::Record => "record",
            DamageKind::Tag => "tag",
            DamageKind::Index => "index",
        }
    }
}

/// What `check` looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub blobs: usize,
    pub layers: usize,
    pub records: usize,
    pub tags: usize,
    /// Layers whose tree hash an older strata recorded without contents:
    /// their metadata was checked, not their files' bytes.
    pub without_contents: usize,
}

/// Verifies every blob, layer, record and tag; returns what is damaged.
pub fn check(store: &Store) -> Result<(Checked, Vec<Damage>)> {
    let root = store.root();
    let mut checked = Checked::default();
    let mut damage = Vec::new();

    let blobs_dir = root.join("blobs/sha256");
    for name in &sorted_names(&blobs_dir, false)? {
        let path = blobs_dir.join(name);
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            damage.push(Damage {
                kind: DamageKind::Blob,
                name: name.clone(),
                reason: "not named by a digest".into(),
                path,
            });
            continue;
        };
        checked.blobs += 1;
        if let Err(e) = store.verify_blob(&digest) {
            damage.push(Damage {
                kind: DamageKind::Blob,
                name: digest.to_string(),
                reason: e.to_string(),
                path,
            });
        }
    }

    let layers_dir = root.join("layers");
    for hex in &sorted_names(&layers_dir, true)? {
        let dir = layers_dir.join(hex);
        let Ok(diff_id) = format!("sha256:{hex}").parse::<Digest>() else {
            continue;
        };
        checked.layers += 1;
        let mut bad = |reason: String| {
            damage.push(Damage {
                kind: DamageKind::Layer,
                name: diff_id.to_string(),
                reason,
                path: dir.clone(),
            })
        };
        if let Err(e) = read_json::<LayerBlobs>(&store.layer_blobs_path(&diff_id)) {
            bad(format!("its blob list is unreadable: {e}"));
            continue;
        }
        match store.layer_tree(&diff_id) {
            None => bad("it has no tree hash (it was never committed whole)".into()),
            Some(expected) => {
                if !expected.contents {
                    checked.without_contents += 1;
                }
                match tree_hash_with(&dir, expected.contents) {
                    Ok(actual) if actual == expected => {}
                    Ok(actual) if actual.entries != expected.entries => bad(format!(
                        "its files differ from what was committed ({} entries, {} expected)",
                        actual.entries, expected.entries
                    )),
                    Ok(actual) => bad(format!(
                        "its files differ from what was committed (the same {} entries; a file's content, mode, owner, link or name changed)",
                        actual.entries
                    )),
                    Err(e) => bad(format!("unreadable: {e}")),
                }
            }
        }
    }

    let records_dir = root.join("records");
    for name in &sorted_names(&records_dir, false)? {
        let path = records_dir.join(name);
        checked.records += 1;
        if let Err(e) = read_json::<Record>(&path) {
            damage.push(Damage {
                kind: DamageKind::Record,
                name: name.trim_end_matches(".json").to_string(),
                reason: e.chain(),
                path,
            });
        }
    }

    let index_path = root.join("index.json");
    match read_json::<Index>(&index_path) {
        Err(e) => damage.push(Damage {
            kind: DamageKind::Index,
            name: "index.json".into(),
            reason: e.chain(),
            path: index_path,
        }),
        Ok(index) => {
            for desc in &index.manifests {
                let name = desc.ref_name().unwrap_or("(untagged)").to_string();
                checked.tags += 1;
                if let Some(reason) = missing_part(store, &desc.digest) {
                    damage.push(Damage {
                        kind: DamageKind::Tag,
                        name,
                        reason,
                        path: index_path.clone(),
                    });
                }
            }
        }
    }
    Ok((checked, damage))
}

/// The names in `dir` (only its directories with `dirs`), sorted.
fn sorted_names(dir: &Path, dirs: bool) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(Error::io("read", dir))?
        .flatten()
        .filter(|e| !dirs || e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Why the image `manifest` cannot be used, if it cannot.
fn missing_part(store: &Store, manifest: &Digest) -> Option<String> {
    let bytes = match store.read_blob(manifest) {
        Ok(b) => b,
        Err(e) => return Some(format!("its manifest {manifest}: {e}")),
    };
    let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) else {
        return Some(format!("its manifest {manifest} is not an image manifest"));
    };
    std::iter::once(&m.config)
        .chain(&m.layers)
        .find(|d| !store.has_blob(&d.digest))
        .map(|d| format!("its blob {} is missing", d.digest))
}

/// Removes every damaged entry; a damaged `index.json` is set aside as
/// `index.json.damaged` and replaced by the store's copy of it, or an
/// empty one when that is damaged too. Then every tag whose image lost a
/// part is removed. Returns what was done besides the removals (one line
/// each).
pub fn repair(store: &Store, damage: &[Damage]) -> Result<Vec<String>> {
    let root = store.root();
    let mut done = Vec::new();
    for d in damage {
        match d.kind {
            DamageKind::Blob | DamageKind::Record => match fs::remove_file(&d.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("remove", &d.path)(e)),
                _ => {}
            },
            DamageKind::Layer => {
                let diff_id: Digest = d.name.parse().map_err(|_| Error::BadImage {
                    what: d.name.clone(),
                    reason: "not a layer digest".into(),
                })?;
                store.discard_layer(&diff_id)?;
            }
            DamageKind::Index => {
                let aside = root.join("index.json.damaged");
                fs::rename(&d.path, &aside).map_err(Error::io("move aside", &d.path))?;
                let copy = store.index_copy_path();
                let index = match read_json::<Index>(&copy) {
                    Err(_) if !copy.exists() => {
                        done.push("index.json replaced by an empty one: the store has no copy of it".into());
                        Index::default()
                    }
                    Ok(copy) => {
                        done.push(format!(
                            "index.json rebuilt from the store's copy of it ({} tags)",
                            copy.manifests.len()
                        ));
                        copy
                    }
                    Err(e) => {
                        done.push(format!(
                            "index.json replaced by an empty one: the store's copy of it is damaged too ({})",
                            e.chain()
                        ));
                        Index::default()
                    }
                };
                store.write_durable(&d.path, &crate::image::to_json(&index))?;
            }
            DamageKind::Tag => store.untag(&d.name)?,
        }
    }
    // A tag whose image needed what was removed (or what the copy of the
    // index names but the store lacks) goes too: the next build tags again.
    let index: Index = read_json(&root.join("index.json"))?;
    for desc in &index.manifests {
        let name = desc.ref_name().unwrap_or("(untagged)").to_string();
        if let Some(reason) = missing_part(store, &desc.digest) {
            store.untag(&name)?;
            done.push(format!("untagged {name}: {reason}"));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_tree_hash_sees_names_modes_sizes_links_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/f"), "abc").unwrap();
        std::os::unix::fs::symlink("d/f", dir.path().join("l")).unwrap();
        let first = tree_hash(dir.path()).unwrap();
        assert_eq!((first.entries, first.top), (3, 2));
        assert_eq!(tree_hash(dir.path()).unwrap(), first, "stable");
        let changed = |f: &dyn Fn()| {
            f();
            let h = tree_hash(dir.path()).unwrap();
            assert_ne!(h.tree, first.tree);
            h
        };
        changed(&|| fs::set_permissions(dir.path().join("d/f"), fs::Permissions::from_mode(0o600)).unwrap());
        changed(&|| fs::write(dir.path().join("d/f"), "abcd").unwrap());
        // The same size, other bytes.
        changed(&|| fs::write(dir.path().join("d/f"), "abce").unwrap());
        // An older strata's tree hash, without the contents, does not see that.
        let old = tree_hash_with(dir.path(), false).unwrap();
        fs::write(dir.path().join("d/f"), "abcf").unwrap();
        assert_eq!(tree_hash_with(dir.path(), false).unwrap(), old);
        changed(&|| {
            fs::remove_file(dir.path().join("l")).unwrap();
            std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
        });
        let gone = changed(&|| fs::remove_file(dir.path().join("d/f")).unwrap());
        assert_eq!(gone.entries, 2);
    }

    #[test]
    fn a_new_layer_s_tar_walk_hashes_the_same_tree_and_clamps_mtimes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/opaque")).unwrap();
        crate::sys::lsetxattr(&root.join("a/opaque"), crate::layer::opaque_xattr(), b"y").unwrap();
        fs::write(root.join("a/b"), "abc").unwrap();
        fs::hard_link(root.join("a/b"), root.join("a/c")).unwrap();
        crate::sys::lsetxattr(&root.join("a/b"), "user.note", b"kept").unwrap();
        std::os::unix::fs::symlink("a/b", root.join("link")).unwrap();
        nix::sys::stat::mknod(
            &root.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        fs::write(root.join("z"), "late").unwrap();
        let (tar, new) = crate::layer::write_new_layer(root, Vec::new(), 1000).unwrap();
        let (stats, tree) = (new.stats, new.tree);
        assert_eq!(tree, tree_hash(root).unwrap());
        assert_eq!((tree.entries, tree.top), (7, 4));
        // The same tar as the plain writer's, and every mtime on disk is now the epoch.
        let (plain, plain_stats) = crate::layer::write_tar(root, Vec::new(), 1000).unwrap();
        assert_eq!((tar, stats), (plain, plain_stats));
        for p in ["", "a", "a/b", "a/opaque", "link", "gone", "z"] {
            assert_eq!(fs::symlink_metadata(root.join(p)).unwrap().mtime(), 1000, "{p}");
        }
    }
}
