//! Why a node missed the cache. After each build, strata stores per target
//! the *facts* of every node of that target (the recipe step, each selected
//! context file's hash, a base's identity, a RUN's extra environment and
//! mounts) and, for every node that was executed, the reasons found by
//! comparing with the facts of the target's previous build. `strata explain`
//! prints them. Nodes are matched between builds by recipe position (and
//! occurrence, for steps made in a loop).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::context::EntryKind;
use crate::digest::NodeKey;
use crate::error::Result;
use crate::graph::{CopySource, Graph, NodeId, Op, SecretSource};
use crate::sched::Plan;
use crate::store::{read_json, Store};

/// What decided one node's key, in words a person can compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// `file:line:col#n` — recipe position and occurrence.
    pub place: String,
    pub description: String,
    pub key: NodeKey,
    /// Indices (into the same list) of the node's inputs.
    pub inputs: Vec<usize>,
    pub facts: BTreeMap<String, String>,
}

/// One executed node and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    pub origin: String,
    pub description: String,
    pub reasons: Vec<String>,
    /// False for a step that changed without running: a metadata step
    /// (a label, an env) or one whose new result was already in the store.
    #[serde(default = "yes")]
    pub ran: bool,
}

fn yes() -> bool {
    true
}

/// What `strata explain` shows for a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub target: String,
    pub args: BTreeMap<String, String>,
    pub nodes: Vec<NodeFacts>,
    pub misses: Vec<Miss>,
    /// How the `--arg`s differ from the previous build's.
    #[serde(default)]
    pub arg_changes: Vec<String>,
}

/// How `args` differ from `previous`'s: `version: 1.0 → 2.0`, `new X: v`, `no more X`.
pub fn arg_changes(previous: Option<&BuildRecord>, args: &BTreeMap<String, String>) -> Vec<String> {
    let Some(previous) = previous else { return Vec::new() };
    let mut out = Vec::new();
    for (k, v) in args {
        match previous.args.get(k) {
            None => out.push(format!("new --arg {k}={v}")),
            Some(o) if o != v => out.push(format!("--arg {k}: {o} → {v}")),
            _ => {}
        }
    }
    for k in previous.args.keys().filter(|k| !args.contains_key(*k)) {
        out.push(format!("no more --arg {k} (its default now)"));
    }
    out
}

/// Where a target's last build is recorded.
pub fn record_path(store: &Store, recipe: &Path, target: &str) -> PathBuf {
    let id = blake3::hash(format!("{}\0{target}", recipe.display()).as_bytes());
    store.root().join("builds").join(format!("{}.json", &id.to_hex()[..32]))
}

/// The last build of a target, if any.
pub fn load(store: &Store, recipe: &Path, target: &str) -> Result<Option<BuildRecord>> {
    let path = record_path(store, recipe, target);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

/// Where the recipe positions of an image's history are kept: by the
/// digest of its config (which holds the history), so any image with that
/// config finds them.
fn origins_path(store: &Store, config: &crate::digest::Digest) -> PathBuf {
    store
        .root()
        .join("builds")
        .join(format!("history-{}.json", &config.hex()[..32]))
}

/// Records, for the image whose config is `config` and whose target is
/// `node`, where the recipe wrote each step of its chain: (the step's
/// description, as its history's `created_by`; `file:line:col`). Not in
/// the image itself: a moved line must not change a digest.
pub fn record_origins(store: &Store, graph: &Graph, node: NodeId, config: &crate::digest::Digest) -> Result<()> {
    let mut chain = Vec::new();
    let mut at = Some(node);
    while let Some(id) = at {
        let n = graph.node(id);
        chain.push((n.description.clone(), n.origin.to_string()));
        at = n.parent;
    }
    chain.reverse();
    let bytes = serde_json::to_vec(&chain).expect("origins serialise");
    let path = origins_path(store, config);
    if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
        store.write_atomic(&path, &bytes)?;
    }
    Ok(())
}

