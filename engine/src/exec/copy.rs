//! The copy executor: files from the build context or from another state
//! into a new layer, with Docker's COPY habits (a directory copies its
//! contents, a `dst` ending in `/` is a directory, parents are created with
//! the attributes they have in the parent state, files are `0:0` unless
//! `chown`). Unchanged context files come hardlinked from the store's pool.
//! The layer is assembled through the confined writer (`sys::confined::Tree`):
//! no write passes through a symlink an earlier source put in the layer,
//! and an inode shared with the pool is never changed in place.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::{Executor, Inputs};
use crate::context::EntryKind;
use crate::error::{Error, Result};
use crate::fsview::{self, join_image_path, View};
use crate::graph::{CopyOp, CopySource, Node, Op};
use crate::step::ExecCtx;
use crate::store::{Record, State};
use crate::sys::confined::{self, Attrs, Policy, Tree};

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

/// The error of a confined write at `rel`: a way through a symlink (or a
/// file) an earlier source put in this layer is named; the byte limit says
/// so; the rest is I/O.
fn refused(node: &Node, tree: &mut Tree, rel: &Path, e: io::Error) -> Error {
    if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
        let mut at = PathBuf::new();
        for comp in rel.parent().unwrap_or(Path::new("")).components() {
            at.push(comp);
            if let Ok(Some(st)) = tree.stat(&at) {
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    return Error::input(
                        &node.origin,
                        format!(
                            "copy would write `/{}` through the symlink `/{}` that an earlier source put in this layer",
                            rel.display(),
                            at.display()
                        ),
                    );
                }
            }
        }
    }
    if confined::too_large(&e).is_some() {
        return Error::input(&node.origin, format!("copy to `/{}`: {e}", rel.display()));
    }
    Error::io("write", tree.path().join(rel))(e)
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
    let limit = confined::extract_limit(&root);
    let mut tree = Tree::create(&root, 0o755, Policy::image(limit)).map_err(Error::io("create", &root))?;
    let mut copied: Vec<PathBuf> = Vec::new();
    // Store files already linked into this layer (each may appear once per layer).
    let mut shared_files: HashSet<PathBuf> = HashSet::new();
    // Where the first of each group of hard-linked context files landed.
    let mut hard_linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // What each file this copy put in the layer came from: two different
    // sources at one destination are an error, never the last one winning.
    let mut placed: HashMap<PathBuf, String> = HashMap::new();

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
                    make_parents(node, &mut tree, &dst_comps, &parent_view, true, owner)?;
                    super::extract::unpack(node, &src.abs, &kind, &mut tree, &rel(&dst_comps))?;
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
                make_parents(node, &mut tree, &target, &parent_view, src.is_dir, owner)?;
                // Where each directory of the source lands: through the
                // parent image's symlinks, as the destination itself.
                let mut landed: HashMap<PathBuf, Vec<String>> = HashMap::from([(PathBuf::new(), target.clone())]);
                for entry in &src.entries {
                    if skip_root && entry.rel.as_os_str().is_empty() {
                        continue;
                    }
                    let (from, to) = if entry.rel.as_os_str().is_empty() {
                        (src.abs.clone(), rel(&target))
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
                                make_parents(node, &mut tree, &resolved, &parent_view, true, owner)?;
                                comps = resolved;
                            }
                            landed.insert(entry.rel.clone(), comps.clone());
                        }
                        (src.abs.join(&entry.rel), rel(&comps))
                    };
                    ctx.check_cancel()?;
                    let existing = tree.stat(&to).map_err(|e| refused(node, &mut tree, &to, e))?;
                    if entry.kind == EntryKind::Dir
                        && existing.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
                    {
                        // A directory onto a link an earlier source left: its
                        // attributes would be set on whatever the link points at.
                        let at = to.display();
                        return Err(Error::input(&node.origin,
                            format!("copy would put the directory `/{at}` onto the symlink `/{at}` that an earlier source put in this layer"),
                        ));
                    }
                    if entry.kind != EntryKind::Dir {
                        let shown = if entry.rel.as_os_str().is_empty() {
                            src.path.clone()
                        } else {
                            format!("{}/{}", src.path.trim_end_matches('/'), entry.rel.display())
                        };
                        claim(node, &mut placed, &to, shown)?;
                    }
                    if let EntryKind::File { hash, .. } = &entry.kind {
                        // Hard links among the sources stay hard links, as BuildKit keeps them.
                        if let Some(first) = entry.inode.and_then(|i| hard_linked.get(&i)) {
                            tree.hardlink(&to, first)
                                .map_err(|e| refused(node, &mut tree, &to, e))?;
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
                        place_file(ctx, node, &mut tree, &file, &mut shared_files, &mut hashing)?;
                        if let Some(inode) = entry.inode {
                            hard_linked.insert(inode, to.clone());
                        }
                        continue;
                    }
                    copy_context_entry(&mut tree, &to, &entry.kind, entry.mode)
                        .map_err(|e| refused(node, &mut tree, &to, e))?;
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
            make_parents(node, &mut tree, &target, &parent_view, false, owner)?;
            let to = rel(&target);
            let from = super::fetch::path(ctx.store, &digest);
            // As Docker's ADD of a URL: readable by its owner alone, unless chmod says.
            let attrs = Attrs::new(copy.chmod.unwrap_or(0o600), owner.0, owner.1);
            tree.copy_from(&to, &from, attrs)
                .map_err(|e| refused(node, &mut tree, &to, e))?;
        }
        CopySource::Text { content } => {
            if dst_is_dir {
                return Err(Error::input(
                    &node.origin,
                    format!("text() needs a file destination, not the directory `{}`", copy.dst),
                ));
            }
            make_parents(node, &mut tree, &dst_comps, &parent_view, false, owner)?;
            let to = rel(&dst_comps);
            let attrs = Attrs::new(copy.chmod.unwrap_or(0o644), owner.0, owner.1);
            tree.write(&to, &mut content.as_bytes(), attrs)
                .map_err(|e| refused(node, &mut tree, &to, e))?;
        }
        CopySource::Mkdir => {
            make_parents(node, &mut tree, &dst_comps, &parent_view, true, owner)?;
            if let Some(mode) = copy.chmod {
                let to = rel(&dst_comps);
                chmod(&mut tree, &to, mode).map_err(|e| refused(node, &mut tree, &to, e))?;
            }
        }
        CopySource::State { node: from, path } => {
            let source = &states[from];
            let dirs = source.layer_dirs(ctx.store);
            let view = View { layers: &dirs };
            // What to copy: the path, or every match of a glob (each
            // matched file under its name, a matched directory's contents),
            // with the path as matched (for `parents`).
            let sources: Vec<(Vec<String>, String, Vec<String>)> = if fsview::is_glob(path) {
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
                    let comps = view
                        .resolve(&format!("/{}", m.join("/")), true)
                        .unwrap_or_else(|| m.clone());
                    out.push((comps, name, m));
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
                vec![(comps, written, fsview::components(path))]
            };
            let staging = tmp.path().join("staged");
            for (comps, written, matched) in sources {
                let (_, meta) = view.lookup(&comps).ok_or_else(|| {
                    Error::input(&node.origin, format!("`{path}` does not exist in the source state"))
                })?;
                let target = if copy.parents {
                    // `parents`: the path as matched, under the destination.
                    let mut t = dst_comps.clone();
                    t.extend(matched.iter().cloned());
                    t
                } else if meta.is_dir() || !dst_is_dir {
                    dst_comps.clone()
                } else {
                    with(&dst_comps, &written)
                };
                make_parents(node, &mut tree, &target, &parent_view, meta.is_dir(), owner)?;
                let to = rel(&target);
                // Staged first (the confined writer, the copy's limit), then
                // merged in: a directory into a directory, anything else
                // where this copy put nothing yet.
                crate::layer::remove_path(&staging)?;
                let mut staged =
                    Tree::create(&staging, 0o700, Policy::image(limit)).map_err(Error::io("create", &staging))?;
                let shown = format!("/{}", matched.join("/"));
                if meta.is_dir() {
                    view.materialize(&comps, &mut staged, Path::new(""))?;
                    for name in staged
                        .list(Path::new(""))
                        .map_err(Error::io("read directory", &staging))?
                    {
                        let from = PathBuf::from(&name);
                        let source = format!("{}/{}", shown.trim_end_matches('/'), name.to_string_lossy());
                        merge(
                            node,
                            &mut tree,
                            &mut staged,
                            &from,
                            &to.join(&name),
                            &source,
                            &mut placed,
                            &mut copied,
                        )?;
                    }
                } else {
                    view.materialize(&comps, &mut staged, Path::new(&written))?;
                    merge(
                        node,
                        &mut tree,
                        &mut staged,
                        Path::new(&written),
                        &to,
                        &shown,
                        &mut placed,
                        &mut copied,
                    )?;
                }
            }
        }
    }

    let entry_owner = match &copy.source {
        CopySource::Context { .. } => Some(owner),
        CopySource::State { .. } | CopySource::Mkdir | CopySource::Fetch { .. } | CopySource::Text { .. } => chown,
    };
    set_owner_and_mode(node, &mut tree, &copied, entry_owner, copy.chmod)?;
    drop(tree);
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

