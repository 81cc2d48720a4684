//! The build graph: plain data that the recipe language records and the
//! engine executes. Nodes are stored in creation order, so every input of a
//! node has a smaller id than the node itself. The graph knows nothing about
//! Rhai; each node keeps the `Origin` of the recipe call that made it.

use std::fmt;
use std::path::PathBuf;

/// Index of a node in `Graph::nodes`.
pub type NodeId = usize;

/// Where in a recipe a node or target was declared.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    /// The recipe file as the user named it (relative to the recipe's directory).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

impl Origin {
    /// True when the origin names a recipe position (not a default one).
    pub fn is_known(&self) -> bool {
        !self.file.is_empty() && self.line > 0
    }

    /// `file:line:col: ` for a known position, nothing otherwise: an error
    /// never shows an empty position such as `:0:0`.
    pub fn prefix(&self) -> String {
        if self.is_known() {
            format!("{self}: ")
        } else {
            String::new()
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// Where a base image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSource {
    /// `oci:DIR[:TAG]`: an OCI image layout on disk.
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE`: a `docker save` tarball.
    DockerArchive { file: PathBuf },
    /// `rootfs:FILE.tar`: a plain root filesystem tarball (like `docker import`).
    Rootfs { file: PathBuf },
    /// `[registry/]repository[:tag][@digest]`: an image in a registry.
    Registry { reference: String },
    /// `debian(suite, packages, #{…})`: a root filesystem strata assembles from `.deb`s.
    Debian(DebianBase),
}

/// What `debian(suite, packages, #{mirror, arch, variant})` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianBase {
    pub suite: String,
    pub packages: Vec<String>,
    /// The mirror's base URL; `None` means the host's apt sources.
    pub mirror: Option<String>,
    /// Debian architecture; `None` means the host's.
    pub arch: Option<String>,
    /// `required` (the default) or `essential`.
    pub variant: Option<String>,
    /// Install the requested packages' `Recommends` too (apt's default; off here).
    pub recommends: bool,
    /// Keep documentation, man pages, info and locales (off: a slim base, as
    /// `debian:*-slim`, through dpkg's `path-exclude`).
    pub docs: bool,
    /// Translations a slim base keeps (`/usr/share/locale/NAME`: `de`, `pt_BR`).
    pub locales: Vec<String>,
    /// Also read `SUITE-updates` and `SUITE-security` (both on by default;
    /// sid, unstable and experimental have neither) and take the highest
    /// version of each package across them.
    pub updates: bool,
    pub security: bool,
    /// Where `SUITE-security` is served (default: the host's apt source
    /// for it, else the mirror with `/debian` → `/debian-security`, else the mirror).
    pub security_mirror: Option<String>,
    /// Archive components (default `["main"]`).
    pub components: Vec<String>,
    /// An instant of Debian's snapshot archive (`20261101T000000Z`): every suite
    /// is read from the archive as it was then, so a lock can be made again.
    pub snapshot: Option<String>,
    /// The snapshot archive's URL, `{archive}` (`debian`, `debian-security`)
    /// and `{snapshot}` filled in (else `$STRATA_DEBIAN_SNAPSHOT_URL`).
    pub snapshot_url: Option<String>,
}

impl DebianBase {
    /// A spec with the defaults: `required`, slim, updates and security, `main`.
    pub fn new(suite: &str, packages: Vec<String>) -> DebianBase {
        DebianBase {
            suite: suite.to_string(),
            packages,
            mirror: None,
            arch: None,
            variant: None,
            recommends: false,
            docs: false,
            locales: Vec::new(),
            updates: true,
            security: true,
            security_mirror: None,
            components: vec!["main".into()],
            snapshot: None,
            snapshot_url: None,
        }
    }
}

/// What a `copy` reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySource {
    /// Paths relative to the build context (patterns match as the shell's);
    /// a directory selects its whole tree; what matches `exclude` (as a
    /// `.dockerignore` line) is left out.
    Context { paths: Vec<String>, exclude: Vec<String> },
    /// An absolute path inside another state (multi-stage artifact passing).
    State { node: NodeId, path: String },
    /// Nothing: the destination directory (and its parents) is created, as
    /// `mkdir -p` (a Dockerfile's WORKDIR).
    Mkdir,
    /// A file downloaded from `url`, with this SHA-256 (hex) when the recipe
    /// gives one (else pinned in `strata.lock`).
    Fetch { url: String, sha256: Option<String> },
    /// A file with this content (a Dockerfile's `COPY <<EOF`).
    Text { content: String },
}

/// A `copy` step: files into the parent state at `dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOp {
    pub source: CopySource,
    /// Destination; a trailing `/` means "into this directory".
    pub dst: String,
    /// `uid[:gid]` or `user[:group]`, resolved against the parent's `/etc/passwd`.
    pub chown: Option<String>,
    /// Permission bits applied to every copied file and directory.
    pub chmod: Option<u32>,
    /// Each context source lands under its own path (`a/b/c.txt` at
    /// `DST/a/b/c.txt`), as `COPY --parents`.
    pub parents: bool,
    /// A context file that is a tar archive (plain, gzip, xz or zstd) is
    /// unpacked into `dst`, as a Dockerfile's `ADD`.
    pub extract: bool,
}

