//! The copy executor: files from the build context or from another state
//! into a new layer, with Docker's COPY habits (a directory copies its
//! contents, a `dst` ending in `/` is a directory, parents are created with
//! the attributes they have in the parent state, files are `0:0` unless
//! `chown`). Unchanged context files come hardlinked from the store's pool.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Executor, Inputs};
use crate::context::EntryKind;
use crate::error::{Error, Result};
use crate::fsview::{self, join_image_path, View};
use crate::graph::{CopyOp, CopySource, Node, Op};
use crate::step::ExecCtx;
use crate::store::{Record, State};
use crate::sys::confined::Checked;
use crate::sys::{self, Sys};

/// Executes `copy` nodes.
pub struct Copy;

impl Executor for Copy {
    fn execute(&self, ctx: &ExecCtx<'_>, node: &Node, inputs: &Inputs<'_>) -> Result<Record> {
        let Op::Copy(copy) = &node.op else {
            unreachable!("the copy executor runs copy nodes")
        };
        let parent = inputs.parent.expect("copy has a parent");
        copy_into_layer(ctx, node, copy, parent, inputs)
    }
}

fn copy_into_layer(
    ctx: &ExecCtx<'_>,
    node: &Node,
    copy: &CopyOp,
    parent: &State,
    inputs: &Inputs<'_>,
) -> Result<Record> {
    let (selection, states) = (inputs.selection, inputs.states);
    let parent_dirs = parent.layer_dirs(ctx.store);
    let parent_view = View { layers: &parent_dirs };
    let workdir = parent.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
    let dst = join_image_path(&workdir, &copy.dst);
    let dst_is_dir = copy.dst.ends_with('/')
        || copy.dst == "."
        || fsview::components(&dst).is_empty()
        || parent_view
            .resolve(&dst, true)
            .and_then(|c| parent_view.lookup(&c))
            .is_some_and(|(_, m)| m.is_dir());
    // As Docker's COPY does, the destination resolves through the parent
    // image's symlinks (inside the image): `/bin/tool` on a merged-/usr base
    // is `usr/bin/tool`, and `/bin` stays the link it is.
    let dst_comps = parent_view.resolve_lenient(&dst, dst_is_dir);
    // As BuildKit's COPY: context files, and every directory the copy
    // creates, belong to `chown` or root; files from another state keep
    // their owners unless `chown` says otherwise.
    let chown = match &copy.chown {
        Some(spec) => Some(
            fsview::resolve_user(&parent_view, spec).map_err(|e| Error::input(&node.origin, format!("chown: {e}")))?,
        ),
        None => None,
    };
    let owner = chown.unwrap_or((0, 0));

    // Placing files and tarring them is CPU and file-system work: as many
    // copies at once as there are cores.
    let _cpu = ctx.cpu_phase();
    let placing = std::time::Instant::now();
    let mut hashing = std::time::Duration::ZERO;
    let tmp = ctx.store.tmp_dir()?;
    let root = tmp.path().join("layer");
    fs::create_dir(&root).map_err(Error::io("create", &root))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(Error::io("chmod", &root))?;
    let mut checked = Checked::open(&root).map_err(Error::io("open", &root))?;
    let mut copied: Vec<PathBuf> = Vec::new();
    // Store files already linked into this layer (each may appear once per layer).
    let mut shared_files: HashSet<PathBuf> = HashSet::new();
    // Where the first of each group of hard-linked context files landed.
    let mut hard_linked: HashMap<(u64, u64), PathBuf> = HashMap::new();

    match &copy.source {
        CopySource::Context { .. } => {
            let selection = selection.expect("context copies are planned");
            let many = selection.sources.len() > 1;
            for src in &selection.sources {
                let archive = if copy.extract && !src.is_dir {
                    super::extract::archive_kind(&src.abs)?
                } else {
                    None
                };
                if let Some(kind) = archive {
                    // ADD of an archive: its entries into the destination directory.
                    make_parents(node, &mut checked, &root, &dst_comps, &parent_view, true, owner)?;
                    let dest = host_path(&root, &dst_comps);
                    let mut place = |p: &Path| confined(node, &mut checked, &root, p);
                    super::extract::unpack(node, &src.abs, &kind, &dest, &mut place)?;
                    continue;
                }
                let (target, skip_root): (Vec<String>, bool) = if copy.parents {
                    // `--parents`: the source's own path under the destination.
                    let mut t = dst_comps.clone();
                    t.extend(fsview::components(&src.path));
                    (t, src.is_dir)
                } else if src.is_dir {
                    (dst_comps.clone(), true)
                } else if dst_is_dir || many {
                    // The name as the recipe selected it (a followed link keeps its own).
                    let name = Path::new(&src.path)
                        .file_name()
                        .or(src.abs.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (with(&dst_comps, &name), false)
                } else {
                    (dst_comps.clone(), false)
                };
                make_parents(node, &mut checked, &root, &target, &parent_view, src.is_dir, owner)?;
                let target_host = host_path(&root, &target);
                // Where each directory of the source lands: through the
                // parent image's symlinks, as the destination itself.
                let mut landed: HashMap<PathBuf, Vec<String>> = HashMap::from([(PathBuf::new(), target.clone())]);
                for entry in &src.entries {
                    if skip_root && entry.rel.as_os_str().is_empty() {
                        continue;
                    }
                    let (from, to) = if entry.rel.as_os_str().is_empty() {
                        (src.abs.clone(), target_host.clone())
                    } else {
                        let parent_rel = entry.rel.parent().unwrap_or(Path::new(""));
                        let name = entry
                            .rel
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let parent = landed.get(parent_rel).cloned().unwrap_or_else(|| {
                            let mut c = target.clone();
                            c.extend(parent_rel.iter().map(|p| p.to_string_lossy().into_owned()));
                            c
                        });
                        let mut comps = with(&parent, &name);
                        if entry.kind == EntryKind::Dir {
                            let resolved = parent_view.resolve_lenient(&format!("/{}", comps.join("/")), true);
                            if resolved != comps {
                                make_parents(node, &mut checked, &root, &resolved, &parent_view, true, owner)?;
                                comps = resolved;
                            }
                            landed.insert(entry.rel.clone(), comps.clone());
                        }
                        (src.abs.join(&entry.rel), host_path(&root, &comps))
                    };
                    ctx.check_cancel()?;
                    confined(node, &mut checked, &root, &to)?;
                    if entry.kind == EntryKind::Dir
                        && fs::symlink_metadata(&to).is_ok_and(|m| m.file_type().is_symlink())
                    {
                        // A directory onto a link an earlier source left: its
                        // attributes would be set on whatever the link points at.
                        let at = to.strip_prefix(&root).unwrap_or(&to).display();
                        return Err(Error::input(&node.origin,
                            format!("copy would put the directory `/{at}` onto the symlink `/{at}` that an earlier source put in this layer"),
                        ));
                    }
                    if let EntryKind::File { hash, .. } = &entry.kind {
                        // Hard links among the sources stay hard links, as BuildKit keeps them.
                        if let Some(first) = entry.inode.and_then(|i| hard_linked.get(&i)) {
                            fs::hard_link(first, &to).map_err(Error::io("create hardlink", &to))?;
                            continue;
                        }
                        let mode = copy.chmod.unwrap_or(entry.mode);
                        let file = ContextFile {
                            from: &from,
                            to: &to,
                            hash,
                            mode,
                            owner,
                        };
                        place_file(ctx, node, &file, &mut shared_files, &mut hashing)?;
                        if let Some(inode) = entry.inode {
                            hard_linked.insert(inode, to.clone());
                        }
                        continue;
                    }
                    copy_context_entry(&to, &entry.kind, entry.mode)?;
                    copied.push(to);
                }
            }
        }
        CopySource::Fetch { url, .. } => {
            // The digest planning resolved (given, or pinned in strata.lock).
            let digest = crate::digest::Digest::from_bytes(*inputs.base_identity.expect("fetches are planned"));
            let digest = super::fetch::ensure(ctx.store, ctx.registry, &node.origin, url, Some(&digest))?;
            let target = if dst_is_dir {
                with(&dst_comps, &crate::graph::url_file_name(url))
            } else {
                dst_comps.clone()
            };
            make_parents(node, &mut checked, &root, &target, &parent_view, false, owner)?;
            let to = host_path(&root, &target);
            confined(node, &mut checked, &root, &to)?;
            crate::layer::remove_path(&to)?;
            let from = super::fetch::path(ctx.store, &digest);
            fs::copy(&from, &to).map_err(Error::io("copy", &from))?;
            sys::lchown(&to, owner.0, owner.1).map_err(Error::io("chown", &to))?;
            // As Docker's ADD of a URL: readable by its owner alone, unless chmod says.
            let mode = copy.chmod.unwrap_or(0o600);
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &to))?;
        }
        CopySource::Text { content } => {
            if dst_is_dir {
                return Err(Error::input(
                    &node.origin,
                    format!("text() needs a file destination, not the directory `{}`", copy.dst),
                ));
            }
            make_parents(node, &mut checked, &root, &dst_comps, &parent_view, false, owner)?;
            let to = host_path(&root, &dst_comps);
            confined(node, &mut checked, &root, &to)?;
            fs::write(&to, content).map_err(Error::io("write", &to))?;
            sys::lchown(&to, owner.0, owner.1).map_err(Error::io("chown", &to))?;
            let mode = copy.chmod.unwrap_or(0o644);
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &to))?;
        }
        CopySource::Mkdir => {
            make_parents(node, &mut checked, &root, &dst_comps, &parent_view, true, owner)?;
            if let Some(mode) = copy.chmod {
                let host = host_path(&root, &dst_comps);
                fs::set_permissions(&host, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &host))?;
            }
        }
        CopySource::State { node: from, path } => {
            let source = &states[from];
            let dirs = source.layer_dirs(ctx.store);
            let view = View { layers: &dirs };
            // What to copy: the path, or every match of a glob (each
            // matched file under its name, a matched directory's contents).
            let sources: Vec<(Vec<String>, String)> = if fsview::is_glob(path) {
                let matches = view.glob(path);
                if matches.is_empty() {
                    return Err(Error::input(
                        &node.origin,
                        format!("`{path}` matches nothing in the source state"),
                    ));
                }
                if matches.len() > 1 && !dst_is_dir {
                    return Err(Error::input(
                        &node.origin,
                        format!(
                            "`{path}` matches {} paths: the destination must be a directory (end it with `/`)",
                            matches.len()
                        ),
                    ));
                }
                let mut out = Vec::new();
                for m in matches {
                    let name = m.last().cloned().unwrap_or_default();
                    let comps = view.resolve(&format!("/{}", m.join("/")), true).unwrap_or(m);
                    out.push((comps, name));
                }
                out
            } else {
                let comps = view
                    .resolve(path, true)
                    .filter(|c| view.lookup(c).is_some())
                    .ok_or_else(|| {
                        Error::input(&node.origin, format!("`{path}` does not exist in the source state"))
                    })?;
                // The name as the recipe wrote it, even when it was a symlink we followed.
                let written = fsview::components(path)
                    .last()
                    .or(comps.last())
                    .cloned()
                    .unwrap_or_default();
                vec![(comps, written)]
            };
            for (comps, written) in sources {
                let (_, meta) = view.lookup(&comps).ok_or_else(|| {
                    Error::input(&node.origin, format!("`{path}` does not exist in the source state"))
                })?;
                let target = if meta.is_dir() || !dst_is_dir {
                    dst_comps.clone()
                } else {
                    with(&dst_comps, &written)
                };
                make_parents(node, &mut checked, &root, &target, &parent_view, meta.is_dir(), owner)?;
                let target_host = host_path(&root, &target);
                let filled = fs::read_dir(&target_host).is_ok_and(|mut d| d.next().is_some());
                if meta.is_dir() && (target.is_empty() || filled) {
                    // A directory's contents onto the root, or into a directory an
                    // earlier glob match already filled.
                    let staged = tmp.path().join("staged");
                    crate::layer::remove_path(&staged)?;
                    view.materialize(&comps, &staged)?;
                    for entry in fs::read_dir(&staged).map_err(Error::io("read directory", &staged))? {
                        let entry = entry.map_err(Error::io("read directory", &staged))?;
                        let to = target_host.join(entry.file_name());
                        confined(node, &mut checked, &root, &to)?;
                        crate::layer::remove_path(&to)?;
                        fs::rename(entry.path(), &to).map_err(Error::io("move", &to))?;
                        collect_tree(&to, &mut copied)?;
                    }
                } else {
                    if meta.is_dir() && fsview::exists(&target_host) {
                        fs::remove_dir(&target_host).map_err(Error::io("replace", &target_host))?;
                    }
                    confined(node, &mut checked, &root, &target_host)?;
                    view.materialize(&comps, &target_host)?;
                    if meta.is_dir() {
                        let mut all = Vec::new();
                        collect_tree(&target_host, &mut all)?;
                        // The destination directory is not the source's: it keeps the
                        // attributes it has in the parent, or is new (0755, `owner`).
                        let (mode, uid, gid) = match parent_view.lookup(&target) {
                            Some((_, m)) if m.is_dir() => {
                                use std::os::unix::fs::MetadataExt;
                                (m.mode() & 0o7777, m.uid(), m.gid())
                            }
                            _ => (0o755, owner.0, owner.1),
                        };
                        sys::lchown(&target_host, uid, gid).map_err(Error::io("chown", &target_host))?;
                        fs::set_permissions(&target_host, fs::Permissions::from_mode(mode))
                            .map_err(Error::io("chmod", &target_host))?;
                        copied.extend(all.into_iter().skip(1));
                    } else {
                        copied.push(target_host);
                    }
                }
            }
        }
    }

    let entry_owner = match &copy.source {
        CopySource::Context { .. } => Some(owner),
        CopySource::State { .. } | CopySource::Mkdir | CopySource::Fetch { .. } | CopySource::Text { .. } => chown,
    };
    set_owner_and_mode(&sys::Linux, &copied, entry_owner, copy.chmod)?;
    ctx.add_phases(crate::events::Phases {
        hash: hashing,
        write: placing.elapsed().saturating_sub(hashing),
        ..Default::default()
    });
    let diff_id = ctx.commit_layer(&root)?;
    Ok(Record {
        layers: vec![crate::store::LayerRef { diff_id }],
        config: None,
        restored: None,
    })
}

