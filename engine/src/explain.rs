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
}

/// What `strata explain` shows for a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub target: String,
    pub args: BTreeMap<String, String>,
    pub nodes: Vec<NodeFacts>,
    pub misses: Vec<Miss>,
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
                                let path = Path::new(&src.path).join(&e.rel).display().to_string();
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
        if !executed.contains(&i) {
            continue;
        }
        misses.push(Miss {
            origin: node
                .place
                .rsplit_once('#')
                .map_or(node.place.clone(), |(o, _)| o.to_string()),
            description: node.description.clone(),
            reasons: cause(i),
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
