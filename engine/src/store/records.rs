//! Node records (key → the layers and config a node produced, written
//! atomically) and the pool of copied context files that copies hardlink
//! into their layers.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{read_json, Store};
use crate::digest::{Digest, NodeKey};
use crate::error::Result;
use crate::image::{self, ImageConfig};
use crate::sys;

/// One layer as a node result refers to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub diff_id: Digest,
}

/// What a node produced, stored under its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Layers the node adds (one for copy/run, all of a base's).
    pub layers: Vec<LayerRef>,
    /// A base image's config; `None` for copy and run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
    /// For a result a remote cache gave: the whole state after the node and
    /// its effective key, so a later build here needs nothing below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
}

/// The state after a node restored from a remote cache, and its effective key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Restored {
    pub state: ImageConfig,
    /// 64 hex digits.
    pub key: String,
}

impl Store {
    /// Where a file with this content and these attributes lives in the pool.
    pub fn pool_file(&self, hash: &[u8; 32], mode: u32, uid: u32, gid: u32, mtime: i64) -> PathBuf {
        let hex = hex::encode(hash);
        self.root
            .join("files")
            .join(&hex[..2])
            .join(format!("{hex}-{mode:o}-{uid}-{gid}-{mtime}"))
    }

    /// True when the pool is known to hold `pooled`. Each shard directory
    /// is listed once per process, so probing a file the pool lacks costs
    /// no system call (an empty store's build would otherwise fail one
    /// `linkat` per file). A pool file that disappeared since only makes
    /// the caller's link fail; one another process added since is missed,
    /// and that costs a copy.
    pub fn pool_has(&self, pooled: &Path) -> bool {
        let (Some(dir), Some(name)) = (pooled.parent(), pooled.file_name()) else {
            return false;
        };
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let shard = pool
            .entry(dir.to_path_buf())
            .or_insert_with(|| match fs::read_dir(dir) {
                Ok(entries) => Some(entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect()),
                Err(_) => None,
            });
        shard.as_ref().is_some_and(|names| names.contains(name))
    }

    /// Adds `file` (already carrying the pool entry's attributes) to the pool
    /// under `pooled`; true when `file` is now the pool's copy. A link is
    /// atomic and never replaces an existing pool file (layers may link to it).
    pub fn add_to_pool(&self, file: &Path, pooled: &Path) -> bool {
        let (Some(dir), Some(name)) = (pooled.parent(), pooled.file_name()) else {
            return false;
        };
        let known = {
            let pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.get(dir).is_some_and(|shard| shard.is_some())
        };
        if !known && fs::create_dir_all(dir).is_err() {
            return false;
        }
        // The link itself outside the lock: copies running in parallel share it.
        let ok = fs::hard_link(file, pooled).is_ok();
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let shard = pool.entry(dir.to_path_buf()).or_default();
        if ok {
            shard.get_or_insert_with(Default::default).insert(name.to_os_string());
        } else if shard.is_none() {
            // Listed before the directory existed: list it when next probed.
            pool.remove(dir);
        }
        ok
    }

    // ---- records ----

    fn record_path(&self, key: &NodeKey) -> PathBuf {
        self.root.join("records").join(format!("{}.json", key.hex()))
    }

    /// The record of a node key, if it exists and everything it names is present.
    pub fn record(&self, key: &NodeKey) -> Result<Option<Record>> {
        let path = self.record_path(key);
        if !path.exists() {
            return Ok(None);
        }
        // A damaged record is a miss: the node is built again and its record
        // rewritten (`strata check` reports it meanwhile).
        let Ok(record) = read_json::<Record>(&path) else {
            return Ok(None);
        };
        if record.layers.iter().all(|l| self.has_layer(&l.diff_id)) {
            // Used now: `gc --keep-days` counts from the last use.
            let _ = sys::touch(&path);
            Ok(Some(record))
        } else {
            Ok(None)
        }
    }

    pub fn put_record(&self, key: &NodeKey, record: &Record) -> Result<()> {
        self.write_atomic(&self.record_path(key), &image::to_json(record))
    }

    // ---- images (index.json) ----
}