/// A context file on its way into a layer: where it is, where it goes, the
/// content hash planning found, and the mode and owner it gets.
struct ContextFile<'p> {
    from: &'p Path,
    to: &'p Path,
    hash: &'p [u8; 32],
    mode: u32,
    owner: (u32, u32),
}

/// Puts a context file with its final attributes into a layer being
/// assembled. Unchanged content comes as a hardlink from the store's file
/// pool (`files/`, keyed by content hash, mode, owner and mtime), so a
/// copy of 1,500 files of which one changed creates one new inode, not
/// 1,500. A pool file appears at most once per layer, so the layer's tar
/// never gains hardlinks the recipe did not ask for.
fn place_file(
    ctx: &ExecCtx<'_>,
    node: &Node,
    file: &ContextFile<'_>,
    used: &mut HashSet<PathBuf>,
    hashing: &mut std::time::Duration,
) -> Result<()> {
    let epoch = ctx.opts.epoch;
    let pooled = ctx
        .store
        .pool_file(file.hash, file.mode, file.owner.0, file.owner.1, epoch);
    let fresh = !used.contains(&pooled);
    if fresh && ctx.store.pool_has(&pooled) && fs::hard_link(&pooled, file.to).is_ok() {
        used.insert(pooled);
        return Ok(());
    }
    copy_verified(node, file, epoch, hashing)?;
    if fresh && ctx.store.add_to_pool(file.to, &pooled) {
        used.insert(pooled);
    }
    Ok(())
}