/// Whether a RUN sees a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Only a loopback interface (the default: hermetic).
    None,
    /// The host's network, with its resolv.conf and hosts.
    Host,
}

/// A persistent cache directory mounted into a RUN, never part of the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMount {
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Cache identity; defaults to the target path. Recipes naming the same id share it.
    pub id: String,
    /// Let concurrent steps use the cache at once (default: one step at a time).
    pub shared: bool,
    /// Context paths whose content names the mount's content (a lockfile):
    /// `--cache-to` pushes the mount under their hash, `--cache-from`
    /// restores it before the step runs when the step itself misses. Not
    /// part of the step's key.
    pub export: Option<Vec<String>>,
}

/// Where a secret's value comes from on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
    /// Given on the command line (`strata build --secret id=ID,src=FILE`),
    /// as `docker build --secret`: the recipe names the id only.
    Given,
}

/// A secret mounted as a file for one RUN; never in a layer, key or log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMount {
    /// Identifier the recipe gives the secret.
    pub id: String,
    /// Absolute path inside the sandbox (default `/run/secrets/ID`).
    pub target: String,
    pub source: SecretSource,
    /// File mode (default 0400) and owner (default the step's user), as
    /// BuildKit's `mode`, `uid` and `gid`.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// A `Given` secret the command line does not give fails the step when
    /// required, else the step runs without it (BuildKit's default).
    pub required: bool,
    /// The step's key takes an HMAC of the value (keyed by the store's own
    /// secret key), so a changed secret re-runs the step; the value itself
    /// never reaches a key, a record or the output.
    pub invalidate: bool,
}

/// The SSH agent the build is given (`strata build --ssh ID=SOCKET`),
/// reachable by one RUN through a socket at `target`, as BuildKit's
/// `--mount=type=ssh`. Neither the socket's path nor the agent's keys are
/// part of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshMount {
    pub id: String,
    /// Absolute path of the socket inside the sandbox
    /// (default `/run/buildkit/ssh_agent.N`).
    pub target: String,
    /// The socket's mode (default 0600) and owner (default root), as
    /// BuildKit's `mode`, `uid` and `gid`.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// An agent the command line does not give fails the step when
    /// required, else the step runs without it (BuildKit's default).
    pub required: bool,
}

/// A read-only bind of another state's path into a RUN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    pub node: NodeId,
    pub path: String,
    pub target: String,
}

/// An empty tmpfs over `target` for one RUN (what is written there is not
/// in the layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmpfsMount {
    pub target: String,
    /// Bytes; the kernel's default (half the memory) when unset.
    pub size: Option<u64>,
}

