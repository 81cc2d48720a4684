//! The one interface between the engine and whatever shows progress: the
//! engine never prints, it emits `Event`s to a sink the caller provides.

use std::time::Duration;

use crate::digest::NodeKey;
use crate::graph::NodeId;

/// Something that happened during a build.
#[derive(Clone, Debug)]
pub enum Event {
    /// Keys are computed; `total` nodes take part in this build.
    Planned { total: usize },
    /// The node's result was found in the store.
    Cached { node: NodeId, key: NodeKey },
    /// The node started executing.
    Started { node: NodeId, key: NodeKey },
    /// A line of a RUN step's output.
    Output { node: NodeId, line: String },
    /// A layer is being written: `bytes` of tar so far.
    Exporting { node: NodeId, bytes: u64 },
    /// A registry download for the node: `bytes` of `total` so far.
    Downloading { node: NodeId, bytes: u64, total: u64 },
    /// The node finished.
    Done {
        node: NodeId,
        key: NodeKey,
        elapsed: Duration,
        /// Where the time went (copy and run nodes).
        phases: Phases,
    },
    /// The node failed.
    Failed { node: NodeId, message: String },
    /// Something went wrong that does not fail the build (a cache registry
    /// that cannot be reached).
    Warning { message: String },
    /// `--debug` opens (or closed) a shell in the node's sandbox.
    Debugging { node: NodeId, message: String },
    /// A target was written somewhere (the store, a directory, an archive).
    Exported { target: String, destination: String },
}

/// Where a step's time went, phase by phase. Phases a step does not
/// have stay zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// Checking context files against the content they were planned with, as
    /// they are copied (copy).
    pub hash: Duration,
    /// Putting files into the new layer's directory, hashing excluded (copy).
    pub write: Duration,
    /// The command in its sandbox (run).
    pub run: Duration,
    /// Walking the layer directory into a tar, with its tree hash, digest excluded.
    pub tar: Duration,
    /// Compressing the layer (zero: layers are compressed when an output needs it).
    pub compress: Duration,
    /// sha256 of the tar: the layer's diff id.
    pub digest: Duration,
}

impl Phases {
    /// Adds another set of phases to this one.
    pub fn add(&mut self, other: &Phases) {
        self.hash += other.hash;
        self.write += other.write;
        self.run += other.run;
        self.tar += other.tar;
        self.compress += other.compress;
        self.digest += other.digest;
    }
}

/// Receives events; must be cheap and thread-safe.
pub trait EventSink: Sync {
    fn event(&self, event: Event);
}

impl<F: Fn(Event) + Sync> EventSink for F {
    fn event(&self, event: Event) {
        self(event)
    }
}
