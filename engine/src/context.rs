//! The build context: selecting files for `ctx(…)`, honouring
//! `.dockerignore` (or `.strataignore`), and hashing exactly the selected
//! files (relative names, modes, contents, symlink targets; never mtimes or
//! owners). A persistent stat cache maps (path, size, mtime, ctime, inode) to
//! the content hash, so an unchanged context costs only `stat` calls.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::key::KeyEncoder;

/// strata's lock file, beside the recipe: never part of the build context.
pub const LOCK_FILE: &str = "strata.lock";

/// Why a selection failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("`{0}` is not in the build context")]
    NotFound(String),
    #[error("`{0}` matches nothing in the build context")]
    NoMatch(String),
    #[error("`{0}` is excluded by {1}")]
    Ignored(String, &'static str),
    #[error("`{0}` leaves the build context")]
    Escapes(String),
    #[error("`{path}` goes through the symlink `{link}`, which leaves the build context")]
    LinkEscapes { path: String, link: String },
    #[error("failed to read `{}` in the build context", .0.display())]
    Io(PathBuf, #[source] io::Error),
    #[error("failed to parse `{}`", .0.display())]
    IgnoreFile(PathBuf, #[source] ignore::Error),
    /// The build was cancelled while the selection was being hashed.
    #[error("interrupted")]
    Interrupted,
}

/// What a selected entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File { size: u64, hash: [u8; 32] },
    Dir,
    Symlink { target: PathBuf },
}

/// One selected file, directory or symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    /// Relative to its source (empty for the source itself).
    pub rel: PathBuf,
    pub kind: EntryKind,
    /// Permission bits (07777).
    pub mode: u32,
    /// `(device, inode)` of a file with more than one link: files of a
    /// selection that share it are hard links of each other in the layer.
    pub inode: Option<(u64, u64)>,
}

/// One path of `ctx([...])` with everything it selects.
#[derive(Clone, Debug)]
pub struct SelectedSource {
    /// As the recipe wrote it.
    pub path: String,
    /// Absolute path on the host.
    pub abs: PathBuf,
    /// True when the source is a directory (its contents are copied).
    pub is_dir: bool,
    /// The source itself first, then its tree in sorted order.
    pub entries: Vec<ContextEntry>,
}

/// A whole `ctx(...)` selection and its content hash.
#[derive(Clone, Debug)]
pub struct Selection {
    pub sources: Vec<SelectedSource>,
    pub hash: [u8; 32],
}

/// The build context directory with its ignore rules.
pub struct Context {
    root: PathBuf,
    /// `root` with its symlinks resolved: what every selected path must stay under.
    real_root: PathBuf,
    /// The rules, the file they came from, and their lines.
    ignore: Option<(Gitignore, &'static str, Vec<String>)>,
}

/// `.dockerignore` lines as rules anchored at `root` (`!` re-includes).
fn ignore_rules(root: &Path, lines: &[String]) -> Result<Gitignore, ignore::Error> {
    let mut builder = GitignoreBuilder::new(root);
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (neg, pat) = match line.strip_prefix('!') {
            Some(rest) => ("!", rest),
            None => ("", line),
        };
        let pat = pat.trim_start_matches("./");
        let anchored = if pat.starts_with('/') || pat.starts_with("**") {
            pat.to_string()
        } else {
            format!("/{pat}")
        };
        builder.add_line(None, &format!("{neg}{anchored}"))?;
    }
    builder.build()
}

impl Context {
    /// Opens the context at `root`, reading `.strataignore` or `.dockerignore`.
    pub fn open(root: &Path) -> Result<Context, SelectError> {
        Context::open_with(root, None)
    }

    /// [`Context::open`], with `ignore_file` (when given) read instead of
    /// the context's own ignore files.
    pub fn open_with(root: &Path, ignore_file: Option<&Path>) -> Result<Context, SelectError> {
        let mut ignore = None;
        let candidates: Vec<(PathBuf, &'static str)> = match ignore_file {
            Some(file) => vec![(file.to_path_buf(), "the Dockerfile's .dockerignore")],
            None => vec![
                (root.join(".strataignore"), ".strataignore"),
                (root.join(".dockerignore"), ".dockerignore"),
            ],
        };
        for (path, name) in candidates {
            if let Ok(text) = fs::read_to_string(&path) {
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                let gi = ignore_rules(root, &lines).map_err(|e| SelectError::IgnoreFile(path.clone(), e))?;
                ignore = Some((gi, name, lines));
                break;
            }
        }
        Ok(Context {
            root: root.to_path_buf(),
            real_root: fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
            ignore,
        })
    }

