//! `.deb` files: an `ar` archive of `debian-binary`, `control.tar.*` and
//! `data.tar.*`. Reads the control stanza, and extracts the data tree into a
//! root filesystem whose `/bin`, `/sbin` and `/lib*` are symlinks into
//! `/usr` (merged /usr, as Debian has installed since bookworm).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::control::{stanzas, Stanza};
use crate::error::{Error, Result};
use crate::sys::confined::{self, Attrs, Tree};

/// The top-level directories that merged /usr turns into symlinks.
pub const MERGED: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

fn bad(deb: &Path, reason: impl Into<String>) -> Error {
    Error::BadImage {
        what: deb.display().to_string(),
        reason: reason.into(),
    }
}

/// Finds member `prefix*` of the ar archive; returns (name, offset, size).
fn member(file: &mut File, deb: &Path, prefix: &str) -> Result<(String, u64, u64)> {
    let mut magic = [0u8; 8];
    file.seek(SeekFrom::Start(0)).map_err(Error::io("read", deb))?;
    file.read_exact(&mut magic).map_err(|_| bad(deb, "not an ar archive"))?;
    if &magic != b"!<arch>\n" {
        return Err(bad(deb, "not an ar archive"));
    }
    let mut offset = 8u64;
    loop {
        let mut header = [0u8; 60];
        file.seek(SeekFrom::Start(offset)).map_err(Error::io("read", deb))?;
        if file.read_exact(&mut header).is_err() {
            return Err(bad(deb, format!("no `{prefix}*` member")));
        }
        let name = String::from_utf8_lossy(&header[..16])
            .trim()
            .trim_end_matches('/')
            .to_string();
        let size: u64 = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| bad(deb, "bad ar member size"))?;
        if name.starts_with(prefix) {
            return Ok((name, offset + 60, size));
        }
        offset += 60 + size + (size & 1);
    }
}

/// A decompressing reader for an ar member named `*.tar[.gz|.xz|.zst]`.
fn member_reader(deb: &Path, prefix: &str) -> Result<Box<dyn Read>> {
    let mut file = File::open(deb).map_err(Error::io("open", deb))?;
    let (name, offset, size) = member(&mut file, deb, prefix)?;
    file.seek(SeekFrom::Start(offset)).map_err(Error::io("read", deb))?;
    let raw = BufReader::with_capacity(1 << 20, file.take(size));
    Ok(match name.rsplit('.').next() {
        Some("xz") => Box::new(xz2::read::XzDecoder::new_multi_decoder(raw)),
        Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Some("zst") => Box::new(zstd::stream::read::Decoder::with_buffer(raw).map_err(Error::io("read", deb))?),
        Some("tar") => Box::new(raw),
        _ => return Err(bad(deb, format!("unknown member compression `{name}`"))),
    })
}

/// The package's `control` stanza.
pub fn control(deb: &Path) -> Result<Stanza> {
    let mut archive = tar::Archive::new(member_reader(deb, "control.tar")?);
    for entry in archive.entries().map_err(Error::io("read control of", deb))? {
        let mut entry = entry.map_err(Error::io("read control of", deb))?;
        let path = entry.path().map_err(Error::io("read control of", deb))?.into_owned();
        if path.file_name().is_some_and(|n| n == "control") {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(Error::io("read control of", deb))?;
            return stanzas(&text)
                .into_iter()
                .next()
                .ok_or_else(|| bad(deb, "empty control file"));
        }
    }
    Err(bad(deb, "no control file"))
}

/// Where a data member lands under merged /usr: `bin/ls` → `usr/bin/ls`.
/// `None` for the root itself; an error for paths that leave the root.
fn target(path: &Path, deb: &Path) -> Result<Option<PathBuf>> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err(bad(deb, format!("refused data member `{}`", path.display()))),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    if MERGED.contains(&parts[0].as_str()) {
        parts.insert(0, "usr".into());
    }
    Ok(Some(parts.iter().collect()))
}

