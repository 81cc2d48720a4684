//! Planning: every node's key, computed before anything runs. Context
//! selections are hashed once each (in parallel), bases are reduced to an
//! identity (a manifest digest, a file hash, a Debian package set), and
//! `strata.lock` pins what a registry or mirror resolved.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::{Plan, Scheduler};
use crate::bases;
use crate::context::{Context, SelectError, Selection, StatCache};
use crate::digest::NodeKey;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::graph::{CopyOp, CopySource, NodeId, Op};
use crate::key::{node_key, Resolved};

/// A `SOURCE_DATE_EPOCH` that is not a number of seconds.
#[derive(Debug, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH=`{value}` is not a whole number of seconds")]
pub struct EpochError {
    pub value: String,
    #[source]
    pub source: std::num::ParseIntError,
}

/// Reads `SOURCE_DATE_EPOCH`: unset means 0; a malformed value is an error.
pub fn source_date_epoch() -> std::result::Result<i64, EpochError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) if v.is_empty() => Ok(0),
        Ok(v) => v.trim().parse::<i64>().map_err(|source| EpochError {
            value: v.clone(),
            source,
        }),
    }
}

/// A context selection, or why it failed (shared by the copies that use it).
type Selected = std::result::Result<Arc<Selection>, Arc<SelectError>>;

impl Scheduler<'_> {
    /// Computes the keys of `nodes` (which must be closed under inputs, in order).
    pub fn plan(&self, nodes: &[NodeId]) -> Result<Plan> {
        let mut plan = Plan {
            keys: vec![None; self.graph.len()],
            ..Plan::default()
        };
        let context = Context::open_with(&self.graph.context_dir, self.graph.ignore_file.as_deref())
            .map_err(|e| Error::input_at(&Default::default(), e))?;
        let cache_path = self.store.statcache_path();
        let cache = StatCache::load(&cache_path);
        let lock = crate::lock::Lock::open(&self.opts.recipe, self.opts.lock_mode)?;
        // Every distinct selection is hashed once, on all cores (a monorepo's
        // services are independent trees).
        let selections = self.select_all(&context, &cache, nodes);
        for &id in nodes {
            if self.cancel.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            let node = self.graph.node(id);
            let resolved = match &node.op {
                Op::Base(crate::graph::BaseSource::Debian(spec)) => {
                    let warn = |message: String| self.events.event(Event::Warning { message });
                    let (set, identity) = crate::debian::plan(spec, self.store, &lock, &warn)
                        .map_err(|e| Error::input_at(&node.origin, e))?;
                    plan.debian_sets.insert(id, Arc::new(set));
                    plan.base_identities.insert(id, identity);
                    Resolved::Base(identity)
                }
                Op::Base(source) => {
                    let identity = bases::identity(source, &cache, &self.registry, &node.platform, &lock)
                        .map_err(|e| Error::input_at(&node.origin, e))?;
                    plan.base_identities.insert(id, identity);
                    Resolved::Base(identity)
                }
                Op::Copy(CopyOp {
                    source: CopySource::Context { paths, exclude },
                    ..
                }) => {
                    let selection = selected(&selections, paths, exclude, node)?;
                    let hash = selection.hash;
                    plan.selections.insert(id, selection);
                    Resolved::Context(hash)
                }
                Op::Copy(CopyOp {
                    source: CopySource::Fetch { url, sha256 },
                    ..
                }) => {
                    let digest = match sha256 {
                        Some(hex) => format!("sha256:{hex}")
                            .parse::<crate::digest::Digest>()
                            .map_err(|e| Error::input(&node.origin, format!("fetch `{url}`: {}", e.0)))?,
                        None => lock.url(url, || {
                            crate::exec::fetch::ensure(self.store, &self.registry, &node.origin, url, None)
                        })?,
                    };
                    plan.base_identities.insert(id, *digest.bytes());
                    Resolved::Context(*digest.bytes())
                }
                Op::Run(run) if run.insecure && !self.opts.allow_insecure => {
                    return Err(Error::input(&node.origin, "this `run` asks for security: \"insecure\" (every capability, all of /proc and /sys, no seccomp filter); allow it with `--allow insecure`"));
                }
                _ => Resolved::Nothing,
            };
            let input_keys: Vec<NodeKey> = node
                .inputs()
                .iter()
                .map(|&i| plan.keys[i].expect("inputs are planned before their users"))
                .collect();
            let mut key = node_key(node, &input_keys, resolved);
            if let Op::Run(run) = &node.op {
                let exports = cache_exports(&selections, node, run)?;
                if !exports.is_empty() {
                    plan.cache_exports.insert(id, exports);
                }
                let macs = self.secret_macs(run)?;
                if !macs.is_empty() {
                    key = crate::key::with_secret_macs(key, &macs);
                    plan.secret_macs.insert(id, macs);
                }
            }
            if node.parent.is_none() {
                // SOURCE_DATE_EPOCH shapes every layer (mtimes, created): it keys the roots.
                key = crate::key::KeyEncoder::new("epoch")
                    .hash(&key.0)
                    .u64(self.opts.epoch as u64)
                    .finish();
            }
            plan.keys[id] = Some(key);
        }
        lock.finish()?;
        plan.files_hashed = cache.hashed();
        plan.files_reused = cache.reused();
        // The stat cache only saves work; failing to write it is not a build failure.
        let _ = cache.save(self.store.root().join("tmp").as_path());
        Ok(plan)
    }

    /// The HMAC of each secret of `run` that says `invalidate`, read from
    /// where the recipe or the command line says; a secret that is not
    /// given counts as absent (the step itself then fails if it is required).
    fn secret_macs(&self, run: &crate::graph::RunOp) -> Result<Vec<(String, [u8; 32])>> {
        use crate::graph::SecretSource;
        let mut macs = Vec::new();
        for secret in run.secrets.iter().filter(|s| s.invalidate) {
            let source = match &secret.source {
                SecretSource::Given => self.opts.secrets.get(&secret.id),
                other => Some(other),
            };
            // An unreadable file counts as absent here: the step itself
            // says what is wrong when it runs (`strata graph` and `strata
            // affected` plan without it).
            let value = match source {
                Some(SecretSource::File(path)) => std::fs::read(path).ok(),
                Some(SecretSource::Env(var)) => {
                    std::env::var_os(var).map(|v| std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec())
                }
                Some(SecretSource::Given) | None => None,
            };
            let mac = match value {
                Some(value) => self.store.secret_mac(&value)?,
                None => [0; 32],
            };
            macs.push((secret.id.clone(), mac));
        }
        Ok(macs)
    }

    /// Hashes every distinct context selection of `nodes`, in parallel.
    fn select_all(
        &self,
        context: &Context,
        cache: &StatCache,
        nodes: &[NodeId],
    ) -> HashMap<(Vec<String>, Vec<String>), Selected> {
        // By paths and exclusions: copies' sources, and the files that name
        // exportable cache mounts' content (no exclusions).
        let none: &Vec<String> = &Vec::new();
        let mut wanted: Vec<(&Vec<String>, &Vec<String>)> = Vec::new();
        let mut seen: std::collections::HashSet<(&Vec<String>, &Vec<String>)> = std::collections::HashSet::new();
        for &id in nodes {
            let selections: Vec<(&Vec<String>, &Vec<String>)> = match &self.graph.node(id).op {
                Op::Copy(CopyOp {
                    source: CopySource::Context { paths, exclude },
                    ..
                }) => vec![(paths, exclude)],
                Op::Run(run) => run
                    .caches
                    .iter()
                    .filter_map(|c| c.export.as_ref())
                    .map(|p| (p, none))
                    .collect(),
                _ => Vec::new(),
            };
            for selection in selections {
                if seen.insert(selection) {
                    wanted.push(selection);
                }
            }
        }
        // On the shared CPU pool: a monorepo's services are independent trees.
        wanted
            .into_par_iter()
            .map(|(paths, exclude)| {
                (
                    (paths.clone(), exclude.clone()),
                    context
                        .select_until(paths, exclude, cache, self.cancel)
                        .map(Arc::new)
                        .map_err(Arc::new),
                )
            })
            .collect()
    }
}

