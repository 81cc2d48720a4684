//! Native Debian bases: `debian(suite, packages, #{mirror, arch, variant})`.
//!
//! Planning resolves the package set, or takes it from `strata.lock`:
//! `InRelease` (signature checked with `gpgv` against the Debian archive
//! keyring when both are present) → the SHA256 of `Packages` → every
//! package's SHA256. Building downloads the `.deb`s in parallel into the
//! store (verified, shared by all recipes), extracts the essential ones,
//! then runs dpkg in the sandbox with the network off to install them all
//! properly (maintainer scripts run, `policy-rc.d` keeps services down), and
//! turns the result into one layer. Same lock, same layer.

pub mod control;
pub mod deb;
pub mod resolve;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::events::Event;
use crate::graph::{DebianBase, Node};
use crate::image::{self, History, ImageConfig};
use crate::lock::{DebianSet, Lock, LockedPackage};
use crate::step::ExecCtx;
use crate::store::{LayerRef, Record, Store};
use control::{dependencies, stanzas, Stanza};
use resolve::{Universe, Variant};

/// The keyring `InRelease` is checked against.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Where the `.deb`s are visible inside the sandbox while dpkg installs them.
const DEBS_IN_SANDBOX: &str = "/var/cache/strata-debs";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What goes wrong planning or assembling a `debian(...)` base.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    /// A condition with no underlying cause (no mirror, a bad signature…).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("cannot decompress `{path}`: {source}")]
    Decompress {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
}

/// A download from the mirror that failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{url}` answered {status}")]
    Status { url: String, status: u16 },
    #[error("cannot download `{url}`: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("cannot download `{url}`: {source}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

/// The engine error for `spec`.
fn fail(spec: &DebianBase, source: impl Into<DebianError>) -> Error {
    Error::Debian {
        suite: spec.suite.clone(),
        source: Box::new(source.into()),
    }
}

impl From<String> for DebianError {
    fn from(message: String) -> DebianError {
        DebianError::Invalid(message)
    }
}

impl From<&str> for DebianError {
    fn from(message: &str) -> DebianError {
        DebianError::Invalid(message.to_string())
    }
}

/// The architecture a spec asks for (Debian's names equal OCI's for the usual ones).
pub fn arch_of(spec: &DebianBase) -> String {
    spec.arch.clone().unwrap_or_else(|| image::host_arch().to_string())
}

fn variant_of(spec: &DebianBase) -> Result<Variant> {
    match spec.variant.as_deref() {
        None | Some("required") | Some("minbase") => Ok(Variant::Required),
        Some("essential") => Ok(Variant::Essential),
        Some(other) => Err(fail(
            spec,
            format!("unknown variant `{other}`: expected \"required\" or \"essential\""),
        )),
    }
}

/// The name a package set is filed under in `strata.lock`.
pub fn lock_name(spec: &DebianBase) -> String {
    let mut packages = spec.packages.clone();
    packages.sort();
    packages.dedup();
    format!(
        "{}/{} {}: {}",
        spec.suite,
        arch_of(spec),
        spec.variant.as_deref().unwrap_or("required"),
        packages.join(" ")
    )
    .trim_end()
    .trim_end_matches(':')
    .to_string()
}

/// The mirror: the recipe's option, else `$STRATA_DEBIAN_MIRROR`, else the
/// first Debian entry of the host's apt sources (one that carries `suite`
/// if any does).
pub fn mirror(spec: &DebianBase) -> Result<String> {
    let env = std::env::var("STRATA_DEBIAN_MIRROR").ok();
    if let Some(m) = spec.mirror.as_deref().or(env.as_deref()).filter(|m| !m.is_empty()) {
        return Ok(m.trim_end_matches('/').to_string());
    }
    let entries = apt_sources(Path::new("/etc/apt"));
    let pick = entries
        .iter()
        .find(|(_, suites)| suites.iter().any(|s| s == &spec.suite))
        .or_else(|| entries.first());
    match pick {
        Some((uri, _)) => Ok(uri.trim_end_matches('/').to_string()),
        None => Err(fail(
            spec,
            "no Debian mirror: pass #{ mirror: \"http://HOST/debian\" }, set STRATA_DEBIAN_MIRROR or configure one in /etc/apt/sources.list(.d)",
        )),
    }
}