    /// This context with `exclude` (`.dockerignore` lines relative to
    /// `base`) after its own rules.
    fn excluding(&self, base: &Path, exclude: &[String]) -> Result<Context, SelectError> {
        let mut lines = self.ignore.as_ref().map(|(_, _, l)| l.clone()).unwrap_or_default();
        for pattern in exclude {
            let (neg, pat) = match pattern.strip_prefix('!') {
                Some(rest) => ("!", rest),
                None => ("", pattern.as_str()),
            };
            let pat = pat.trim_start_matches("./").trim_start_matches('/');
            if base.as_os_str().is_empty() {
                lines.push(format!("{neg}/{pat}"));
            } else {
                lines.push(format!("{neg}/{}/{pat}", base.display()));
            }
        }
        let gi = ignore_rules(&self.root, &lines)
            .map_err(|e| SelectError::IgnoreFile(PathBuf::from("copy's `exclude`"), e))?;
        let file = self.ignore.as_ref().map_or("the copy's `exclude`", |(_, f, _)| *f);
        Ok(Context {
            root: self.root.clone(),
            real_root: self.real_root.clone(),
            ignore: Some((gi, file, lines)),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `rel` is on the host, its directories' symlinks followed only
    /// while they stay inside the context: a link that leaves it is an
    /// error naming the link. The last component itself is not followed
    /// (a selected symlink is copied as a symlink).
    fn confined(&self, path: &str, rel: &Path) -> Result<PathBuf, SelectError> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(self.root.join(rel));
        };
        if parent.as_os_str().is_empty() {
            return Ok(self.root.join(rel));
        }
        let io = |p: &Path, e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => SelectError::NotFound(path.to_string()),
            _ => SelectError::Io(p.to_path_buf(), e),
        };
        let real_parent = fs::canonicalize(self.root.join(parent)).map_err(|e| io(&self.root.join(parent), e))?;
        if real_parent.starts_with(&self.real_root) {
            return Ok(real_parent.join(name));
        }
        // Name the first directory on the way that is a link.
        let mut walked = PathBuf::new();
        for comp in parent.components() {
            walked.push(comp);
            if fs::symlink_metadata(self.root.join(&walked)).is_ok_and(|m| m.file_type().is_symlink()) {
                break;
            }
        }
        Err(SelectError::LinkEscapes {
            path: path.to_string(),
            link: walked.display().to_string(),
        })
    }

