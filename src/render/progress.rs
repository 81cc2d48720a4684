//! Progress on stderr, in three forms:
//!
//! - `tty` (the default on a terminal): finished steps scroll by as lines,
//!   and a live block below them (indicatif) shows every running step with
//!   its elapsed time and what it is doing, redrawn ten times a second;
//! - `plain` (the default otherwise): one line per step event;
//! - `json`: one object per line, `{"event": …}`; the schema is in the README.
//!
//! RUN output is shown live only with `--verbose`; a failed step's last
//! lines are always part of its error.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use strata_engine::events::{Event, EventSink};
use strata_engine::graph::Graph;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Tty,
    Plain,
    Json,
}

#[derive(Default)]
struct Screen {
    cached: usize,
    built: usize,
    /// The live block's line of each running step (tty mode).
    running: BTreeMap<usize, ProgressBar>,
    /// The last quarter of each download a plain line was printed for.
    downloads: BTreeMap<usize, u64>,
}

/// `--progress`: how the build's events are shown.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// tty on a terminal, plain otherwise.
    Auto,
    /// Finished steps scroll by; a live block shows the running ones.
    Tty,
    /// One line per event.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Renders engine events.
pub struct Progress<'g> {
    mode: Mode,
    verbose: bool,
    graph: &'g Graph,
    screen: Mutex<Screen>,
    /// The live block (tty mode): drawn on stderr even when `--progress tty`
    /// is asked for on something that is not a terminal.
    live: MultiProgress,
}

impl<'g> Progress<'g> {
    pub fn new(mode: ProgressMode, verbose: bool, graph: &'g Graph) -> Progress<'g> {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            ProgressMode::Auto | ProgressMode::Plain => Mode::Plain,
            ProgressMode::Tty => Mode::Tty,
            ProgressMode::Json => Mode::Json,
        };
        let live = MultiProgress::with_draw_target(if mode == Mode::Tty {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10)
        } else {
            ProgressDrawTarget::hidden()
        });
        Progress {
            mode,
            verbose,
            graph,
            screen: Mutex::new(Screen::default()),
            live,
        }
    }

    fn describe(&self, node: usize) -> String {
        let n = self.graph.node(node);
        format!("{}{} ({})", n.description, self.platform_mark(node), n.origin)
    }

    /// ` [linux/arm64, emulated]` for a step QEMU runs, ` [linux/arm64]`
    /// for another node of a foreign platform, nothing for the host's.
    fn platform_mark(&self, node: usize) -> String {
        let n = self.graph.node(node);
        if strata_engine::sys::binfmt::is_native(&n.platform) {
            return String::new();
        }
        let emulated = matches!(
            n.op,
            strata_engine::graph::Op::Run(_)
                | strata_engine::graph::Op::Base(strata_engine::graph::BaseSource::Debian(_))
        );
        if emulated {
            format!(" [{}, emulated]", n.platform)
        } else {
            format!(" [{}]", n.platform)
        }
    }

    /// Prints lines (above the live block on a terminal).
    fn emit(&self, lines: &[String]) {
        for line in lines {
            if self.mode == Mode::Tty {
                let _ = self.live.println(line);
            } else {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
                let _ = err.flush();
            }
        }
    }

    /// A running step's line in the live block.
    fn start(&self, screen: &mut Screen, node: usize) {
        if self.mode != Mode::Tty {
            return;
        }
        let style = ProgressStyle::with_template("  … {secs} {wide_msg}")
            .expect("a valid template")
            .with_key(
                "secs",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:>6.1}s", state.elapsed().as_secs_f64());
                },
            );
        let bar = self.live.add(ProgressBar::new_spinner().with_style(style));
        bar.set_message(self.describe(node));
        bar.enable_steady_tick(Duration::from_millis(100));
        screen.running.insert(node, bar);
    }

    fn stop(&self, screen: &mut Screen, node: usize) {
        if let Some(bar) = screen.running.remove(&node) {
            bar.finish_and_clear();
            self.live.remove(&bar);
        }
    }

    /// The closing summary.
    pub fn finish(&self, elapsed: Duration, hashed: usize, reused: usize) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        for node in screen.running.keys().copied().collect::<Vec<_>>() {
            self.stop(&mut screen, node);
        }
        let (cached, built) = (screen.cached, screen.built);
        let line = match self.mode {
            Mode::Json => {
                json!({"event": "finished", "elapsed_ms": elapsed.as_millis() as u64, "built": built, "cached": cached,
                                 "context_files_hashed": hashed, "context_files_reused": reused})
                .to_string()
            }
            _ => format!(
                "finished in {:.2}s: {built} built, {cached} cached",
                elapsed.as_secs_f64()
            ),
        };
        self.emit(&[line]);
    }
}

