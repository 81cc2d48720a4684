//! Progress: plain lines on stderr (the default when not on a terminal, and
//! for now on a terminal too), or one JSON object per event with
//! `--progress json`.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use strata_engine::events::{Event, EventSink};
use strata_engine::graph::Graph;

enum Mode {
    Plain,
    Json,
}

/// Renders engine events.
pub struct Progress<'g> {
    mode: Mode,
    graph: &'g Graph,
    counts: Mutex<(usize, usize)>,
}

impl<'g> Progress<'g> {
    pub fn new(mode: &str, graph: &'g Graph) -> Result<Progress<'g>, String> {
        let mode = match mode {
            "auto" | "plain" | "tty" => Mode::Plain,
            "json" => Mode::Json,
            other => return Err(format!("--progress `{other}`: expected auto, plain or json")),
        };
        Ok(Progress {
            mode,
            graph,
            counts: Mutex::new((0, 0)),
        })
    }

    fn line(&self, text: String) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }

    /// The closing summary.
    pub fn finish(&self, elapsed: Duration, hashed: usize, reused: usize) {
        let (cached, built) = *self.counts.lock().expect("progress lock");
        match self.mode {
            Mode::Json => self.line(
                json!({"event": "finished", "elapsed_ms": elapsed.as_millis() as u64, "built": built, "cached": cached,
                       "context_files_hashed": hashed, "context_files_reused": reused})
                .to_string(),
            ),
            Mode::Plain => self.line(format!(
                "finished in {:.2}s: {built} built, {cached} cached",
                elapsed.as_secs_f64()
            )),
        }
    }
}

impl EventSink for Progress<'_> {
    fn event(&self, event: Event) {
        let desc = |node: usize| {
            let n = &self.graph.nodes[node];
            format!("{} ({})", n.description, n.origin)
        };
        match self.mode {
            Mode::Json => {
                let value = match &event {
                    Event::Planned { total } => json!({"event": "planned", "nodes": total}),
                    Event::Cached { node, key } => {
                        json!({"event": "cached", "node": node, "key": key.to_string()})
                    }
                    Event::Started { node, key } => {
                        json!({"event": "started", "node": node, "key": key.to_string(), "description": self.graph.nodes[*node].description})
                    }
                    Event::Output { node, line } => {
                        json!({"event": "output", "node": node, "line": line})
                    }
                    Event::Done { node, key, elapsed } => {
                        json!({"event": "done", "node": node, "key": key.to_string(), "elapsed_ms": elapsed.as_millis() as u64})
                    }
                    Event::Failed { node, message } => {
                        json!({"event": "failed", "node": node, "message": message})
                    }
                    Event::Exported { target, destination } => {
                        json!({"event": "exported", "target": target, "destination": destination})
                    }
                };
                if let Event::Cached { node, .. } = event {
                    self.counts.lock().expect("progress lock").0 += usize::from(self.graph.nodes[node].makes_layer());
                } else if let Event::Done { .. } = event {
                    self.counts.lock().expect("progress lock").1 += 1;
                }
                self.line(value.to_string());
            }
            Mode::Plain => match event {
                Event::Planned { .. } | Event::Exported { .. } => {}
                Event::Cached { node, .. } => {
                    if self.graph.nodes[node].makes_layer() {
                        self.counts.lock().expect("progress lock").0 += 1;
                        self.line(format!("CACHED  {}", desc(node)));
                    }
                }
                Event::Started { node, .. } => self.line(format!("RUN     {}", desc(node))),
                Event::Output { line, .. } => self.line(format!("        {line}")),
                Event::Done { node, elapsed, .. } => {
                    self.counts.lock().expect("progress lock").1 += 1;
                    self.line(format!(
                        "DONE    {} in {:.3}s",
                        self.graph.nodes[node].description,
                        elapsed.as_secs_f64()
                    ));
                }
                Event::Failed { node, .. } => self.line(format!("FAILED  {}", desc(node))),
            },
        }
    }
}
