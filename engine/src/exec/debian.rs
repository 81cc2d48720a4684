//! The Debian executor: a `debian(...)` base assembled from verified
//! `.deb`s (see `crate::debian`).

use super::{Executor, Inputs};
use crate::error::Result;
use crate::graph::{BaseSource, Node, Op};
use crate::step::ExecCtx;
use crate::store::Record;

/// Executes `debian(...)` base nodes.
pub struct Debian;

impl Executor for Debian {
    fn execute(&self, ctx: &ExecCtx<'_>, node: &Node, inputs: &Inputs<'_>) -> Result<Record> {
        let Op::Base(BaseSource::Debian(spec)) = &node.op else {
            unreachable!("the Debian executor runs debian() nodes")
        };
        let set = inputs.debian_set.expect("debian() bases are planned");
        crate::debian::build(ctx, node, spec, set)
    }
}