/// A context file on its way into a layer: where it is, where it goes (in
/// the layer), the content hash planning found, and the mode and owner it gets.
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
    tree: &mut Tree,
    file: &ContextFile<'_>,
    used: &mut HashSet<PathBuf>,
    hashing: &mut std::time::Duration,
) -> Result<()> {
    let epoch = ctx.opts.epoch;
    let pooled = ctx
        .store
        .pool_file(file.hash, file.mode, file.owner.0, file.owner.1, epoch);
    let fresh = !used.contains(&pooled);
    if fresh && ctx.store.pool_has(&pooled) && tree.link_from(file.to, &pooled).unwrap_or(false) {
        used.insert(pooled);
        return Ok(());
    }
    copy_verified(node, tree, file, epoch, hashing)?;
    if fresh && ctx.store.add_to_pool(&tree.path().join(file.to), &pooled) {
        // From now on the store's too: never to be changed in place.
        tree.share(file.to).map_err(|e| refused(node, tree, file.to, e))?;
        used.insert(pooled);
    }
    Ok(())
}

/// Creates the parents of `target` in the layer (and `target` itself when
/// it is a directory), with the attributes they have in the parent state,
/// or 0755 and `owner` when they are new.
fn make_parents(
    node: &Node,
    tree: &mut Tree,
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
        let at = rel(&target[..i]);
        if tree.stat(&at).map_err(|e| refused(node, tree, &at, e))?.is_some() {
            continue;
        }
        let (mode, uid, gid) = match parent.lookup(&target[..i]) {
            Some((_, meta)) if meta.is_dir() => {
                use std::os::unix::fs::MetadataExt;
                (meta.mode() & 0o7777, meta.uid(), meta.gid())
            }
            _ => (0o755, owner.0, owner.1),
        };
        tree.dir(&at, Attrs::new(mode, uid, gid))
            .map_err(|e| refused(node, tree, &at, e))?;
    }
    Ok(())
}

