//! What a step's executor may use while it runs: the store, the event sink,
//! the cancellation flag, its own node id and the options that shape every
//! layer. Executors, the sandbox and the Debian installer take an
//! [`ExecCtx`] and never see the scheduler.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::events::{Event, EventSink, Phases};
use crate::graph::{Node, NodeId};
use crate::image::Platform;
use crate::layer::Compression;
use crate::registry::Client;
use crate::store::Store;

/// The options that decide what a step produces.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Compression of new layer blobs.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: clamp for mtimes and the `created` timestamps.
    pub epoch: i64,
    /// The `strata` executable, started as `strata __sandbox SPEC` for RUN steps.
    pub sandbox_exe: Option<PathBuf>,
    /// The platform registry bases are resolved for.
    pub platform: Platform,
    /// Secrets given on the command line, by id (`File` or `Env` sources).
    pub secrets: std::collections::BTreeMap<String, crate::graph::SecretSource>,
    /// SSH agent sockets given on the command line, by id.
    pub ssh: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// `--debug`: when to open a shell in a RUN step's sandbox.
    pub debug: Option<Debug>,
    /// `--remote-executor`: the REAPI service RUN steps execute on.
    pub remote: Option<std::sync::Arc<crate::reapi::Remote>>,
}

/// `strata build --debug`: an interactive shell in a RUN step's sandbox
/// (its parent state, mounts, env, user and workdir), on this terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Debug {
    /// When a step fails (`--debug`).
    OnError,
    /// Before each step that runs (`--debug=before`), or only the one the
    /// recipe writes at `FILE:LINE` / `LINE` (`--debug=before:strata.rhai:12`).
    Before { file: Option<String>, line: Option<u32> },
}

impl Debug {
    /// True when `--debug=before…` asks to stop before `node`.
    pub fn stops_before(&self, node: &Node) -> bool {
        match self {
            Debug::OnError => false,
            Debug::Before { file, line } => {
                file.as_deref().is_none_or(|f| f == node.origin.file) && line.is_none_or(|l| l == node.origin.line)
            }
        }
    }
}

/// Hands a step the CPU for a heavy phase (placing files, walking a layer
/// into its tar) and takes it back: the scheduler lets as many steps into
/// such phases as there are cores, and a step waiting for one holds no job
/// slot (a RUN step may use it meanwhile).
pub trait Cpu: Sync {
    fn acquire(&self);
    fn release(&self);
}

/// A step's hold on the CPU; given back when dropped.
pub struct CpuPhase<'c, 'a> {
    ctx: &'c ExecCtx<'a>,
}

impl Drop for CpuPhase<'_, '_> {
    fn drop(&mut self) {
        if self.ctx.cpu_held.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(cpu) = self.ctx.cpu {
                cpu.release();
            }
        }
    }
}

/// One running step's view of the build.
pub struct ExecCtx<'a> {
    pub store: &'a Store,
    pub events: &'a dyn EventSink,
    /// Set from a signal handler to stop between and inside steps.
    pub cancel: &'a AtomicBool,
    /// The node being executed.
    pub node: NodeId,
    pub opts: &'a ExecOptions,
    /// The registry client (token cache shared by all steps).
    pub registry: &'a Client,
    /// Where the step's time went so far (its `done` event reports it).
    pub phases: std::sync::Mutex<Phases>,
    /// The step's layer is in an image this build makes: its tar is kept
    /// as the layer's blob when it is committed.
    pub image_layer: bool,
    /// The scheduler's share of the cores (`None`: the step may always run).
    pub cpu: Option<&'a dyn Cpu>,
    /// How deep the step is in CPU phases (they nest).
    pub cpu_held: std::sync::atomic::AtomicUsize,
}

impl<'a> ExecCtx<'a> {
    /// Sends an event.
    pub fn event(&self, event: Event) {
        self.events.event(event)
    }

    /// Enters a CPU-heavy phase, waiting for a core if all are taken; the
    /// phase ends when the returned value is dropped. Phases nest.
    pub fn cpu_phase(&self) -> CpuPhase<'_, 'a> {
        if self.cpu_held.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(cpu) = self.cpu {
                cpu.acquire();
            }
        }
        CpuPhase { ctx: self }
    }

    /// Adds to the step's phase times.
    pub fn add_phases(&self, phases: Phases) {
        self.phases.lock().unwrap_or_else(|e| e.into_inner()).add(&phases);
    }

    /// Commits `dir` as the step's new layer (`store::write_layer`), its
    /// tar progress and phase times reported; returns the diff id.
    pub fn commit_layer(&self, dir: &std::path::Path) -> Result<crate::digest::Digest> {
        let _cpu = self.cpu_phase();
        let (diff_id, times) =
            crate::store::write_layer(self.store, dir, self.opts.epoch, self.image_layer, &|bytes| {
                self.exporting(bytes)
            })?;
        self.add_phases(Phases {
            tar: times.tar,
            digest: times.digest,
            ..Phases::default()
        });
        Ok(diff_id)
    }

    /// Reports `bytes` of this step's layer tar written so far.
    pub fn exporting(&self, bytes: u64) {
        self.event(Event::Exporting { node: self.node, bytes })
    }

    /// True once the build has been cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// `Err(Interrupted)` once the build has been cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        if self.cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// The strata executable, which sandboxes are started from.
    pub fn sandbox_exe(&self, node: &Node, what: &str) -> Result<PathBuf> {
        self.opts.sandbox_exe.clone().ok_or_else(|| Error::Step {
            origin: node.origin.clone(),
            message: format!("{what} needs the strata executable to start its sandbox"),
            detail: String::new(),
        })
    }
}