/// Where the recipe wrote the step of each of `created_by` (an image's
/// history, oldest first), when strata built the image: `None` for a step
/// it did not record (a base's own history, an image built elsewhere).
pub fn origins(store: &Store, config: &crate::digest::Digest, created_by: &[Option<String>]) -> Vec<Option<String>> {
    let chain: Vec<(String, String)> = std::fs::read(origins_path(store, config))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Matched from the newest entry back, each step of the chain used once
    // (a base's own entries come first and find nothing left), except that
    // a step with several layers (a debian() base) has an entry for each.
    let mut end = chain.len();
    let mut out = vec![None; created_by.len()];
    for (i, by) in created_by.iter().enumerate().rev() {
        let Some(by) = by else { continue };
        if let Some(pos) = chain[..end].iter().rposition(|(d, _)| d == by) {
            out[i] = Some(chain[pos].1.clone());
            let older_is_same = i > 0 && created_by[i - 1].as_deref() == Some(by.as_str());
            end = if older_is_same { pos + 1 } else { pos };
        }
    }
    out
}

/// The facts of `nodes` (closed under inputs, in order).
pub fn facts(graph: &Graph, plan: &Plan, nodes: &[NodeId]) -> Vec<NodeFacts> {
    let index: HashMap<NodeId, usize> = nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    nodes
        .iter()
        .map(|&id| {
            let node = graph.node(id);
            let origin = node.origin.to_string();
            let n = seen.entry(origin.clone()).or_insert(0);
            *n += 1;
            let mut facts = BTreeMap::from([("step".to_string(), node.description.clone())]);
            match &node.op {
                Op::Base(_) => {
                    if let Some(identity) = plan.base_identities.get(&id) {
                        facts.insert("base".into(), hex::encode(identity));
                    }
                }
                Op::Copy(copy) => {
                    if let (CopySource::Context { .. }, Some(selection)) = (&copy.source, plan.selections.get(&id)) {
                        for src in &selection.sources {
                            for e in &src.entries {
                                // A file named on its own is its path (no `/` after it).
                                let path = match e.rel.as_os_str().is_empty() {
                                    true => src.path.trim_end_matches('/').to_string(),
                                    false => Path::new(&src.path).join(&e.rel).display().to_string(),
                                };
                                let value = match &e.kind {
                                    EntryKind::File { hash, .. } => {
                                        format!("{} mode {:o}", hex::encode(&hash[..8]), e.mode)
                                    }
                                    EntryKind::Dir => format!("directory mode {:o}", e.mode),
                                    EntryKind::Symlink { target } => format!("symlink to {}", target.display()),
                                };
                                facts.insert(format!("file {path}"), value);
                            }
                        }
                    }
                }
                Op::Run(run) => {
                    for (k, v) in &run.env {
                        facts.insert(format!("env {k}"), v.clone());
                    }
                    for c in &run.caches {
                        facts.insert(format!("cache {}", c.target), c.id.clone());
                    }
                    for s in &run.secrets {
                        let from = match &s.source {
                            SecretSource::File(p) => format!("file {}", p.display()),
                            SecretSource::Env(v) => format!("env {v}"),
                            SecretSource::Given => "the command line".to_string(),
                        };
                        facts.insert(format!("secret {}", s.id), format!("{from} at {}", s.target));
                    }
                    for m in &run.mounts {
                        facts.insert(format!("mount {}", m.target), m.path.clone());
                    }
                    // A secret that invalidates: its HMAC's first bytes, to
                    // tell that it changed (never the value).
                    for (secret, mac) in plan.secret_macs.get(&id).into_iter().flatten() {
                        facts.insert(format!("secret-value {secret}"), hex::encode(&mac[..8]));
                    }
                }
                _ => {}
            }
            NodeFacts {
                place: format!("{origin}#{n}"),
                description: node.description.clone(),
                key: plan.keys[id].expect("planned"),
                inputs: node.inputs().iter().filter_map(|i| index.get(i).copied()).collect(),
                facts,
            }
        })
        .collect()
}

fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in new {
        match old.get(k) {
            None if k.starts_with("file ") => out.push(format!("added {}", &k[5..])),
            None => out.push(format!("new {k}: {v}")),
            Some(o) if o != v && k.starts_with("file ") => out.push(format!("changed {}", &k[5..])),
            Some(o) if o != v && k.starts_with("secret-value ") => {
                out.push(format!("the value of secret `{}` changed", &k["secret-value ".len()..]))
            }
            Some(o) if o != v && k == "base" => out.push(format!(
                "base image changed: {} → {}",
                &o[..12.min(o.len())],
                &v[..12.min(v.len())]
            )),
            Some(o) if o != v => out.push(format!("{k}: {o} → {v}")),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        match k.strip_prefix("file ") {
            Some(path) => out.push(format!("removed {path}")),
            None => out.push(format!("no more {k}")),
        }
    }
    out
}

