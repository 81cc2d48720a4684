//! `DslError`: a recipe error with its file, line and column and the text
//! of the file it points into (the CLI shows the line with a caret). A
//! recipe that cannot be read keeps the I/O error as its source.

use std::fmt;
use std::path::Path;

/// A broken recipe.
#[derive(Debug)]
pub struct DslError {
    pub file: String,
    /// 1-based; 0 when the error has no position (an unreadable recipe).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    pub message: String,
    /// The text of `file`, when known.
    pub text: Option<String>,
    /// The I/O error of a recipe that could not be read.
    pub cause: Option<std::io::Error>,
}

impl DslError {
    pub(crate) fn read(path: &Path, e: std::io::Error) -> DslError {
        DslError {
            file: path.display().to_string(),
            line: 0,
            col: 0,
            message: "failed to read recipe".into(),
            text: None,
            cause: Some(e),
        }
    }

    /// The line the error points at, when known.
    pub fn source_line(&self) -> Option<&str> {
        self.text.as_deref()?.lines().nth(self.line.checked_sub(1)?)
    }

    /// The byte offset of the position in [`DslError::text`], when known.
    pub fn offset(&self) -> Option<usize> {
        let text = self.text.as_deref()?;
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            if i + 1 == self.line {
                let col = self.col.saturating_sub(1);
                return Some(offset + line.char_indices().nth(col).map_or(line.trim_end().len(), |(b, _)| b));
            }
            offset += line.len();
        }
        None
    }
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
    }
}

impl std::error::Error for DslError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_points_at_the_column_of_the_line() {
        let e = DslError {
            file: "r.rhai".into(),
            line: 2,
            col: 3,
            message: "m".into(),
            text: Some("let a = 1;\nlet b = 2;\n".into()),
            cause: None,
        };
        assert_eq!(e.offset(), Some(13));
        assert_eq!(e.source_line(), Some("let b = 2;"));
        assert_eq!(e.to_string(), "r.rhai:2:3: m");
    }
}
