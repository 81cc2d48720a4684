//! The scheduler: plans a graph (every node's key, see `plan`), then runs
//! each node whose result is not in the store as soon as its inputs are
//! done, up to `--jobs` at once, one builder per key across processes (the
//! cache lock protocol below). It folds results into image states
//! (`fold`), computes effective keys (`keys`) and walks the remote cache
//! (`remote`). The work of a node is done by its executor (`exec/`), which
//! sees an `ExecCtx`, never the scheduler.

mod cache;
mod fold;
mod keys;
mod plan;
mod remote;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::context::Selection;
use crate::digest::NodeKey;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, Phases};
use crate::exec::{self, Inputs};
use crate::graph::{Graph, NodeId, Op};
use crate::image;
use crate::layer::Compression;
use crate::registry::Reference;
use crate::step::{ExecCtx, ExecOptions};
use crate::store::{Record, State, Store};

pub use plan::{source_date_epoch, EpochError};
pub use remote::Remote;

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
    /// `--allow insecure`: steps may ask for `security: "insecure"`.
    pub allow_insecure: bool,
    /// `--secret id=ID,src=FILE|env=VAR`: the sources of `Given` secrets.
    pub secrets: std::collections::BTreeMap<String, crate::graph::SecretSource>,
    /// `--ssh ID[=SOCKET]`: the agents `ssh` mounts reach.
    pub ssh: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// `--debug`: when to open a shell in a RUN step's sandbox.
    pub debug: Option<crate::step::Debug>,
    /// `--remote-executor`: the REAPI service RUN steps execute on.
    pub remote: Option<std::sync::Arc<crate::reapi::Remote>>,
}

impl BuildOptions {
    /// The options every step's executor sees.
    pub fn exec(&self) -> ExecOptions {
        ExecOptions {
            compression: self.compression,
            epoch: self.epoch,
            sandbox_exe: self.sandbox_exe.clone(),
            platform: self.platform.clone(),
            secrets: self.secrets.clone(),
            ssh: self.ssh.clone(),
            debug: self.debug.clone(),
            remote: self.remote.clone(),
        }
    }
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
            allow_insecure: false,
            secrets: Default::default(),
            ssh: Default::default(),
            debug: None,
            remote: None,
        }
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
    /// HMACs of the secrets of RUN steps that ask to `invalidate` on them:
    /// (secret id, HMAC under the store's key), folded into the step's key.
    pub secret_macs: HashMap<NodeId, Vec<(String, [u8; 32])>>,
    /// The exportable cache mounts of RUN steps: (mount id, the key its
    /// content is filed under: the id and the hash of its `export` files).
    pub cache_exports: HashMap<NodeId, Vec<(String, NodeKey)>>,
    /// Files hashed / taken from the stat cache while planning.
    pub files_hashed: usize,
    pub files_reused: usize,
}

/// Runs graphs against a store.
pub struct Scheduler<'a> {
    pub store: &'a Store,
    pub graph: &'a Graph,
    pub opts: BuildOptions,
    pub events: &'a dyn EventSink,
    /// Set from a signal handler to stop between and inside steps.
    pub cancel: &'a AtomicBool,
    /// Keys built by this process in this build (so `--no-cache` builds a key once).
    built: Mutex<HashSet<NodeKey>>,
    /// What every executor sees of the options.
    exec: ExecOptions,
    /// The registry client (token cache shared by all steps).
    registry: crate::registry::Client,
    /// Nodes whose state came from a remote cache (`--cache-from`).
    restored: Mutex<HashMap<NodeId, (State, NodeKey)>>,
    /// Layers a remote cache hit left behind, downloaded when needed.
    remote: Remote,
    /// `--cache-from` repositories that failed (not asked again).
    dead_caches: Mutex<HashSet<String>>,
    /// Runs every layer node instead of the executor of its kind, when set.
    executor: Option<&'a dyn exec::Executor>,
    /// Nodes whose layers an image of this build holds (`with_images`).
    image_nodes: HashSet<NodeId>,
}

/// Job slots and cores: a step entering a CPU phase gives its job slot
/// back (a RUN step may take it) and waits for a core; it does not take a
/// slot again (what is left of it is short), so no step ever waits for a
/// slot while holding what another step waits for: a step holding a node
/// lock may be in a CPU phase while others wait on that lock in their slots.
struct Slots<'s> {
    shared: &'s Mutex<Schedule>,
    wake: &'s Condvar,
    gate: &'s crate::par::Gate,
}