/// Creates the parents of `target` in the layer (and `target` itself when
/// it is a directory), with the attributes they have in the parent state,
/// or 0755 and `owner` when they are new.
fn make_parents(
    node: &Node,
    checked: &mut Checked,
    root: &Path,
    target: &[String],
    parent: &View<'_>,
    target_is_dir: bool,
    owner: (u32, u32),
) -> Result<()> {
    let upto = if target_is_dir {
        target.len()
    } else {
        target.len().saturating_sub(1)
    };
    for i in 1..=upto {
        let host = host_path(root, &target[..i]);
        confined(node, checked, root, &host)?;
        if fsview::exists(&host) {
            continue;
        }
        fs::create_dir(&host).map_err(Error::io("create directory", &host))?;
        let (mode, uid, gid) = match parent.lookup(&target[..i]) {
            Some((_, meta)) if meta.is_dir() => {
                use std::os::unix::fs::MetadataExt;
                (meta.mode() & 0o7777, meta.uid(), meta.gid())
            }
            _ => (0o755, owner.0, owner.1),
        };
        sys::lchown(&host, uid, gid).map_err(Error::io("chown", &host))?;
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &host))?;
    }
    Ok(())
}

/// Gives copied entries their owner (`None`: they keep theirs), then their
/// mode. The order matters: chown(2) clears the setuid and setgid bits, so
/// the mode (the `chmod` asked for, or the entry's own when it holds those
/// bits) is set after it. Symlinks keep their mode.
fn set_owner_and_mode(sys: &dyn Sys, paths: &[PathBuf], owner: Option<(u32, u32)>, chmod: Option<u32>) -> Result<()> {
    for path in paths {
        let meta = fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
        if let Some((uid, gid)) = owner {
            sys.lchown(path, uid, gid).map_err(Error::io("chown", path))?;
        }
        if meta.file_type().is_symlink() {
            continue;
        }
        let own = meta.permissions().mode() & 0o7777;
        let mode = match chmod {
            Some(mode) => mode,
            None if own & 0o6000 != 0 => own,
            None => continue,
        };
        sys.chmod(path, mode).map_err(Error::io("chmod", path))?;
    }
    Ok(())
}

