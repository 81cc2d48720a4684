//! The safe unpacker: a layer tar → an overlay-format directory.
//!
//! It never writes outside `root`: absolute names and `..` are refused, no
//! entry may pass through a symlink or file inside the layer, and hardlinks
//! may only target earlier non-directory entries of the same layer. OCI
//! whiteouts become overlay ones: `.wh.NAME` a 0/0 character device,
//! `.wh..wh..opq` the `trusted.overlay.opaque` xattr on the directory. The
//! uncompressed stream is hashed as it is read, so the caller can verify the
//! diff id without a second pass.

use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::hashio::HashReader;
use super::opaque_xattr;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::confined::{self, Attrs, Devices, Node, Policy, Tree};

/// What an unpacked tar was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the whole uncompressed tar stream.
    pub diff_id: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Unpacks the uncompressed tar `input` into the existing directory `root`
/// (through the confined writer, within its byte limit).
pub fn unpack<R: Read>(input: R, root: &Path) -> Result<UnpackStats> {
    let policy = Policy {
        // A user namespace cannot create device nodes (as buildah's
        // rootless mode, the layer is unpacked without them).
        devices: if sys::userns::rootless() {
            Devices::Skip
        } else {
            Devices::Create
        },
        ..Policy::image(confined::extract_limit(root))
    };
    let mut tree = Tree::open(root, policy).map_err(Error::io("open", root))?;
    let mut hashed = HashReader::new(input);
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut hashed);
        let entries = archive.entries().map_err(Error::io("read tar in", root))?;
        for entry in entries {
            let mut entry = entry.map_err(Error::io("read tar entry into", root))?;
            unpack_entry(&mut entry, &mut tree, &mut dirs)?;
        }
    }
    // Directory mtimes last: creating children changes them.
    for (dir, mtime) in dirs.iter().rev() {
        tree.set_mtime(dir, *mtime as i64)
            .map_err(Error::io("set mtime of", root.join(dir)))?;
    }
    let (diff_id, size) = hashed.finish().map_err(Error::io("read tar in", root))?;
    Ok(UnpackStats { diff_id, size })
}

fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Splits an entry name into clean components, refusing escapes.
fn clean(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    if raw.first() == Some(&b'/') {
        return Err(Error::UnsafeEntry {
            path: display(raw),
            reason: "absolute path",
        });
    }
    let mut parts = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(Error::UnsafeEntry {
                    path: display(raw),
                    reason: "`..` in path",
                })
            }
            p => parts.push(p.to_vec()),
        }
    }
    Ok(parts)
}

fn rel_path(parts: &[Vec<u8>]) -> PathBuf {
    parts.iter().map(|p| std::ffi::OsStr::from_bytes(p)).collect()
}

/// A confined-writer error of the entry `raw`: a way through a symlink or a
/// file is an unsafe entry, the byte limit says so, the rest is I/O.
fn entry_error(tree: &Tree, raw: &[u8]) -> impl FnOnce(io::Error) -> Error {
    let raw = raw.to_vec();
    let root = tree.path().to_path_buf();
    move |e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => Error::UnsafeEntry {
            path: display(&raw),
            reason: "path passes through a symlink or a non-directory",
        },
        _ if confined::too_large(&e).is_some() => Error::BadImage {
            what: root.display().to_string(),
            reason: format!("the layer expands past its limit at `{}`: {e}", display(&raw)),
        },
        _ => Error::io("unpack", root.join(display(&raw)))(e),
    }
}