impl crate::step::Cpu for Slots<'_> {
    fn acquire(&self) {
        {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            if s.slotless.insert(std::thread::current().id()) {
                s.running -= 1;
            }
            self.wake.notify_all();
        }
        self.gate.take();
    }

    fn release(&self) {
        self.gate.give();
    }
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
    /// Nodes holding a job slot (at most `jobs`); a node in a CPU phase holds none.
    running: usize,
    /// Nodes being processed, with or without a slot.
    active: usize,
    /// Worker threads whose node gave its job slot up for a CPU phase.
    slotless: HashSet<std::thread::ThreadId>,
    stop: bool,
    waiting: HashMap<NodeId, usize>,
    outcome: Outcome,
    /// Dependents of each node that have not taken its state yet.
    consumers: HashMap<NodeId, usize>,
}

impl<'a> Scheduler<'a> {
    pub fn new(
        store: &'a Store,
        graph: &'a Graph,
        opts: BuildOptions,
        events: &'a dyn EventSink,
        cancel: &'a AtomicBool,
    ) -> Scheduler<'a> {
        let registry = crate::registry::Client::new(opts.insecure_registries.clone());
        Scheduler {
            exec: opts.exec(),
            store,
            graph,
            opts,
            events,
            cancel,
            built: Mutex::new(HashSet::new()),
            registry,
            restored: Mutex::new(HashMap::new()),
            remote: Remote::default(),
            dead_caches: Mutex::new(HashSet::new()),
            executor: None,
            image_nodes: HashSet::new(),
        }
    }

    /// Names the nodes of the build's image targets: every layer on their
    /// chains of parents keeps its tar as its blob when committed (an
    /// image in the store needs it); other layers' tars are only hashed.
    pub fn with_images(mut self, targets: impl IntoIterator<Item = NodeId>) -> Scheduler<'a> {
        for mut at in targets {
            while self.image_nodes.insert(at) {
                match self.graph.node(at).parent {
                    Some(parent) => at = parent,
                    None => break,
                }
            }
        }
        self
    }

    /// The registry client of this build (its tokens serve pushes too).
    pub fn registry(&self) -> &crate::registry::Client {
        &self.registry
    }

    /// Runs every layer node with `executor` instead of the executor of its
    /// kind (the scheduler's tests use a fake; a remote executor fits here).
    pub fn with_executor(mut self, executor: &'a dyn exec::Executor) -> Scheduler<'a> {
        self.executor = Some(executor);
        self
    }

    /// Builds `nodes` (closed under inputs, in order): every node runs as
    /// soon as its inputs are done, up to `jobs` at once. Nodes with equal
    /// keys run once (in this process and across processes sharing the
    /// store). After a failure no new node starts unless `keep_going`, in
    /// which case everything that does not depend on a failure still builds.
    pub fn run(&self, plan: &Plan, nodes: &[NodeId]) -> Outcome {
        self.run_keeping(plan, nodes, None)
    }

    /// [`Scheduler::run`], keeping in the outcome only the states of `keep`
    /// (all when `None`): a state no later node and no target needs is
    /// dropped, or handed to its last dependent without a copy, so a long
    /// chain of steps costs memory and time linear in its length.
    pub fn run_keeping(&self, plan: &Plan, nodes: &[NodeId], keep: Option<&HashSet<NodeId>>) -> Outcome {
        let nodes = &self.restore(plan, nodes);
        self.events.event(Event::Planned { total: nodes.len() });
        let wanted: HashSet<NodeId> = nodes.iter().copied().collect();
        let mut waiting: HashMap<NodeId, usize> = HashMap::new();
        let mut dependents: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        let mut ready = VecDeque::new();
        for &id in nodes {
            let inputs: HashSet<NodeId> = self
                .graph
                .node(id)
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
        let consumers: HashMap<NodeId, usize> = dependents.iter().map(|(id, d)| (*id, d.len())).collect();
        let shared = Mutex::new(Schedule {
            ready,
            running: 0,
            active: 0,
            slotless: HashSet::new(),
            stop: false,
            outcome: Outcome::default(),
            waiting,
            consumers,
        });
        let wake = Condvar::new();
        let jobs = self.opts.jobs.max(1);
        let gate = crate::par::Gate::per_core();
        // One step at a time (`--jobs 1`, `--debug`) stays one at a time.
        let slots = Slots {
            shared: &shared,
            wake: &wake,
            gate: &gate,
        };
        let cpu = (jobs > 1).then_some(&slots as &dyn crate::step::Cpu);
        // Threads for the job slots, and as many again (and one per core) for
        // steps that gave theirs up for a CPU phase.
        let extra = if cpu.is_some() { jobs + gate.permits() } else { 0 };
        let workers = (jobs + extra).min(nodes.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| self.worker(plan, &shared, &wake, &dependents, keep, cpu));
            }
        });
        let mut outcome = shared.into_inner().unwrap_or_else(|e| e.into_inner()).outcome;
        if self.cancel.load(Ordering::SeqCst) && !outcome.errors.iter().any(|(_, e)| matches!(e, Error::Interrupted)) {
            outcome.errors.push((usize::MAX, Error::Interrupted));
        }
        outcome
    }

    fn worker(
        &self,
        plan: &Plan,
        shared: &Mutex<Schedule>,
        wake: &Condvar,
        dependents: &HashMap<NodeId, Vec<NodeId>>,
        keep: Option<&HashSet<NodeId>>,
        cpu: Option<&dyn crate::step::Cpu>,
    ) {
        let jobs = self.opts.jobs.max(1);
        loop {
            let (id, inputs, input_keys) = {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if s.stop || (s.ready.is_empty() && s.active == 0) {
                        wake.notify_all();
                        return;
                    }
                    let id = match s.running < jobs {
                        true => s.ready.pop_front(),
                        false => None,
                    };
                    if let Some(id) = id {
                        s.running += 1;
                        s.active += 1;
                        let ids = self.graph.node(id).inputs();
                        let mut inputs: HashMap<NodeId, State> = HashMap::new();
                        for &i in &ids {
                            if inputs.contains_key(&i) {
                                continue;
                            }
                            let left = s.consumers.get_mut(&i).map(|n| {
                                *n -= 1;
                                *n
                            });
                            let last = left == Some(0) && keep.is_some_and(|k| !k.contains(&i));
                            let state = if last {
                                s.outcome.states.remove(&i)
                            } else {
                                s.outcome.states.get(&i).cloned()
                            };
                            if let Some(state) = state {
                                inputs.insert(i, state);
                            }
                        }
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
                self.process(id, plan, inputs, &input_keys, cpu)
                    .map_err(|e| e.at(&self.graph.node(id).origin))
            };
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            if !s.slotless.remove(&std::thread::current().id()) {
                s.running -= 1;
            }
            s.active -= 1;
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

    /// Returns the state and whether the node was executed (not found cached).
    fn process(
        &self,
        id: NodeId,
        plan: &Plan,
        mut inputs: HashMap<NodeId, State>,
        input_keys: &HashMap<NodeId, NodeKey>,
        cpu: Option<&dyn crate::step::Cpu>,
    ) -> Result<(State, bool, NodeKey)> {
        let node = self.graph.node(id);
        if let Some((state, key)) = self.restored.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            self.events.event(Event::Cached { node: id, key: *key });
            return Ok((state.clone(), false, *key));
        }
        let key = self.effective_key(id, plan, &inputs, input_keys)?;
        let planned = plan.keys[id].expect("planned");
        if !node.makes_layer() {
            // The parent's state becomes this one's: moved when this node
            // was its last consumer, else a copy.
            let parent = node.parent.and_then(|p| inputs.remove(&p));
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
                        let (record, phases) = self.execute(id, plan, &inputs, cpu)?;
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
                            phases,
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
        let parent = node.parent.and_then(|p| inputs.remove(&p));
        Ok((self.fold_layer(node, parent, &record), executed, key))
    }

    /// Runs a node's executor after making sure its inputs' layers are here.
    fn execute(
        &self,
        id: NodeId,
        plan: &Plan,
        states: &HashMap<NodeId, State>,
        cpu: Option<&dyn crate::step::Cpu>,
    ) -> Result<(Record, Phases)> {
        let node = self.graph.node(id);
        for state in states.values() {
            self.materialize(state, Some(id))?;
        }
        let ctx = ExecCtx {
            store: self.store,
            events: self.events,
            cancel: self.cancel,
            node: id,
            opts: &self.exec,
            registry: &self.registry,
            phases: Default::default(),
            image_layer: self.image_nodes.contains(&id),
            cpu,
            cpu_held: Default::default(),
        };
        let inputs = Inputs {
            parent: node.parent.map(|p| &states[&p]),
            states,
            selection: plan.selections.get(&id).map(|s| &**s),
            base_identity: plan.base_identities.get(&id),
            debian_set: plan.debian_sets.get(&id).map(|s| &**s),
        };
        self.restore_cache_mounts(id, plan);
        let executor = self.executor.unwrap_or_else(|| exec::executor(&node.op));
        let record = executor.execute(&ctx, node, &inputs)?;
        Ok((record, ctx.phases.into_inner().unwrap_or_else(|e| e.into_inner())))
    }
}

#[cfg(test)]
mod tests {
    //! The scheduler against a fake executor: which steps run, in what
    //! circumstances, without a sandbox or root.

    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::exec::Executor;
    use crate::graph::{Node, Origin, RunOp};

    /// Records the steps it runs; fails the ones named in `fail`; cancels
    /// the build when it runs `cancel_at`.
    struct Fake<'a> {
        ran: Mutex<Vec<String>>,
        fail: &'a [&'a str],
        cancel_at: Option<(&'a str, &'a AtomicBool)>,
    }

    impl<'a> Fake<'a> {
        fn new(fail: &'a [&'a str]) -> Fake<'a> {
            Fake {
                ran: Mutex::new(Vec::new()),
                fail,
                cancel_at: None,
            }
        }

        fn ran(&self) -> Vec<String> {
            let mut v = self.ran.lock().unwrap().clone();
            v.sort();
            v
        }
    }

    impl Executor for Fake<'_> {
        fn execute(&self, _: &ExecCtx<'_>, node: &crate::graph::Node, _: &Inputs<'_>) -> Result<Record> {
            let Op::Run(run) = &node.op else {
                unreachable!("only run nodes here")
            };
            let name = run.argv.join(" ");
            self.ran.lock().unwrap().push(name.clone());
            if let Some((at, cancel)) = self.cancel_at {
                if at == name {
                    cancel.store(true, Ordering::SeqCst);
                }
            }
            if self.fail.contains(&name.as_str()) {
                return Err(Error::Step {
                    origin: node.origin.clone(),
                    message: format!("`{name}` failed"),
                    detail: String::new(),
                });
            }
            Ok(Record {
                layers: Vec::new(),
                config: None,
                restored: None,
            })
        }
    }

    /// A graph of `run` steps on scratch: `(command, parent step index)`.
    fn graph(dir: &std::path::Path, steps: &[(&str, Option<usize>)]) -> Graph {
        let mut g = Graph::new(dir.to_path_buf());
        let origin = |line| Origin {
            file: "strata.rhai".into(),
            line,
            col: 1,
        };
        let root = g
            .add(Node {
                op: Op::Scratch,
                parent: None,
                origin: origin(1),
                description: "scratch()".into(),
                platform: crate::image::Platform::host(),
            })
            .unwrap();
        let mut ids = Vec::new();
        for (i, (cmd, parent)) in steps.iter().enumerate() {
            let run = RunOp::new(vec![cmd.to_string()]);
            let id = g
                .add(Node {
                    op: Op::Run(run),
                    parent: Some(parent.map_or(root, |p| ids[p])),
                    origin: origin(i as u32 + 2),
                    description: format!("run({cmd:?})"),
                    platform: crate::image::Platform::host(),
                })
                .unwrap();
            ids.push(id);
        }
        g
    }

    fn build(steps: &[(&str, Option<usize>)], keep_going: bool, fake: &Fake<'_>, cancel: &AtomicBool) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let g = graph(dir.path(), steps);
        let opts = BuildOptions {
            jobs: 1,
            keep_going,
            recipe: dir.path().join("strata.rhai"),
            ..BuildOptions::default()
        };
        let quiet = |_: Event| {};
        let scheduler = Scheduler::new(&store, &g, opts, &quiet, cancel).with_executor(fake);
        let nodes: Vec<NodeId> = (0..g.len()).collect();
        let plan = scheduler.plan(&nodes).unwrap();
        scheduler.run(&plan, &nodes)
    }

    /// `cpu` and `b` each wait (up to 5 s) until `c` has started; `cpu`
    /// waits inside a CPU phase.
    struct Phased {
        c_started: Mutex<bool>,
        started: Condvar,
        saw_c: Mutex<Vec<String>>,
    }

    impl Executor for Phased {
        fn execute(&self, ctx: &ExecCtx<'_>, node: &crate::graph::Node, _: &Inputs<'_>) -> Result<Record> {
            let Op::Run(run) = &node.op else {
                unreachable!("only run nodes here")
            };
            let name = run.argv.join(" ");
            let _cpu = (name == "cpu").then(|| ctx.cpu_phase());
            let mut started = self.c_started.lock().unwrap();
            if name == "c" {
                *started = true;
                self.started.notify_all();
            } else {
                let (started, _) = self
                    .started
                    .wait_timeout_while(started, std::time::Duration::from_secs(5), |s| !*s)
                    .unwrap();
                if *started {
                    self.saw_c.lock().unwrap().push(name);
                }
            }
            Ok(Record {
                layers: Vec::new(),
                config: None,
                restored: None,
            })
        }
    }

    #[test]
    fn a_step_in_a_cpu_phase_gives_its_job_slot_to_another() {
        // Two slots, taken by `cpu` and `b`, which both wait for `c`: `c`
        // only starts if `cpu` gave its slot up when its CPU phase began.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let g = graph(dir.path(), &[("cpu", None), ("b", None), ("c", None)]);
        let opts = BuildOptions {
            jobs: 2,
            recipe: dir.path().join("strata.rhai"),
            ..BuildOptions::default()
        };
        let phased = Phased {
            c_started: Mutex::new(false),
            started: Condvar::new(),
            saw_c: Mutex::new(Vec::new()),
        };
        let quiet = |_: Event| {};
        let cancel = AtomicBool::new(false);
        let scheduler = Scheduler::new(&store, &g, opts, &quiet, &cancel).with_executor(&phased);
        let nodes: Vec<NodeId> = (0..g.len()).collect();
        let plan = scheduler.plan(&nodes).unwrap();
        let outcome = scheduler.run(&plan, &nodes);
        assert!(outcome.errors.is_empty());
        let mut saw = phased.saw_c.into_inner().unwrap();
        saw.sort();
        assert_eq!(saw, ["b", "cpu"]);
    }

    #[test]
    fn equal_steps_run_once() {
        let fake = Fake::new(&[]);
        let outcome = build(&[("make", None), ("make", None)], false, &fake, &AtomicBool::new(false));
        assert!(outcome.errors.is_empty());
        assert_eq!(fake.ran(), ["make"]);
        assert_eq!(outcome.executed.len(), 1);
        assert_eq!(outcome.states.len(), 3);
    }

    #[test]
    fn after_a_failure_no_new_step_starts() {
        let fake = Fake::new(&["broken"]);
        let outcome = build(
            &[("broken", None), ("other", None)],
            false,
            &fake,
            &AtomicBool::new(false),
        );
        assert_eq!(fake.ran(), ["broken"]);
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].1.to_string(), "strata.rhai:2:1: `broken` failed");
    }

    #[test]
    fn keep_going_builds_everything_that_does_not_depend_on_a_failure() {
        let fake = Fake::new(&["broken"]);
        let steps = [
            ("broken", None),
            ("after-broken", Some(0)),
            ("other", None),
            ("after-other", Some(2)),
        ];
        let outcome = build(&steps, true, &fake, &AtomicBool::new(false));
        assert_eq!(fake.ran(), ["after-other", "broken", "other"]);
        assert_eq!(outcome.errors.len(), 1);
    }

    #[test]
    fn a_cancelled_build_starts_nothing_more_and_says_interrupted() {
        let cancel = AtomicBool::new(false);
        let mut fake = Fake::new(&[]);
        fake.cancel_at = Some(("first", &cancel));
        let outcome = build(
            &[("first", None), ("second", None), ("third", None)],
            false,
            &fake,
            &cancel,
        );
        assert_eq!(fake.ran(), ["first"]);
        assert!(
            outcome.errors.iter().any(|(_, e)| e.is_interrupted()),
            "{:?}",
            outcome.errors
        );
    }
}
