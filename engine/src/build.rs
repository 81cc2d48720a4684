//! Executing a graph: plan (compute every node's key, hashing contexts and
//! bases), then run each node whose result is not in the store, then fold
//! the results into image configs. Layer-producing nodes (base, copy, run)
//! are cached by key in the store; metadata nodes are pure functions of their
//! parent's config and cost nothing to recompute.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::base;
use crate::context::{Context, EntryKind, SelectError, Selection, StatCache};
use crate::digest::{Digest, NodeKey};
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::fsview::{self, View};
use crate::graph::{CopyOp, CopySource, Graph, MetaChange, Node, NodeId, Op};
use crate::image::{self, Descriptor, Empty, History, ImageConfig};
use crate::key::{node_key, Resolved};
use crate::layer::Compression;
use crate::registry::Reference;
use crate::store::{Record, Store};
use crate::sys;

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Compression of new layer blobs.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: clamp for mtimes and the `created` timestamps.
    pub epoch: i64,
    /// Ignore cached results of copy and run steps (results are still recorded).
    pub no_cache: bool,
    /// Most nodes executing at once.
    pub jobs: usize,
    /// The `strata` executable, started as `strata __sandbox SPEC` for RUN steps.
    pub sandbox_exe: Option<PathBuf>,
    /// After a failure, go on building everything that does not depend on it.
    pub keep_going: bool,
    /// Registries (`host[:port]`) spoken to over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// The recipe file: `strata.lock` lives beside it.
    pub recipe: PathBuf,
    /// How `strata.lock` is used.
    pub lock_mode: crate::lock::LockMode,
    /// The platform registry bases are resolved for.
    pub platform: image::Platform,
    /// Registry repositories to look node results up in (`--cache-from`).
    pub cache_from: Vec<Reference>,
    /// Registry repositories new node results are pushed to (`--cache-to`).
    pub cache_to: Vec<Reference>,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            compression: Compression::Gzip,
            epoch: 0,
            no_cache: false,
            jobs: 4,
            sandbox_exe: None,
            keep_going: false,
            insecure_registries: Vec::new(),
            recipe: PathBuf::from("strata.rhai"),
            lock_mode: crate::lock::LockMode::Use,
            platform: image::Platform::host(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
        }
    }
}

/// A node key from its 64 hex digits.
fn parse_key(hex: &str) -> Option<NodeKey> {
    let bytes = hex::decode(hex).ok()?;
    Some(NodeKey(<[u8; 32]>::try_from(bytes).ok()?))
}

/// Reads `SOURCE_DATE_EPOCH`: unset means 0; a malformed value is an error.
pub fn source_date_epoch() -> std::result::Result<i64, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(0),
        Ok(v) if v.is_empty() => Ok(0),
        Ok(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds")),
    }
}

/// The keys of a graph's nodes and what planning learned.
#[derive(Default)]
pub struct Plan {
    /// Key of every node that takes part (`None` for the others).
    pub keys: Vec<Option<NodeKey>>,
    /// Context selections of `copy` nodes.
    pub selections: HashMap<NodeId, Arc<Selection>>,
    /// Identities (manifest digest or file hash) of base nodes.
    pub base_identities: HashMap<NodeId, [u8; 32]>,
    /// The package sets of `debian(...)` bases.
    pub debian_sets: HashMap<NodeId, Arc<crate::lock::DebianSet>>,
    /// Files hashed / taken from the stat cache while planning.
    pub files_hashed: usize,
    pub files_reused: usize,
}

/// An image state: its config (with `rootfs.diff_ids` and `history`).
#[derive(Clone, Debug)]
pub struct State {
    pub config: ImageConfig,
}

impl State {
    /// The unpacked layer directories, bottom first.
    pub fn layer_dirs(&self, store: &Store) -> Vec<PathBuf> {
        self.config.rootfs.diff_ids.iter().map(|d| store.layer_dir(d)).collect()
    }
}

/// Runs graphs against a store.
pub struct Builder<'a> {
    pub store: &'a Store,
    pub graph: &'a Graph,
    pub opts: BuildOptions,
    pub events: &'a dyn EventSink,
    /// Set from a signal handler to stop between and inside steps.
    pub cancel: &'a AtomicBool,
    /// Keys built by this process in this build (so `--no-cache` builds a key once).
    built: Mutex<HashSet<NodeKey>>,
    /// The registry client (token cache shared by all steps).
    registry: crate::registry::Client,
    /// Nodes whose state came from a remote cache (`--cache-from`).
    restored: Mutex<HashMap<NodeId, (State, NodeKey)>>,
    /// Where layers of restored states can be downloaded from, by diff id.
    remote_layers: Mutex<HashMap<Digest, (Reference, Descriptor)>>,
    /// `--cache-from` repositories that failed (not asked again).
    dead_caches: Mutex<HashSet<String>>,
}

