//! A read-only merged view of a stack of unpacked layers (bottom first), the
//! way overlayfs would show it, computed in user space: look up a path,
//! resolve symlinks inside the image's root, read a file, and materialize a
//! subtree into a host directory (for `copy` from another state and for
//! artifact targets). Whiteouts and opaque directories are honoured.
//! `users.rs` resolves `user[:group]` against the view's passwd and group.

mod users;
pub use users::{lookup_id, resolve_user, UserError};

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layer::opaque_xattr;
use crate::sys;
use crate::sys::confined::{self, Attrs, Node, Tree};

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    matches!(sys::lgetxattr(path, opaque_xattr()), Ok(Some(v)) if v == b"y")
}

fn lstat(path: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(path).ok()
}

/// Splits an absolute image path into its normal components.
pub fn components(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_string()),
        }
    }
    out
}

/// The merged view over `layers` (paths of unpacked layer directories, bottom first).
pub struct View<'a> {
    pub layers: &'a [PathBuf],
}

impl View<'_> {
    /// The top-most entry for `comps` and the layer directory it is in;
    /// `None` if the path does not exist in the merged view.
    pub fn lookup(&self, comps: &[String]) -> Option<(PathBuf, fs::Metadata)> {
        if comps.is_empty() {
            let top = self.layers.last()?;
            return lstat(top).map(|m| (top.clone(), m));
        }
        for layer in self.layers.iter().rev() {
            let mut p = layer.clone();
            let mut opaque_above = false;
            for (i, c) in comps.iter().enumerate() {
                p.push(c);
                let Some(meta) = lstat(&p) else {
                    if opaque_above {
                        return None;
                    }
                    break;
                };
                if is_whiteout(&meta) {
                    return None;
                }
                if i == comps.len() - 1 {
                    return Some((p, meta));
                }
                if !meta.is_dir() {
                    return None;
                }
                if is_opaque(&p) {
                    opaque_above = true;
                }
            }
        }
        None
    }

    /// Resolves symlinks in `path` inside the image root (absolute links
    /// point at the image root, never the host's). With `follow_last`, a
    /// final symlink is followed too.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Option<Vec<String>> {
        let mut pending: Vec<String> = components(path).into_iter().rev().collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            done.push(c);
            let last = pending.is_empty();
            let Some((host, meta)) = self.lookup(&done) else {
                return if last { Some(done) } else { None };
            };
            if meta.file_type().is_symlink() && (!last || follow_last) {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = fs::read_link(&host).ok()?;
                let target = target.to_string_lossy().into_owned();
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for part in target.split('/').rev() {
                    match part {
                        "" | "." => {}
                        p => pending.push(p.to_string()),
                    }
                }
                // `..` parts are applied as they are popped.
                while pending.last().map(String::as_str) == Some("..") {
                    pending.pop();
                    done.pop();
                }
            }
            while pending.last().map(String::as_str) == Some("..") {
                pending.pop();
                done.pop();
            }
        }
        Some(done)
    }

    /// Like [`View::resolve`] for a path that may not exist yet (a copy's
    /// destination): symlinks are resolved as far as the image has the
    /// path, the rest is taken as written. A final symlink is followed only
    /// with `follow_last` and when it leads to a directory.
    pub fn resolve_lenient(&self, path: &str, follow_last: bool) -> Vec<String> {
        let comps = components(path);
        for cut in (0..=comps.len()).rev() {
            let (head, tail) = comps.split_at(cut);
            let head_path = format!("/{}", head.join("/"));
            let follow = if tail.is_empty() { follow_last } else { true };
            let Some(mut resolved) = self.resolve(&head_path, follow) else {
                continue;
            };
            if self.lookup(&resolved).is_none() && !head.is_empty() {
                continue;
            }
            if tail.is_empty() && follow_last && !self.lookup(&resolved).is_some_and(|(_, m)| m.is_dir()) {
                // A link to something that is not a directory is replaced, not followed.
                match self.resolve(&head_path, false) {
                    Some(unfollowed) => resolved = unfollowed,
                    None => continue,
                }
            }
            resolved.extend(tail.iter().cloned());
            return resolved;
        }
        comps
    }

    /// Names in the merged directory at `comps` (whiteouts and opaque
    /// directories respected), sorted.
    pub fn list(&self, comps: &[String]) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for layer in self.layers {
            let mut dir = layer.clone();
            dir.extend(comps);
            if let Ok(entries) = fs::read_dir(&dir) {
                names.extend(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
            }
        }
        names
            .into_iter()
            .filter(|n| {
                let mut child = comps.to_vec();
                child.push(n.clone());
                self.lookup(&child).is_some()
            })
            .collect()
    }

    /// Every path matching `pattern` (`*`, `?`, `[…]` in any component),
    /// symlinks in the fixed part resolved, sorted. A pattern without
    /// wildcards yields itself if it exists.
    pub fn glob(&self, pattern: &str) -> Vec<Vec<String>> {
        let mut found: Vec<Vec<String>> = vec![Vec::new()];
        for part in components(pattern) {
            let mut next = Vec::new();
            for base in found {
                let base = if base.is_empty() {
                    base
                } else {
                    match self.resolve(&format!("/{}", base.join("/")), true) {
                        Some(b) => b,
                        None => continue,
                    }
                };
                if is_glob(&part) {
                    for name in self.list(&base) {
                        let hidden = name.starts_with('.') && !part.starts_with('.');
                        if !hidden && glob_match(part.as_bytes(), name.as_bytes()) {
                            let mut c = base.clone();
                            c.push(name);
                            next.push(c);
                        }
                    }
                } else {
                    let mut c = base;
                    c.push(part.clone());
                    next.push(c);
                }
            }
            found = next;
        }
        found.retain(|c| {
            self.resolve(&format!("/{}", c.join("/")), true)
                .is_some_and(|r| self.lookup(&r).is_some())
        });
        found.sort();
        found
    }

    /// The content of a regular file, following symlinks.
    pub fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let comps = self.resolve(path, true)?;
        let (host, meta) = self.lookup(&comps)?;
        if meta.is_file() {
            fs::read(host).ok()
        } else {
            None
        }
    }

    /// Copies the merged subtree at `comps` to `dest` in `tree` (which
    /// must not exist), through the tree's confined writer. Returns `false`
    /// when the path does not exist.
    pub fn materialize(&self, comps: &[String], tree: &mut Tree, dest: &Path) -> Result<bool> {
        let shown = tree.path().join(dest);
        let io = |op: &'static str| Error::io(op, shown.clone());
        for layer in self.layers {
            let mut p = layer.clone();
            let mut present = true;
            let n = comps.len();
            for c in comps.iter().take(n.saturating_sub(1)) {
                p.push(c);
                match lstat(&p) {
                    None => {
                        present = false;
                        break;
                    }
                    Some(meta) if !meta.is_dir() => {
                        // Deleted or replaced by a non-directory: nothing below survives.
                        tree.remove(dest).map_err(io("remove"))?;
                        present = false;
                        break;
                    }
                    Some(_) => {
                        if is_opaque(&p) {
                            tree.remove(dest).map_err(io("remove"))?;
                        }
                    }
                }
            }
            if !present {
                continue;
            }
            if let Some(last) = comps.last() {
                p.push(last);
            }
            let Some(meta) = lstat(&p) else { continue };
            if is_whiteout(&meta) {
                tree.remove(dest).map_err(io("remove"))?;
            } else if meta.is_dir() {
                let dest_is_dir = tree
                    .stat(dest)
                    .map_err(io("stat"))?
                    .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
                if (n > 0 && is_opaque(&p)) || !dest_is_dir {
                    tree.remove(dest).map_err(io("remove"))?;
                }
                merge_dir(&p, tree, dest)?;
            } else {
                copy_entry(&p, tree, dest, &meta)?;
            }
        }
        Ok(tree.stat(dest).map_err(io("stat"))?.is_some())
    }
}

