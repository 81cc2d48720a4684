//! Integration tests: they run the built `strata` binary the way a user
//! does, against real tools (skopeo, umoci) and a temporary store.

mod common;
mod container;

mod attacks;
mod bases;
mod build;
mod ci;
mod cli;
mod correctness;
mod debian;
mod dockerfile;
mod docs;
mod errors;
mod explain;
mod golden;
mod integrity;
mod isolation;
mod outputs;
mod planning;
mod platforms;
mod registry;
mod remote;
mod rootless;
mod run;
mod sbom;
mod sched;
mod stdlib;
mod store;