    /// The context paths `pattern` matches (`*`, `?`, `[…]` in any
    /// component; as Docker's, a `*` matches a leading dot too), sorted,
    /// ignored entries left out.
    fn expand(&self, pattern: &str) -> Result<Vec<String>, SelectError> {
        let rel = clean_relative(pattern).ok_or_else(|| SelectError::Escapes(pattern.to_string()))?;
        let mut found: Vec<PathBuf> = vec![PathBuf::new()];
        for comp in rel.components() {
            let part = comp.as_os_str().to_string_lossy().into_owned();
            let mut next = Vec::new();
            for base in found {
                if !is_glob(&part) {
                    next.push(base.join(&part));
                    continue;
                }
                // The directory to list, its links followed only inside the context.
                let dir = if base.as_os_str().is_empty() {
                    self.root.clone()
                } else {
                    let at = self.confined(pattern, &base)?;
                    match fs::canonicalize(&at) {
                        Ok(real) if real.starts_with(&self.real_root) => real,
                        Ok(_) => {
                            return Err(SelectError::LinkEscapes {
                                path: pattern.to_string(),
                                link: base.display().to_string(),
                            })
                        }
                        Err(_) => continue,
                    }
                };
                let Ok(entries) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<(std::ffi::OsString, bool)> = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| SelectError::Io(dir.clone(), e))?;
                    let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                    names.push((entry.file_name(), is_dir));
                }
                names.sort();
                for (name, is_dir) in names {
                    let candidate = base.join(&name);
                    if glob_match(part.as_bytes(), name.as_bytes()) && !self.ignored(&candidate, is_dir) {
                        next.push(candidate);
                    }
                }
            }
            found = next;
        }
        let mut out: Vec<String> = found
            .into_iter()
            .filter(|p| fs::symlink_metadata(self.root.join(p)).is_ok())
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        out.sort();
        Ok(out)
    }

    fn ignored(&self, rel: &Path, is_dir: bool) -> bool {
        // strata's own lock file is written beside the recipe by the build
        // itself: were it in the context, `COPY .` would change once it exists.
        if rel == Path::new(LOCK_FILE) {
            return true;
        }
        match &self.ignore {
            Some((gi, _, _)) => gi.matched_path_or_any_parents(rel, is_dir).is_ignore(),
            None => false,
        }
    }

    /// Selects `paths` (relative to the context root) and hashes them.
    pub fn select(&self, paths: &[String], cache: &StatCache) -> Result<Selection, SelectError> {
        self.select_until(paths, &[], cache, &std::sync::atomic::AtomicBool::new(false))
    }

    /// [`Context::select`], stopping with [`SelectError::Interrupted`] soon
    /// after `cancel` is set (it is checked before every entry).
    pub fn select_until(
        &self,
        paths: &[String],
        exclude: &[String],
        cache: &StatCache,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Selection, SelectError> {
        let mut sources = Vec::new();
        let mut enc = KeyEncoder::new("context");
        // Patterns stand for what they match, in sorted order.
        let mut expanded = Vec::new();
        for path in paths {
            if is_glob(path) {
                let matches = self.expand(path)?;
                if matches.is_empty() {
                    return Err(SelectError::NoMatch(path.clone()));
                }
                expanded.extend(matches);
            } else {
                expanded.push(path.clone());
            }
        }
        enc.u64(expanded.len() as u64);
        let mut linked: HashMap<(u64, u64), String> = HashMap::new();
        for path in &expanded {
            let rel = clean_relative(path).ok_or_else(|| SelectError::Escapes(path.clone()))?;
            // A copy's own exclusions, as BuildKit's, are relative to each
            // source directory (a file's own directory), after the ignore file.
            let narrowed;
            let this = if exclude.is_empty() {
                self
            } else {
                let is_dir = fs::metadata(self.root.join(&rel)).is_ok_and(|m| m.is_dir());
                let base = if is_dir {
                    rel.clone()
                } else {
                    rel.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                narrowed = self.excluding(&base, exclude)?;
                &narrowed
            };
            let mut abs = this.confined(path, &rel)?;
            let mut meta = fs::symlink_metadata(&abs).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => SelectError::NotFound(path.clone()),
                _ => SelectError::Io(abs.clone(), e),
            })?;
            if meta.file_type().is_symlink() {
                // As Docker's COPY, a source that is itself a symlink is
                // followed (inside the context): its target is copied under
                // the link's name.
                let real = fs::canonicalize(&abs).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => SelectError::NotFound(path.clone()),
                    _ => SelectError::Io(abs.clone(), e),
                })?;
                if !real.starts_with(&self.real_root) {
                    return Err(SelectError::LinkEscapes {
                        path: path.clone(),
                        link: path.clone(),
                    });
                }
                meta = fs::symlink_metadata(&real).map_err(|e| SelectError::Io(real.clone(), e))?;
                abs = real;
            }
            if rel == Path::new(LOCK_FILE) {
                return Err(SelectError::Ignored(
                    path.clone(),
                    "strata (its lock file is never in the build context)",
                ));
            }
            if !rel.as_os_str().is_empty() && self.ignored(&rel, meta.is_dir()) {
                let file = self.ignore.as_ref().map(|(_, f, _)| *f).unwrap_or(".dockerignore");
                return Err(SelectError::Ignored(path.clone(), file));
            }
            if !rel.as_os_str().is_empty() && this.ignored(&rel, meta.is_dir()) {
                // Excluded by the copy itself: not selected.
                continue;
            }
            let mut entries = Vec::new();
            this.walk(&abs, &rel, PathBuf::new(), &meta, (cache, cancel), &mut entries)?;
            enc.str(path).u64(meta.is_dir() as u64).u64(entries.len() as u64);
            for e in &entries {
                enc.bytes(e.rel.as_os_str().as_bytes()).u64(e.mode as u64);
                if let Some(inode) = e.inode {
                    // A hard link to an earlier file of the selection keys as one.
                    match linked.get(&inode) {
                        Some(first) => {
                            enc.str("hardlink").str(first);
                        }
                        None => {
                            linked.insert(inode, format!("{path}/{}", e.rel.display()));
                        }
                    }
                }
                match &e.kind {
                    EntryKind::File { size, hash } => enc.str("f").u64(*size).hash(hash),
                    EntryKind::Dir => enc.str("d"),
                    EntryKind::Symlink { target } => enc.str("l").bytes(target.as_os_str().as_bytes()),
                };
            }
            sources.push(SelectedSource {
                path: path.clone(),
                abs,
                is_dir: meta.is_dir(),
                entries,
            });
        }
        Ok(Selection {
            sources,
            hash: enc.finish().0,
        })
    }

    fn walk(
        &self,
        abs: &Path,
        ctx_rel: &Path,
        rel: PathBuf,
        meta: &fs::Metadata,
        (cache, cancel): (&StatCache, &std::sync::atomic::AtomicBool),
        out: &mut Vec<ContextEntry>,
    ) -> Result<(), SelectError> {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SelectError::Interrupted);
        }
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(|e| SelectError::Io(abs.to_path_buf(), e))?;
            out.push(ContextEntry {
                rel,
                kind: EntryKind::Symlink { target },
                mode,
                inode: None,
            });
        } else if ft.is_file() {
            let hash = cache.hash_file(abs, meta).map_err(|e| match e.kind() {
                io::ErrorKind::Interrupted => SelectError::Interrupted,
                _ => SelectError::Io(abs.to_path_buf(), e),
            })?;
            out.push(ContextEntry {
                rel,
                kind: EntryKind::File { size: meta.len(), hash },
                mode,
                inode: (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
            });
        } else if ft.is_dir() {
            out.push(ContextEntry {
                rel: rel.clone(),
                kind: EntryKind::Dir,
                mode,
                inode: None,
            });
            let mut children: Vec<(std::ffi::OsString, fs::Metadata)> = Vec::new();
            for entry in fs::read_dir(abs).map_err(|e| SelectError::Io(abs.to_path_buf(), e))? {
                let entry = entry.map_err(|e| SelectError::Io(abs.to_path_buf(), e))?;
                let meta = entry.metadata().map_err(|e| SelectError::Io(entry.path(), e))?;
                children.push((entry.file_name(), meta));
            }
            children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for (name, meta) in children {
                let child_ctx_rel = ctx_rel.join(&name);
                if self.ignored(&child_ctx_rel, meta.is_dir()) {
                    continue;
                }
                self.walk(
                    &abs.join(&name),
                    &child_ctx_rel,
                    rel.join(&name),
                    &meta,
                    (cache, cancel),
                    out,
                )?;
            }
        }
        // Sockets, FIFOs and devices in a context are skipped, like Docker does.
        Ok(())
    }
}

