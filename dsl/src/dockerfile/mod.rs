//! The Dockerfile frontend: a Dockerfile becomes a recipe program (data:
//! `ir`), which `eval` runs by calling the recipe functions themselves (no
//! generated text is evaluated) and `strata convert` prints as a recipe.
//! So a Dockerfile gets the same caching, parallelism, remote cache and
//! outputs as a recipe. Errors name the Dockerfile's line.

mod convert;
pub(crate) mod eval;
pub mod ir;
mod parse;
mod words;

pub use convert::{Converted, Options, ReadTriggers};
pub use ir::{Expr, Program, Step, Stmt};

/// A Dockerfile the frontend cannot take, at its (1-based) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileError {
    pub line: usize,
    pub message: String,
}

impl DockerfileError {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError {
            line,
            message: message.into(),
        }
    }
}

/// True when `path` names a Dockerfile rather than a recipe: `Dockerfile`,
/// `Containerfile`, `*.Dockerfile`, `Dockerfile.*`.
pub fn is_dockerfile(path: &std::path::Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name == "dockerfile" || name == "containerfile" || name.starts_with("dockerfile.") || name.ends_with(".dockerfile")
}

/// The recipe for Dockerfile `text`.
pub fn convert(text: &str, opts: &Options<'_>) -> Result<Converted, DockerfileError> {
    let df = parse::parse(text)?;
    convert::convert(&df, opts)
}
