//! strata's engine: the build graph, content keys, the content-addressed
//! store, deterministic layers, the sandbox, the scheduler and the exporters.
//! It knows nothing about Rhai or terminals: the recipe language records a
//! [`graph::Graph`], the engine executes it and reports [`events::Event`]s.

pub mod bases;
pub mod context;
pub mod debian;
pub mod digest;
pub mod error;
pub mod events;
pub mod exec;
pub mod explain;
pub mod export;
pub mod fsview;
pub mod graph;
pub mod image;
pub mod key;
pub mod layer;
pub mod lock;
pub mod par;
pub mod platform;
pub mod provenance;
pub mod reapi;
pub mod registry;
pub mod sandbox;
pub mod sbom;
pub mod sched;
pub mod session;
pub mod step;
pub mod store;
pub mod sys;
pub mod verify;

pub use digest::{Digest, NodeKey};
pub use error::{Error, Result};
