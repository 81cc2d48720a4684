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
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::graph::Node;
use crate::sys;

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
/// into the directory `dest` (inside the layer being assembled); `place` is
/// called for every path before it is written (it refuses paths through
/// symlinks). Returns what was written.
pub fn unpack(
    node: &Node,
    archive: &Path,
    kind: &Kind,
    dest: &Path,
    place: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let file = BufReader::new(fs::File::open(archive).map_err(Error::io("open", archive))?);
    let reader: Box<dyn Read> = match kind {
        Kind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Kind::Xz => Box::new(xz2::read::XzDecoder::new(file)),
        Kind::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(Error::io("read", archive))?),
        Kind::Tar => Box::new(file),
    };
    let bad = |message: String| Error::input(&node.origin, format!("ADD `{}`: {message}", archive.display()));
    let mut tar = tar::Archive::new(reader);
    let mut written = Vec::new();
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(rel) = inside(&raw).map_err(&bad)? else {
            continue;
        };
        let to = dest.join(&rel);
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let owner = (header.uid().unwrap_or(0) as u32, header.gid().unwrap_or(0) as u32);
        let kind = header.entry_type();
        // Missing parents are made as the archive's own directories would be.
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            let mut at = dest.to_path_buf();
            for comp in parent.components() {
                at.push(comp);
                if fs::symlink_metadata(&at).is_err() {
                    place(&at)?;
                    fs::create_dir(&at).map_err(Error::io("create directory", &at))?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(0o755)).map_err(Error::io("chmod", &at))?;
                    written.push(at.clone());
                }
            }
        }
        place(&to)?;
        match kind {
            tar::EntryType::Directory => {
                if !fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir()) {
                    crate::layer::remove_path(&to)?;
                    fs::create_dir(&to).map_err(Error::io("create directory", &to))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                crate::layer::remove_path(&to)?;
                let mut out = fs::File::create(&to).map_err(Error::io("create", &to))?;
                io::copy(&mut entry, &mut out).map_err(Error::io("write", &to))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("symlink `{}` has no target", raw.display())))?;
                crate::layer::remove_path(&to)?;
                std::os::unix::fs::symlink(&target, &to).map_err(Error::io("create symlink", &to))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("hard link `{}` has no target", raw.display())))?;
                let Some(target_rel) = inside(&target).map_err(&bad)? else {
                    return Err(bad(format!("hard link `{}` to the destination itself", raw.display())));
                };
                let source = dest.join(target_rel);
                // The target is the archive's to name too: not through a link.
                place(&source)?;
                if !fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
                    return Err(bad(format!(
                        "hard link `{}` to `{}`, which is not an earlier file of the archive",
                        raw.display(),
                        target.display()
                    )));
                }
                crate::layer::remove_path(&to)?;
                fs::hard_link(&source, &to).map_err(Error::io("create hardlink", &to))?;
                // The link's own header then sets the owner and mode of the
                // file both names share, as Docker's unpacker does.
            }
            // Devices, FIFOs and the like: not in an ADD's layer.
            _ => continue,
        }
        sys::lchown(&to, owner.0, owner.1).map_err(Error::io("chown", &to))?;
        if kind != tar::EntryType::Symlink {
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &to))?;
        }
        written.push(to);
    }
    Ok(written)
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
            let mut checked = crate::sys::confined::Checked::open(root.path()).unwrap();
            let mut place = |p: &Path| -> Result<()> {
                let rel = p.strip_prefix(root.path()).unwrap();
                match checked.parents(rel, None) {
                    Ok(None) => Ok(()),
                    Ok(Some(link)) => Err(Error::input(&node().origin, format!("through {}", link.display()))),
                    Err(e) => Err(Error::input(&node().origin, e.to_string())),
                }
            };
            let err = unpack(&node(), &archive, &Kind::Tar, root.path(), &mut place).unwrap_err();
            assert!(err.to_string().contains("through evil"), "{what}: {err}");
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