/// Refuses a destination in the layer being assembled whose directories
/// pass through a symlink: an earlier source of this copy may have put one
/// there, and writing through it would write wherever it points, on the
/// host. The check is `sys::confined::Checked` (`pathrs`, no symlink on any
/// path), each directory once. (Docker would follow such a link inside the
/// image; strata refuses.)
fn confined(node: &Node, checked: &mut Checked, root: &Path, to: &Path) -> Result<()> {
    let Ok(rel) = to.strip_prefix(root) else {
        return Err(Error::input(
            &node.origin,
            format!("`{}` is outside the layer", to.display()),
        ));
    };
    match checked.parents(rel, None) {
        Ok(None) => {
            // `to` itself is about to be (re)written: what was known of it
            // and below it no longer holds.
            checked.forget(rel);
            Ok(())
        }
        Ok(Some(link)) => Err(Error::input(
            &node.origin,
            format!(
                "copy would write `/{}` through the symlink `/{}` that an earlier source put in this layer",
                rel.display(),
                link.display()
            ),
        )),
        Err(e) => Err(Error::io("check the parents of", to)(e)),
    }
}

fn with(comps: &[String], name: &str) -> Vec<String> {
    let mut v = comps.to_vec();
    v.push(name.to_string());
    v
}

fn host_path(root: &Path, comps: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(c);
    }
    p
}