pub use crate::context::{glob_match, is_glob};

/// A hash of everything about the tree at `path` that a copy of it carries:
/// names, types, modes, owners, mtimes, contents, link targets, devices.
pub fn tree_hash(path: &Path) -> Result<[u8; 32]> {
    fn walk(path: &Path, rel: &str, enc: &mut crate::key::KeyEncoder) -> Result<()> {
        let meta = fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
        enc.str(rel)
            .u64(meta.mode() as u64)
            .u64(meta.uid() as u64)
            .u64(meta.gid() as u64)
            .u64(meta.mtime() as u64);
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(Error::io("read link", path))?;
            enc.bytes(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()));
        } else if ft.is_file() {
            let file = fs::File::open(path).map_err(Error::io("read", path))?;
            enc.hash(&crate::context::hash_reader(file).map_err(Error::io("read", path))?);
        } else if meta.is_dir() {
            let mut names: Vec<_> = fs::read_dir(path)
                .map_err(Error::io("read directory", path))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(Error::io("read directory", path))?;
            names.sort();
            enc.u64(names.len() as u64);
            for name in names {
                let child = format!("{rel}/{}", name.to_string_lossy());
                walk(&path.join(&name), &child, enc)?;
            }
        } else {
            enc.u64(meta.rdev());
        }
        Ok(())
    }
    let mut enc = crate::key::KeyEncoder::new("tree");
    walk(path, "", &mut enc)?;
    Ok(enc.finish().0)
}

