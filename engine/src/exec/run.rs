//! The run executor: a command in the sandbox on top of the parent state;
//! its changes become a layer.

use super::{Executor, Inputs};
use crate::error::Result;
use crate::graph::{Node, Op};
use crate::step::ExecCtx;
use crate::store::Record;

/// Executes `run` nodes.
pub struct Run;

impl Executor for Run {
    fn execute(&self, ctx: &ExecCtx<'_>, node: &Node, inputs: &Inputs<'_>) -> Result<Record> {
        let Op::Run(run) = &node.op else {
            unreachable!("the run executor runs run nodes")
        };
        let parent = inputs.parent.expect("run has a parent");
        if let Some(remote) = &ctx.opts.remote {
            if !super::remote::runs_locally(node, ctx.opts) {
                let outcome = super::remote::run_remote(ctx, remote, node, run, parent, inputs.states);
                if let Some(outcome) = super::remote::or_locally(ctx, remote, node, outcome) {
                    return outcome;
                }
            }
        }
        crate::sandbox::run_step(ctx, node, run, parent, inputs.states)
    }
}