/// A `run` step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOp {
    /// The argv; a shell string becomes `["/bin/sh", "-c", s]`.
    pub argv: Vec<String>,
    /// Extra environment for this step only, in order.
    pub env: Vec<(String, String)>,
    /// Overrides the state's user for this step.
    pub user: Option<String>,
    pub network: Network,
    pub caches: Vec<CacheMount>,
    pub secrets: Vec<SecretMount>,
    /// SSH agent sockets; the first is `SSH_AUTH_SOCK` unless the step sets it.
    pub ssh: Vec<SshMount>,
    pub mounts: Vec<BindMount>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Seconds before the step is killed.
    pub timeout: Option<u64>,
    /// `security: "insecure"`: every capability, all of /proc and /sys, no
    /// seccomp filter; the build must say `--allow insecure`.
    pub insecure: bool,
    /// `limits: #{ memory, pids, cpu }`; unset ones get the sandbox's
    /// defaults. Not part of the key: a limit changes whether a step
    /// finishes, not what it makes.
    pub limits: crate::sys::cgroup::Limits,
    /// Leave the directories made for cache and state mounts in the layer,
    /// as BuildKit does (the Dockerfile frontend asks for it); by default
    /// they leave no trace.
    pub keep_mount_points: bool,
}

impl RunOp {
    /// `argv` with every option at its default: no extra environment, the
    /// state's user, no network, no mounts, no timeout, sandboxed.
    pub fn new(argv: Vec<String>) -> RunOp {
        RunOp {
            argv,
            env: Vec::new(),
            user: None,
            network: Network::None,
            caches: Vec::new(),
            secrets: Vec::new(),
            ssh: Vec::new(),
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            timeout: None,
            insecure: false,
            limits: Default::default(),
            keep_mount_points: false,
        }
    }
}

/// A change to the image configuration that adds no layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaChange {
    Env(Vec<(String, String)>),
    /// Environment values that read the state's environment when the
    /// image is assembled: `${NAME}` is NAME's value (empty when unset),
    /// `$$` a `$` (a Dockerfile's `ENV PATH=/x:$PATH` on a base image).
    EnvExpand(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    /// `PORT/PROTO`.
    Expose(String),
    Label(String, String),
    Volume(String),
    StopSignal(String),
    /// `None`: no health check (`["NONE"]`, turning off an inherited one).
    Healthcheck(Option<Healthcheck>),
    /// The shell Docker runs shell-form commands with (recorded in the configuration).
    Shell(Vec<String>),
    /// A trigger for images built on this one, as written (`RUN make`).
    OnBuild(String),
    /// Drops the triggers inherited from the base (once a Dockerfile's
    /// stage has run them).
    NoOnBuild,
}

/// A health check: Docker's `Healthcheck` in the image configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", argv…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Durations in nanoseconds, as Docker stores them.
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u64>,
}

/// What a node does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Scratch,
    Base(BaseSource),
    Copy(CopyOp),
    Run(RunOp),
    Meta(MetaChange),
}

/// One step of the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub op: Op,
    /// The state this node builds on (`None` for bases and scratch).
    pub parent: Option<NodeId>,
    pub origin: Origin,
    /// How the recipe wrote this step; becomes the history's `created_by`.
    pub description: String,
    /// The platform the state is for: a base is resolved for it, a RUN
    /// executes its binaries (under emulation when it is not the host's).
    /// A node's children share its platform.
    pub platform: crate::platform::Platform,
}

impl Node {
    /// Every node this one reads: its parent, then other states it copies or mounts from.
    pub fn inputs(&self) -> Vec<NodeId> {
        let mut inputs: Vec<NodeId> = self.parent.into_iter().collect();
        match &self.op {
            Op::Copy(CopyOp {
                source: CopySource::State { node, .. },
                ..
            }) => inputs.push(*node),
            Op::Run(run) => inputs.extend(run.mounts.iter().map(|m| m.node)),
            _ => {}
        }
        inputs
    }

