//! `strata.lock`, next to the recipe: registry references pinned to the
//! manifest digest they resolved to, so a build keys on bytes, not on a tag
//! that moves, and any machine with the lock builds the same image.
//!
//! ```json
//! {"version":1,"images":{"127.0.0.1:5000/team/app:1.0":"sha256:…"}}
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

#[derive(Default, Serialize, Deserialize)]
struct LockFile {
    version: u32,
    images: BTreeMap<String, Digest>,
}

/// The lock of one recipe, shared by the planning of a build.
pub struct Lock {
    path: PathBuf,
    mode: LockMode,
    state: Mutex<(BTreeMap<String, Digest>, BTreeSet<String>, bool)>,
}

impl Lock {
    /// Reads `strata.lock` beside `recipe` (absent means empty).
    pub fn open(recipe: &Path, mode: LockMode) -> Result<Lock> {
        let path = recipe.parent().unwrap_or(Path::new(".")).join("strata.lock");
        let images = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<LockFile>(&bytes)
                    .map_err(|source| Error::Json {
                        path: path.clone(),
                        source,
                    })?
                    .images
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        Ok(Lock {
            path,
            mode,
            state: Mutex::new((images, BTreeSet::new(), false)),
        })
    }

    /// The pinned digest of `reference`, resolving it with `resolve` when the
    /// lock lacks it (or when updating).
    pub fn digest(&self, reference: &str, resolve: impl FnOnce() -> Result<Digest>) -> Result<Digest> {
        let pinned = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.1.insert(reference.to_string());
            s.0.get(reference).cloned()
        };
        match (pinned, self.mode) {
            (Some(d), LockMode::Use | LockMode::Locked) => Ok(d),
            (None, LockMode::Locked) => Err(Error::BadImage {
                what: reference.into(),
                reason: format!("not pinned in `{}` (--locked); run `strata lock`", self.path.display()),
            }),
            _ => {
                let digest = resolve()?;
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.0.get(reference) != Some(&digest) {
                    s.0.insert(reference.to_string(), digest.clone());
                    s.2 = true;
                }
                Ok(digest)
            }
        }
    }

    /// After planning: with `--locked`, entries the recipe no longer uses are
    /// an error; otherwise a changed lock is written (unused entries dropped
    /// when updating).
    pub fn finish(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let unused: Vec<String> = s.0.keys().filter(|k| !s.1.contains(*k)).cloned().collect();
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
                    s.0.remove(&k);
                }
                s.2 = true;
            }
            _ => {}
        }
        if s.2 {
            let bytes = serde_json::to_vec_pretty(&LockFile {
                version: 1,
                images: s.0.clone(),
            })
            .expect("lock serialises");
            let tmp = self.path.with_extension("lock.tmp");
            std::fs::write(&tmp, [bytes, b"\n".to_vec()].concat()).map_err(Error::io("write", &tmp))?;
            std::fs::rename(&tmp, &self.path).map_err(Error::io("write", &self.path))?;
            s.2 = false;
        }
        Ok(())
    }
}