/// What a build produced: the states of the nodes that succeeded, and the
/// errors of those that failed (in the order they failed).
#[derive(Default)]
pub struct Outcome {
    pub states: HashMap<NodeId, State>,
    /// Nodes that were executed rather than found in the store.
    pub executed: HashSet<NodeId>,
    /// Each finished node's effective key (see `Builder::effective_key`).
    pub keys: HashMap<NodeId, NodeKey>,
    pub errors: Vec<(NodeId, Error)>,
}

/// The scheduler's shared state.
struct Schedule {
    ready: VecDeque<NodeId>,
    running: usize,
    stop: bool,
    waiting: HashMap<NodeId, usize>,
    outcome: Outcome,
}

fn input_error(node: &Node, message: impl Into<String>) -> Error {
    Error::Input {
        origin: node.origin.clone(),
        message: message.into(),
    }
}

impl<'a> Builder<'a> {
    pub fn new(
        store: &'a Store,
        graph: &'a Graph,
        opts: BuildOptions,
        events: &'a dyn EventSink,
        cancel: &'a AtomicBool,
    ) -> Builder<'a> {
        let registry = crate::registry::Client::new(opts.insecure_registries.clone());
        Builder {
            store,
            graph,
            opts,
            events,
            cancel,
            built: Mutex::new(HashSet::new()),
            registry,
            restored: Mutex::new(HashMap::new()),
            remote_layers: Mutex::new(HashMap::new()),
            dead_caches: Mutex::new(HashSet::new()),
        }
    }

    /// Computes the keys of `nodes` (which must be closed under inputs, in order).
    pub fn plan(&self, nodes: &[NodeId]) -> Result<Plan> {
        let mut plan = Plan {
            keys: vec![None; self.graph.nodes.len()],
            ..Plan::default()
        };
        let context = Context::open(&self.graph.context_dir).map_err(|e| Error::Input {
            origin: Default::default(),
            message: e.to_string(),
        })?;
        let cache_path = self.store.statcache_path();
        let cache = StatCache::load(&cache_path);
        let lock = crate::lock::Lock::open(&self.opts.recipe, self.opts.lock_mode)?;
        // Every distinct selection is hashed once, on all cores (a monorepo's
        // services are independent trees).
        let selections = self.select_all(&context, &cache, nodes);
        for &id in nodes {
            let node = &self.graph.nodes[id];
            let resolved = match &node.op {
                Op::Base(crate::graph::BaseSource::Debian(spec)) => {
                    let warn = |message: String| self.events.event(Event::Warning { message });
                    let (set, identity) = crate::debian::plan(spec, self.store, &lock, &warn)
                        .map_err(|e| input_error(node, e.to_string()))?;
                    plan.debian_sets.insert(id, Arc::new(set));
                    plan.base_identities.insert(id, identity);
                    Resolved::Base(identity)
                }
                Op::Base(source) => {
                    let identity = base::identity(source, &cache, &self.registry, &self.opts.platform, &lock)
                        .map_err(|e| input_error(node, e.to_string()))?;
                    plan.base_identities.insert(id, identity);
                    Resolved::Base(identity)
                }
                Op::Copy(CopyOp {
                    source: CopySource::Context { paths },
                    ..
                }) => {
                    let selection = match &selections[paths] {
                        Ok(selection) => Arc::clone(selection),
                        Err(e @ (SelectError::Io(..) | SelectError::IgnoreFile(..))) => {
                            return Err(input_error(node, format!("{e}: {}", io_cause(e))))
                        }
                        Err(e) => return Err(input_error(node, e.to_string())),
                    };
                    let hash = selection.hash;
                    plan.selections.insert(id, selection);
                    Resolved::Context(hash)
                }
                _ => Resolved::Nothing,
            };
            let input_keys: Vec<NodeKey> = node
                .inputs()
                .iter()
                .map(|&i| plan.keys[i].expect("inputs are planned before their users"))
                .collect();
            let mut key = node_key(node, &input_keys, resolved);
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
        let _ = cache.save(&cache_path, self.store.root().join("tmp").as_path());
        Ok(plan)
    }

    /// Builds `nodes` (closed under inputs, in order): every node runs as
    /// soon as its inputs are done, up to `jobs` at once. Nodes with equal
    /// keys run once (in this process and across processes sharing the
    /// store). After a failure no new node starts unless `keep_going`, in
    /// which case everything that does not depend on a failure still builds.
    pub fn run(&self, plan: &Plan, nodes: &[NodeId]) -> Outcome {
        let nodes = &self.restore(plan, nodes);
        self.events.event(Event::Planned { total: nodes.len() });
        let wanted: HashSet<NodeId> = nodes.iter().copied().collect();
        let mut waiting: HashMap<NodeId, usize> = HashMap::new();
        let mut dependents: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        let mut ready = VecDeque::new();
        for &id in nodes {
            let inputs: HashSet<NodeId> = self.graph.nodes[id]
                .inputs()
                .into_iter()
                .filter(|i| wanted.contains(i))
                .collect();
            for &i in &inputs {
                dependents.entry(i).or_default().push(id);
            }
            if inputs.is_empty() {
                ready.push_back(id);
            }
            waiting.insert(id, inputs.len());
        }
        let shared = Mutex::new(Schedule {
            ready,
            running: 0,
            stop: false,
            outcome: Outcome::default(),
            waiting,
        });
        let wake = Condvar::new();
        let workers = self.opts.jobs.max(1).min(nodes.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| self.worker(plan, &shared, &wake, &dependents));
            }
        });
        let mut outcome = shared.into_inner().unwrap_or_else(|e| e.into_inner()).outcome;
        if self.cancel.load(Ordering::SeqCst) && !outcome.errors.iter().any(|(_, e)| matches!(e, Error::Interrupted)) {
            outcome.errors.push((usize::MAX, Error::Interrupted));
        }
        outcome
    }

    fn worker(&self, plan: &Plan, shared: &Mutex<Schedule>, wake: &Condvar, dependents: &HashMap<NodeId, Vec<NodeId>>) {
        loop {
            let (id, inputs, input_keys) = {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if s.stop || (s.ready.is_empty() && s.running == 0) {
                        wake.notify_all();
                        return;
                    }
                    if let Some(id) = s.ready.pop_front() {
                        s.running += 1;
                        let ids = self.graph.nodes[id].inputs();
                        let inputs: HashMap<NodeId, State> = ids
                            .iter()
                            .filter_map(|i| s.outcome.states.get(i).map(|st| (*i, st.clone())))
                            .collect();
                        let keys: HashMap<NodeId, NodeKey> = ids
                            .iter()
                            .filter_map(|i| s.outcome.keys.get(i).map(|k| (*i, *k)))
                            .collect();
                        break (id, inputs, keys);
                    }
                    s = wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            let result = if self.cancel.load(Ordering::SeqCst) {
                Err(Error::Interrupted)
            } else {
                self.process(id, plan, &inputs, &input_keys)
            };
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.running -= 1;
            match result {
                Ok((state, executed, key)) => {
                    s.outcome.states.insert(id, state);
                    s.outcome.keys.insert(id, key);
                    if executed {
                        s.outcome.executed.insert(id);
                    }
                    for &d in dependents.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
                        let left = s.waiting.get_mut(&d).expect("dependent is scheduled");
                        *left -= 1;
                        if *left == 0 {
                            s.ready.push_back(d);
                        }
                    }
                }
                Err(e) => {
                    if !matches!(e, Error::Interrupted) {
                        self.events.event(Event::Failed {
                            node: id,
                            message: e.to_string(),
                        });
                    }
                    if !self.opts.keep_going || matches!(e, Error::Interrupted) {
                        s.stop = true;
                    }
                    s.outcome.errors.push((id, e));
                }
            }
            wake.notify_all();
        }
    }

    /// Finds or builds one node's result and folds it into its state.
    /// Hashes every distinct context selection of `nodes`, in parallel.
    fn select_all(
        &self,
        context: &Context,
        cache: &StatCache,
        nodes: &[NodeId],
    ) -> HashMap<Vec<String>, std::result::Result<Arc<Selection>, SelectError>> {
        let mut wanted: Vec<&Vec<String>> = Vec::new();
        for &id in nodes {
            if let Op::Copy(CopyOp {
                source: CopySource::Context { paths },
                ..
            }) = &self.graph.nodes[id].op
            {
                if !wanted.contains(&paths) {
                    wanted.push(paths);
                }
            }
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = Mutex::new(HashMap::new());
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(wanted.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(paths) = wanted.get(i) else { return };
                    let result = context.select(paths, cache).map(Arc::new);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((*paths).clone(), result);
                });
            }
        });
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the state and whether the node was executed (not found cached).
    fn process(
        &self,
        id: NodeId,
        plan: &Plan,
        inputs: &HashMap<NodeId, State>,
        input_keys: &HashMap<NodeId, NodeKey>,
    ) -> Result<(State, bool, NodeKey)> {
        let node = &self.graph.nodes[id];
        if let Some((state, key)) = self.restored.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            self.events.event(Event::Cached { node: id, key: *key });
            return Ok((state.clone(), false, *key));
        }
        let key = self.effective_key(id, plan, inputs, input_keys)?;
        let planned = plan.keys[id].expect("planned");
        let parent = node.parent.and_then(|p| inputs.get(&p));
        if !node.makes_layer() {
            let state = self.fold_meta(node, parent);
            self.events.event(Event::Cached { node: id, key });
            return Ok((state, false, key));
        }
        let started = Instant::now();
        let lookup = |allow: bool| -> Result<Option<Record>> {
            if allow {
                self.store.record(&key)
            } else {
                Ok(None)
            }
        };
        let mut executed = false;
        // `--no-cache` rebuilds steps; an imported base stays (as BuildKit keeps
        // pulled bases), a Debian base is assembled again (from stored .debs).
        let imported = matches!(node.op, Op::Base(ref s) if !matches!(s, crate::graph::BaseSource::Debian(_)));
        let use_cache = !self.opts.no_cache || imported;
        let record = match lookup(use_cache)? {
            Some(record) => {
                self.events.event(Event::Cached { node: id, key });
                record
            }
            None => {
                // One builder per key: whoever holds the lock builds, the others reuse.
                let _guard = self.store.lock(&format!("node-{}", key.hex()))?;
                let fresh = self.built.lock().unwrap_or_else(|e| e.into_inner()).contains(&key);
                match lookup(use_cache || fresh)? {
                    Some(record) => {
                        self.events.event(Event::Cached { node: id, key });
                        record
                    }
                    None => {
                        self.events.event(Event::Started { node: id, key });
                        let record = self.execute(id, plan, inputs)?;
                        self.store.put_record(&key, &record)?;
                        if planned != key {
                            // Filed under the planned key too, so `graph` and the
                            // `--cache-from` walk (which know only planned keys) find it.
                            self.store.put_record(&planned, &record)?;
                        }
                        self.built.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
                        executed = true;
                        self.events.event(Event::Done {
                            node: id,
                            key,
                            elapsed: started.elapsed(),
                        });
                        record
                    }
                }
            }
        };
        if planned != key && !executed && self.store.record(&planned)?.is_none() {
            // A hit by content under a new planned key: file it there too.
            self.store.put_record(&planned, &record)?;
        }
        Ok((self.fold_layer(node, parent, &record), executed, key))
    }

    /// The key a node really has: its planned key, except that an input used
    /// only through `state.path(P)` (a copy's source, a RUN mount) counts by
    /// the content at `P`, not by the producing step. A builder stage that
    /// changes without changing the files a runtime stage takes from it
    /// leaves the runtime stage cached. Keys of the nodes after it follow.
    fn effective_key(
        &self,
        id: NodeId,
        plan: &Plan,
        states: &HashMap<NodeId, State>,
        keys: &HashMap<NodeId, NodeKey>,
    ) -> Result<NodeKey> {
        let node = &self.graph.nodes[id];
        let planned = plan.keys[id].expect("planned");
        let inputs = node.inputs();
        if inputs.is_empty() {
            return Ok(planned);
        }
        let paths: Vec<&str> = match &node.op {
            Op::Copy(CopyOp {
                source: CopySource::State { path, .. },
                ..
            }) => vec![path.as_str()],
            Op::Run(run) => run.mounts.iter().map(|m| m.path.as_str()).collect(),
            _ => Vec::new(),
        };
        let first_path = usize::from(node.parent.is_some());
        let mut input_keys = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let key = match i.checked_sub(first_path).and_then(|j| paths.get(j)) {
                Some(path) => match states.get(input) {
                    Some(state) => self.path_key(state, path)?,
                    None => plan.keys[*input].expect("planned"),
                },
                None => keys
                    .get(input)
                    .copied()
                    .unwrap_or_else(|| plan.keys[*input].expect("planned")),
            };
            input_keys.push(key);
        }
        let resolved = match plan.selections.get(&id) {
            Some(selection) => Resolved::Context(selection.hash),
            None => Resolved::Nothing,
        };
        Ok(node_key(node, &input_keys, resolved))
    }

    /// The key of the content at `path` in `state`, remembered per (layers, path).
    fn path_key(&self, state: &State, path: &str) -> Result<NodeKey> {
        let mut memo = crate::key::KeyEncoder::new("path-key-memo");
        for d in &state.config.rootfs.diff_ids {
            memo.str(&d.to_string());
        }
        let memo = memo.str(path).finish();
        let file = self.store.root().join("pathkeys").join(memo.hex());
        if let Some(key) = fs::read_to_string(&file)
            .ok()
            .and_then(|t| hex::decode(t.trim()).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            return Ok(NodeKey(key));
        }
        self.materialize(state, None)?;
        let dirs = state.layer_dirs(self.store);
        let view = View { layers: &dirs };
        let matches: Vec<(Vec<String>, String)> = if fsview::is_glob(path) {
            view.glob(path)
                .into_iter()
                .map(|m| {
                    let name = m.join("/");
                    (view.resolve(&format!("/{name}"), true).unwrap_or(m), name)
                })
                .collect()
        } else {
            view.resolve(path, true)
                .filter(|c| view.lookup(c).is_some())
                .map(|c| (c, String::new()))
                .into_iter()
                .collect()
        };
        if matches.is_empty() {
            // Missing: the step itself reports it when it runs.
            return Ok(crate::key::KeyEncoder::new("path-missing").str(path).finish());
        }
        let tmp = self.store.tmp_dir()?;
        let mut enc = crate::key::KeyEncoder::new("path-content");
        for (i, (comps, name)) in matches.iter().enumerate() {
            let copy = tmp.path().join(i.to_string());
            view.materialize(comps, &copy)?;
            enc.str(name).hash(&fsview::tree_hash(&copy)?);
        }
        let key = enc.finish();
        fs::create_dir_all(file.parent().expect("has a parent")).map_err(Error::io("create", &file))?;
        self.store.write_atomic(&file, key.hex().as_bytes())?;
        Ok(key)
    }

    /// With `--cache-from`, walks from the targets' final nodes down: a node
    /// whose result is neither in the store nor in a cache repository needs
    /// its inputs; a remote hit does not, so nothing below it is looked at.
    /// Returns the nodes still to process (in order); remote hits among them
    /// carry their restored state.
    fn restore(&self, plan: &Plan, nodes: &[NodeId]) -> Vec<NodeId> {
        if self.opts.cache_from.is_empty() || self.opts.no_cache {
            return nodes.to_vec();
        }
        // The targets' nodes (a target's state may also feed another target),
        // and whatever no other node needs.
        let inputs_of_others: HashSet<NodeId> = nodes.iter().flat_map(|&i| self.graph.nodes[i].inputs()).collect();
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
            let node = &self.graph.nodes[id];
            let key = plan.keys[id].expect("planned");
            let local = matches!(self.store.record(&key), Ok(Some(_)));
            if node.makes_layer() && !local {
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
            match crate::registry::cache::lookup(&self.registry, reference, key) {
                Ok(Some(entry)) => {
                    let mut remote = self.remote_layers.lock().unwrap_or_else(|e| e.into_inner());
                    for layer in &entry.layers {
                        remote
                            .entry(layer.diff_id.clone())
                            .or_insert_with(|| (reference.clone(), layer.blob.clone()));
                    }
                    // Kept locally too: valid once its layers are downloaded.
                    let _ = self.store.put_record(key, &entry.record);
                    let effective = entry.key.as_deref().and_then(parse_key).unwrap_or(*key);
                    if effective != *key {
                        let _ = self.store.put_record(&effective, &entry.record);
                    }
                    return Some((State { config: entry.state }, effective));
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
            let remote = self.remote_layers.lock().unwrap_or_else(|e| e.into_inner());
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
        let body = self.registry.blob(host, repo, &blob.digest.to_string())?;
        let what = format!("{}/{}@{}", reference.registry, repo, blob.digest);
        base::import_layer_from(self.store, body, Path::new(&what), Some(&blob.digest), diff_id)?;
        self.store.add_blob_source(&blob.digest, &format!("{host}/{repo}"))
    }

    /// With `--cache-to`, pushes the result of every layer node of the build
    /// that a cache repository lacks. Returns what the pushes did.
    pub fn push_cache(&self, plan: &Plan, outcome: &Outcome) -> Result<crate::registry::push::PushStats> {
        let pusher = crate::registry::push::Pusher::new(self.store, &self.registry);
        // Filed under the effective key, and under the planned key when that
        // differs (the `--cache-from` walk looks planned keys up).
        let mut work: Vec<(NodeKey, NodeKey, &State)> = Vec::new();
        let mut seen = HashSet::new();
        for (&id, state) in &outcome.states {
            let Some(planned) = plan.keys.get(id).copied().flatten() else {
                continue;
            };
            let effective = outcome.keys.get(&id).copied().unwrap_or(planned);
            if !self.graph.nodes[id].makes_layer() {
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
        Ok(pusher.stats())
    }

    fn push_entry(
        &self,
        pusher: &crate::registry::push::Pusher,
        reference: &Reference,
        tag: &NodeKey,
        effective: &NodeKey,
        state: &State,
    ) -> Result<()> {
        use crate::registry::cache;
        if cache::contains(&self.registry, reference, tag)? {
            return Ok(());
        }
        let Some(record) = self.store.record(effective)? else {
            return Ok(());
        };
        self.materialize(state, None)?;
        let mut layers = Vec::new();
        for diff_id in &state.config.rootfs.diff_ids {
            let blob = base::ensure_blob(self.store, diff_id, self.opts.compression, self.opts.epoch)?;
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

    fn history(&self, node: &Node, empty_layer: bool) -> History {
        History {
            created: Some(image::rfc3339(self.opts.epoch)),
            created_by: Some(node.description.clone()),
            comment: Some("strata".into()),
            empty_layer,
            ..History::default()
        }
    }

    fn fold_layer(&self, node: &Node, parent: Option<&State>, record: &Record) -> State {
        match (&node.op, &record.config) {
            (Op::Base(_), Some(config)) => State { config: config.clone() },
            _ => {
                let mut config = parent.map(|p| p.config.clone()).unwrap_or_else(ImageConfig::empty);
                config.created = Some(image::rfc3339(self.opts.epoch));
                for layer in &record.layers {
                    config.rootfs.diff_ids.push(layer.diff_id.clone());
                    config.history.push(self.history(node, false));
                }
                State { config }
            }
        }
    }

    fn fold_meta(&self, node: &Node, parent: Option<&State>) -> State {
        let mut config = parent.map(|p| p.config.clone()).unwrap_or_else(ImageConfig::empty);
        config.created = Some(image::rfc3339(self.opts.epoch));
        let c = &mut config.config;
        match &node.op {
            Op::Scratch => return State { config },
            Op::Meta(change) => match change {
                MetaChange::Env(pairs) => {
                    let mut env = c.env.take().unwrap_or_default();
                    for (k, v) in pairs {
                        env.retain(|kv| kv.split_once('=').map_or(kv.as_str(), |(name, _)| name) != k);
                        env.push(format!("{k}={v}"));
                    }
                    c.env = Some(env);
                }
                MetaChange::Workdir(dir) => {
                    let base = c.working_dir.clone().unwrap_or_else(|| "/".into());
                    c.working_dir = Some(join_image_path(&base, dir));
                }
                MetaChange::User(user) => c.user = Some(user.clone()),
                MetaChange::Cmd(argv) => c.cmd = Some(argv.clone()),
                MetaChange::Entrypoint(argv) => {
                    c.entrypoint = Some(argv.clone());
                    // As in Docker, a new entrypoint resets an inherited cmd.
                    c.cmd = None;
                }
                MetaChange::Expose(port) => {
                    c.exposed_ports
                        .get_or_insert_with(Default::default)
                        .insert(port.clone(), Empty {});
                }
                MetaChange::Label(k, v) => {
                    c.labels
                        .get_or_insert_with(Default::default)
                        .insert(k.clone(), v.clone());
                }
                MetaChange::Volume(path) => {
                    c.volumes
                        .get_or_insert_with(Default::default)
                        .insert(path.clone(), Empty {});
                }
                MetaChange::StopSignal(sig) => c.stop_signal = Some(sig.clone()),
            },
            _ => unreachable!("layer ops are folded by fold_layer"),
        }
        config.history.push(self.history(node, true));
        State { config }
    }

    fn execute(&self, id: NodeId, plan: &Plan, states: &HashMap<NodeId, State>) -> Result<Record> {
        let node = &self.graph.nodes[id];
        for state in states.values() {
            self.materialize(state, Some(id))?;
        }
        match &node.op {
            Op::Base(crate::graph::BaseSource::Debian(spec)) => {
                crate::debian::build(self, id, node, spec, &plan.debian_sets[&id])
            }
            Op::Base(source) => base::import(
                self.store,
                source,
                plan.base_identities.get(&id),
                &self.registry,
                &self.opts.platform,
                self.opts.compression,
                self.opts.epoch,
                &|bytes, total| self.events.event(Event::Downloading { node: id, bytes, total }),
            ),
            Op::Copy(copy) => {
                let parent = &states[&node.parent.expect("copy has a parent")];
                self.copy(node, copy, parent, plan.selections.get(&id).map(|s| &**s), states)
            }
            Op::Run(run) => {
                let parent = &states[&node.parent.expect("run has a parent")];
                crate::sandbox::execute(self, node, run, parent, states)
            }
            Op::Scratch | Op::Meta(_) => unreachable!("no layer"),
        }
    }

    fn copy(
        &self,
        node: &Node,
        copy: &CopyOp,
        parent: &State,
        selection: Option<&Selection>,
        states: &HashMap<NodeId, State>,
    ) -> Result<Record> {
        let parent_dirs = parent.layer_dirs(self.store);
        let parent_view = View { layers: &parent_dirs };
        let workdir = parent.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let dst = join_image_path(&workdir, &copy.dst);
        let dst_comps = fsview::components(&dst);
        let dst_is_dir = copy.dst.ends_with('/')
            || copy.dst == "."
            || dst_comps.is_empty()
            || parent_view
                .resolve(&dst, true)
                .and_then(|c| parent_view.lookup(&c))
                .is_some_and(|(_, m)| m.is_dir());
        let owner = match &copy.chown {
            Some(spec) => {
                fsview::resolve_user(&parent_view, spec).map_err(|e| input_error(node, format!("chown: {e}")))?
            }
            None => (0, 0),
        };

        let tmp = self.store.tmp_dir()?;
        let root = tmp.path().join("layer");
        fs::create_dir(&root).map_err(Error::io("create", &root))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(Error::io("chmod", &root))?;
        let mut copied: Vec<PathBuf> = Vec::new();
        // Store files already linked into this layer (each may appear once per layer).
        let mut shared_files: HashSet<PathBuf> = HashSet::new();

        match &copy.source {
            CopySource::Context { .. } => {
                let selection = selection.expect("context copies are planned");
                let many = selection.sources.len() > 1;
                for src in &selection.sources {
                    let (target, skip_root): (Vec<String>, bool) = if src.is_dir {
                        (dst_comps.clone(), true)
                    } else if dst_is_dir || many {
                        let name = src
                            .abs
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        (with(&dst_comps, &name), false)
                    } else {
                        (dst_comps.clone(), false)
                    };
                    self.make_parents(&root, &target, &parent_view, src.is_dir)?;
                    let target_host = host_path(&root, &target);
                    for entry in &src.entries {
                        if skip_root && entry.rel.as_os_str().is_empty() {
                            continue;
                        }
                        let (from, to) = if entry.rel.as_os_str().is_empty() {
                            (src.abs.clone(), target_host.clone())
                        } else {
                            (src.abs.join(&entry.rel), target_host.join(&entry.rel))
                        };
                        self.check_cancel()?;
                        if let EntryKind::File { hash, .. } = &entry.kind {
                            let mode = copy.chmod.unwrap_or(entry.mode);
                            self.place_file(node, &from, &to, hash, mode, owner, &mut shared_files)?;
                            continue;
                        }
                        copy_context_entry(node, &from, &to, &entry.kind, entry.mode)?;
                        copied.push(to);
                    }
                }
            }
            CopySource::State { node: from, path } => {
                let source = &states[from];
                let dirs = source.layer_dirs(self.store);
                let view = View { layers: &dirs };
                // What to copy: the path, or every match of a glob (each
                // matched file under its name, a matched directory's contents).
                let sources: Vec<(Vec<String>, String)> = if fsview::is_glob(path) {
                    let matches = view.glob(path);
                    if matches.is_empty() {
                        return Err(input_error(
                            node,
                            format!("`{path}` matches nothing in the source state"),
                        ));
                    }
                    if matches.len() > 1 && !dst_is_dir {
                        return Err(input_error(
                            node,
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
                        .ok_or_else(|| input_error(node, format!("`{path}` does not exist in the source state")))?;
                    // The name as the recipe wrote it, even when it was a symlink we followed.
                    let written = fsview::components(path)
                        .last()
                        .or(comps.last())
                        .cloned()
                        .unwrap_or_default();
                    vec![(comps, written)]
                };
                for (comps, written) in sources {
                    let (_, meta) = view
                        .lookup(&comps)
                        .ok_or_else(|| input_error(node, format!("`{path}` does not exist in the source state")))?;
                    let target = if meta.is_dir() || !dst_is_dir {
                        dst_comps.clone()
                    } else {
                        with(&dst_comps, &written)
                    };
                    self.make_parents(&root, &target, &parent_view, meta.is_dir())?;
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
                            crate::layer::remove_path(&to)?;
                            fs::rename(entry.path(), &to).map_err(Error::io("move", &to))?;
                            collect_tree(&to, &mut copied)?;
                        }
                    } else {
                        if meta.is_dir() && fsview::exists(&target_host) {
                            fs::remove_dir(&target_host).map_err(Error::io("replace", &target_host))?;
                        }
                        view.materialize(&comps, &target_host)?;
                        if meta.is_dir() {
                            let mut all = Vec::new();
                            collect_tree(&target_host, &mut all)?;
                            // The destination directory keeps its own attributes; its contents are copied.
                            copied.extend(all.into_iter().skip(1));
                        } else {
                            copied.push(target_host);
                        }
                    }
                }
            }
        }

        for path in &copied {
            sys::lchown(path, owner.0, owner.1).map_err(Error::io("chown", path))?;
            if let Some(mode) = copy.chmod {
                let meta = fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
                if !meta.file_type().is_symlink() {
                    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))?;
                }
            }
        }
        fsview::clamp_mtimes(&root, self.opts.epoch)?;
        let diff_id = base::write_layer(self.store, &root, self.opts.compression, self.opts.epoch, &|bytes| {
            self.events.event(Event::Exporting {
                node: self.node_id(node),
                bytes,
            })
        })?;
        Ok(Record {
            layers: vec![crate::store::LayerRef { diff_id }],
            config: None,
        })
    }

    /// Puts a context file with its final attributes into a layer being
    /// assembled. Unchanged content comes as a hardlink from the store's file
    /// pool (`files/`, keyed by content hash, mode, owner and mtime), so a
    /// copy of 1,500 files of which one changed creates one new inode, not
    /// 1,500. A pool file appears at most once per layer, so the layer's tar
    /// never gains hardlinks the recipe did not ask for.
    #[allow(clippy::too_many_arguments)]
    fn place_file(
        &self,
        node: &Node,
        from: &Path,
        to: &Path,
        hash: &[u8; 32],
        mode: u32,
        owner: (u32, u32),
        used: &mut HashSet<PathBuf>,
    ) -> Result<()> {
        let epoch = self.opts.epoch;
        let pooled = self.store.pool_file(hash, mode, owner.0, owner.1, epoch);
        if !used.contains(&pooled) && fs::hard_link(&pooled, to).is_ok() {
            used.insert(pooled);
            return Ok(());
        }
        copy_verified(node, from, to, hash)?;
        sys::lchown(to, owner.0, owner.1).map_err(Error::io("chown", to))?;
        fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", to))?;
        sys::set_mtime(to, epoch).map_err(Error::io("set mtime of", to))?;
        if !used.contains(&pooled) && self.store.add_to_pool(to, &pooled) {
            used.insert(pooled);
        }
        Ok(())
    }

    /// The id of a node of this builder's graph.
    pub(crate) fn node_id(&self, node: &Node) -> NodeId {
        self.graph.nodes.iter().position(|n| std::ptr::eq(n, node)).unwrap_or(0)
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::SeqCst) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Creates the parents of `target` in the layer (and `target` itself when
    /// it is a directory), with the attributes they have in the parent state,
    /// or root-owned 0755 when they are new.
    fn make_parents(&self, root: &Path, target: &[String], parent: &View<'_>, target_is_dir: bool) -> Result<()> {
        let upto = if target_is_dir {
            target.len()
        } else {
            target.len().saturating_sub(1)
        };
        for i in 1..=upto {
            let host = host_path(root, &target[..i]);
            if fsview::exists(&host) {
                continue;
            }
            fs::create_dir(&host).map_err(Error::io("create directory", &host))?;
            let (mode, uid, gid) = match parent.lookup(&target[..i]) {
                Some((_, meta)) if meta.is_dir() => {
                    use std::os::unix::fs::MetadataExt;
                    (meta.mode() & 0o7777, meta.uid(), meta.gid())
                }
                _ => (0o755, 0, 0),
            };
            sys::lchown(&host, uid, gid).map_err(Error::io("chown", &host))?;
            fs::set_permissions(&host, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", &host))?;
        }
        Ok(())
    }
}

fn io_cause(e: &SelectError) -> String {
    match std::error::Error::source(e) {
        Some(cause) => cause.to_string(),
        None => String::new(),
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

/// Joins an image path onto a base directory (absolute paths win).
pub fn join_image_path(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path)
    };
    let comps = fsview::components(&joined);
    format!("/{}", comps.join("/"))
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

/// Copies one context entry, checking that a file still has the content
/// that was hashed when the build was planned.
fn copy_context_entry(node: &Node, from: &Path, to: &Path, kind: &EntryKind, mode: u32) -> Result<()> {
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
        EntryKind::File { hash, .. } => copy_verified(node, from, to, hash)?,
    }
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", to))
}

/// Copies a context file, checking that it still has the content that was
/// hashed when the build was planned.
fn copy_verified(node: &Node, from: &Path, to: &Path, hash: &[u8; 32]) -> Result<()> {
    crate::layer::remove_path(to)?;
    let mut input = fs::File::open(from).map_err(Error::io("open", from))?;
    let mut output = fs::File::create(to).map_err(Error::io("create", to))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf).map_err(Error::io("read", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(Error::io("write", to))?;
    }
    if hasher.finalize().as_bytes() != hash {
        return Err(input_error(
            node,
            format!(
                "`{}` changed while the build was reading it; run the build again",
                from.display()
            ),
        ));
    }
    Ok(())
}