/// `(uri, suites)` of every `deb` entry in the apt sources under `etc_apt`.
pub fn apt_sources(etc_apt: &Path) -> Vec<(String, Vec<String>)> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let name = file.to_string_lossy();
        if name.ends_with(".sources") {
            for s in stanzas(&text) {
                let enabled = s.get("Enabled").is_none_or(|v| v != "no");
                let deb = s.get("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
                if enabled && deb {
                    let suites: Vec<String> = s
                        .get("Suites")
                        .map(|v| v.split_whitespace().map(str::to_string).collect())
                        .unwrap_or_default();
                    for uri in s.get("URIs").map(|v| v.split_whitespace()).into_iter().flatten() {
                        out.push((uri.to_string(), suites.clone()));
                    }
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                let mut words = line.split_whitespace();
                if words.next() != Some("deb") {
                    continue;
                }
                let mut rest: Vec<&str> = words.collect();
                if rest.first().is_some_and(|w| w.starts_with('[')) {
                    let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                    rest.drain(..=end);
                }
                if rest.len() >= 2 {
                    out.push((rest[0].to_string(), vec![rest[1].to_string()]));
                }
            }
        }
    }
    out
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(120))
        .build()
}

/// GETs `url` into `out`, with retries of transient failures.
fn fetch_into(agent: &ureq::Agent, url: &str, out: &mut dyn std::io::Write) -> std::result::Result<u64, FetchError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match agent.get(url).call() {
            Ok(resp) => {
                return std::io::copy(&mut resp.into_reader(), out).map_err(|source| FetchError::Read {
                    url: url.to_string(),
                    source,
                })
            }
            Err(ureq::Error::Status(code, _)) if (code == 429 || code >= 500) && attempt < 4 => {}
            Err(ureq::Error::Status(status, _)) => {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status,
                })
            }
            Err(source) if attempt >= 4 => {
                return Err(FetchError::Transport {
                    url: url.to_string(),
                    source: Box::new(source),
                })
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(250 << attempt));
    }
}

fn fetch(agent: &ureq::Agent, url: &str) -> std::result::Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    fetch_into(agent, url, &mut out)?;
    Ok(out)
}

