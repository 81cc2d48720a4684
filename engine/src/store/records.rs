//! Node records (key → the layers and config a node produced, written
//! atomically) and the pool of copied context files that copies hardlink
//! into their layers.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{rand_u64, read_json, Store};
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

    /// Adds `file` (already carrying the pool entry's attributes) to the pool
    /// under `pooled`; true when `file` is now the pool's copy.
    pub fn add_to_pool(&self, file: &Path, pooled: &Path) -> bool {
        let Some(dir) = pooled.parent() else { return false };
        if fs::create_dir_all(dir).is_err() {
            return false;
        }
        let tmp = dir.join(format!(".{}-{:x}", std::process::id(), rand_u64()));
        if fs::hard_link(file, &tmp).is_err() {
            return false;
        }
        // Never replace an existing pool file: layers may link to it.
        let ok = fs::hard_link(&tmp, pooled).is_ok();
        let _ = fs::remove_file(&tmp);
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
