//! Progress on stderr, in three forms:
//!
//! - `tty` (the default on a terminal): finished steps scroll by as lines,
//!   and a live block below them shows every running step with its elapsed
//!   time, redrawn ten times a second;
//! - `plain` (the default otherwise): one line per step event;
//! - `json`: one object per line, `{"event": …}`; the schema is in the README.
//!
//! RUN output is shown live only with `--verbose`; a failed step's last
//! lines are always part of its error.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    running: BTreeMap<usize, Instant>,
    /// What a running step is doing besides running (exporting its layer, downloading).
    activity: BTreeMap<usize, String>,
    /// Lines of the live block currently on screen.
    drawn: usize,
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
}

impl<'g> Progress<'g> {
    pub fn new(mode: ProgressMode, verbose: bool, graph: &'g Graph) -> Progress<'g> {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            ProgressMode::Auto | ProgressMode::Plain => Mode::Plain,
            ProgressMode::Tty => Mode::Tty,
            ProgressMode::Json => Mode::Json,
        };
        Progress {
            mode,
            verbose,
            graph,
            screen: Mutex::new(Screen::default()),
        }
    }

    /// True when a ticker should call [`Progress::tick`] to animate the live block.
    pub fn is_live(&self) -> bool {
        self.mode == Mode::Tty
    }

    fn describe(&self, node: usize) -> String {
        let n = &self.graph.nodes[node];
        format!("{} ({})", n.description, n.origin)
    }

    /// Prints lines above the live block and redraws it.
    fn emit(&self, screen: &mut Screen, lines: &[String]) {
        let mut err = std::io::stderr().lock();
        if self.mode == Mode::Tty && screen.drawn > 0 {
            let _ = write!(err, "\x1b[{}A\x1b[J", screen.drawn);
            screen.drawn = 0;
        }
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
        if self.mode == Mode::Tty {
            let width = terminal_width();
            for (node, started) in &screen.running {
                let export = match screen.activity.get(node) {
                    Some(text) => format!(" [{text}]"),
                    None => String::new(),
                };
                let text = format!(
                    "  … {:>6.1}s {}{export}",
                    started.elapsed().as_secs_f64(),
                    self.describe(*node)
                );
                let _ = writeln!(err, "{}", truncate(&text, width));
                screen.drawn += 1;
            }
        }
        let _ = err.flush();
    }

    /// Redraws the live block (elapsed times).
    pub fn tick(&self) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        if !screen.running.is_empty() {
            self.emit(&mut screen, &[]);
        }
    }

    /// The closing summary.
    pub fn finish(&self, elapsed: Duration, hashed: usize, reused: usize) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        screen.running.clear();
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
        self.emit(&mut screen, &[line]);
    }
}

fn terminal_width() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        120
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl EventSink for Progress<'_> {
    fn event(&self, event: Event) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        match &event {
            Event::Cached { node, .. } if self.graph.nodes[*node].makes_layer() => screen.cached += 1,
            Event::Started { node, .. } => {
                screen.running.insert(*node, Instant::now());
            }
            Event::Done { node, .. } => {
                screen.built += 1;
                screen.running.remove(node);
                screen.activity.remove(node);
            }
            Event::Failed { node, .. } => {
                screen.running.remove(node);
                screen.activity.remove(node);
            }
            Event::Exporting { node, bytes } => {
                let text = format!("exporting layer: {}", crate::cli::human(*bytes));
                screen.activity.insert(*node, text);
            }
            Event::Downloading { node, bytes, total } => {
                let percent = (bytes * 100).checked_div(*total).unwrap_or(100);
                let text = format!(
                    "downloading: {} / {} ({percent}%)",
                    crate::cli::human(*bytes),
                    crate::cli::human(*total)
                );
                screen.activity.insert(*node, text);
            }
            _ => {}
        }
        if self.mode == Mode::Json {
            let value = match &event {
                Event::Planned { total } => json!({"event": "planned", "nodes": total}),
                Event::Cached { node, key } => json!({"event": "cached", "node": node, "key": key.to_string()}),
                Event::Started { node, key } => json!({"event": "started", "node": node, "key": key.to_string(),
                    "description": self.graph.nodes[*node].description, "origin": self.graph.nodes[*node].origin.to_string()}),
                Event::Output { node, line } => json!({"event": "output", "node": node, "line": line}),
                Event::Done { node, key, elapsed } => {
                    json!({"event": "done", "node": node, "key": key.to_string(), "elapsed_ms": elapsed.as_millis() as u64})
                }
                Event::Failed { node, message } => json!({"event": "failed", "node": node, "message": message}),
                Event::Exporting { node, bytes } => json!({"event": "exporting", "node": node, "bytes": bytes}),
                Event::Downloading { node, bytes, total } => {
                    json!({"event": "downloading", "node": node, "bytes": bytes, "total": total})
                }
                Event::Warning { message } => json!({"event": "warning", "message": message}),
                Event::Exported { target, destination } => {
                    json!({"event": "exported", "target": target, "destination": destination})
                }
            };
            self.emit(&mut screen, &[value.to_string()]);
            return;
        }
        let line = match event {
            Event::Cached { node, .. } if self.graph.nodes[node].makes_layer() => {
                Some(format!("CACHED  {}", self.describe(node)))
            }
            Event::Started { node, .. } if self.mode == Mode::Plain => Some(format!("RUN     {}", self.describe(node))),
            Event::Started { .. } => None,
            Event::Output { line, .. } if self.verbose => Some(format!("        {line}")),
            Event::Done { node, elapsed, .. } => Some(format!(
                "DONE    {} in {:.3}s",
                self.graph.nodes[node].description,
                elapsed.as_secs_f64()
            )),
            Event::Failed { node, .. } => Some(format!("FAILED  {}", self.describe(node))),
            Event::Exported { target, destination } => Some(format!("EXPORT  {target} → {destination}")),
            Event::Warning { message } => Some(format!("WARNING {message}")),
            _ => None,
        };
        self.emit(&mut screen, &line.into_iter().collect::<Vec<_>>());
    }
}