/// Checks `InRelease` with gpgv and returns the signed text. Without gpgv or
/// the keyring the text is used unverified, and `warn` says so.
fn verified_release(
    spec: &DebianBase,
    url: &str,
    bytes: &[u8],
    store: &Store,
    warn: &dyn Fn(String),
) -> Result<String> {
    let keyring = Path::new(KEYRING);
    let gpgv = Command::new("gpgv").arg("--version").output().is_ok();
    if gpgv && keyring.exists() {
        let tmp = store.tmp_dir()?;
        let input = tmp.path().join("InRelease");
        let output = tmp.path().join("Release");
        fs::write(&input, bytes).map_err(Error::io("write", &input))?;
        let out = Command::new("gpgv")
            .arg("--keyring")
            .arg(keyring)
            .arg("--output")
            .arg(&output)
            .arg(&input)
            .output()
            .map_err(Error::io("run gpgv on", &input))?;
        if !out.status.success() {
            return Err(fail(
                spec,
                format!(
                    "the signature of `{url}` does not verify against {KEYRING}:\n{}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        return fs::read_to_string(&output).map_err(Error::io("read", &output));
    }
    warn(format!(
        "`{url}` is NOT signature-checked: {}",
        if gpgv {
            format!("{KEYRING} is missing (install debian-archive-keyring)")
        } else {
            "gpgv is not installed (install gpgv)".to_string()
        }
    ));
    let text = String::from_utf8_lossy(bytes).into_owned();
    // The cleartext between the armor header's blank line and the signature.
    let body = text
        .split_once("\n\n")
        .map(|(_, b)| b)
        .unwrap_or(&text)
        .split("\n-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap_or("")
        .to_string();
    Ok(body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::digest::Digest::of(bytes).hex()
}

/// Resolves the spec against the mirror's current index.
fn resolve_now(spec: &DebianBase, store: &Store, warn: &dyn Fn(String)) -> Result<DebianSet> {
    let mirror = mirror(spec)?;
    let arch = arch_of(spec);
    let variant = variant_of(spec)?;
    let agent = agent();
    let release_url = format!("{mirror}/dists/{}/InRelease", spec.suite);
    let inrelease = fetch(&agent, &release_url).map_err(|e| fail(spec, e))?;
    let release = verified_release(spec, &release_url, &inrelease, store, warn)?;
    let fields = stanzas(&release).into_iter().next().unwrap_or_default();
    let listed: HashMap<String, (String, u64)> = fields
        .get("SHA256")
        .map(|v| {
            v.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    let (hash, size, path) = (w.next()?, w.next()?, w.next()?);
                    Some((path.to_string(), (hash.to_string(), size.parse().ok()?)))
                })
                .collect()
        })
        .unwrap_or_default();
    let (path, (hash, _)) = ["xz", "gz"]
        .iter()
        .find_map(|ext| {
            let p = format!("main/binary-{arch}/Packages.{ext}");
            listed.get(&p).map(|h| (p, h.clone()))
        })
        .ok_or_else(|| {
            fail(
                spec,
                format!("`{release_url}` lists no Packages index for main/binary-{arch}"),
            )
        })?;
    let cached = store.root().join("debian/index").join(&hash);
    let compressed = match fs::read(&cached) {
        Ok(bytes) if sha256_hex(&bytes) == hash => bytes,
        _ => {
            let url = format!("{mirror}/dists/{}/{path}", spec.suite);
            let bytes = fetch(&agent, &url).map_err(|e| fail(spec, e))?;
            let actual = sha256_hex(&bytes);
            if actual != hash {
                return Err(fail(
                    spec,
                    format!("`{url}` has SHA256 {actual}, but the signed Release says {hash}"),
                ));
            }
            fs::create_dir_all(cached.parent().expect("has a parent")).map_err(Error::io("create", &cached))?;
            store.write_atomic(&cached, &bytes)?;
            bytes
        }
    };
    let mut text = String::new();
    let decoded: Box<dyn Read> = if path.ends_with(".xz") {
        Box::new(xz2::read::XzDecoder::new(&compressed[..]))
    } else {
        Box::new(flate2::read::MultiGzDecoder::new(&compressed[..]))
    };
    { decoded }.read_to_string(&mut text).map_err(|source| {
        fail(
            spec,
            DebianError::Decompress {
                path: path.to_string(),
                source,
            },
        )
    })?;
    let universe = Universe::new(stanzas(&text), &arch).map_err(|e| fail(spec, e))?;
    let resolution = resolve::resolve(&universe, variant, &spec.packages).map_err(|e| fail(spec, e))?;
    let base = resolution.base.into_iter().collect();
    let chosen = resolution.packages;
    Ok(DebianSet {
        base,
        mirror,
        suite: spec.suite.clone(),
        arch,
        variant: spec.variant.clone().unwrap_or_else(|| "required".into()),
        packages: chosen
            .into_iter()
            .map(|c| LockedPackage {
                name: c.name,
                version: c.version,
                arch: c.arch,
                sha256: c.sha256,
                filename: c.filename,
                size: c.size,
            })
            .collect(),
    })
}

/// Planning: the package set (from the lock, or resolved and pinned) and
/// the identity that keys the base.
pub fn plan(spec: &DebianBase, store: &Store, lock: &Lock, warn: &dyn Fn(String)) -> Result<(DebianSet, [u8; 32])> {
    let set = lock.debian(&lock_name(spec), || resolve_now(spec, store, warn))?;
    let mut enc = crate::key::KeyEncoder::new("debian-v1");
    enc.str(&set.mirror).str(&set.suite).str(&set.arch).str(&set.variant);
    for p in &set.packages {
        enc.str(&p.name).str(&p.version).str(&p.arch).str(&p.sha256);
    }
    enc.strs(&set.base);
    Ok((set, enc.finish().0))
}

fn deb_path(store: &Store, sha256: &str) -> PathBuf {
    store.root().join("debian/debs").join(format!("{sha256}.deb"))
}

/// Downloads the packages the store lacks, eight at a time, each checked
/// against its SHA256 and size.
fn download(ctx: &ExecCtx<'_>, spec: &DebianBase, set: &DebianSet) -> Result<()> {
    let store = ctx.store;
    let dir = store.root().join("debian/debs");
    fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    let missing: Vec<&LockedPackage> = set
        .packages
        .iter()
        .filter(|p| !deb_path(store, &p.sha256).exists())
        .collect();
    let total: u64 = missing.iter().map(|p| p.size).sum();
    let done = AtomicU64::new(0);
    // The mirror configured now serves the bytes; the lock's is the fallback.
    let mirror = mirror(spec).unwrap_or_else(|_| set.mirror.clone());
    let agent = agent();
    // Partial downloads stay in this process's scratch space (gone with it).
    let scratch = store.tmp_dir()?;
    crate::par::try_each(&missing, 8, |p| {
        if ctx.cancelled() {
            return Err(Error::Interrupted);
        }
        let url = format!("{mirror}/{}", p.filename);
        let mut blob = tempfile::NamedTempFile::new_in(scratch.path())
            .map_err(Error::io("create temporary file in", scratch.path()))?;
        let mut hashing = crate::layer::HashWriter::new(blob.as_file_mut());
        fetch_into(&agent, &url, &mut hashing).map_err(|e| fail(spec, e))?;
        let (_, digest, size) = hashing.finish();
        let actual = digest.hex();
        if actual != p.sha256 || size != p.size {
            return Err(fail(
                spec,
                format!(
                    "`{url}` has SHA256 {actual} ({size} bytes), but the index says {} ({} bytes)",
                    p.sha256, p.size
                ),
            ));
        }
        let dest = deb_path(store, &p.sha256);
        blob.persist(&dest).map_err(|e| Error::io("store", &dest)(e.error))?;
        let bytes = done.fetch_add(p.size, Ordering::Relaxed) + p.size;
        ctx.event(Event::Downloading {
            node: ctx.node,
            bytes,
            total,
        });
        Ok(())
    })
}

/// Names in `names` that `group` (one dependency's alternatives) can mean,
/// through `provides` (virtual name → providers).
fn members<'a>(
    group: &'a [control::Alternative],
    names: &'a BTreeSet<String>,
    provides: &'a HashMap<String, Vec<String>>,
) -> impl Iterator<Item = String> + 'a {
    group.iter().flat_map(move |alt| {
        let mut v: Vec<String> = Vec::new();
        if names.contains(&alt.name) {
            v.push(alt.name.clone());
        }
        v.extend(provides.get(&alt.name).into_iter().flatten().cloned());
        v
    })
}

/// Packages that cannot be put in install rounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoundsError {
    /// Packages that pre-depend on each other: none can be configured first.
    #[error("the packages {0} pre-depend on each other in a cycle: none of them can be configured first")]
    PreDependsCycle(String),
}

/// The install plan: round 0 is the essential closure (extracted first, then installed
/// with dependency checks relaxed, as debootstrap and mmdebstrap do), then
/// the rest in rounds so that every package's `Pre-Depends` are configured
/// before it is unpacked and its `Depends` are installed with it or before.
fn rounds(controls: &BTreeMap<String, Stanza>) -> std::result::Result<Vec<Vec<String>>, RoundsError> {
    let names: BTreeSet<String> = controls.keys().cloned().collect();
    let mut provides: HashMap<String, Vec<String>> = HashMap::new();
    for (name, c) in controls {
        for alt in c
            .get("Provides")
            .and_then(|v| dependencies(v).ok())
            .into_iter()
            .flatten()
            .flatten()
        {
            provides.entry(alt.name).or_default().push(name.clone());
        }
    }
    let deps = |name: &str, fields: &[&str]| -> Vec<String> {
        let c = &controls[name];
        fields
            .iter()
            .filter_map(|f| c.get(*f))
            .filter_map(|v| dependencies(v).ok())
            .flatten()
            .flat_map(|group| members(&group, &names, &provides).collect::<Vec<_>>())
            .collect()
    };
    let mut essential: BTreeSet<String> = controls
        .iter()
        .filter(|(_, c)| c.get("Essential").is_some_and(|v| v == "yes"))
        .map(|(n, _)| n.clone())
        .collect();
    let mut queue: Vec<String> = essential.iter().cloned().collect();
    while let Some(n) = queue.pop() {
        for d in deps(&n, &["Pre-Depends", "Depends"]) {
            if essential.insert(d.clone()) {
                queue.push(d);
            }
        }
    }
    // Pre-Depends must be configured in an earlier round (weight 1); Depends
    // in the same round at the latest (weight 0: dpkg orders one invocation
    // itself, so a cycle of Depends is fine inside one round).
    let rest: Vec<&String> = names.iter().filter(|n| !essential.contains(*n)).collect();
    let mut graph: DiGraph<&str, usize> = DiGraph::new();
    let index: HashMap<&str, NodeIndex> = rest.iter().map(|n| (n.as_str(), graph.add_node(n.as_str()))).collect();
    for n in &rest {
        for (fields, weight) in [(&["Pre-Depends"][..], 1), (&["Depends"][..], 0)] {
            for d in deps(n, fields) {
                if let Some(&from) = index.get(d.as_str()) {
                    graph.update_edge(from, index[n.as_str()], weight);
                }
            }
        }
    }
    // Strongly connected components come out in reverse topological order.
    let mut round: BTreeMap<String, usize> = BTreeMap::new();
    let mut of_node: HashMap<NodeIndex, usize> = HashMap::new();
    for component in tarjan_scc(&graph).into_iter().rev() {
        let members: HashSet<NodeIndex> = component.iter().copied().collect();
        let mut need = 1;
        for &m in &component {
            for edge in graph.edges_directed(m, Direction::Incoming) {
                if members.contains(&edge.source()) {
                    if *edge.weight() > 0 {
                        let mut cycle: Vec<&str> = component.iter().map(|&i| graph[i]).collect();
                        cycle.sort_unstable();
                        return Err(RoundsError::PreDependsCycle(cycle.join(", ")));
                    }
                } else {
                    need = need.max(of_node[&edge.source()] + edge.weight());
                }
            }
        }
        for &m in &component {
            of_node.insert(m, need);
            round.insert(graph[m].to_string(), need);
        }
    }
    let last = round.values().copied().max().unwrap_or(0);
    let mut out = vec![essential.into_iter().collect::<Vec<_>>()];
    for r in 1..=last {
        let this: Vec<String> = round.iter().filter(|(_, v)| **v == r).map(|(n, _)| n.clone()).collect();
        if !this.is_empty() {
            out.push(this);
        }
    }
    Ok(out)
}

/// Files that record when or in what order things happened, not what was installed.
const UNREPRODUCIBLE: &[&str] = &[
    "/var/log/dpkg.log",
    "/var/log/alternatives.log",
    "/var/log/bootstrap.log",
    "/var/log/apt/history.log",
    "/var/log/apt/term.log",
    "/var/log/apt/eipp.log.xz",
    "/var/cache/ldconfig/aux-cache",
    "/var/lib/dpkg/status-old",
    "/var/lib/dpkg/available-old",
    "/var/lib/dpkg/diversions-old",
    "/var/lib/dpkg/statoverride-old",
    "/var/cache/debconf/config.dat-old",
    "/var/cache/debconf/templates.dat-old",
    "/var/cache/debconf/passwords.dat-old",
];

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    }
    fs::write(path, content).map_err(Error::io("write", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))
}