    /// Rewrites every node id this node reads through `f`.
    fn remap(&mut self, f: impl Fn(NodeId) -> NodeId) {
        self.parent = self.parent.map(&f);
        match &mut self.op {
            Op::Copy(CopyOp {
                source: CopySource::State { node, .. },
                ..
            }) => *node = f(*node),
            Op::Run(run) => {
                for m in &mut run.mounts {
                    m.node = f(m.node);
                }
            }
            _ => {}
        }
    }

    /// True for steps that produce a filesystem layer.
    pub fn makes_layer(&self) -> bool {
        matches!(self.op, Op::Base(_) | Op::Copy(_) | Op::Run(_))
    }
}

/// What a target yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// An image, stored under `tags`.
    Image { node: NodeId, tags: Vec<String> },
    /// Files from a state, copied to the host.
    Artifact { node: NodeId, path: String },
    /// Other targets by name.
    Group { members: Vec<String> },
}

/// A named thing `strata build` can be asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub origin: Origin,
    /// In a build for several platforms, the platform of this variant of
    /// the target (every platform has one, under the same name).
    pub platform: Option<crate::platform::Platform>,
}

impl Target {
    /// The node an image or artifact target exports (a group has none).
    pub fn node(&self) -> Option<NodeId> {
        match &self.kind {
            TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. } => Some(*node),
            TargetKind::Group { .. } => None,
        }
    }
}

/// A whole evaluated recipe. Nodes are added only through [`Graph::add`],
/// which checks that a node's inputs are already there, so the node list is
/// always in topological order.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    pub targets: Vec<Target>,
    /// The build context's root directory (the recipe's directory by default).
    pub context_dir: PathBuf,
    /// An ignore file that replaces the context's `.dockerignore` (a
    /// Dockerfile's own `NAME.dockerignore` beside it, as BuildKit reads).
    pub ignore_file: Option<PathBuf>,
    /// The modules the recipe imported: (`strata/NAME` or the file relative
    /// to the recipe's directory, SHA256 of its text), for the provenance.
    pub modules: Vec<(String, String)>,
}

/// A node whose inputs are not in the graph yet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("node {node} reads node {input}, which is not in the graph")]
pub struct MissingInput {
    pub node: NodeId,
    pub input: NodeId,
}

/// A target name that does not exist, or a group that includes itself.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no target named `{name}`; the recipe defines: {known}")]
    Unknown { name: String, known: String },
    #[error("group `{0}` includes itself")]
    Cycle(String),
}

impl Graph {
    /// An empty graph whose build context is `context_dir`.
    pub fn new(context_dir: PathBuf) -> Graph {
        Graph {
            context_dir,
            ..Graph::default()
        }
    }

    /// Adds a node and returns its id; its inputs must be in the graph.
    pub fn add(&mut self, node: Node) -> Result<NodeId, MissingInput> {
        let id = self.nodes.len();
        if let Some(input) = node.inputs().into_iter().find(|&i| i >= id) {
            return Err(MissingInput { node: id, input });
        }
        self.nodes.push(node);
        Ok(id)
    }

