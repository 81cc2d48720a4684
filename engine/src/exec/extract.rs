//! A Dockerfile's `ADD` of a local archive (`copy(…, #{ extract: true })`):
//! a tar, plain or compressed with gzip, xz or zstd (recognised by its
//! content, not its name), unpacked into the destination directory with its
//! entries' modes and owners, as BuildKit does: `chown` does not apply to
//! them, and directories the archive implies but lacks are root's, 0755. Every path is the archive's to
//! choose, so it is hostile: entries that climb out of the destination are
//! refused, and no write passes through a symlink (the copy's `Checked`).
//! Device nodes and other special entries are left out.

use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::graph::Node;
use crate::sys::confined::{Attrs, Tree};

/// How an archive is compressed, from its first bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Tar,
    Gzip,
    Xz,
    Zstd,
}

/// The archive kind of the file at `path`, or `None` when it is not one
/// (then it is copied as it is).
fn kind(path: &Path) -> io::Result<Option<Kind>> {
    let mut head = [0u8; 512];
    let mut file = fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Kind::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Kind::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Kind::Tar)
    } else {
        None
    })
}

/// The kind of archive the file is, or `None` when `ADD` copies it as it is.
pub fn archive_kind(path: &Path) -> Result<Option<Kind>> {
    kind(path).map_err(Error::io("read", path))
}

/// The entry's path inside the destination, or `None` when it names the
/// destination itself; an error when it climbs out.
fn inside(raw: &Path) -> std::result::Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for comp in raw.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(format!("`{}` leaves the destination", raw.display()));
                }
            }
            Component::Prefix(_) => return Err(format!("`{}` is not a Unix path", raw.display())),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Unpacks the archive at `archive` (of `kind`, from [`archive_kind`])
/// into the directory `dest` of the layer being assembled (`tree`, the
/// copy's confined writer: no entry passes through a symlink, a hard link
/// names an earlier entry, and an inode the layer shares with the store's
/// file pool is copied before a link's header changes its owner or mode).
pub fn unpack(node: &Node, archive: &Path, kind: &Kind, tree: &mut Tree, dest: &Path) -> Result<()> {
    let file = BufReader::new(fs::File::open(archive).map_err(Error::io("open", archive))?);
    let reader: Box<dyn Read> = match kind {
        Kind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Kind::Xz => Box::new(xz2::read::XzDecoder::new(file)),
        Kind::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(Error::io("read", archive))?),
        Kind::Tar => Box::new(file),
    };
    unpack_tar(reader, tree, dest)
        .map_err(|message| Error::input(&node.origin, format!("ADD `{}`: {message}", archive.display())))
}

/// Unpacks the plain tar `reader` into the directory `dest` of `tree` (as
/// [`unpack`]; also `strata affected`'s `git archive` of an old commit).
/// The error says which entry and why.
pub fn unpack_tar(reader: impl Read, tree: &mut Tree, dest: &Path) -> std::result::Result<(), String> {
    let bad = |message: String| message;
    let refused = |raw: &Path, e: io::Error| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => format!(
            "`{}` would be written through a symlink or a file the archive put there",
            raw.display()
        ),
        _ => format!("`{}`: {e}", raw.display()),
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(rel) = inside(&raw)? else {
            continue;
        };
        let to = dest.join(&rel);
        let header = entry.header();
        let attrs = Attrs::new(
            header.mode().unwrap_or(0o644) & 0o7777,
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        );
        // Missing parents are made as the archive's own directories would be.
        tree.parents(&to, Attrs::new(0o755, 0, 0))
            .map_err(|e| refused(&raw, e))?;
        match header.entry_type() {
            tar::EntryType::Directory => tree.dir(&to, attrs),
            tar::EntryType::Regular | tar::EntryType::Continuous => tree.write(&to, &mut entry, attrs).map(|_| ()),
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("symlink `{}` has no target", raw.display())))?
                    .into_owned();
                tree.symlink(&to, target.as_os_str(), attrs)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("hard link `{}` has no target", raw.display())))?
                    .into_owned();
                let Some(target_rel) = inside(&target)? else {
                    return Err(bad(format!("hard link `{}` to the destination itself", raw.display())));
                };
                // The target is the archive's to name too: not through a link.
                tree.hardlink(&to, &dest.join(target_rel)).map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidInput => bad(format!(
                        "hard link `{}` to `{}`, which is not an earlier file of the archive",
                        raw.display(),
                        target.display()
                    )),
                    _ => refused(&raw, e),
                })?;
                // The link's own header then sets the owner and mode of the
                // file both names share, as Docker's unpacker does (a file
                // the layer shares with the store is copied first).
                tree.set_attrs(&to, attrs)
            }
            // Devices, FIFOs and the like: not in an ADD's layer.
            _ => continue,
        }
        .map_err(|e| refused(&raw, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_inside_the_destination() {
        assert_eq!(inside(Path::new("./a/../b")).unwrap(), Some(PathBuf::from("b")));
        assert_eq!(
            inside(Path::new("/etc/passwd")).unwrap(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(inside(Path::new("./")).unwrap(), None);
        assert_eq!(
            inside(Path::new("a/../../x")).unwrap_err(),
            "`a/../../x` leaves the destination"
        );
    }

    fn node() -> Node {
        Node {
            op: crate::graph::Op::Scratch,
            parent: None,
            origin: crate::graph::Origin {
                file: "Dockerfile".into(),
                line: 3,
                col: 1,
            },
            description: "ADD".into(),
            platform: crate::image::Platform::host(),
        }
    }

    /// An archive whose later entries go through a symlink an earlier one made.
    fn hostile(dir: &Path, second: (&str, tar::EntryType, &str)) -> PathBuf {
        let path = dir.join("evil.tar");
        let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "evil", "/etc").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(second.1);
        h.set_mode(0o644);
        if second.1 == tar::EntryType::Link {
            h.set_size(0);
            b.append_link(&mut h, second.0, second.2).unwrap();
        } else {
            h.set_size(second.2.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, second.0, second.2.as_bytes()).unwrap();
        }
        b.into_inner().unwrap();
        path
    }

    #[test]
    fn a_hostile_archive_cannot_write_or_link_through_its_own_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        for (second, what) in [
            (("evil/pwned", tar::EntryType::Regular, "x"), "evil/pwned"),
            (("stolen", tar::EntryType::Link, "evil/hostname"), "evil/hostname"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let archive = hostile(dir.path(), second);
            let mut tree = Tree::open(root.path(), crate::sys::confined::Policy::image(1 << 30)).unwrap();
            let err = unpack(&node(), &archive, &Kind::Tar, &mut tree, Path::new("")).unwrap_err();
            assert!(err.to_string().contains("through a symlink"), "{what}: {err}");
            assert!(!Path::new("/etc/pwned").exists());
            assert!(!root.path().join("stolen").exists(), "{what}");
        }
    }

    #[test]
    fn archives_are_known_by_their_content_not_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("plain.txt");
        let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "x", &b"x"[..]).unwrap();
        b.into_inner().unwrap();
        assert_eq!(kind(&tar_path).unwrap(), Some(Kind::Tar));
        let gz = dir.path().join("a.tar.gz");
        fs::write(&gz, [0x1f, 0x8b, 8, 0]).unwrap();
        assert_eq!(kind(&gz).unwrap(), Some(Kind::Gzip));
        let text = dir.path().join("notes.tar");
        fs::write(&text, "just text").unwrap();
        assert_eq!(kind(&text).unwrap(), None);
    }
}