/// The environment of dpkg in the sandbox.
fn dpkg_env(ctx: &ExecCtx<'_>) -> Vec<String> {
    vec![
        format!("PATH={PATH}"),
        "DEBIAN_FRONTEND=noninteractive".into(),
        "DEBCONF_NONINTERACTIVE_SEEN=true".into(),
        "LC_ALL=C.UTF-8".into(),
        "HOME=/root".into(),
        format!("SOURCE_DATE_EPOCH={}", ctx.opts.epoch),
    ]
}

/// The dpkg script for an install plan: round 0 (the essential closure)
/// with dependency checks relaxed, the others as they are; then the
/// services policy and the files that record dates go.
fn dpkg_script(plan: &[Vec<String>], policy_in_script: bool) -> String {
    let mut script = format!("set -e\ncd {DEBS_IN_SANDBOX}\n");
    if policy_in_script {
        script
            .push_str("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d\n");
    }
    for (i, round) in plan.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        let force = if i == 0 { " --force-depends" } else { "" };
        let list: Vec<String> = round.iter().map(|n| format!("{n}.deb")).collect();
        script.push_str(&format!("dpkg --install{force} {}\n", list.join(" ")));
    }
    script.push_str("dpkg --configure --pending\nrm -f /usr/sbin/policy-rc.d\n");
    for f in UNREPRODUCIBLE {
        script.push_str(&format!("rm -f {f}\n"));
    }
    script
}