/// Why each executed node missed, compared with `previous`.
pub fn explain(
    previous: Option<&BuildRecord>,
    current: &[NodeFacts],
    executed: &HashSet<usize>,
    no_cache: bool,
) -> Vec<Miss> {
    let prev_by_place: HashMap<&str, &NodeFacts> = previous
        .map(|p| p.nodes.iter().map(|n| (n.place.as_str(), n)).collect())
        .unwrap_or_default();
    let cause = |i: usize| -> Vec<String> { reasons(i, current, &prev_by_place, previous.is_some(), no_cache, 0) };
    let mut misses: Vec<Miss> = Vec::new();
    for (i, node) in current.iter().enumerate() {
        let ran = executed.contains(&i);
        if !ran {
            // A step that did not run still changed the image when its own
            // facts changed (a label from an arg); steps after it that
            // changed only through it are not repeated.
            let Some(previous) = previous else { continue };
            let own_change = match prev_by_place.get(node.place.as_str()) {
                Some(old) => old.key != node.key && !diff(&old.facts, &node.facts).is_empty(),
                None => !previous.nodes.is_empty(),
            };
            if !own_change {
                continue;
            }
        }
        misses.push(Miss {
            origin: node
                .place
                .rsplit_once('#')
                .map_or(node.place.clone(), |(o, _)| o.to_string()),
            description: node.description.clone(),
            reasons: cause(i),
            ran,
        });
    }
    misses
}

fn reasons(
    i: usize,
    nodes: &[NodeFacts],
    prev: &HashMap<&str, &NodeFacts>,
    had_previous: bool,
    no_cache: bool,
    depth: usize,
) -> Vec<String> {
    let node = &nodes[i];
    if !had_previous {
        return vec!["no earlier build of this target to compare with".into()];
    }
    let Some(old) = prev.get(node.place.as_str()) else {
        return vec!["a new step (not in the previous build)".into()];
    };
    if old.key == node.key {
        return vec![if no_cache {
            "rebuilt because of --no-cache".into()
        } else {
            "unchanged, but its result was not in the store".into()
        }];
    }
    let own = diff(&old.facts, &node.facts);
    if !own.is_empty() || depth > 64 {
        return own;
    }
    let mut out = Vec::new();
    for &input in &node.inputs {
        let inp = &nodes[input];
        let changed = prev.get(inp.place.as_str()).is_none_or(|o| o.key != inp.key);
        if changed {
            let origin = inp.place.rsplit_once('#').map_or(inp.place.as_str(), |(o, _)| o);
            let why = reasons(input, nodes, prev, had_previous, no_cache, depth + 1);
            out.push(format!(
                "it builds on `{}` ({origin}), which changed: {}",
                inp.description,
                why.join("; ")
            ));
        }
    }
    if out.is_empty() {
        out.push("its inputs changed".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf(place: &str, key: u8, inputs: Vec<usize>, facts: &[(&str, &str)]) -> NodeFacts {
        NodeFacts {
            place: place.into(),
            description: format!("step {place}"),
            key: NodeKey([key; 32]),
            inputs,
            facts: facts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn a_changed_file_is_named_and_later_steps_point_at_it() {
        let prev = BuildRecord {
            target: "t".into(),
            args: BTreeMap::new(),
            nodes: vec![
                nf("r:1:1#1", 1, vec![], &[("file a", "1"), ("file b", "2")]),
                nf("r:2:1#1", 2, vec![0], &[("step", "run")]),
            ],
            misses: vec![],
            arg_changes: vec![],
        };
        let cur = vec![
            nf("r:1:1#1", 3, vec![], &[("file a", "9"), ("file c", "3")]),
            nf("r:2:1#1", 4, vec![0], &[("step", "run")]),
        ];
        let misses = explain(Some(&prev), &cur, &HashSet::from([0, 1]), false);
        assert_eq!(misses[0].reasons, vec!["changed a", "added c", "removed b"]);
        assert!(
            misses[1].reasons[0].starts_with("it builds on `step r:1:1#1` (r:1:1), which changed: changed a"),
            "{:?}",
            misses[1].reasons
        );
    }
}