/// True when `s` has glob wildcards.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style matching of one name: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    // One pass with one way back: to just after the last `*`, one byte
    // further into the name each time (Go's path.Match and fnmatch do the
    // same). A later `*` makes the earlier one's choices final, so the work
    // is at most the pattern's length times the name's, never exponential.
    let (mut p, mut n) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    p += 1;
                    back = Some((p, n));
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => match class(&pattern[p..], name[n]) {
                    Some((len, true)) => {
                        p += len;
                        n += 1;
                        continue;
                    }
                    Some((_, false)) => {}
                    // No closing `]`: a literal `[`.
                    None if name[n] == b'[' => {
                        p += 1;
                        n += 1;
                        continue;
                    }
                    None => {}
                },
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        match back {
            Some((after_star, from)) => {
                p = after_star;
                n = from + 1;
                back = Some((after_star, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A `[…]` class at the start of `pattern` against `c`: its length with
/// the brackets and whether `c` is in it; `None` when no `]` closes it.
fn class(pattern: &[u8], c: u8) -> Option<(usize, bool)> {
    let end = pattern.iter().skip(2).position(|&b| b == b']').map(|i| i + 2)?;
    let set = &pattern[1..end];
    let (negate, set) = match set.first() {
        Some(b'!') | Some(b'^') => (true, &set[1..]),
        _ => (false, set),
    };
    let mut hit = false;
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            hit |= set[i] <= c && c <= set[i + 2];
            i += 3;
        } else {
            hit |= set[i] == c;
            i += 1;
        }
    }
    Some((end + 1, hit != negate))
}

/// `path` relative to the context, without `.` parts; `None` if it escapes.
pub fn clean_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for comp in Path::new(path).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
        }
    }
    Some(out)
}

#[derive(Clone, Copy)]
struct StatEntry {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    hash: [u8; 32],
}