/// Hard links of `packages`' .debs under short names in `dir`, for the sandbox.
fn stage_debs(dir: &Path, packages: &[&str], files: &BTreeMap<String, PathBuf>) -> Result<()> {
    fs::create_dir(dir).map_err(Error::io("create", dir))?;
    for name in packages {
        let path = &files[*name];
        let link = dir.join(format!("{name}.deb"));
        fs::hard_link(path, &link)
            .or_else(|_| fs::copy(path, &link).map(|_| ()))
            .map_err(Error::io("link", &link))?;
    }
    Ok(())
}

/// Builds the base: the suite's base set as one layer (shared by every
/// `debian()` of that suite, and kept even by `--no-cache`, as an imported
/// base is), the requested packages as a second layer on top.
pub fn build(ctx: &ExecCtx<'_>, node: &Node, spec: &DebianBase, set: &DebianSet) -> Result<Record> {
    let store = ctx.store;
    download(ctx, spec, set)?;
    let mut files = BTreeMap::new();
    for p in &set.packages {
        files.insert(p.name.clone(), deb_path(store, &p.sha256));
    }
    let base: BTreeSet<&str> = if set.base.is_empty() {
        set.packages.iter().map(|p| p.name.as_str()).collect()
    } else {
        set.base.iter().map(String::as_str).collect()
    };
    let extras: Vec<&str> = set
        .packages
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| !base.contains(n))
        .collect();

    // The base layer, found by what it is made of.
    let mut key = crate::key::KeyEncoder::new("debian-base-layer-v1");
    key.str(&set.mirror).str(&set.suite).str(&set.arch).str(&set.variant);
    for p in set.packages.iter().filter(|p| base.contains(p.name.as_str())) {
        key.str(&p.name).str(&p.version).str(&p.sha256);
    }
    let base_key = key.u64(ctx.opts.epoch as u64).finish();
    let base_layer = {
        let _guard = store.lock(&format!("node-{}", base_key.hex()))?;
        match store.record(&base_key)? {
            Some(record) if record.layers.len() == 1 => record.layers[0].diff_id.clone(),
            _ => {
                let diff_id = build_base_layer(ctx, node, set, &base, &files)?;
                let record = Record {
                    layers: vec![LayerRef {
                        diff_id: diff_id.clone(),
                    }],
                    config: None,
                };
                store.put_record(&base_key, &record)?;
                diff_id
            }
        }
    };
    let mut layers = vec![base_layer.clone()];
    if !extras.is_empty() {
        layers.push(build_extras_layer(ctx, node, &base_layer, &extras, &files)?);
    }

    let mut config = ImageConfig::empty();
    config.architecture = set.arch.clone();
    config.created = Some(image::rfc3339(ctx.opts.epoch));
    config.config.env = Some(vec![format!("PATH={PATH}")]);
    config.config.cmd = Some(vec!["bash".into()]);
    let said = [
        format!("debian {} base set ({} packages)", set.suite, base.len()),
        format!("{} ({} more packages)", node.description, extras.len()),
    ];
    for (diff_id, created_by) in layers.iter().zip(said) {
        config.rootfs.diff_ids.push(diff_id.clone());
        config.history.push(History {
            created: config.created.clone(),
            created_by: Some(created_by),
            comment: Some("strata".into()),
            ..History::default()
        });
    }
    Ok(Record {
        layers: layers.into_iter().map(|diff_id| LayerRef { diff_id }).collect(),
        config: Some(config),
    })
}