fn collect_tree(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    out.push(path.to_path_buf());
    let meta = fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
    if meta.is_dir() {
        let mut children: Vec<PathBuf> = fs::read_dir(path)
            .map_err(Error::io("read directory", path))?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()
            .map_err(Error::io("read directory", path))?;
        children.sort();
        for child in children {
            collect_tree(&child, out)?;
        }
    }
    Ok(())
}

/// Copies one context directory or symlink (files go through `place_file`).
fn copy_context_entry(to: &Path, kind: &EntryKind, mode: u32) -> Result<()> {
    match kind {
        EntryKind::Dir => {
            if !fsview::exists(to) {
                fs::create_dir(to).map_err(Error::io("create directory", to))?;
            }
        }
        EntryKind::Symlink { target } => {
            crate::layer::remove_path(to)?;
            std::os::unix::fs::symlink(target, to).map_err(Error::io("create symlink", to))?;
            return Ok(());
        }
        EntryKind::File { .. } => unreachable!("context files are placed by place_file"),
    }
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", to))
}

/// Copies a context file into the layer with its final owner, mode and
/// mtime, checking that it still has the content that was hashed when the
/// build was planned. The attributes are set through the new file's
/// descriptor; a path an earlier source put there is replaced. The time
/// spent hashing is added to `hashing`.
fn copy_verified(node: &Node, file: &ContextFile<'_>, epoch: i64, hashing: &mut std::time::Duration) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let ContextFile {
        from,
        to,
        hash,
        mode,
        owner,
    } = *file;
    let create = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(to)
    };
    let mut input = fs::File::open(from).map_err(Error::io("open", from))?;
    let mut output = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            crate::layer::remove_path(to)?;
            create()
        }
        other => other,
    }
    .map_err(Error::io("create", to))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf).map_err(Error::io("read", from))?;
        if n == 0 {
            break;
        }
        let start = std::time::Instant::now();
        hasher.update(&buf[..n]);
        *hashing += start.elapsed();
        output.write_all(&buf[..n]).map_err(Error::io("write", to))?;
    }
    if hasher.finalize().as_bytes() != hash {
        return Err(Error::input(
            &node.origin,
            format!(
                "`{}` changed while the build was reading it; run the build again",
                from.display()
            ),
        ));
    }
    // chown first: it clears setuid bits that chmod then sets.
    std::os::unix::fs::fchown(&output, Some(owner.0), Some(owner.1)).map_err(Error::io("chown", to))?;
    output
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", to))?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64);
    output
        .set_times(fs::FileTimes::new().set_accessed(at).set_modified(at))
        .map_err(Error::io("set mtime of", to))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, Recording};

    #[test]
    fn owner_comes_before_mode_and_setuid_bits_survive_the_chown() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, setuid, link) = (dir.path().join("plain"), dir.path().join("su"), dir.path().join("link"));
        fs::write(&plain, "x").unwrap();
        fs::write(&setuid, "x").unwrap();
        fs::set_permissions(&setuid, fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("plain", &link).unwrap();
        let paths = vec![plain, setuid, link];

        let sys = Recording::new(dir.path());
        set_owner_and_mode(&sys, &paths, Some((1000, 1000)), None).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::Lchown("/plain".into(), 1000, 1000),
                Call::Lchown("/su".into(), 1000, 1000),
                Call::Chmod("/su".into(), 0o4755),
                Call::Lchown("/link".into(), 1000, 1000),
            ]
        );

        let sys = Recording::new(dir.path());
        set_owner_and_mode(&sys, &paths, Some((0, 0)), Some(0o640)).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::Lchown("/plain".into(), 0, 0),
                Call::Chmod("/plain".into(), 0o640),
                Call::Lchown("/su".into(), 0, 0),
                Call::Chmod("/su".into(), 0o640),
                Call::Lchown("/link".into(), 0, 0),
            ]
        );
    }
}
