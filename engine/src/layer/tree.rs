//! The tree hash of a layer directory: every entry's path, type, mode,
//! owner, size, device, link target and extended attributes, and every
//! regular file's content, in path order: what the layer's diff id covers.
//! The store records it when a layer is committed and checks it later
//! (`store::check`); the layer writer computes it in the walk that writes
//! a new layer's tar, hashing each file's content as the tar takes it.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a layer's tree looked like when it was committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHash {
    /// blake3 over every entry, in path order.
    pub tree: String,
    /// Number of entries below the root.
    pub entries: u64,
    /// Number of entries directly in the root (checked on every use).
    pub top: u64,
    /// Whether `tree` covers the files' contents (false for a layer a
    /// strata before 0.9 committed: its tree hash has only the metadata).
    #[serde(default)]
    pub contents: bool,
}

/// Adds a regular file's content (its blake3 `hash`) to a tree hash,
/// after the file's entry.
pub fn hash_content(hasher: &mut blake3::Hasher, hash: &[u8; 32]) {
    hasher.update(b"content\0");
    hasher.update(hash);
}

/// The blake3 of the regular file at `path` (not following a link).
pub fn content_of(path: &Path) -> Result<[u8; 32]> {
    let file = crate::sys::open_nofollow(path).map_err(Error::io("open", path))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file).map_err(Error::io("read", path))?;
    Ok(*hasher.finalize().as_bytes())
}

/// A reader that hashes (blake3) what passes through it.
pub struct ContentHasher<R> {
    pub inner: R,
    pub hasher: blake3::Hasher,
}

impl<R: std::io::Read> std::io::Read for ContentHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Every extended attribute of `path` (not following a link), sorted by name.
pub fn xattrs_of(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut names = crate::sys::llistxattr(path).map_err(Error::io("list xattrs of", path))?;
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let value = crate::sys::lgetxattr(path, &name).map_err(Error::io("read xattr of", path))?;
        out.push((name, value.unwrap_or_default()));
    }
    Ok(out)
}

/// Adds one entry to a tree hash: its path below the root, mode, owner,
/// size (files), device, link target and `xattrs` (sorted by name). The
/// layer writer hashes a new layer's tree with this in the walk that
/// writes its tar, so both always agree.
pub fn hash_entry(
    hasher: &mut blake3::Hasher,
    rel: &Path,
    meta: &fs::Metadata,
    link_target: Option<&Path>,
    xattrs: &[(String, Vec<u8>)],
) {
    hasher.update(rel.as_os_str().as_bytes());
    hasher.update(&[0]);
    let size = if meta.is_file() { meta.len() } else { 0 };
    for n in [
        meta.mode() as u64,
        meta.uid() as u64,
        meta.gid() as u64,
        size,
        meta.rdev(),
    ] {
        hasher.update(&n.to_le_bytes());
    }
    if let Some(target) = link_target {
        hasher.update(target.as_os_str().as_bytes());
        hasher.update(&[0]);
    }
    for (name, value) in xattrs {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(value);
        hasher.update(&[0]);
    }
}
