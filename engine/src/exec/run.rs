//! The run executor: a command in the sandbox on top of the parent state;
//! its changes become a layer.

use super::{Executor, Inputs};
use crate::error::{Error, Result};
use crate::events::Event;
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
            if !super::remote::runs_locally(node, run, ctx.opts) {
                match super::remote::run_remote(ctx, remote, node, run, parent, inputs.states) {
                    // `--remote-fallback`: the service failing (not the step) runs it here.
                    Err(e @ Error::Remote { .. }) if remote.fallback => ctx.event(Event::Warning {
                        message: format!(
                            "{}; running `{}` locally (--remote-fallback)",
                            e.chain(),
                            node.description
                        ),
                    }),
                    outcome => return outcome,
                }
            }
        }
        crate::sandbox::run_step(ctx, node, run, parent, inputs.states)
    }
}