/// The persistent stat cache, shared by all contexts of a store: one small
/// file per context directory (named by the hash of its path), read the
/// first time a file of that directory is looked up and written back only
/// if it changed. A build that selects one service of a monorepo reads the
/// entries of that service's directories, not the whole cache. Safe to use
/// from several threads at once (selections are hashed in parallel).
#[derive(Default)]
pub struct StatCache {
    /// Where the shard files live; `None`: in memory only.
    dir: Option<PathBuf>,
    shards: RwLock<HashMap<PathBuf, Arc<Shard>>>,
    hashed: AtomicUsize,
    reused: AtomicUsize,
}

/// The entries of one directory, by file name.
#[derive(Default)]
struct Shard {
    entries: RwLock<HashMap<std::ffi::OsString, StatEntry>>,
    dirty: AtomicBool,
}

const STATCACHE_MAGIC: &[u8; 8] = b"strsd01\n";

impl StatCache {
    /// The cache kept in the directory `path` (made when first saved);
    /// nothing is read until a file is looked up. A missing or damaged
    /// shard is an empty one.
    pub fn load(path: &Path) -> StatCache {
        StatCache {
            dir: Some(path.to_path_buf()),
            ..StatCache::default()
        }
    }

    fn shard_path(dir: &Path, of: &Path) -> PathBuf {
        let name = blake3::hash(of.as_os_str().as_bytes()).to_hex();
        dir.join(&name[..32])
    }

    /// The shard of the directory `of`, read from disk the first time.
    fn shard(&self, of: &Path) -> Arc<Shard> {
        if let Some(shard) = self.shards.read().unwrap_or_else(|e| e.into_inner()).get(of) {
            return shard.clone();
        }
        let loaded = match &self.dir {
            Some(dir) => read_shard(&Self::shard_path(dir, of), of),
            None => HashMap::new(),
        };
        let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
        shards
            .entry(of.to_path_buf())
            .or_insert_with(|| {
                Arc::new(Shard {
                    entries: RwLock::new(loaded),
                    dirty: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Writes back, atomically, the shards that changed.
    pub fn save(&self, tmp_dir: &Path) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        let mut made = false;
        for (of, shard) in shards.iter() {
            if !shard.dirty.load(Ordering::Relaxed) {
                continue;
            }
            if !made {
                fs::create_dir_all(dir)?;
                made = true;
            }
            let entries = shard.entries.read().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::with_capacity(64 + entries.len() * 96);
            out.extend_from_slice(STATCACHE_MAGIC);
            let record = |out: &mut Vec<u8>, name: &[u8]| {
                out.extend_from_slice(&(name.len() as u32).to_le_bytes());
                out.extend_from_slice(name);
            };
            // The directory itself first: a shard is only read for its own path.
            record(&mut out, of.as_os_str().as_bytes());
            for (name, e) in entries.iter() {
                record(&mut out, name.as_bytes());
                for n in [e.size, e.mtime_ns as u64, e.ctime_ns as u64, e.ino] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
                out.extend_from_slice(&e.hash);
            }
            let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
            tmp.write_all(&out)?;
            tmp.persist(Self::shard_path(dir, of)).map_err(|e| e.error)?;
        }
        Ok(())
    }

    /// The blake3 hash of a file's content, from the cache when its stat matches.
    /// Files whose content was read and hashed in this process.
    pub fn hashed(&self) -> usize {
        self.hashed.load(Ordering::Relaxed)
    }

    /// Files whose hash came from the cache.
    pub fn reused(&self) -> usize {
        self.reused.load(Ordering::Relaxed)
    }

    pub fn hash_file(&self, abs: &Path, meta: &fs::Metadata) -> io::Result<[u8; 32]> {
        let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        let ctime_ns = meta.ctime() * 1_000_000_000 + meta.ctime_nsec();
        let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
            return hash_reader(File::open(abs)?);
        };
        let shard = self.shard(parent);
        if let Some(e) = shard.entries.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            if e.size == meta.len() && e.mtime_ns == mtime_ns && e.ctime_ns == ctime_ns && e.ino == meta.ino() {
                self.reused.fetch_add(1, Ordering::Relaxed);
                return Ok(e.hash);
            }
        }
        let hash = hash_reader(File::open(abs)?)?;
        self.hashed.fetch_add(1, Ordering::Relaxed);
        // A file modified in the last two seconds may change again within the
        // same (coarse) timestamp tick: do not trust its stat yet ("racy"
        // entries, as git calls them). A later change still moves ctime.
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(i64::MAX);
        if now_ns - mtime_ns > 2_000_000_000 {
            shard.entries.write().unwrap_or_else(|e| e.into_inner()).insert(
                name.to_os_string(),
                StatEntry {
                    size: meta.len(),
                    mtime_ns,
                    ctime_ns,
                    ino: meta.ino(),
                    hash,
                },
            );
            shard.dirty.store(true, Ordering::Relaxed);
        }
        Ok(hash)
    }
}

/// The entries of a shard file written for the directory `of`; empty when
/// it is missing, damaged or about another directory.
fn read_shard(path: &Path, of: &Path) -> HashMap<std::ffi::OsString, StatEntry> {
    let mut entries = HashMap::new();
    let Ok(bytes) = fs::read(path) else {
        return entries;
    };
    if !bytes.starts_with(STATCACHE_MAGIC) {
        return entries;
    }
    let mut rest = &bytes[8..];
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Some(a)
    };
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let Some(len) = take(4) else { return entries };
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    if take(len) != Some(of.as_os_str().as_bytes()) {
        return entries;
    }
    while let Some(len) = take(4) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let Some(n) = take(len) else { break };
        let n = std::ffi::OsString::from_vec(n.to_vec());
        let Some(fixed) = take(8 * 4 + 32) else { break };
        entries.insert(
            n,
            StatEntry {
                size: u64_of(&fixed[0..8]),
                mtime_ns: u64_of(&fixed[8..16]) as i64,
                ctime_ns: u64_of(&fixed[16..24]) as i64,
                ino: u64_of(&fixed[24..32]),
                hash: fixed[32..64].try_into().expect("32 bytes"),
            },
        );
    }
    entries
}