    /// One graph from the graphs a recipe gave for each platform: equal
    /// nodes (same step on the same inputs, for the same platform) are kept
    /// once, so a build-platform stage or a shared base is built once, and
    /// each target has one variant per platform.
    pub fn merge(graphs: Vec<Graph>) -> Graph {
        let mut graphs = graphs.into_iter();
        let Some(mut merged) = graphs.next() else {
            return Graph::default();
        };
        let mut seen: std::collections::HashMap<String, NodeId> = std::collections::HashMap::new();
        let key = |n: &Node| format!("{:?}|{:?}|{:?}|{}", n.op, n.parent, n.platform, n.description);
        for (id, node) in merged.nodes.iter().enumerate() {
            seen.entry(key(node)).or_insert(id);
        }
        let mut variants: Vec<Target> = Vec::new();
        for mut graph in graphs {
            let mut ids: Vec<NodeId> = Vec::with_capacity(graph.nodes.len());
            let platform = graph
                .targets
                .iter()
                .find_map(|t| t.node())
                .map(|n| graph.nodes[n].platform.clone());
            for mut node in std::mem::take(&mut graph.nodes) {
                node.remap(|i| ids[i]);
                let id = *seen.entry(key(&node)).or_insert_with(|| {
                    merged.nodes.push(node);
                    merged.nodes.len() - 1
                });
                ids.push(id);
            }
            for mut target in graph.targets {
                match &mut target.kind {
                    TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. } => *node = ids[*node],
                    TargetKind::Group { .. } => continue,
                }
                target.platform = platform.clone();
                variants.push(target);
            }
        }
        let first = merged
            .targets
            .iter()
            .find_map(|t| t.node())
            .map(|n| merged.nodes[n].platform.clone());
        for t in merged.targets.iter_mut().filter(|t| t.node().is_some()) {
            t.platform = first.clone();
        }
        merged.targets.extend(variants);
        merged
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Rewrites every node's and target's origin (a frontend that
    /// generated the recipe points them back at its own source).
    pub fn remap_origins(&mut self, f: impl Fn(&mut Origin)) {
        for node in &mut self.nodes {
            f(&mut node.origin);
        }
        for target in &mut self.targets {
            f(&mut target.origin);
        }
    }

    /// Every node, in the order they were added (inputs first).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The target with this name.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Expands the requested names (groups included) into image and artifact
    /// targets, in order, without duplicates. No names means the `default`
    /// group if there is one, else every target.
    pub fn select_targets(&self, names: &[String]) -> Result<Vec<&Target>, TargetError> {
        let requested: Vec<String> = if !names.is_empty() {
            names.to_vec()
        } else if self.target("default").is_some() {
            vec!["default".to_string()]
        } else {
            self.targets.iter().map(|t| t.name.clone()).collect()
        };
        let mut out: Vec<&Target> = Vec::new();
        for name in &requested {
            self.expand(name, &mut Vec::new(), &mut out)?;
        }
        Ok(out)
    }

    fn expand<'a>(&'a self, name: &str, stack: &mut Vec<String>, out: &mut Vec<&'a Target>) -> Result<(), TargetError> {
        let target = self.target(name).ok_or_else(|| TargetError::Unknown {
            name: name.to_string(),
            known: self
                .targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        match &target.kind {
            TargetKind::Group { members } => {
                if stack.iter().any(|s| s == name) {
                    return Err(TargetError::Cycle(name.to_string()));
                }
                stack.push(name.to_string());
                for member in members {
                    self.expand(member, stack, out)?;
                }
                stack.pop();
            }
            _ => {
                // Every platform's variant of the target.
                for variant in self.targets.iter().filter(|t| t.name == target.name) {
                    if !out.iter().any(|t| std::ptr::eq(*t, variant)) {
                        out.push(variant);
                    }
                }
            }
        }
        Ok(())
    }

    /// `--shard I/N` (`index` from 1): a deterministic share of `targets`
    /// (groups aside), balanced by how many nodes each needs. Targets are
    /// taken largest first (then by name) and each goes to the shard with
    /// the fewest nodes so far (then the lowest index); a target's platform
    /// variants stay together. Returns the share and its node count.
    pub fn shard<'a>(&self, targets: &[&'a Target], index: usize, count: usize) -> (Vec<&'a Target>, usize) {
        let mut names: Vec<(&str, usize)> = Vec::new();
        for t in targets.iter().filter(|t| t.node().is_some()) {
            if names.iter().any(|(n, _)| *n == t.name) {
                continue;
            }
            let variants: Vec<&Target> = targets.iter().copied().filter(|v| v.name == t.name).collect();
            names.push((t.name.as_str(), self.nodes_for(&variants).len()));
        }
        names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut load = vec![0usize; count.max(1)];
        let mut mine = Vec::new();
        for (name, weight) in names {
            let shard = (0..load.len()).min_by_key(|&i| (load[i], i)).unwrap_or(0);
            load[shard] += weight;
            if shard + 1 == index {
                mine.push(name.to_string());
            }
        }
        let share: Vec<&Target> = targets.iter().copied().filter(|t| mine.contains(&t.name)).collect();
        let nodes = self.nodes_for(&share).len();
        (share, nodes)
    }

