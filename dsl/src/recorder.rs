//! The per-evaluation collector that recipe functions write into.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;

use rhai::{NativeCallContext, Position};
use strata_engine::graph::{Graph, Node, NodeId, Op, Origin, Target};
use strata_engine::image::Platform;

/// What a recipe has declared so far.
pub struct Recorder {
    pub graph: Graph,
    pub args: BTreeMap<String, String>,
    /// The names the recipe passed to `arg()`.
    pub args_read: BTreeSet<String>,
    /// The main recipe's file name (used when Rhai reports no source).
    pub file: String,
    /// The recipe's directory: base of relative paths.
    pub dir: PathBuf,
    /// The platform states are for unless they ask for the build's.
    pub target_platform: Platform,
    /// This machine's platform (`build_platform()`).
    pub build_platform: Platform,
    /// The line every call is at while a converted Dockerfile runs (its
    /// calls have no position of their own).
    pub line: Option<u32>,
}

pub type Shared = Rc<RefCell<Recorder>>;

impl Recorder {
    /// Where the current builtin was called from.
    pub fn origin(&self, ctx: &NativeCallContext) -> Origin {
        if let Some(line) = self.line {
            return Origin {
                file: self.file.clone(),
                line,
                col: 1,
            };
        }
        let pos = ctx.call_position();
        let file = ctx
            .call_source()
            .filter(|s| *s != self.file)
            .map(crate::stdlib::file_name)
            .unwrap_or_else(|| self.file.clone());
        Origin {
            file,
            line: pos.line().unwrap_or(0) as u32,
            col: pos.position().unwrap_or(0) as u32,
        }
    }

    /// A step on `parent`'s state (or, with none, a state for the target
    /// platform).
    pub fn add(&mut self, ctx: &NativeCallContext, op: Op, parent: Option<NodeId>, description: String) -> NodeId {
        let platform = match parent {
            Some(p) => self.graph.node(p).platform.clone(),
            None => self.target_platform.clone(),
        };
        self.add_for(ctx, op, parent, description, platform)
    }

    /// A node for `platform` (a base pinned to the build platform).
    pub fn add_for(
        &mut self,
        ctx: &NativeCallContext,
        op: Op,
        parent: Option<NodeId>,
        description: String,
        platform: Platform,
    ) -> NodeId {
        let origin = self.origin(ctx);
        // A recipe's states are values made by this recorder: their nodes are in the graph.
        self.graph
            .add(Node {
                op,
                parent,
                origin,
                description,
                platform,
            })
            .expect("a recipe's states are nodes of its graph")
    }

    pub fn add_target(&mut self, ctx: &NativeCallContext, target: Target) -> Result<(), Box<rhai::EvalAltResult>> {
        if self.graph.target(&target.name).is_some() {
            return Err(runtime(
                ctx.call_position(),
                format!("a target named `{}` is already defined", target.name),
            ));
        }
        self.graph.targets.push(target);
        Ok(())
    }
}

/// A recipe error at `pos`.
pub fn runtime(pos: Position, message: impl Into<String>) -> Box<rhai::EvalAltResult> {
    Box::new(rhai::EvalAltResult::ErrorRuntime(message.into().into(), pos))
}
