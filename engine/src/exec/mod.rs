//! Executors: one per kind of layer node (an imported base, a Debian base,
//! a copy, a run), behind one trait. Each gets an [`ExecCtx`] and the
//! node's inputs and returns the node's [`Record`]; none of them knows the
//! scheduler.

mod base;
mod copy;
mod debian;
pub mod extract;
pub mod fetch;
pub mod remote;
mod run;
pub mod worker;

use std::collections::HashMap;

use crate::context::Selection;
use crate::error::Result;
use crate::graph::{BaseSource, Node, NodeId, Op};
use crate::lock::DebianSet;
use crate::step::ExecCtx;
use crate::store::{Record, State};

/// What a node's executor is given besides its context.
pub struct Inputs<'a> {
    /// The state the node builds on (copy, run).
    pub parent: Option<&'a State>,
    /// Every input's state, by node id (sources of copies and mounts).
    pub states: &'a HashMap<NodeId, State>,
    /// A context copy's selection, hashed when planning.
    pub selection: Option<&'a Selection>,
    /// A base's identity as planning resolved it (a registry base's manifest digest).
    pub base_identity: Option<&'a [u8; 32]>,
    /// A `debian(...)` base's package set.
    pub debian_set: Option<&'a DebianSet>,
}

/// Produces a layer node's result.
pub trait Executor: Sync {
    fn execute(&self, ctx: &ExecCtx<'_>, node: &Node, inputs: &Inputs<'_>) -> Result<Record>;
}

/// The executor of a layer node's operation.
pub fn executor(op: &Op) -> &'static dyn Executor {
    match op {
        Op::Base(BaseSource::Debian(_)) => &debian::Debian,
        Op::Base(_) => &base::Import,
        Op::Copy(_) => &copy::Copy,
        Op::Run(_) => &run::Run,
        Op::Scratch | Op::Meta(_) => unreachable!("metadata nodes make no layer"),
    }
}