fn attrs_of(meta: &fs::Metadata) -> Attrs {
    Attrs::new(meta.mode() & 0o7777, meta.uid(), meta.gid()).at(meta.mtime())
}

/// Applies one layer's directory `src` onto `dest` in `tree` (`""`: its root).
fn merge_dir(src: &Path, tree: &mut Tree, dest: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(Error::io("stat", src))?;
    let base = tree.path().to_path_buf();
    let shown = |rel: &Path| base.join(rel);
    if dest.as_os_str().is_empty() {
        tree.set_attrs(dest, attrs_of(&meta))
            .map_err(Error::io("chmod", shown(dest)))?;
    } else {
        tree.dir(dest, attrs_of(&meta))
            .map_err(Error::io("create directory", shown(dest)))?;
    }
    let mut names: Vec<_> = fs::read_dir(src)
        .map_err(Error::io("read directory", src))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("read directory", src))?;
    names.sort();
    for name in names {
        let child = src.join(&name);
        let child_dest = dest.join(&name);
        let cmeta = fs::symlink_metadata(&child).map_err(Error::io("stat", &child))?;
        if is_whiteout(&cmeta) {
            tree.remove(&child_dest)
                .map_err(Error::io("remove", shown(&child_dest)))?;
        } else if cmeta.is_dir() {
            let dest_is_dir = tree
                .stat(&child_dest)
                .map_err(Error::io("stat", shown(&child_dest)))?
                .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
            if is_opaque(&child) || !dest_is_dir {
                tree.remove(&child_dest)
                    .map_err(Error::io("remove", shown(&child_dest)))?;
            }
            merge_dir(&child, tree, &child_dest)?;
        } else {
            copy_entry(&child, tree, &child_dest, &cmeta)?;
        }
    }
    tree.set_mtime(dest, meta.mtime())
        .map_err(Error::io("set mtime of", shown(dest)))
}

fn tree_path(tree: &Tree, rel: &Path) -> PathBuf {
    tree.path().join(rel)
}

/// Copies one non-directory entry of a layer (`src`) to `dest` in `tree`
/// with its owner, mode and mtime, as the tree's policy lets it land.
fn copy_entry(src: &Path, tree: &mut Tree, dest: &Path, meta: &fs::Metadata) -> Result<()> {
    let shown = tree_path(tree, dest);
    let ft = meta.file_type();
    let attrs = attrs_of(meta);
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(Error::io("read link", src))?;
        tree.symlink(dest, target.as_os_str(), attrs)
            .map_err(Error::io("create symlink", &shown))?;
    } else if ft.is_file() {
        tree.copy_from(dest, src, attrs).map_err(|e| {
            if confined::too_large(&e).is_some() {
                Error::BadImage {
                    what: shown.display().to_string(),
                    reason: e.to_string(),
                }
            } else {
                Error::io("copy", src)(e)
            }
        })?;
    } else {
        let (major, minor) = sys::dev_parts(meta.rdev());
        let kind = if ft.is_char_device() {
            Node::Char
        } else if ft.is_block_device() {
            Node::Block
        } else if ft.is_fifo() {
            Node::Fifo
        } else {
            // A socket: nothing to copy.
            return Ok(());
        };
        tree.node(dest, kind, (major, minor), attrs)
            .map_err(Error::io("create device", &shown))?;
    }
    Ok(())
}

/// True when `path` exists (without following a final symlink).
pub fn exists(path: &Path) -> bool {
    lstat(path).is_some()
}

/// The byte string of a path, for messages.
pub fn show(path: &Path) -> String {
    String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned()
}