impl EventSink for Progress<'_> {
    fn event(&self, event: Event) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        match &event {
            Event::Cached { node, .. } if self.graph.node(*node).makes_layer() => screen.cached += 1,
            Event::Started { node, .. } => self.start(&mut screen, *node),
            Event::Done { node, .. } => {
                screen.built += 1;
                self.stop(&mut screen, *node);
            }
            Event::Failed { node, .. } => self.stop(&mut screen, *node),
            Event::Exporting { node, bytes } => {
                if let Some(bar) = screen.running.get(node) {
                    bar.set_message(format!(
                        "{} [exporting layer: {}]",
                        self.describe(*node),
                        crate::cli::human(*bytes)
                    ));
                }
            }
            Event::Downloading { node, bytes, total } => {
                if let Some(bar) = screen.running.get(node) {
                    let percent = (bytes * 100).checked_div(*total).unwrap_or(100);
                    bar.set_message(format!(
                        "{} [downloading: {} / {} ({percent}%)]",
                        self.describe(*node),
                        crate::cli::human(*bytes),
                        crate::cli::human(*total)
                    ));
                }
            }
            _ => {}
        }
        if self.mode == Mode::Json {
            let value = match &event {
                Event::Planned { total } => json!({"event": "planned", "nodes": total}),
                Event::Cached { node, key } => json!({"event": "cached", "node": node, "key": key.to_string()}),
                Event::Started { node, key } => json!({"event": "started", "node": node, "key": key.to_string(),
                    "description": self.graph.node(*node).description, "origin": self.graph.node(*node).origin.to_string(),
                "platform": self.graph.node(*node).platform.to_string()}),
                Event::Output { node, line } => json!({"event": "output", "node": node, "line": line}),
                Event::Done {
                    node,
                    key,
                    elapsed,
                    phases,
                } => {
                    let ms = |d: &std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
                    json!({"event": "done", "node": node, "key": key.to_string(), "elapsed_ms": elapsed.as_millis() as u64,
                        "phases_ms": {"hash": ms(&phases.hash), "write": ms(&phases.write), "run": ms(&phases.run),
                            "tar": ms(&phases.tar), "compress": ms(&phases.compress), "digest": ms(&phases.digest)}})
                }
                Event::Failed { node, message } => json!({"event": "failed", "node": node, "message": message}),
                Event::Exporting { node, bytes } => json!({"event": "exporting", "node": node, "bytes": bytes}),
                Event::Downloading { node, bytes, total } => {
                    json!({"event": "downloading", "node": node, "bytes": bytes, "total": total})
                }
                Event::Warning { message } => json!({"event": "warning", "message": message}),
                Event::Debugging { node, message } => json!({"event": "debugging", "node": node, "message": message}),
                Event::Exported { target, destination } => {
                    json!({"event": "exported", "target": target, "destination": destination})
                }
            };
            drop(screen);
            self.emit(&[value.to_string()]);
            return;
        }
        let line = match event {
            Event::Cached { node, .. } if self.graph.node(node).makes_layer() => {
                Some(format!("CACHED  {}", self.describe(node)))
            }
            Event::Started { node, .. } if self.mode == Mode::Plain => Some(format!("RUN     {}", self.describe(node))),
            Event::Started { .. } => None,
            Event::Output { line, .. } if self.verbose => Some(format!("        {line}")),
            Event::Done { node, elapsed, .. } => Some(format!(
                "DONE    {}{} in {:.3}s",
                self.graph.node(node).description,
                self.platform_mark(node),
                elapsed.as_secs_f64()
            )),
            Event::Failed { node, .. } => Some(format!("FAILED  {}", self.describe(node))),
            Event::Exported { target, destination } => Some(format!("EXPORT  {target} → {destination}")),
            // A line when a download starts and at each quarter of it.
            Event::Downloading { node, bytes, total } if self.mode == Mode::Plain => {
                let quarter = (bytes * 4).checked_div(total).unwrap_or(4).min(4);
                let last = screen.downloads.insert(node, quarter);
                (last != Some(quarter)).then(|| {
                    format!(
                        "        downloading {} / {} ({}%) for {}",
                        crate::cli::human(bytes),
                        crate::cli::human(total),
                        (bytes * 100).checked_div(total).unwrap_or(100),
                        self.graph.node(node).description
                    )
                })
            }
            Event::Warning { message } => Some(format!("WARNING {message}")),
            Event::Debugging { message, .. } => Some(format!("DEBUG   {message}")),
            _ => None,
        };
        drop(screen);
        self.emit(&line.into_iter().collect::<Vec<_>>());
    }
}