fn unpack_entry<R: Read>(entry: &mut tar::Entry<R>, tree: &mut Tree, dirs: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let raw = entry.path_bytes().into_owned();
    let kind = entry.header().entry_type();
    if matches!(
        kind,
        EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
    ) {
        return Ok(());
    }
    let parts = clean(&raw)?;
    let Some(name) = parts.last().cloned() else {
        // The root entry (`./`): the layer root's attributes are not ours to set.
        return Ok(());
    };
    let rel = rel_path(&parts);
    tree.parents(&rel, Attrs::new(0o755, 0, 0))
        .map_err(entry_error(tree, &raw))?;

    if name == b".wh..wh..opq" {
        let dir = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        return tree
            .set_xattr(&dir, opaque_xattr(), b"y")
            .map_err(Error::io("mark opaque", tree.path().join(&dir)));
    }
    if let Some(hidden) = name.strip_prefix(b".wh.") {
        if hidden.is_empty() {
            return Err(Error::UnsafeEntry {
                path: display(&raw),
                reason: "bare `.wh.` whiteout",
            });
        }
        if hidden == b"." || hidden == b".." {
            // `.wh..` and `.wh...` would hide the directory itself, or its
            // parent: outside what this entry may touch.
            return Err(Error::UnsafeEntry {
                path: display(&raw),
                reason: "a whiteout of `.` or `..`",
            });
        }
        let target = rel.with_file_name(std::ffi::OsStr::from_bytes(hidden));
        return tree.whiteout(&target).map_err(entry_error(tree, &raw));
    }

    let header = entry.header();
    let mode = header.mode().map_err(Error::io("read mode of", &rel))? & 0o7777;
    let uid = header.uid().map_err(Error::io("read owner of", &rel))? as u32;
    let gid = header.gid().map_err(Error::io("read owner of", &rel))? as u32;
    let mtime = header.mtime().map_err(Error::io("read mtime of", &rel))?;
    let attrs = Attrs::new(mode, uid, gid);

    match kind {
        EntryType::Directory => {
            tree.dir(&rel, attrs).map_err(entry_error(tree, &raw))?;
            apply_xattrs(entry, tree, &rel)?;
            dirs.push((rel, mtime));
            return Ok(());
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            tree.write(&rel, entry, attrs.at(mtime as i64))
                .map_err(entry_error(tree, &raw))?;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or(Error::UnsafeEntry {
                    path: display(&raw),
                    reason: "symlink without a target",
                })?
                .into_owned();
            tree.symlink(&rel, std::ffi::OsStr::from_bytes(&target), attrs.at(mtime as i64))
                .map_err(entry_error(tree, &raw))?;
            return Ok(());
        }
        EntryType::Link => {
            let target_raw = entry
                .link_name_bytes()
                .ok_or(Error::UnsafeEntry {
                    path: display(&raw),
                    reason: "hardlink without a target",
                })?
                .into_owned();
            let target_parts = clean(&target_raw)?;
            if target_parts.is_empty() {
                return Err(Error::UnsafeEntry {
                    path: display(&raw),
                    reason: "hardlink to the layer root",
                });
            }
            // Resolved without following any symlink, the last one included.
            return tree
                .hardlink(&rel, &rel_path(&target_parts))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidInput | io::ErrorKind::NotFound => Error::UnsafeEntry {
                        path: display(&raw),
                        reason: "hardlink target is not an earlier file of this layer",
                    },
                    _ => entry_error(tree, &raw)(e),
                });
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let node = match kind {
                EntryType::Char => Node::Char,
                EntryType::Block => Node::Block,
                _ => Node::Fifo,
            };
            let made = tree
                .node(&rel, node, (major, minor), attrs.at(mtime as i64))
                .map_err(entry_error(tree, &raw))?;
            if !made {
                return Ok(());
            }
        }
        _ => {
            return Err(Error::UnsafeEntry {
                path: display(&raw),
                reason: "unsupported tar entry type",
            })
        }
    }
    apply_xattrs(entry, tree, &rel)?;
    // Capabilities (set after the owner) are xattrs; the mtime goes last.
    tree.set_mtime(&rel, mtime as i64)
        .map_err(Error::io("set mtime of", tree.path().join(&rel)))
}