/// The base set: essential packages extracted (merged /usr), then every
/// base package installed by dpkg in the sandbox.
fn build_base_layer(
    ctx: &ExecCtx<'_>,
    node: &Node,
    set: &DebianSet,
    base: &BTreeSet<&str>,
    files: &BTreeMap<String, PathBuf>,
) -> Result<crate::digest::Digest> {
    let names: Vec<&str> = base.iter().copied().collect();
    let prepare = |upper: &Path, plan: &[Vec<String>]| -> Result<()> {
        deb::merged_usr(upper)?;
        for name in plan.first().into_iter().flatten() {
            deb::extract(&files[name], upper)?;
        }
        deb::merged_links(upper)?;
        for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
            let d = upper.join(dir);
            fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
        }
        for file in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
            write_file(&upper.join(file), b"", 0o644)?;
        }
        write_file(&upper.join("usr/sbin/policy-rc.d"), b"#!/bin/sh\nexit 101\n", 0o755)?;
        let sources = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: main\nSigned-By: {KEYRING}\n",
            set.mirror, set.suite
        );
        write_file(
            &upper.join("etc/apt/sources.list.d/debian.sources"),
            sources.as_bytes(),
            0o644,
        )
    };
    install_layer(ctx, node, &names, files, Vec::new(), prepare, false)
}