/// blake3 of everything `reader` yields. An interrupt stops it within one
/// read (a context may hold a file of many gigabytes).
pub fn hash_reader(mut reader: impl Read) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if crate::sys::interrupt::requested() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod glob_tests {
    use super::glob_match;
    use proptest::prelude::*;

    /// The backtracking definition the one-pass matcher must agree with.
    fn reference(pattern: &[u8], name: &[u8]) -> bool {
        match (pattern.first(), name.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&pattern[1..], name) || (!name.is_empty() && reference(pattern, &name[1..])),
            (Some(b'?'), Some(_)) => reference(&pattern[1..], &name[1..]),
            (Some(b'['), Some(&c)) => match super::class(pattern, c) {
                Some((len, hit)) => hit && reference(&pattern[len..], &name[1..]),
                None => c == b'[' && reference(&pattern[1..], &name[1..]),
            },
            (Some(&p), Some(&c)) if p == c => reference(&pattern[1..], &name[1..]),
            _ => false,
        }
    }

    #[test]
    fn a_pattern_of_many_stars_is_decided_at_once() {
        // Exponential for a backtracking matcher: 14 stars took minutes.
        let pattern = format!("{}b", "*a".repeat(14));
        let name = "a".repeat(40);
        assert!(!glob_match(pattern.as_bytes(), name.as_bytes()));
        assert!(glob_match(pattern.as_bytes(), format!("{name}b").as_bytes()));
    }

    proptest! {
        #[test]
        fn it_agrees_with_the_backtracking_definition(pattern in "[ab*?\\[\\]!-]{0,8}", name in "[ab\\[\\]-]{0,8}") {
            prop_assert_eq!(glob_match(pattern.as_bytes(), name.as_bytes()), reference(pattern.as_bytes(), name.as_bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn old(path: &Path) {
        crate::sys::set_mtime(path, 1_000_000).unwrap();
    }

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src/sub")).unwrap();
        fs::write(dir.path().join("src/a.txt"), b"a").unwrap();
        fs::write(dir.path().join("src/sub/b.txt"), b"b").unwrap();
        fs::write(dir.path().join("README"), b"r").unwrap();
        for p in ["src/a.txt", "src/sub/b.txt", "README"] {
            old(&dir.path().join(p));
        }
        dir
    }

    fn hash(dir: &Path, paths: &[&str]) -> [u8; 32] {
        let ctx = Context::open(dir).unwrap();
        let paths: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
        ctx.select(&paths, &StatCache::default()).unwrap().hash
    }

    #[test]
    fn a_source_that_is_a_symlink_is_followed_only_inside_the_context() {
        let dir = setup();
        std::os::unix::fs::symlink("src/a.txt", dir.path().join("inside")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("etc-dir")).unwrap();
        let ctx = Context::open(dir.path()).unwrap();
        let sel = ctx.select(&["inside".into()], &StatCache::default()).unwrap();
        assert_eq!(sel.sources[0].path, "inside");
        assert!(matches!(
            sel.sources[0].entries[0].kind,
            EntryKind::File { size: 1, .. }
        ));
        let err = ctx.select(&["outside".into()], &StatCache::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`outside` goes through the symlink `outside`, which leaves the build context"
        );
        // A pattern cannot list a directory a symlink leads out to.
        let err = ctx
            .select(&["etc-dir/host*".into()], &StatCache::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`etc-dir/host*` goes through the symlink `etc-dir`, which leaves the build context"
        );
    }

    #[test]
    fn the_lock_file_beside_the_recipe_is_never_in_the_context() {
        let dir = setup();
        let before = hash(dir.path(), &["."]);
        fs::write(dir.path().join("strata.lock"), "{}").unwrap();
        assert_eq!(hash(dir.path(), &["."]), before);
        let ctx = Context::open(dir.path()).unwrap();
        let err = ctx.select(&["strata.lock".into()], &StatCache::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`strata.lock` is excluded by strata (its lock file is never in the build context)"
        );
    }

    #[test]
    fn patterns_select_what_they_match_sorted_without_ignored_entries() {
        let dir = setup();
        fs::create_dir_all(dir.path().join("src/.hidden")).unwrap();
        fs::write(dir.path().join("src/.hidden/c.txt"), b"c").unwrap();
        fs::write(dir.path().join("src/sub/skip.txt"), b"s").unwrap();
        fs::write(dir.path().join(".dockerignore"), "src/sub/skip.txt\n").unwrap();
        let ctx = Context::open(dir.path()).unwrap();
        let selected = |paths: &[&str], exclude: &[&str]| -> Vec<String> {
            let paths: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
            let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
            let sel = ctx
                .select_until(&paths, &exclude, &StatCache::default(), &AtomicBool::new(false))
                .unwrap();
            sel.sources
                .iter()
                .flat_map(|s| s.entries.iter().map(move |e| format!("{}/{}", s.path, e.rel.display())))
                .collect()
        };
        // As Docker's (Go's filepath.Match), `*` matches a leading dot.
        assert_eq!(
            selected(&["src/*/*.txt"], &[]),
            vec!["src/.hidden/c.txt/", "src/sub/b.txt/"]
        );
        assert_eq!(selected(&["src/[a]*"], &[]), vec!["src/a.txt/"]);
        // A copy's own exclusions join the ignore file's.
        assert_eq!(
            selected(&["src"], &["**/b.txt", ".hidden"]),
            vec!["src/", "src/a.txt", "src/sub"]
        );
        // Relative to each source: `*.txt` is the source directory's own.
        assert_eq!(
            selected(&["src"], &["*.txt"]),
            vec!["src/", "src/.hidden", "src/.hidden/c.txt", "src/sub", "src/sub/b.txt"]
        );
        // An excluded source is not selected.
        assert_eq!(selected(&["src/a.txt", "README"], &["a.txt"]), vec!["README/"]);
        let err = ctx
            .select_until(&["nope/*".into()], &[], &StatCache::default(), &AtomicBool::new(false))
            .unwrap_err();
        assert_eq!(err.to_string(), "`nope/*` matches nothing in the build context");
    }

    #[test]
    fn content_mode_and_names_change_the_hash_but_mtime_does_not() {
        let dir = setup();
        let h0 = hash(dir.path(), &["src"]);
        crate::sys::set_mtime(&dir.path().join("src/a.txt"), 2_000_000).unwrap();
        assert_eq!(hash(dir.path(), &["src"]), h0, "mtime is not content");
        fs::write(dir.path().join("src/a.txt"), b"A").unwrap();
        let h1 = hash(dir.path(), &["src"]);
        assert_ne!(h1, h0, "content");
        fs::set_permissions(dir.path().join("src/a.txt"), fs::Permissions::from_mode(0o755)).unwrap();
        let h2 = hash(dir.path(), &["src"]);
        assert_ne!(h2, h1, "mode");
        fs::rename(dir.path().join("src/a.txt"), dir.path().join("src/c.txt")).unwrap();
        assert_ne!(hash(dir.path(), &["src"]), h2, "name");
        std::os::unix::fs::symlink("x", dir.path().join("src/l")).unwrap();
        let h3 = hash(dir.path(), &["src"]);
        fs::remove_file(dir.path().join("src/l")).unwrap();
        std::os::unix::fs::symlink("y", dir.path().join("src/l")).unwrap();
        assert_ne!(hash(dir.path(), &["src"]), h3, "symlink target");
    }

    #[test]
    fn a_cancelled_build_stops_hashing_its_context() {
        let dir = setup();
        let ctx = Context::open(dir.path()).unwrap();
        let cancel = std::sync::atomic::AtomicBool::new(true);
        let err = ctx
            .select_until(&["src".to_string()], &[], &StatCache::default(), &cancel)
            .unwrap_err();
        assert!(matches!(err, SelectError::Interrupted), "{err}");
    }

    #[test]
    fn files_outside_the_selection_do_not_change_the_hash() {
        let dir = setup();
        let h0 = hash(dir.path(), &["src"]);
        fs::write(dir.path().join("README"), b"changed").unwrap();
        fs::write(dir.path().join("new"), b"n").unwrap();
        assert_eq!(hash(dir.path(), &["src"]), h0);
    }

    #[test]
    fn dockerignore_excludes_files_from_selection_and_hash() {
        let dir = setup();
        let h0 = hash(dir.path(), &["src"]);
        fs::write(dir.path().join("src/debug.log"), b"noise").unwrap();
        assert_ne!(hash(dir.path(), &["src"]), h0);
        fs::write(dir.path().join(".dockerignore"), "src/*.log\n").unwrap();
        assert_eq!(hash(dir.path(), &["src"]), h0);
        let ctx = Context::open(dir.path()).unwrap();
        let err = ctx
            .select(&["src/debug.log".into()], &StatCache::default())
            .unwrap_err();
        assert!(matches!(err, SelectError::Ignored(..)), "{err}");
    }

    #[test]
    fn missing_and_escaping_paths_are_errors() {
        let dir = setup();
        let ctx = Context::open(dir.path()).unwrap();
        assert!(matches!(
            ctx.select(&["nope".into()], &StatCache::default()),
            Err(SelectError::NotFound(_))
        ));
        assert!(matches!(
            ctx.select(&["../x".into()], &StatCache::default()),
            Err(SelectError::Escapes(_))
        ));
    }

    #[test]
    fn an_unchanged_context_is_hashed_from_the_stat_cache() {
        let dir = setup();
        let cache_file = dir.path().join("statcache");
        let ctx = Context::open(dir.path()).unwrap();
        let cache = StatCache::load(&cache_file);
        let first = ctx.select(&["src".into(), "README".into()], &cache).unwrap().hash;
        assert_eq!((cache.hashed(), cache.reused()), (3, 0));
        cache.save(dir.path()).unwrap();

        let cache = StatCache::load(&cache_file);
        let second = ctx.select(&["src".into(), "README".into()], &cache).unwrap().hash;
        assert_eq!(second, first);
        assert_eq!((cache.hashed(), cache.reused()), (0, 3), "only stat calls");

        fs::write(dir.path().join("src/a.txt"), b"new").unwrap();
        let cache = StatCache::load(&cache_file);
        let third = ctx.select(&["src".into(), "README".into()], &cache).unwrap().hash;
        assert_ne!(third, first);
        assert_eq!(cache.hashed(), 1);
        // A file per directory; a selection reads only its directories' files.
        assert_eq!(fs::read_dir(&cache_file).unwrap().count(), 3);
        let cache = StatCache::load(&cache_file);
        ctx.select(&["src/sub".into()], &cache).unwrap();
        assert_eq!(cache.reused(), 1);
        assert_eq!(
            cache.shards.read().unwrap().len(),
            1,
            "only src/sub's entries were read"
        );
        // A damaged or foreign shard file is an empty shard, not an error.
        for shard in fs::read_dir(&cache_file).unwrap() {
            fs::write(shard.unwrap().path(), b"strsd01\n\x05\x00\x00\x00other").unwrap();
        }
        let cache = StatCache::load(&cache_file);
        assert_eq!(
            ctx.select(&["src".into(), "README".into()], &cache).unwrap().hash,
            third
        );
        assert_eq!((cache.hashed(), cache.reused()), (3, 0));
    }
}
