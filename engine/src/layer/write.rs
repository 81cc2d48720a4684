//! The deterministic layer writer: walks an overlay-format directory (an
//! upperdir, or a directory strata assembled) and streams a layer tar.
//!
//! Rules (REFERENCE.md §2): entries sorted by raw bytes, parents before
//! children, per directory the opaque marker and whiteouts first; no root
//! entry; relative paths, directories with a trailing `/`; mtimes clamped to
//! the epoch; numeric ids with empty names; mode bits 07777 only; hardlinks
//! grouped by inode, the first path in walk order is the target; a 0/0
//! character device becomes `.wh.NAME`; an opaque directory gets
//! `.wh..wh..opq`; overlay xattrs are dropped, `security.capability` kept.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::hashio::HashWriter;
use super::opaque_xattr;
use super::tree::{hash_content, hash_entry, xattrs_of, ContentHasher, TreeHash};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::sys;

/// What a finished tar was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarStats {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub size: u64,
}

/// Writes the layer tar of `dir` into `out` and returns `out` with the tar's stats.
pub fn write_tar<W: Write>(dir: &Path, out: W, epoch: i64) -> Result<(W, TarStats)> {
    let (out, stats, _, _) = TarWriter::new(out, epoch, None).run(dir)?;
    Ok((out, stats))
}

/// What writing a new layer's tar found.
#[derive(Clone, Debug)]
pub struct NewLayer {
    pub stats: TarStats,
    /// Its tree hash, for the store.
    pub tree: TreeHash,
    /// Time spent in sha256 (the diff id), part of the walk's time.
    pub digest_time: std::time::Duration,
}

/// Writes the tar of a layer directory strata has just made, in the same
/// walk clamping its mtimes on disk to `epoch` (the directory then holds
/// what unpacking the tar would give) and hashing its tree for the store
/// (`store::check`): each entry is read once, not three times.
pub fn write_new_layer<W: Write>(dir: &Path, out: W, epoch: i64) -> Result<(W, NewLayer)> {
    let tree = Tree {
        hasher: blake3::Hasher::new(),
        entries: 0,
    };
    let (out, stats, tree, digest_time) = TarWriter::new(out, epoch, Some(tree)).run(dir)?;
    let tree = tree.expect("a new layer's tree is hashed");
    let root = fs::symlink_metadata(dir).map_err(Error::io("stat", dir))?;
    if root.mtime() > epoch {
        sys::set_mtime(dir, epoch).map_err(Error::io("set mtime of", dir))?;
    }
    let top = fs::read_dir(dir).map_err(Error::io("read", dir))?.count() as u64;
    let tree = TreeHash {
        tree: tree.hasher.finalize().to_hex().to_string(),
        entries: tree.entries,
        top,
        contents: true,
    };
    Ok((
        out,
        NewLayer {
            stats,
            tree,
            digest_time,
        },
    ))
}

struct TarWriter<W: Write> {
    builder: tar::Builder<HashWriter<W>>,
    epoch: i64,
    /// (dev, ino) of files with several links → the first path written,
    /// and its content's hash (for the tree hash).
    links: HashMap<(u64, u64), (PathBuf, [u8; 32])>,
    /// For a new layer: its tree hash so far (and mtimes are clamped on disk).
    tree: Option<Tree>,
}

struct Tree {
    hasher: blake3::Hasher,
    entries: u64,
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> Result<bool> {
    Ok(sys::lgetxattr(path, opaque_xattr())
        .map_err(Error::io("read xattrs of", path))?
        .as_deref()
        == Some(b"y"))
}

impl<W: Write> TarWriter<W> {
    fn new(out: W, epoch: i64, tree: Option<Tree>) -> TarWriter<W> {
        TarWriter {
            builder: tar::Builder::new(HashWriter::new(out)),
            epoch,
            links: HashMap::new(),
            tree,
        }
    }

    fn run(mut self, dir: &Path) -> Result<(W, TarStats, Option<Tree>, std::time::Duration)> {
        self.dir(dir, Path::new(""))?;
        let tree = self.tree.take();
        let hashed = self.builder.into_inner().map_err(Error::io("finish tar of", dir))?;
        let hashing = hashed.hashing();
        let (out, diff_id, size) = hashed.finish();
        Ok((out, TarStats { diff_id, size }, tree, hashing))
    }

    fn header(&self, meta: &fs::Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        h.set_mtime(meta.mtime().clamp(0, self.epoch) as u64);
        h.set_size(0);
        h
    }

    fn whiteout(&mut self, rel: &Path) -> Result<()> {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        self.builder
            .append_data(&mut h, rel, io::empty())
            .map_err(Error::io("write tar entry", rel))
    }