/// Joins an image path onto a base directory (absolute paths win).
pub fn join_image_path(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path)
    };
    let comps = components(&joined);
    format!("/{}", comps.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(root: &Path, name: &str) -> PathBuf {
        let p = root.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn upper_layers_win_whiteouts_delete_and_opaque_dirs_hide() {
        let t = tempfile::tempdir().unwrap();
        let l0 = layer(t.path(), "0");
        let l1 = layer(t.path(), "1");
        fs::create_dir_all(l0.join("etc/conf.d")).unwrap();
        fs::write(l0.join("etc/a"), b"old").unwrap();
        fs::write(l0.join("etc/b"), b"b").unwrap();
        fs::write(l0.join("etc/conf.d/x"), b"x").unwrap();
        fs::create_dir_all(l1.join("etc/conf.d")).unwrap();
        fs::write(l1.join("etc/a"), b"new").unwrap();
        sys::mknod_whiteout(&l1.join("etc/b")).unwrap();
        sys::lsetxattr(&l1.join("etc/conf.d"), opaque_xattr(), b"y").unwrap();
        fs::write(l1.join("etc/conf.d/y"), b"y").unwrap();
        let layers = vec![l0, l1];
        let view = View { layers: &layers };
        assert_eq!(view.read_file("/etc/a").unwrap(), b"new");
        assert!(view.lookup(&components("/etc/b")).is_none());
        assert!(view.lookup(&components("/etc/conf.d/x")).is_none());
        assert!(view.lookup(&components("/etc/conf.d/y")).is_some());

        let out = t.path().join("out");
        let mut tree = Tree::create(&out, 0o755, crate::sys::confined::Policy::image(1 << 20)).unwrap();
        assert!(view.materialize(&components("/etc"), &mut tree, Path::new("")).unwrap());
        assert_eq!(fs::read(out.join("a")).unwrap(), b"new");
        assert!(!out.join("b").exists());
        assert!(!out.join("conf.d/x").exists());
        assert_eq!(fs::read(out.join("conf.d/y")).unwrap(), b"y");
    }

    #[test]
    fn symlinks_resolve_inside_the_image_root() {
        let t = tempfile::tempdir().unwrap();
        let l0 = layer(t.path(), "0");
        fs::create_dir_all(l0.join("usr/bin")).unwrap();
        fs::write(l0.join("usr/bin/tool"), b"tool").unwrap();
        std::os::unix::fs::symlink("usr/bin", l0.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/tool", l0.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../usr/bin/tool", l0.join("up")).unwrap();
        let layers = vec![l0];
        let view = View { layers: &layers };
        assert_eq!(view.read_file("/bin/tool").unwrap(), b"tool");
        assert_eq!(view.read_file("/abs").unwrap(), b"tool");
        assert_eq!(view.read_file("/up").unwrap(), b"tool");
    }

    #[test]
    fn users_and_groups_resolve_by_name_and_number() {
        let t = tempfile::tempdir().unwrap();
        let l0 = layer(t.path(), "0");
        fs::create_dir_all(l0.join("etc")).unwrap();
        fs::write(
            l0.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(l0.join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let layers = vec![l0];
        let view = View { layers: &layers };
        assert_eq!(resolve_user(&view, "app").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(&view, "app:staff").unwrap(), (1000, 50));
        assert_eq!(resolve_user(&view, "1000").unwrap(), (1000, 1001));
        assert_eq!(resolve_user(&view, "7:8").unwrap(), (7, 8));
        assert_eq!(
            resolve_user(&view, "nobody").unwrap_err().to_string(),
            "user `nobody` is not in the image's /etc/passwd"
        );
    }
}

#[cfg(test)]
mod glob_tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        let m = |p: &str, n: &str| glob_match(p.as_bytes(), n.as_bytes());
        assert!(m("*.so", "libx.so"));
        assert!(!m("*.so", "libx.so.1"));
        assert!(m("lib?.a", "libz.a"));
        assert!(m("[a-c]*", "beta"));
        assert!(!m("[!a-c]*", "beta"));
        assert!(m("*", ""));
        assert!(!m("a*b", "ac"));
        assert!(is_glob("/out/*.so") && !is_glob("/out/x.so"));
    }

    #[test]
    fn glob_sees_the_merged_view() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("l"), dir.path().join("u"));
        fs::create_dir_all(lower.join("out")).unwrap();
        fs::create_dir_all(upper.join("out")).unwrap();
        for f in ["a.so", "b.so", "c.txt"] {
            fs::write(lower.join("out").join(f), f).unwrap();
        }
        fs::write(upper.join("out/d.so"), "d").unwrap();
        // b.so deleted in the upper layer (an overlay whiteout).
        sys::mknod(&upper.join("out/b.so"), libc::S_IFCHR, 0, 0).unwrap();
        let layers = [lower, upper];
        let view = View { layers: &layers };
        let found: Vec<String> = view.glob("/out/*.so").iter().map(|c| c.join("/")).collect();
        assert_eq!(found, ["out/a.so", "out/d.so"]);
        assert!(view.glob("/out/*.none").is_empty());
        assert_eq!(view.glob("/out/c.txt").len(), 1);
    }
}