    /// Every node the given targets need, in dependency order.
    pub fn nodes_for(&self, targets: &[&Target]) -> Vec<NodeId> {
        let roots: Vec<NodeId> = targets.iter().filter_map(|t| t.node()).collect();
        self.closure(&roots)
    }

    /// The nodes `roots` need, in dependency order (inputs first).
    pub fn closure(&self, roots: &[NodeId]) -> Vec<NodeId> {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<NodeId> = roots.to_vec();
        while let Some(id) = stack.pop() {
            if !needed[id] {
                needed[id] = true;
                stack.extend(self.nodes[id].inputs());
            }
        }
        (0..self.nodes.len()).filter(|&i| needed[i]).collect()
    }
}

/// The file name a URL's download gets in a directory destination: the
/// last segment of its path.
pub fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/')
        .find(|s| !s.is_empty() && !s.contains(':'))
        .unwrap_or("download")
        .to_string()
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn a_download_is_named_after_the_urls_last_segment() {
        assert_eq!(
            super::url_file_name("https://example.org/x/tool-1.2.tar.gz?sig=1"),
            "tool-1.2.tar.gz"
        );
        assert_eq!(super::url_file_name("http://127.0.0.1:8000/"), "download");
    }
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    /// A graph with one chain of `len` nodes per (name, len).
    fn graph(chains: &[(&str, usize)]) -> Graph {
        let mut g = Graph::new(PathBuf::from("/"));
        for (name, len) in chains {
            let mut parent = None;
            for i in 0..*len {
                let node = Node {
                    op: if i == 0 {
                        Op::Scratch
                    } else {
                        Op::Meta(MetaChange::Label(format!("{name}{i}"), String::new()))
                    },
                    parent,
                    origin: Origin::default(),
                    description: format!("{name}{i}"),
                    platform: crate::platform::Platform::host(),
                };
                parent = Some(g.add(node).unwrap());
            }
            g.targets.push(Target {
                name: name.to_string(),
                kind: TargetKind::Image {
                    node: parent.unwrap(),
                    tags: vec![],
                },
                origin: Origin::default(),
                platform: None,
            });
        }
        g
    }

    fn names(share: &[&Target]) -> Vec<String> {
        share.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn shards_split_every_target_once_balanced_by_nodes() {
        let g = graph(&[("a", 9), ("b", 5), ("c", 4), ("d", 3), ("e", 1)]);
        let all: Vec<&Target> = g.targets.iter().collect();
        let shards: Vec<(Vec<String>, usize)> = (1..=2)
            .map(|i| {
                let (share, nodes) = g.shard(&all, i, 2);
                (names(&share), nodes)
            })
            .collect();
        // Largest first, each to the lighter shard (on a tie, the first):
        // a→1 (9), b→2 (5), c→2 (9), d→1 (12), e→2 (10).
        assert_eq!(shards[0], (vec!["a".to_string(), "d".into()], 12));
        assert_eq!(shards[1], (vec!["b".to_string(), "c".into(), "e".into()], 10));
        // The same again: deterministic; and a shard beyond the targets is empty.
        assert_eq!(names(&g.shard(&all, 1, 2).0), shards[0].0);
        assert!(g.shard(&all, 6, 6).0.is_empty());
    }
}