/// The selection `select_all` made of `paths` less `exclude`, or why it
/// failed, as the error of `node`.
fn selected(
    selections: &HashMap<(Vec<String>, Vec<String>), Selected>,
    paths: &[String],
    exclude: &[String],
    node: &crate::graph::Node,
) -> Result<Arc<Selection>> {
    match &selections[&(paths.to_vec(), exclude.to_vec())] {
        Ok(selection) => Ok(Arc::clone(selection)),
        Err(e) if matches!(**e, SelectError::Interrupted) => Err(Error::Interrupted),
        Err(e) => Err(Error::input_at(&node.origin, Arc::clone(e))),
    }
}

/// The key of each exportable cache mount of `run`: its id and the hash of
/// the context files its `export` names (selected with the copies').
fn cache_exports(
    selections: &HashMap<(Vec<String>, Vec<String>), Selected>,
    node: &crate::graph::Node,
    run: &crate::graph::RunOp,
) -> Result<Vec<(String, NodeKey)>> {
    let mut out = Vec::new();
    for mount in &run.caches {
        let Some(paths) = &mount.export else { continue };
        let selection = selected(selections, paths, &[], node)?;
        let key = crate::key::KeyEncoder::new("cache-mount")
            .str(&mount.id)
            .hash(&selection.hash)
            .finish();
        out.push((mount.id.clone(), key));
    }
    Ok(out)
}
