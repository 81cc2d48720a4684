//! `strata.lock`, next to the recipe: registry references pinned to the
//! manifest digest they resolved to, so a build keys on bytes, not on a tag
//! that moves, and any machine with the lock builds the same image.
//!
//! Native Debian bases are pinned too: every package of the resolved set
//! with its version, architecture, SHA256 and pool file name.
//!
//! ```json
//! {"version":1,"images":{"127.0.0.1:5000/team/app:1.0":"sha256:…"},
//!  "debian":{"bookworm/amd64 required: nginx":{"mirror":"http://…/debian","suite":"bookworm",…,"packages":[…]}}}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// How a build uses the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LockMode {
    /// Use pinned digests; resolve and add missing references.
    #[default]
    Use,
    /// Re-resolve every reference (`strata lock --update`).
    Update,
    /// Fail when a reference is missing or the lock names one the recipe does not use.
    Locked,
}

/// One pinned Debian package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
    pub filename: String,
    pub size: u64,
    /// The suite it came from when that is an overlay (`bookworm-security`);
    /// absent for the set's own suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
}

/// A resolved Debian package set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebianSet {
    pub mirror: String,
    pub suite: String,
    pub arch: String,
    pub variant: String,
    pub packages: Vec<LockedPackage>,
    /// The packages of the suite's base set (the variant's closure alone),
    /// which make up the first layer; the rest are a second layer on top.
    /// Absent (older locks): one layer of everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base: Vec<String>,
    /// The overlay suites read besides `suite` (`bookworm-updates`,
    /// `bookworm-security`), each with its mirror.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overlays: BTreeMap<String, String>,
}

impl DebianSet {
    /// The mirror that serves `package`: its suite's.
    pub fn mirror_of(&self, package: &LockedPackage) -> &str {
        package
            .suite
            .as_ref()
            .and_then(|s| self.overlays.get(s))
            .map_or(self.mirror.as_str(), String::as_str)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct LockFile {
    version: u32,
    #[serde(default)]
    images: BTreeMap<String, Digest>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    debian: BTreeMap<String, DebianSet>,
    /// `fetch` URLs without a checksum in the recipe: URL → content digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    urls: BTreeMap<String, Digest>,
}

#[derive(Default)]
struct LockState {
    file: LockFile,
    /// Entries the recipe used (`images` names and `debian` names).
    used: BTreeSet<String>,
    changed: bool,
}

/// The lock of one recipe, shared by the planning of a build.
pub struct Lock {
    path: PathBuf,
    mode: LockMode,
    state: Mutex<LockState>,
}

impl Lock {
    /// Reads `strata.lock` beside `recipe` (absent means empty).
    pub fn open(recipe: &Path, mode: LockMode) -> Result<Lock> {
        let path = recipe.parent().unwrap_or(Path::new(".")).join("strata.lock");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<LockFile>(&bytes).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockFile::default(),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        Ok(Lock {
            path,
            mode,
            state: Mutex::new(LockState {
                file,
                ..LockState::default()
            }),
        })
    }

    /// The lock file (which need not exist yet).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry `key` of one of the lock's maps, resolving it with
    /// `resolve` when the lock lacks it (or when updating); with `--locked`
    /// a missing entry is `missing()`.
    fn pinned<T: Clone + PartialEq>(
        &self,
        key: &str,
        map: fn(&mut LockFile) -> &mut BTreeMap<String, T>,
        resolve: impl FnOnce() -> Result<T>,
        missing: impl FnOnce() -> Error,
    ) -> Result<T> {
        let pinned = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.used.insert(key.to_string());
            map(&mut s.file).get(key).cloned()
        };
        match (pinned, self.mode) {
            (Some(v), LockMode::Use | LockMode::Locked) => Ok(v),
            (None, LockMode::Locked) => Err(missing()),
            _ => {
                let value = resolve()?;
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if map(&mut s.file).get(key) != Some(&value) {
                    map(&mut s.file).insert(key.to_string(), value.clone());
                    s.changed = true;
                }
                Ok(value)
            }
        }
    }

    /// The pinned package set called `name`, resolving it with `resolve`
    /// when the lock lacks it (or when updating).
    pub fn debian(&self, name: &str, resolve: impl FnOnce() -> Result<DebianSet>) -> Result<DebianSet> {
        self.pinned(
            name,
            |f| &mut f.debian,
            resolve,
            || {
                Error::Lock(format!(
                    "`{name}` is not pinned in `{}` (--locked); run `strata lock`",
                    self.path.display()
                ))
            },
        )
    }

    /// The pinned digest of `reference`, resolving it with `resolve` when the
    /// lock lacks it (or when updating).
    pub fn digest(&self, reference: &str, resolve: impl FnOnce() -> Result<Digest>) -> Result<Digest> {
        self.pinned(
            reference,
            |f| &mut f.images,
            resolve,
            || Error::BadImage {
                what: reference.into(),
                reason: format!("not pinned in `{}` (--locked); run `strata lock`", self.path.display()),
            },
        )
    }

    /// The pinned digest of what `url` serves, fetching it with `resolve`
    /// when the lock lacks it (or when updating).
    pub fn url(&self, url: &str, resolve: impl FnOnce() -> Result<Digest>) -> Result<Digest> {
        self.pinned(
            url,
            |f| &mut f.urls,
            resolve,
            || {
                Error::Lock(format!(
                    "`{url}` is not pinned in `{}` (--locked); run `strata lock`",
                    self.path.display()
                ))
            },
        )
    }

    /// One line per pin, for `strata lock`: a registry base and its
    /// digest, a `debian()` set (suite, architecture, variant, how many
    /// packages, mirror), a fetched URL and its digest.
    pub fn summary(&self) -> Vec<String> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (reference, digest) in &s.file.images {
            out.push(format!("image   {reference}  {digest}"));
        }
        for (name, set) in &s.file.debian {
            out.push(format!(
                "debian  {name}: {} {} ({}), {} packages from {}",
                set.suite,
                set.arch,
                set.variant,
                set.packages.len(),
                set.mirror
            ));
        }
        for (url, digest) in &s.file.urls {
            out.push(format!("url     {url}  {digest}"));
        }
        out
    }

    /// After planning: with `--locked`, entries the recipe no longer uses are
    /// an error; otherwise a changed lock is written (unused entries dropped
    /// when updating).
    pub fn finish(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let unused: Vec<String> = s
            .file
            .images
            .keys()
            .chain(s.file.debian.keys())
            .chain(s.file.urls.keys())
            .filter(|k| !s.used.contains(*k))
            .cloned()
            .collect();
        match self.mode {
            LockMode::Locked if !unused.is_empty() => {
                return Err(Error::Lock(format!(
                    "`{}` is stale (--locked): it pins {} which the recipe does not use; run `strata lock --update`",
                    self.path.display(),
                    unused.join(", ")
                )))
            }
            LockMode::Update if !unused.is_empty() => {
                for k in unused {
                    s.file.images.remove(&k);
                    s.file.debian.remove(&k);
                    s.file.urls.remove(&k);
                }
                s.changed = true;
            }
            _ => {}
        }
        if s.changed {
            s.file.version = 1;
            let bytes = serde_json::to_vec_pretty(&s.file).expect("lock serialises");
            let tmp = self.path.with_extension("lock.tmp");
            std::fs::write(&tmp, [bytes, b"\n".to_vec()].concat()).map_err(Error::io("write", &tmp))?;
            std::fs::rename(&tmp, &self.path).map_err(Error::io("write", &self.path))?;
            s.changed = false;
        }
        Ok(())
    }
}