/// Sets the mode of `rel`, keeping its owner.
fn chmod(tree: &mut Tree, rel: &Path, mode: u32) -> io::Result<()> {
    let st = tree
        .stat(rel)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    tree.set_attrs(rel, Attrs::new(mode, st.st_uid, st.st_gid))
}

/// The attributes a copied entry ends with: `owner` (`None`: its own), and
/// the `chmod` asked for, else its own mode. Both are set at once (owner
/// first: chown(2) clears setuid and setgid bits, which the mode then
/// sets again). Symlinks keep their mode.
fn final_attrs(st: &nix::sys::stat::FileStat, owner: Option<(u32, u32)>, chmod: Option<u32>) -> Option<Attrs> {
    if owner.is_none() && chmod.is_none() {
        return None;
    }
    let (uid, gid) = owner.unwrap_or((st.st_uid, st.st_gid));
    let mode = match chmod {
        Some(mode) if st.st_mode & libc::S_IFMT != libc::S_IFLNK => mode,
        _ => st.st_mode & 0o7777,
    };
    Some(Attrs::new(mode, uid, gid))
}

/// Gives copied entries their owner (`None`: they keep theirs) and mode.
fn set_owner_and_mode(
    node: &Node,
    tree: &mut Tree,
    paths: &[PathBuf],
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
) -> Result<()> {
    for path in paths {
        let st = tree
            .stat(path)
            .map_err(|e| refused(node, tree, path, e))?
            .ok_or_else(|| Error::io("stat", tree.path().join(path))(io::Error::from_raw_os_error(libc::ENOENT)))?;
        if let Some(attrs) = final_attrs(&st, owner, chmod) {
            tree.set_attrs(path, attrs).map_err(|e| refused(node, tree, path, e))?;
        }
    }
    Ok(())
}