/// File capabilities from PAX headers; set last, since chown clears them.
fn apply_xattrs<R: Read>(entry: &mut tar::Entry<R>, tree: &mut Tree, rel: &Path) -> Result<()> {
    let shown = tree.path().join(rel);
    let Some(exts) = entry
        .pax_extensions()
        .map_err(Error::io("read PAX headers of", &shown))?
    else {
        return Ok(());
    };
    for ext in exts {
        let ext = ext.map_err(Error::io("read PAX headers of", &shown))?;
        if ext.key_bytes() == b"SCHILY.xattr.security.capability" {
            tree.set_xattr(rel, "security.capability", ext.value_bytes())
                .map_err(Error::io("set xattr on", &shown))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::write_tar;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file_header(size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    }

    /// Writes a raw header name, bypassing tar-rs's own path checks, the way a
    /// hostile producer would.
    fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: EntryType, link: Option<&[u8]>, data: &[u8]) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn unpack_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<UnpackStats>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack(bytes, dir.path());
        (dir, result)
    }

    #[test]
    fn absolute_paths_are_refused() {
        let t = tar_with(|b| raw_entry(b, b"/etc/passwd", EntryType::Regular, None, b"x"));
        let (_dir, result) = unpack_bytes(&t);
        assert!(
            matches!(
                result,
                Err(Error::UnsafeEntry {
                    reason: "absolute path",
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn dot_dot_is_refused() {
        let t = tar_with(|b| raw_entry(b, b"a/../../escape", EntryType::Regular, None, b"x"));
        let (dir, result) = unpack_bytes(&t);
        assert!(matches!(result, Err(Error::UnsafeEntry { .. })));
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let t = tar_with(|b| {
            raw_entry(
                b,
                b"x",
                EntryType::Symlink,
                Some(outside.path().as_os_str().as_bytes()),
                b"",
            );
            raw_entry(b, b"x/pwned", EntryType::Regular, None, b"x");
        });
        let (_dir, result) = unpack_bytes(&t);
        assert!(matches!(result, Err(Error::UnsafeEntry { .. })), "{result:?}");
        assert!(!outside.path().join("pwned").exists());
    }

    #[test]
    fn relative_symlink_escape_is_refused() {
        let t = tar_with(|b| {
            raw_entry(b, b"up", EntryType::Symlink, Some(b"../../.."), b"");
            raw_entry(b, b"up/etc/evil", EntryType::Regular, None, b"x");
        });
        let (_dir, result) = unpack_bytes(&t);
        assert!(matches!(result, Err(Error::UnsafeEntry { .. })), "{result:?}");
    }

    #[test]
    fn hardlink_out_of_the_layer_is_refused() {
        for target in [&b"/etc/passwd"[..], b"../outside", b"missing"] {
            let t = tar_with(|b| raw_entry(b, b"link", EntryType::Link, Some(target), b""));
            let (_dir, result) = unpack_bytes(&t);
            assert!(
                matches!(result, Err(Error::UnsafeEntry { .. })),
                "{target:?}: {result:?}"
            );
        }
    }

    #[test]
    fn hardlink_through_a_symlink_is_refused() {
        let t = tar_with(|b| {
            raw_entry(b, b"d", EntryType::Symlink, Some(b"/etc"), b"");
            raw_entry(b, b"link", EntryType::Link, Some(b"d/passwd"), b"");
        });
        let (_dir, result) = unpack_bytes(&t);
        assert!(matches!(result, Err(Error::UnsafeEntry { .. })), "{result:?}");
    }

    #[test]
    fn whiteouts_of_dot_and_dot_dot_are_refused_and_remove_nothing() {
        for name in [&b"d/.wh.."[..], b"d/.wh...", b".wh..."] {
            let t = tar_with(|b| {
                let mut h = file_header(2);
                b.append_data(&mut h, "d/kept", &b"hi"[..]).unwrap();
                raw_entry(b, name, EntryType::Regular, None, b"");
            });
            let outer = tempfile::tempdir().unwrap();
            let root = outer.path().join("layer");
            fs::create_dir(&root).unwrap();
            fs::write(outer.path().join("sibling"), "still here").unwrap();
            let result = unpack(&t[..], &root);
            assert!(
                matches!(
                    result,
                    Err(Error::UnsafeEntry {
                        reason: "a whiteout of `.` or `..`",
                        ..
                    })
                ),
                "{}: {result:?}",
                String::from_utf8_lossy(name)
            );
            assert_eq!(fs::read(root.join("d/kept")).unwrap(), b"hi");
            assert!(outer.path().join("sibling").exists());
        }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let t = tar_with(|b| {
            raw_entry(b, b"etc/.wh.gone", EntryType::Regular, None, b"");
            raw_entry(b, b"var/.wh..wh..opq", EntryType::Regular, None, b"");
            let mut h = file_header(2);
            b.append_data(&mut h, "var/kept", &b"hi"[..]).unwrap();
        });
        let (dir, result) = unpack_bytes(&t);
        result.unwrap();
        let meta = fs::symlink_metadata(dir.path().join("etc/gone")).unwrap();
        assert!(meta.file_type().is_char_device() && meta.rdev() == 0);
        assert_eq!(
            sys::lgetxattr(&dir.path().join("var"), opaque_xattr())
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(fs::read(dir.path().join("var/kept")).unwrap(), b"hi");
    }

    #[test]
    fn unpack_then_write_round_trips_whiteouts_modes_and_links() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("bin")).unwrap();
        fs::write(s.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(s.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(s.join("bin/tool"), s.join("bin/tool2")).unwrap();
        std::os::unix::fs::symlink("tool", s.join("bin/link")).unwrap();
        sys::mknod_whiteout(&s.join("deleted")).unwrap();
        fs::create_dir(s.join("opaque")).unwrap();
        sys::lsetxattr(&s.join("opaque"), opaque_xattr(), b"y").unwrap();
        let long = "d".repeat(120);
        fs::create_dir_all(s.join(&long)).unwrap();
        fs::write(s.join(&long).join("f".repeat(120)), b"long").unwrap();

        let (tar1, stats1) = write_tar(s, Vec::new(), 0).unwrap();
        let (dir, result) = unpack_bytes(&tar1);
        assert_eq!(result.unwrap().diff_id, stats1.diff_id);
        let d = dir.path();
        assert_eq!(fs::metadata(d.join("bin/tool")).unwrap().mode() & 0o7777, 0o4755);
        assert_eq!(
            fs::metadata(d.join("bin/tool")).unwrap().ino(),
            fs::metadata(d.join("bin/tool2")).unwrap().ino()
        );
        assert_eq!(fs::read_link(d.join("bin/link")).unwrap(), Path::new("tool"));
        assert!(fs::symlink_metadata(d.join("deleted"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(
            sys::lgetxattr(&d.join("opaque"), opaque_xattr()).unwrap().as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(fs::read(d.join(&long).join("f".repeat(120))).unwrap(), b"long");

        // Writing the unpacked tree again gives the same bytes.
        let (tar2, stats2) = write_tar(d, Vec::new(), 0).unwrap();
        assert_eq!(stats1, stats2);
        assert_eq!(tar1, tar2);
    }

    #[test]
    fn written_tars_list_whiteouts_before_siblings_and_no_root() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("-dir")).unwrap();
        sys::mknod_whiteout(&src.path().join("zgone")).unwrap();
        let (bytes, _) = write_tar(src.path(), Vec::new(), 0).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec![".wh.zgone", "-dir/"]);
        let total = bytes.len();
        assert_eq!(total % 512, 0);
        assert!(total < 10240, "no padding to a 10 KiB record");
    }

    #[test]
    fn mtimes_are_clamped_to_the_epoch() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), b"x").unwrap();
        let (a, _) = write_tar(src.path(), Vec::new(), 1000).unwrap();
        sys::set_mtime(&src.path().join("f"), 5_000_000_000).unwrap();
        let (b, _) = write_tar(src.path(), Vec::new(), 1000).unwrap();
        assert_eq!(a, b);
        let mut archive = tar::Archive::new(&a[..]);
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().mtime().unwrap(), 1000);
        assert_eq!(entry.header().username_bytes(), Some(&b""[..]));
    }
}
