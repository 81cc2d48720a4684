//! The remote cache: `--cache-from` lookups (and results restored earlier) walked from the targets down,
//! lazy downloads of the layers a hit left behind, and `--cache-to` pushes
//! of every node result a cache repository lacks.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::{Outcome, Plan, Scheduler};
use crate::digest::{Digest, NodeKey};
use crate::error::Result;
use crate::events::Event;
use crate::graph::NodeId;
use crate::image::Descriptor;
use crate::registry::Reference;
use crate::store::State;

/// Where layers of restored states can be downloaded from, by diff id.
#[derive(Default)]
pub struct Remote {
    layers: Mutex<HashMap<Digest, (Reference, Descriptor)>>,
}

/// A node key from its 64 hex digits.
fn parse_key(hex: &str) -> Option<NodeKey> {
    let bytes = hex::decode(hex).ok()?;
    Some(NodeKey(<[u8; 32]>::try_from(bytes).ok()?))
}

impl Scheduler<'_> {
    /// Walks from the targets' final nodes down: a node whose result is
    /// neither restored here earlier (a record with its whole state) nor in
    /// a `--cache-from` repository needs its inputs; such a hit does not, so
    /// nothing below it is looked at. Returns the nodes still to process (in
    /// order); hits among them carry their restored state.
    pub(super) fn restore(&self, plan: &Plan, nodes: &[NodeId]) -> Vec<NodeId> {
        if self.opts.no_cache {
            return nodes.to_vec();
        }
        // The targets' nodes (a target's state may also feed another target),
        // and whatever no other node needs.
        let inputs_of_others: HashSet<NodeId> = nodes.iter().flat_map(|&i| self.graph.node(i).inputs()).collect();
        let targets: HashSet<NodeId> = self
            .graph
            .targets
            .iter()
            .filter_map(|t| match t.kind {
                crate::graph::TargetKind::Image { node, .. } | crate::graph::TargetKind::Artifact { node, .. } => {
                    Some(node)
                }
                crate::graph::TargetKind::Group { .. } => None,
            })
            .collect();
        let mut needed: HashSet<NodeId> = nodes
            .iter()
            .copied()
            .filter(|i| targets.contains(i) || !inputs_of_others.contains(i))
            .collect();
        let mut keep = Vec::new();
        for &id in nodes.iter().rev() {
            if !needed.contains(&id) {
                continue;
            }
            keep.push(id);
            let node = self.graph.node(id);
            let key = plan.keys[id].expect("planned");
            let local = self.store.record(&key).ok().flatten();
            // A result an earlier `--cache-from` build restored here carries
            // its whole state: nothing below it is needed either.
            if let Some(state) = local.as_ref().and_then(|r| self.restored_state(r)) {
                self.restored
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, state);
                continue;
            }
            if node.makes_layer() && local.is_none() && !self.opts.cache_from.is_empty() {
                if let Some(state) = self.remote_lookup(&key) {
                    self.restored
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, state);
                    continue;
                }
            }
            needed.extend(node.inputs());
        }
        keep.reverse();
        keep
    }

    /// The state a restored record carries, when every layer of it is here
    /// (or can be downloaded from where this build found it).
    fn restored_state(&self, record: &crate::store::Record) -> Option<(State, NodeKey)> {
        let restored = record.restored.as_ref()?;
        let remote = self.remote.layers.lock().unwrap_or_else(|e| e.into_inner());
        let complete = restored
            .state
            .rootfs
            .diff_ids
            .iter()
            .all(|d| self.store.has_layer(d) || remote.contains_key(d));
        let key = parse_key(&restored.key)?;
        complete.then(|| (State::new(restored.state.clone()), key))
    }

    /// Asks each `--cache-from` repository for `key`; a registry that fails
    /// is a warning, not a failed build.
    fn remote_lookup(&self, key: &NodeKey) -> Option<(State, NodeKey)> {
        for reference in &self.opts.cache_from {
            let name = reference.to_string();
            if self
                .dead_caches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&name)
            {
                continue;
            }
            match super::cache::lookup(&self.registry, reference, key) {
                Ok(Some(entry)) => {
                    let mut remote = self.remote.layers.lock().unwrap_or_else(|e| e.into_inner());
                    for layer in &entry.layers {
                        remote
                            .entry(layer.diff_id.clone())
                            .or_insert_with(|| (reference.clone(), layer.blob.clone()));
                    }
                    // Kept locally too, with the whole state after the node, so
                    // a later build here (with or without --cache-from) needs
                    // nothing below it; valid once its layers are downloaded.
                    // Filed under the key it was asked for and no other: what
                    // an entry claims about other keys (its `key` field) is
                    // anyone's who can push to the repository, and believing
                    // it would file their layer under another recipe's key.
                    // Later nodes key on this key as they were planned.
                    let record = crate::store::Record {
                        restored: Some(crate::store::Restored {
                            state: entry.state.clone(),
                            key: key.hex(),
                        }),
                        ..entry.record.clone()
                    };
                    let _ = self.store.put_record(key, &record);
                    return Some((State::new(entry.state), *key));
                }
                Ok(None) => {}
                Err(e) => {
                    // Asked once: a registry that failed is not asked again in this build.
                    self.dead_caches.lock().unwrap_or_else(|e| e.into_inner()).insert(name);
                    self.events.event(Event::Warning {
                        message: format!("cache {}/{}: {e}", reference.registry, reference.repository),
                    });
                }
            }
        }
        None
    }

    /// Makes sure every layer of `state` is in the store, downloading those
    /// a remote cache hit left behind (what a later miss or an export needs).
    pub fn materialize(&self, state: &State, node: Option<NodeId>) -> Result<()> {
        let missing: Vec<(Digest, (Reference, Descriptor))> = {
            let remote = self.remote.layers.lock().unwrap_or_else(|e| e.into_inner());
            state
                .config
                .rootfs
                .diff_ids
                .iter()
                .filter(|d| !self.store.has_layer(d))
                .filter_map(|d| remote.get(d).map(|r| (d.clone(), r.clone())))
                .collect()
        };
        let total: u64 = missing.iter().map(|(_, (_, b))| b.size).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        crate::par::try_each(&missing, 4, |(diff_id, (reference, blob))| {
            self.download_layer(diff_id, reference, blob)?;
            let bytes = done.fetch_add(blob.size, Ordering::Relaxed) + blob.size;
            if let Some(node) = node {
                self.events.event(Event::Downloading { node, bytes, total });
            }
            Ok(())
        })
    }

    fn download_layer(&self, diff_id: &Digest, reference: &Reference, blob: &Descriptor) -> Result<()> {
        let _guard = self.store.lock(&format!("fetch-{}", diff_id.hex()))?;
        if self.store.has_layer(diff_id) {
            return Ok(());
        }
        let (host, repo) = (reference.api_host(), &reference.repository);
        let body = self.registry.blob(host, repo, blob)?;
        let what = format!("{}/{}@{}", reference.registry, repo, blob.digest);
        crate::store::import_layer_from(self.store, body, Path::new(&what), Some(&blob.digest), diff_id)?;
        self.store.add_blob_source(&blob.digest, &format!("{host}/{repo}"))
    }

    /// With `--cache-to`, pushes the result of every layer node of the build
    /// that a cache repository lacks. Returns what the pushes did.
    pub fn push_cache(&self, plan: &Plan, outcome: &Outcome) -> Result<crate::export::push::PushStats> {
        let pusher = crate::export::push::Pusher::new(self.store, &self.registry);
        // Filed under the effective key, and under the planned key when that
        // differs (the `--cache-from` walk looks planned keys up).
        let mut work: Vec<(NodeKey, NodeKey, &State)> = Vec::new();
        let mut seen = HashSet::new();
        for (&id, state) in &outcome.states {
            let Some(planned) = plan.keys.get(id).copied().flatten() else {
                continue;
            };
            let effective = outcome.keys.get(&id).copied().unwrap_or(planned);
            if !self.graph.node(id).makes_layer() {
                continue;
            }
            for tag in [effective, planned] {
                if seen.insert(tag) {
                    work.push((tag, effective, state));
                }
            }
        }
        work.sort_by_key(|(k, _, _)| k.0);
        for reference in &self.opts.cache_to {
            crate::par::try_each(&work, 4, |(tag, effective, state)| {
                self.push_entry(&pusher, reference, tag, effective, state)
            })?;
        }
        self.push_cache_mounts(plan, outcome, &pusher)?;
        Ok(pusher.stats())
    }

    fn push_entry(
        &self,
        pusher: &crate::export::push::Pusher,
        reference: &Reference,
        tag: &NodeKey,
        effective: &NodeKey,
        state: &State,
    ) -> Result<()> {
        use super::cache;
        if cache::contains(&self.registry, reference, tag)? {
            return Ok(());
        }
        let Some(mut record) = self.store.record(effective)? else {
            return Ok(());
        };
        // The entry carries the state itself; what this store noted stays here.
        record.restored = None;
        self.materialize(state, None)?;
        let mut layers = Vec::new();
        for diff_id in &state.config.rootfs.diff_ids {
            let blob = crate::store::ensure_blob(self.store, diff_id, self.opts.compression)?;
            layers.push(cache::EntryLayer {
                diff_id: diff_id.clone(),
                blob,
            });
        }
        let entry = cache::Entry {
            record,
            state: state.config.clone(),
            layers,
            key: Some(effective.hex()),
        };
        cache::store(pusher, reference, tag, &entry)
    }
}