/// Records that `source` put the file at `to`; a different source already
/// there is an error naming both.
fn claim(node: &Node, placed: &mut HashMap<PathBuf, String>, to: &Path, source: String) -> Result<()> {
    match placed.get(to) {
        Some(earlier) if *earlier != source => Err(Error::input(
            &node.origin,
            format!(
                "copy puts `{earlier}` and `{source}` at one place, `/{}`: give each its own destination",
                to.display()
            ),
        )),
        _ => {
            placed.insert(to.to_path_buf(), source);
            Ok(())
        }
    }
}

/// Moves the staged entry `from` to `to` in the layer: a directory merges
/// into one there (entry by entry), anything else takes the place, unless
/// an earlier source of this copy put something different there. Every
/// entry moved is added to `copied` and to `placed`.
#[allow(clippy::too_many_arguments)]
fn merge(
    node: &Node,
    tree: &mut Tree,
    staged: &mut Tree,
    from: &Path,
    to: &Path,
    source: &str,
    placed: &mut HashMap<PathBuf, String>,
    copied: &mut Vec<PathBuf>,
) -> Result<()> {
    let shown = staged.path().join(from);
    let st = staged
        .stat(from)
        .map_err(Error::io("stat", &shown))?
        .ok_or_else(|| Error::io("stat", &shown)(io::Error::from_raw_os_error(libc::ENOENT)))?;
    let is_dir = |mode: u32| mode & libc::S_IFMT == libc::S_IFDIR;
    let there = tree.stat(to).map_err(|e| refused(node, tree, to, e))?;
    if let Some(existing) = there {
        if is_dir(st.st_mode) && is_dir(existing.st_mode) {
            for name in staged.list(from).map_err(Error::io("read directory", &shown))? {
                let child = format!("{}/{}", source.trim_end_matches('/'), name.to_string_lossy());
                merge(
                    node,
                    tree,
                    staged,
                    &from.join(&name),
                    &to.join(&name),
                    &child,
                    placed,
                    copied,
                )?;
            }
            // The later source's directory attributes, as a copy over it gives.
            tree.set_attrs(
                to,
                Attrs::new(st.st_mode & 0o7777, st.st_uid, st.st_gid).at(st.st_mtime),
            )
            .map_err(|e| refused(node, tree, to, e))?;
            return Ok(());
        }
        if let Some(earlier) = placed.get(to) {
            return Err(Error::input(
                &node.origin,
                format!(
                    "copy puts `{earlier}` and `{source}` at one place, `/{}`: give each its own destination",
                    to.display()
                ),
            ));
        }
    }
    tree.take(to, staged, from).map_err(|e| refused(node, tree, to, e))?;
    let mut moved = Vec::new();
    collect_tree(tree, to, &mut moved).map_err(|e| refused(node, tree, to, e))?;
    for entry in &moved {
        let suffix = entry.strip_prefix(to).unwrap_or(Path::new(""));
        let from_source = match suffix.as_os_str().is_empty() {
            true => source.to_string(),
            false => format!("{}/{}", source.trim_end_matches('/'), suffix.display()),
        };
        placed.insert(entry.clone(), from_source);
    }
    copied.extend(moved);
    Ok(())
}

fn with(comps: &[String], name: &str) -> Vec<String> {
    let mut v = comps.to_vec();
    v.push(name.to_string());
    v
}

/// An image path's components as a path relative to the layer's root.
fn rel(comps: &[String]) -> PathBuf {
    comps.iter().collect()
}

