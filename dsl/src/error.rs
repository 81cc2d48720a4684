//! `DslError`: a recipe error with its file, line and column, the offending
//! source line and a caret under the column.

use std::fmt;
use std::path::Path;

/// A broken recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DslError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The recipe line the error points at, when known.
    pub source_line: Option<String>,
}

impl DslError {
    pub(crate) fn read(path: &Path, e: std::io::Error) -> DslError {
        DslError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            message: format!("failed to read recipe: {e}"),
            source_line: None,
        }
    }
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)?;
        if let Some(text) = &self.source_line {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {}^",
                "",
                self.line,
                text,
                "",
                " ".repeat(self.col.saturating_sub(1))
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for DslError {}
