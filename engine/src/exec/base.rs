//! The import executor: a base image from a registry, an OCI layout, a
//! docker-archive or a root filesystem tarball, into the store.

use super::{Executor, Inputs};
use crate::error::Result;
use crate::events::Event;
use crate::graph::{Node, Op};
use crate::step::ExecCtx;
use crate::store::Record;

/// Executes imported `base` nodes.
pub struct Import;

impl Executor for Import {
    fn execute(&self, ctx: &ExecCtx<'_>, node: &Node, inputs: &Inputs<'_>) -> Result<Record> {
        let Op::Base(source) = &node.op else {
            unreachable!("the import executor runs base nodes")
        };
        crate::bases::import(
            ctx.store,
            source,
            inputs.base_identity,
            ctx.registry,
            &node.platform,
            ctx.opts.epoch,
            &|bytes, total| {
                ctx.event(Event::Downloading {
                    node: ctx.node,
                    bytes,
                    total,
                })
            },
        )
    }
}