/// Where the key of the content a cache mount holds is noted (beside it).
fn mount_marker(dir: &Path) -> std::path::PathBuf {
    dir.with_extension("key")
}

impl Scheduler<'_> {
    /// Before a RUN step with exportable cache mounts runs (it missed): each
    /// such mount whose content here is not the one its key names is
    /// restored from the first `--cache-from` repository that has it. A
    /// registry that fails, or a mount it lacks, is not an error: the step
    /// runs with what the mount holds.
    pub(super) fn restore_cache_mounts(&self, id: NodeId, plan: &Plan) {
        let Some(exports) = plan.cache_exports.get(&id) else {
            return;
        };
        if self.opts.cache_from.is_empty() {
            return;
        }
        for (mount, key) in exports {
            let dir = self.store.cache_mount_dir(mount);
            if std::fs::read_to_string(mount_marker(&dir)).ok().as_deref() == Some(key.hex().as_str()) {
                continue;
            }
            for reference in &self.opts.cache_from {
                match self.restore_mount(&dir, reference, key) {
                    Ok(true) => {
                        self.events.event(Event::Output {
                            node: id,
                            line: format!(
                                "restored cache mount `{mount}` from {}/{}",
                                reference.registry, reference.repository
                            ),
                        });
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => self.events.event(Event::Warning {
                        message: format!(
                            "cache mount `{mount}` from {}/{}: {}",
                            reference.registry,
                            reference.repository,
                            e.chain()
                        ),
                    }),
                }
            }
        }
    }

    /// Replaces the mount at `dir` with the content filed under `key` in
    /// `reference`: downloaded and checked against its digest, unpacked by
    /// the layer unpacker (nothing lands outside the new directory), then
    /// swapped in under the mount's lock. False when the registry lacks it.
    fn restore_mount(&self, dir: &Path, reference: &Reference, key: &NodeKey) -> Result<bool> {
        let Some(blob) = super::cache::lookup_mount(&self.registry, reference, key)? else {
            return Ok(false);
        };
        if !self.store.has_blob(&blob.digest) {
            let mut body = self.registry.blob(reference.api_host(), &reference.repository, &blob)?;
            let mut writer = self.store.blob_writer()?;
            std::io::copy(&mut body, &mut writer).map_err(crate::error::Error::io("download", dir))?;
            let (digest, _) = writer.commit()?;
            if digest != blob.digest {
                return Err(crate::error::Error::DigestMismatch {
                    what: format!("cache mount {}", super::cache::mount_tag(key)),
                    expected: blob.digest,
                    actual: digest,
                });
            }
        }
        self.store.verify_blob(&blob.digest)?;
        let scratch = self.store.tmp_dir()?;
        let fresh = scratch.path().join("mount");
        std::fs::create_dir(&fresh).map_err(crate::error::Error::io("create", &fresh))?;
        let path = self.store.blob_path(&blob.digest);
        let file = std::fs::File::open(&path).map_err(crate::error::Error::io("open", &path))?;
        let input = crate::layer::Compression::decoder(std::io::BufReader::new(file))
            .map_err(crate::error::Error::io("decompress", &path))?;
        crate::layer::unpack(input, &fresh)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _lock = self.store.lock(&format!("cache-{name}"))?;
        if dir.exists() {
            let old = scratch.path().join("old");
            std::fs::rename(dir, &old).map_err(crate::error::Error::io("move aside", dir))?;
        }
        std::fs::rename(&fresh, dir).map_err(crate::error::Error::io("restore", dir))?;
        self.store.write_atomic(&mount_marker(dir), key.hex().as_bytes())?;
        Ok(true)
    }

    /// With `--cache-to`, pushes the content of each exportable cache mount
    /// of the RUN steps that ran, under its key, where the repository lacks it.
    pub(super) fn push_cache_mounts(
        &self,
        plan: &Plan,
        outcome: &Outcome,
        pusher: &crate::export::push::Pusher,
    ) -> Result<()> {
        let mut mounts: Vec<(&String, &NodeKey)> = outcome
            .executed
            .iter()
            .filter_map(|id| plan.cache_exports.get(id))
            .flatten()
            .map(|(mount, key)| (mount, key))
            .collect();
        mounts.sort();
        mounts.dedup();
        for (mount, key) in mounts {
            let dir = self.store.cache_mount_dir(mount);
            let mut blob = None;
            for reference in &self.opts.cache_to {
                if super::cache::contains_mount(&self.registry, reference, key)? {
                    continue;
                }
                if blob.is_none() {
                    blob = Some(self.pack_mount(&dir)?);
                }
                if let Some(blob) = &blob {
                    super::cache::store_mount(pusher, reference, key, mount, blob)?;
                }
            }
            self.store.write_atomic(&mount_marker(&dir), key.hex().as_bytes())?;
        }
        Ok(())
    }

    /// The mount at `dir` as a deterministic tar (sorted, numeric owners,
    /// mtimes clamped to SOURCE_DATE_EPOCH), zstd-compressed, in the store.
    fn pack_mount(&self, dir: &Path) -> Result<Descriptor> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _lock = self.store.lock(&format!("cache-{name}"))?;
        let compression = crate::layer::Compression::Zstd;
        let encoder = compression
            .encoder(self.store.blob_writer()?)
            .map_err(crate::error::Error::io("compress", dir))?;
        let (encoder, _) = crate::layer::write_tar(dir, encoder, self.opts.epoch)?;
        let (digest, size) = encoder
            .finish_into()
            .map_err(crate::error::Error::io("compress", dir))?
            .commit()?;
        Ok(Descriptor::new(compression.media_type(), digest, size))
    }
}
