//! The Debian executor: a `debian(...)` base assembled from verified
//! `.deb`s (see `crate::debian`). Its dpkg runs go to the remote executor
//! when there is one, as RUN steps do.

use super::{Executor, Inputs};
use crate::debian::Install;
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
        let local = |job: &Install| crate::debian::install(ctx, node, job);
        match &ctx.opts.remote {
            Some(remote) if !super::remote::runs_locally(node, ctx.opts) => {
                let remote = |job: &Install| {
                    let outcome = super::remote::install_remote(ctx, remote, node, job);
                    super::remote::or_locally(ctx, remote, node, outcome).unwrap_or_else(|| local(job))
                };
                crate::debian::build(ctx, node, spec, set, &remote)
            }
            _ => crate::debian::build(ctx, node, spec, set, &local),
        }
    }
}