/// The requested packages, installed by dpkg on top of the base layer.
fn build_extras_layer(
    ctx: &ExecCtx<'_>,
    node: &Node,
    base_layer: &crate::digest::Digest,
    extras: &[&str],
    files: &BTreeMap<String, PathBuf>,
) -> Result<crate::digest::Digest> {
    let lowers = vec![ctx.store.layer_dir(base_layer)];
    install_layer(ctx, node, extras, files, lowers, |_, _| Ok(()), true)
}

/// Installs `packages` with dpkg in the sandbox on `lowers`, into an upper
/// directory that `prepare` fills first, and stores the result as a layer.
#[allow(clippy::too_many_arguments)]
fn install_layer(
    ctx: &ExecCtx<'_>,
    node: &Node,
    packages: &[&str],
    files: &BTreeMap<String, PathBuf>,
    lowers: Vec<PathBuf>,
    prepare: impl FnOnce(&Path, &[Vec<String>]) -> Result<()>,
    policy_in_script: bool,
) -> Result<crate::digest::Digest> {
    let store = ctx.store;
    let mut controls = BTreeMap::new();
    for name in packages {
        controls.insert(name.to_string(), deb::control(&files[*name])?);
    }
    let plan = rounds(&controls).map_err(|e| Error::Step {
        origin: node.origin.clone(),
        message: e.to_string(),
        detail: String::new(),
    })?;
    let tmp = store.tmp_dir()?;
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).map_err(Error::io("create", &upper))?;
    prepare(&upper, &plan)?;
    let debs = tmp.path().join("debs");
    stage_debs(&debs, packages, files)?;
    crate::sandbox::run_in_root(
        ctx,
        node,
        tmp.path(),
        lowers,
        vec!["/bin/sh".into(), "-c".into(), dpkg_script(&plan, policy_in_script)],
        dpkg_env(ctx),
        vec![(debs, DEBS_IN_SANDBOX.into(), true)],
    )?;
    crate::fsview::clamp_mtimes(&upper, ctx.opts.epoch)?;
    crate::store::write_layer(store, &upper, ctx.opts.compression, ctx.opts.epoch, &|bytes| {
        ctx.exporting(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_sources_come_from_one_line_and_deb822_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("sources.list"),
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.test/debian bookworm main\ndeb-src http://src.test/debian bookworm main\n",
        )
        .unwrap();
        fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://other.test/debian\nSuites: trixie trixie-updates\nComponents: main\n\nTypes: deb\nURIs: http://off.test/debian\nSuites: sid\nEnabled: no\n",
        )
        .unwrap();
        let entries = apt_sources(dir.path());
        assert_eq!(
            entries,
            vec![
                ("http://mirror.test/debian".to_string(), vec!["bookworm".to_string()]),
                (
                    "http://other.test/debian".to_string(),
                    vec!["trixie".to_string(), "trixie-updates".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn lock_names_sort_and_deduplicate_the_request() {
        let spec = DebianBase {
            suite: "bookworm".into(),
            packages: vec!["nginx".into(), "curl".into(), "nginx".into()],
            mirror: None,
            arch: Some("amd64".into()),
            variant: None,
        };
        assert_eq!(lock_name(&spec), "bookworm/amd64 required: curl nginx");
        let bare = DebianBase {
            packages: vec![],
            ..spec
        };
        assert_eq!(lock_name(&bare), "bookworm/amd64 required");
    }

    /// Control stanzas by package name, from (field, value) pairs.
    fn packages(list: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, Stanza> {
        list.iter()
            .map(|(name, fields)| {
                let stanza = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                (name.to_string(), stanza)
            })
            .collect()
    }

    #[test]
    fn install_rounds_put_the_essential_closure_first_and_pre_depends_before_users() {
        let controls = packages(&[
            ("dpkg", &[("Essential", "yes"), ("Depends", "libc6")]),
            ("libc6", &[]),
            ("web", &[("Pre-Depends", "init-helpers"), ("Depends", "libc6")]),
            ("web-doc", &[("Depends", "web")]),
            ("init-helpers", &[("Pre-Depends", "awk")]),
            ("mawk", &[("Provides", "awk")]),
        ]);
        assert_eq!(
            rounds(&controls).unwrap(),
            vec![
                vec!["dpkg".to_string(), "libc6".to_string()],
                vec!["mawk".to_string()],
                vec!["init-helpers".to_string()],
                vec!["web".to_string(), "web-doc".to_string()],
            ]
        );
    }

    #[test]
    fn a_cycle_of_depends_shares_a_round_and_a_cycle_of_pre_depends_is_named() {
        let controls = packages(&[
            ("a", &[("Depends", "b")]),
            ("b", &[("Depends", "a")]),
            ("c", &[("Pre-Depends", "a")]),
        ]);
        assert_eq!(
            rounds(&controls).unwrap(),
            vec![vec![], vec!["a".to_string(), "b".to_string()], vec!["c".to_string()]]
        );
        let controls = packages(&[
            ("libx", &[("Pre-Depends", "liby")]),
            ("liby", &[("Depends", "libz")]),
            ("libz", &[("Pre-Depends", "libx")]),
            ("tool", &[("Depends", "libx")]),
        ]);
        assert_eq!(
            rounds(&controls).unwrap_err().to_string(),
            "the packages libx, liby, libz pre-depend on each other in a cycle: none of them can be configured first"
        );
    }
}