/// Makes the merged-/usr symlinks in an empty root.
pub fn merged_usr(root: &mut Tree) -> Result<()> {
    for dir in ["bin", "sbin", "lib"] {
        let real = Path::new("usr").join(dir);
        root.parents(&real.join("x"), Attrs::new(0o755, 0, 0))
            .and_then(|()| root.dir(&real, Attrs::new(0o755, 0, 0)))
            .map_err(Error::io("create", root.path().join(&real)))?;
        root.symlink(Path::new(dir), format!("usr/{dir}").as_ref(), Attrs::new(0o777, 0, 0))
            .map_err(Error::io("create", root.path().join(dir)))?;
    }
    Ok(())
}

/// Adds the root symlinks for merged directories that packages populated
/// (`/lib64` → `usr/lib64` once libc6 put the loader there).
pub fn merged_links(root: &mut Tree) -> Result<()> {
    for dir in MERGED {
        let usr = Path::new("usr").join(dir);
        let is_dir = root
            .stat(&usr)
            .ok()
            .flatten()
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        if is_dir && root.stat(Path::new(dir)).ok().flatten().is_none() {
            root.symlink(Path::new(dir), format!("usr/{dir}").as_ref(), Attrs::new(0o777, 0, 0))
                .map_err(Error::io("create", root.path().join(dir)))?;
        }
    }
    Ok(())
}

/// Extracts the data tree of `deb` into `root` (which has the merged-/usr
/// symlinks): owners, modes, symlinks and hard links as the archive says.
/// The package is hostile input (a lock's SHA256 is its only check): every
/// entry goes through the confined writer, so no entry passes through a
/// symlink (a package's own, or merged /usr's: `bin/` is mapped to
/// `usr/bin/` first), a directory entry replaces a link in its place, and a
/// hard link can only name an earlier entry of the tree.
pub fn extract(deb: &Path, root: &mut Tree) -> Result<()> {
    let mut archive = tar::Archive::new(member_reader(deb, "data.tar")?);
    let refused = |path: &Path, e: io::Error| {
        if confined::too_large(&e).is_some() {
            bad(deb, format!("`{}`: {e}", path.display()))
        } else {
            bad(deb, format!("refused data member `{}`: {e}", path.display()))
        }
    };
    for entry in archive.entries().map_err(Error::io("read data of", deb))? {
        let mut entry = entry.map_err(Error::io("read data of", deb))?;
        let path = entry.path().map_err(Error::io("read data of", deb))?.into_owned();
        let Some(rel) = target(&path, deb)? else { continue };
        root.parents(&rel, Attrs::new(0o755, 0, 0))
            .map_err(|e| refused(&path, e))?;
        let header = entry.header();
        let attrs = Attrs::new(
            header.mode().unwrap_or(0o644) & 0o7777,
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        );
        match header.entry_type() {
            tar::EntryType::Directory => root.dir(&rel, attrs),
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(Error::io("read data of", deb))?
                    .ok_or_else(|| bad(deb, "symlink without a target"))?
                    .into_owned();
                root.symlink(&rel, link.as_os_str(), attrs)
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(Error::io("read data of", deb))?
                    .ok_or_else(|| bad(deb, "hard link without a target"))?
                    .into_owned();
                let Some(src) = target(&link, deb)? else {
                    return Err(bad(deb, "hard link to the root"));
                };
                root.hardlink(&rel, &src)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => root.write(&rel, &mut entry, attrs).map(|_| ()),
            other => {
                return Err(bad(
                    deb,
                    format!("unsupported member type {other:?} at `{}`", path.display()),
                ))
            }
        }
        .map_err(|e| refused(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_directories_land_in_usr_and_escapes_are_refused() {
        let deb = Path::new("x.deb");
        assert_eq!(
            target(Path::new("./bin/ls"), deb).unwrap(),
            Some(PathBuf::from("usr/bin/ls"))
        );
        assert_eq!(
            target(Path::new("./lib64/ld.so"), deb).unwrap(),
            Some(PathBuf::from("usr/lib64/ld.so"))
        );
        assert_eq!(target(Path::new("./etc/x"), deb).unwrap(), Some(PathBuf::from("etc/x")));
        assert_eq!(target(Path::new("./"), deb).unwrap(), None);
        assert!(target(Path::new("../etc"), deb).is_err());
        assert!(target(Path::new("/etc"), deb).is_err());
    }
}
