//! `strata graph`: the DAG with keys and cache state, as text, dot or JSON.

use serde_json::json;
use strata_engine::graph::{Op, TargetKind};
use strata_engine::store::Store;

use super::{CliError, RecipeArgs};

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// Targets to show (default: all).
    pub targets: Vec<String>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// How to print the graph.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `strata graph --format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per node with its key and cache state.
    Text,
    /// Graphviz.
    Dot,
    /// Nodes and targets as JSON.
    Json,
}

fn kind(op: &Op) -> &'static str {
    match op {
        Op::Scratch => "scratch",
        Op::Base(_) => "base",
        Op::Copy(_) => "copy",
        Op::Run(_) => "run",
        Op::Meta(_) => "meta",
    }
}

pub fn run(store: &Store, args: GraphArgs) -> Result<(), CliError> {
    args.recipe
        .with_plan(store, &args.targets, |graph, targets, nodes, plan| {
            let state = |id: usize| -> &'static str {
                let node = graph.node(id);
                if !node.makes_layer() {
                    return "meta";
                }
                match store.record(&plan.keys[id].expect("planned")) {
                    Ok(Some(_)) => "cached",
                    _ => "missing",
                }
            };
            match args.format {
                Format::Json => {
                    let nodes_json: Vec<_> = nodes
                        .iter()
                        .map(|&id| {
                            let n = graph.node(id);
                            json!({
                                "id": id,
                                "op": kind(&n.op),
                                "description": n.description,
                                "origin": n.origin.to_string(),
                                "key": plan.keys[id].expect("planned").to_string(),
                                "inputs": n.inputs(),
                                "cache": state(id),
                            })
                        })
                        .collect();
                    let targets_json: Vec<_> = targets
                        .iter()
                        .map(|t| match &t.kind {
                            TargetKind::Image { node, tags } => {
                                json!({"name": t.name, "kind": "image", "node": node, "tags": tags})
                            }
                            TargetKind::Artifact { node, path } => {
                                json!({"name": t.name, "kind": "artifact", "node": node, "path": path})
                            }
                            TargetKind::Group { members } => {
                                json!({"name": t.name, "kind": "group", "members": members})
                            }
                        })
                        .collect();
                    let doc = json!({"nodes": nodes_json, "targets": targets_json});
                    crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                }
                Format::Dot => {
                    crate::outln!("digraph strata {{\n  rankdir=BT;\n  node [shape=box, fontname=monospace];");
                    for &id in nodes {
                        let n = graph.node(id);
                        let label = format!(
                            "{}\\n{} [{}]",
                            n.description.replace('"', "\\\""),
                            plan.keys[id].expect("planned").short(),
                            state(id)
                        );
                        crate::outln!("  n{id} [label=\"{label}\"];");
                        for input in n.inputs() {
                            crate::outln!("  n{id} -> n{input};");
                        }
                    }
                    for t in targets {
                        if let TargetKind::Image { node, .. } | TargetKind::Artifact { node, .. } = &t.kind {
                            crate::outln!("  \"{}\" [shape=ellipse];\n  \"{}\" -> n{node};", t.name, t.name);
                        }
                    }
                    crate::outln!("}}");
                }
                _ => {
                    for &id in nodes {
                        let n = graph.node(id);
                        let inputs: Vec<String> = n.inputs().iter().map(|i| format!("#{i}")).collect();
                        crate::outln!(
                            "#{id:<3} {} {:<7} {:<8} {}{}",
                            plan.keys[id].expect("planned").short(),
                            state(id),
                            kind(&n.op),
                            n.description,
                            if inputs.is_empty() {
                                String::new()
                            } else {
                                format!("  <- {}", inputs.join(" "))
                            }
                        );
                    }
                    for t in targets {
                        match &t.kind {
                            TargetKind::Image { node, tags } => {
                                crate::outln!("image {} = #{node} ({})", t.name, tags.join(", "))
                            }
                            TargetKind::Artifact { node, path } => {
                                crate::outln!("artifact {} = #{node}:{path}", t.name)
                            }
                            TargetKind::Group { members } => {
                                crate::outln!("group {} = {}", t.name, members.join(", "))
                            }
                        }
                    }
                }
            }
            Ok(())
        })
}