/// `rel` and everything below it, parents first, children sorted.
fn collect_tree(tree: &mut Tree, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    out.push(rel.to_path_buf());
    let is_dir = tree
        .stat(rel)?
        .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    if is_dir {
        for name in tree.list(rel)? {
            collect_tree(tree, &rel.join(name), out)?;
        }
    }
    Ok(())
}

/// Copies one context directory or symlink (files go through `place_file`).
fn copy_context_entry(tree: &mut Tree, to: &Path, kind: &EntryKind, mode: u32) -> io::Result<()> {
    match kind {
        EntryKind::Dir => {
            let st = tree.stat(to)?;
            match st {
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => chmod(tree, to, mode),
                _ => tree.dir(to, Attrs::new(mode, 0, 0)),
            }
        }
        EntryKind::Symlink { target } => tree.symlink(to, target.as_os_str(), Attrs::new(0o777, 0, 0)),
        EntryKind::File { .. } => unreachable!("context files are placed by place_file"),
    }
}

/// Copies a context file into the layer with its final owner, mode and
/// mtime, checking that it still has the content that was hashed when the
/// build was planned. A path an earlier source put there is replaced. The
/// time spent hashing is added to `hashing`.
fn copy_verified(
    node: &Node,
    tree: &mut Tree,
    file: &ContextFile<'_>,
    epoch: i64,
    hashing: &mut std::time::Duration,
) -> Result<()> {
    let ContextFile {
        from,
        to,
        hash,
        mode,
        owner,
    } = *file;
    let input = std::fs::File::open(from).map_err(Error::io("open", from))?;
    let mut hashed = Hashing {
        inner: input,
        hasher: blake3::Hasher::new(),
        time: std::time::Duration::ZERO,
    };
    let attrs = Attrs::new(mode, owner.0, owner.1).at(epoch.max(0));
    tree.write(to, &mut hashed, attrs)
        .map_err(|e| refused(node, tree, to, e))?;
    *hashing += hashed.time;
    if hashed.hasher.finalize().as_bytes() != hash {
        return Err(Error::input(
            &node.origin,
            format!(
                "`{}` changed while the build was reading it; run the build again",
                from.display()
            ),
        ));
    }
    Ok(())
}

/// A reader that hashes what passes through it (blake3), timing the hashing.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    time: std::time::Duration,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let start = std::time::Instant::now();
        self.hasher.update(&buf[..n]);
        self.time += start.elapsed();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn owner_comes_with_the_mode_and_setuid_bits_survive_the_chown() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = Tree::open(dir.path(), Policy::image(1 << 20)).unwrap();
        tree.write(Path::new("plain"), &mut &b"x"[..], Attrs::new(0o644, 0, 0))
            .unwrap();
        tree.write(Path::new("su"), &mut &b"x"[..], Attrs::new(0o4755, 0, 0))
            .unwrap();
        tree.symlink(Path::new("link"), "plain".as_ref(), Attrs::new(0o777, 0, 0))
            .unwrap();
        let paths = vec![PathBuf::from("plain"), PathBuf::from("su"), PathBuf::from("link")];
        let node = crate::graph::Node {
            op: Op::Scratch,
            parent: None,
            origin: Default::default(),
            description: String::new(),
            platform: crate::image::Platform::host(),
        };
        let meta = |n: &str| std::fs::symlink_metadata(dir.path().join(n)).unwrap();
        set_owner_and_mode(&node, &mut tree, &paths, Some((1000, 1000)), None).unwrap();
        assert_eq!((meta("plain").uid(), meta("plain").mode() & 0o7777), (1000, 0o644));
        assert_eq!(
            (meta("su").uid(), meta("su").permissions().mode() & 0o7777),
            (1000, 0o4755)
        );
        assert_eq!(meta("link").uid(), 1000);
        set_owner_and_mode(&node, &mut tree, &paths, Some((0, 0)), Some(0o640)).unwrap();
        assert_eq!((meta("plain").uid(), meta("plain").mode() & 0o7777), (0, 0o640));
        assert_eq!((meta("su").uid(), meta("su").mode() & 0o7777), (0, 0o640));
        assert_eq!(meta("link").uid(), 0);
    }
}
