//! Errors on stderr, rendered by miette, and the exit code. A recipe error
//! shows the recipe line with a caret under the column; every other error
//! shows its cause chain, each cause once (a message that already ends with
//! its cause's text does not repeat it). A failed step's last lines of output
//! follow.

use std::error::Error as _;
use std::fmt;
use std::io::IsTerminal;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use crate::cli::CliError;

/// The exit code for `err`: 2 for bad usage or a bad recipe, 130 when
/// interrupted, 1 for a failed build.
pub fn exit_code(err: &CliError) -> u8 {
    match err {
        CliError::Exit(code) => *code,
        CliError::Recipe(_) | CliError::Usage(_) | CliError::Epoch(_) | CliError::Platform(_) => 2,
        CliError::Engine(e) if e.is_input() => 2,
        CliError::Engine(e) if e.is_interrupted() => 130,
        CliError::Engine(_) | CliError::Damaged(_) | CliError::Rootless(_) => 1,
    }
}

/// Prints `err` and returns the exit code.
pub fn report(err: &CliError) -> u8 {
    let code = exit_code(err);
    if let CliError::Exit(_) = err {
        return code;
    }
    eprint!("{}", render(err, std::io::stderr().is_terminal()));
    code
}

/// The text `report` prints: `error: …` then the diagnostic.
pub fn render(err: &CliError, color: bool) -> String {
    let mut theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    // `error: message` as the first line, the way compilers start theirs.
    theme.characters.error = "error:".into();
    let handler = GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
    let diagnostic = Rendered::of(err);
    let mut out = String::new();
    if handler.render_report(&mut out, &diagnostic).is_err() {
        out = format!("error: {err}\n");
    }
    // miette indents its header line; ours starts at the margin.
    let out = out.strip_prefix("  ").map(str::to_string).unwrap_or(out);
    let mut out = out;
    if let CliError::Engine(strata_engine::Error::Step { detail, .. }) = err {
        if !detail.is_empty() {
            out.push_str(detail);
            out.push('\n');
        }
    }
    out
}

/// One link of a cause chain, as text.
#[derive(Debug)]
struct Cause {
    text: String,
    next: Option<Box<Cause>>,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next.as_deref().map(|c| c as _)
    }
}

/// An error as miette shows it: the message, the causes that add something,
/// and for a recipe error the recipe's text with the position.
#[derive(Debug)]
struct Rendered {
    message: String,
    causes: Option<Box<Cause>>,
    recipe: Option<(NamedSource<String>, usize)>,
}

impl Rendered {
    fn of(err: &CliError) -> Rendered {
        let message = err.to_string();
        let mut texts: Vec<String> = Vec::new();
        let mut last = message.clone();
        let mut cause = err.source();
        while let Some(c) = cause {
            let text = c.to_string();
            // A transparent wrapper's source is the wrapped error itself.
            if !last.ends_with(&text) {
                texts.push(text.clone());
            }
            last = text;
            cause = c.source();
        }
        let causes = texts
            .into_iter()
            .rev()
            .fold(None, |next, text| Some(Box::new(Cause { text, next })));
        let recipe = match err {
            CliError::Recipe(e) => e
                .text
                .clone()
                .zip(e.offset())
                .map(|(text, offset)| (NamedSource::new(&e.file, text), offset)),
            _ => None,
        };
        Rendered {
            message,
            causes,
            recipe,
        }
    }
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.causes.as_deref().map(|c| c as _)
    }
}

impl Diagnostic for Rendered {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.recipe.as_ref().map(|(source, _)| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (_, offset) = self.recipe.as_ref()?;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".into()),
            *offset,
            1,
        ))))
    }
}