    fn dir(&mut self, abs: &Path, rel: &Path) -> Result<()> {
        let mut children: Vec<(Vec<u8>, fs::Metadata)> = Vec::new();
        for entry in fs::read_dir(abs).map_err(Error::io("read directory", abs))? {
            let entry = entry.map_err(Error::io("read directory", abs))?;
            let meta = entry.metadata().map_err(Error::io("stat", entry.path()))?;
            children.push((entry.file_name().as_bytes().to_vec(), meta));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let name_of = |n: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(n));
        // Whiteouts first, so a reader deletes before it creates.
        for (name, meta) in &children {
            if is_whiteout(meta) {
                let mut wh = b".wh.".to_vec();
                wh.extend_from_slice(name);
                self.whiteout(&rel.join(name_of(&wh)))?;
            }
        }
        for (name, meta) in &children {
            let child_abs = abs.join(name_of(name));
            let child_rel = rel.join(name_of(name));
            // One list of the extended attributes serves the tar and the tree hash.
            let xattrs = match self.tree.is_some() {
                true => xattrs_of(&child_abs)?,
                false => Vec::new(),
            };
            if let Some(tree) = &mut self.tree {
                tree.entries += 1;
                let target = match meta.file_type().is_symlink() {
                    true => Some(fs::read_link(&child_abs).map_err(Error::io("read link", &child_abs))?),
                    false => None,
                };
                hash_entry(&mut tree.hasher, &child_rel, meta, target.as_deref(), &xattrs);
                if meta.mtime() > self.epoch {
                    sys::set_mtime(&child_abs, self.epoch).map_err(Error::io("set mtime of", &child_abs))?;
                }
            }
            if is_whiteout(meta) {
                continue;
            }
            let xattrs = self.tree.as_ref().map(|_| xattrs.as_slice());
            self.entry(&child_abs, &child_rel, meta, xattrs)?;
        }
        Ok(())
    }

    /// One entry; `xattrs` are its extended attributes when already read.
    fn entry(
        &mut self,
        abs: &Path,
        rel: &Path,
        meta: &fs::Metadata,
        xattrs: Option<&[(String, Vec<u8>)]>,
    ) -> Result<()> {
        let ft = meta.file_type();
        self.xattrs(abs, xattrs)?;
        if ft.is_dir() {
            let mut h = self.header(meta, EntryType::Directory);
            let mut name = rel.as_os_str().as_bytes().to_vec();
            name.push(b'/');
            let name = PathBuf::from(std::ffi::OsStr::from_bytes(&name));
            self.builder
                .append_data(&mut h, &name, io::empty())
                .map_err(Error::io("write tar entry", rel))?;
            let opaque = match xattrs {
                Some(all) => all.iter().any(|(n, v)| n == opaque_xattr() && v == b"y"),
                None => is_opaque(abs)?,
            };
            if opaque {
                self.whiteout(&rel.join(".wh..wh..opq"))?;
            }
            return self.dir(abs, rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(Error::io("read link", abs))?;
            let mut h = self.header(meta, EntryType::Symlink);
            return self
                .builder
                .append_link(&mut h, rel, &target)
                .map_err(Error::io("write tar entry", rel));
        }
        if ft.is_file() {
            let id = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some((first, content)) = self.links.get(&id).cloned() {
                    if let Some(tree) = &mut self.tree {
                        hash_content(&mut tree.hasher, &content);
                    }
                    let mut h = self.header(meta, EntryType::Link);
                    return self
                        .builder
                        .append_link(&mut h, rel, &first)
                        .map_err(Error::io("write tar entry", rel));
                }
            }
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(abs)
                .map_err(Error::io("open", abs))?;
            let mut h = self.header(meta, EntryType::Regular);
            h.set_size(meta.len());
            // Take exactly the size we announced, even if the file is being changed.
            let reader = io::Read::take(&file, meta.len());
            // A new layer's tree hash covers the content, hashed as the tar takes it.
            let content = match self.tree.is_some() {
                true => {
                    let mut reader = ContentHasher {
                        inner: reader,
                        hasher: blake3::Hasher::new(),
                    };
                    self.builder
                        .append_data(&mut h, rel, &mut reader)
                        .map_err(Error::io("write tar entry", rel))?;
                    *reader.hasher.finalize().as_bytes()
                }
                false => {
                    self.builder
                        .append_data(&mut h, rel, reader)
                        .map_err(Error::io("write tar entry", rel))?;
                    [0; 32]
                }
            };
            if let Some(tree) = &mut self.tree {
                hash_content(&mut tree.hasher, &content);
            }
            if meta.nlink() > 1 {
                self.links.insert(id, (rel.to_path_buf(), content));
            }
            return Ok(());
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            // Sockets cannot be represented in a tar; they are runtime artifacts.
            return Ok(());
        };
        let mut h = self.header(meta, kind);
        let (major, minor) = sys::dev_parts(meta.rdev());
        h.set_device_major(major).map_err(Error::io("write tar entry", rel))?;
        h.set_device_minor(minor).map_err(Error::io("write tar entry", rel))?;
        self.builder
            .append_data(&mut h, rel, io::empty())
            .map_err(Error::io("write tar entry", rel))
    }

    /// Emits a PAX header carrying the file capabilities, if any.
    fn xattrs(&mut self, abs: &Path, known: Option<&[(String, Vec<u8>)]>) -> Result<()> {
        const CAP: &str = "security.capability";
        let cap = match known {
            Some(all) => all.iter().find(|(n, _)| n == CAP).map(|(_, v)| v.clone()),
            None => sys::lgetxattr(abs, CAP).map_err(Error::io("read xattrs of", abs))?,
        };
        if let Some(cap) = cap {
            self.builder
                .append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])
                .map_err(Error::io("write tar entry", abs))?;
        }
        Ok(())
    }
}
