//! strata's recipe language: Rhai bindings that record an engine
//! [`Graph`](strata_engine::graph::Graph). Recipe functions do no work; they
//! record nodes and targets into a per-evaluation [`recorder::Recorder`],
//! which becomes plain data for the engine when evaluation ends. The only
//! I/O here is reading the recipe and the modules it imports.

mod api;
pub use api::targets::valid_tag;
pub mod dockerfile;
mod engine;
mod error;
pub mod limits;
mod recorder;
mod stdlib;

pub use api::SIGNATURES;
pub use error::DslError;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use strata_engine::graph::Graph;

/// How a recipe may be evaluated.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--allow-import-outside`: modules may come from outside the recipe's directory.
    pub allow_import_outside: bool,
    /// The platform the recipe's states are for (`target_platform()`);
    /// `None` is this machine's.
    pub platform: Option<strata_engine::image::Platform>,
    /// Set by Ctrl-C: the evaluation stops at its next operation.
    pub cancel: Option<&'static std::sync::atomic::AtomicBool>,
}

/// An evaluated recipe.
pub struct Compiled {
    pub graph: Graph,
    /// The names the recipe read with `arg()` (a `--arg` not among them is
    /// likely a typo).
    pub args_read: BTreeSet<String>,
}

/// Evaluates the recipe at `path` with `--arg` values and returns its graph.
/// The build context is the recipe's directory.
pub fn compile(path: &Path, args: &BTreeMap<String, String>) -> Result<Graph, DslError> {
    compile_with(path, args, &Options::default()).map(|c| c.graph)
}

/// [`compile`] with options, also saying which args the recipe read.
pub fn compile_with(path: &Path, args: &BTreeMap<String, String>, opts: &Options) -> Result<Compiled, DslError> {
    let (source, dir, name) = read_build_file(path, limits::MAX_RECIPE)?;
    engine::evaluate_with(&source, &name, &dir, args, opts)
}

/// A recipe's or Dockerfile's text, its directory (the build context,
/// canonical) and its file name (how errors name it).
fn read_build_file(path: &Path, max: u64) -> Result<(String, std::path::PathBuf, String), DslError> {
    let text = limits::read_bounded(path, max).map_err(|e| DslError::read(path, e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).map_err(|e| DslError::read(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((text, dir, name))
}

/// Evaluates recipe text. `name` is how errors and history name the file;
/// `dir` is the build context and the base for relative paths and imports.
pub fn compile_source(
    source: &str,
    name: &str,
    dir: &Path,
    args: &BTreeMap<String, String>,
) -> Result<Graph, DslError> {
    engine::evaluate(source, name, dir, args)
}

/// A Dockerfile, converted to a recipe (see [`dockerfile`]) and evaluated:
/// the graph's origins and any error point at the Dockerfile's lines.
/// `target` (`--target`) picks the stage to build; the warnings are about
/// what the conversion left out.
pub fn compile_dockerfile(
    path: &Path,
    args: &BTreeMap<String, String>,
    opts: &Options,
    target: Option<&str>,
    onbuild: Option<&OnBuildReader<'_>>,
) -> Result<(Compiled, Vec<String>), DslError> {
    let (file, converted) = convert_file(path, target, Some(args), onbuild, opts.platform.clone())?;
    // The program's calls are made with their values as data: nothing of
    // the Dockerfile is evaluated as recipe text.
    let mut compiled = engine::evaluate_input(
        engine::Input::Dockerfile(&converted.program),
        &file.name,
        &file.dir,
        args,
        opts,
    )
    .map_err(|e| file.error(e.line, e.message))?;
    // BuildKit reads `NAME.dockerignore` beside a Dockerfile instead of the context's.
    compiled.graph.ignore_file = file.own_ignore();
    Ok((compiled, converted.warnings))
}

/// The recipe the Dockerfile at `path` becomes (what `strata convert`
/// prints), and the Dockerfile's own `NAME.dockerignore` when it has one
/// (a recipe reads the context's instead).
pub fn convert_dockerfile(
    path: &Path,
    target: Option<&str>,
    onbuild: Option<&OnBuildReader<'_>>,
) -> Result<(dockerfile::Converted, Option<std::path::PathBuf>), DslError> {
    let (file, converted) = convert_file(path, target, None, onbuild, None)?;
    Ok((converted, file.own_ignore()))
}

/// A Dockerfile as read: its text, directory (the context) and name.
struct DockerfileSource {
    text: String,
    dir: std::path::PathBuf,
    name: String,
}

impl DockerfileSource {
    /// An error at `line` of the Dockerfile.
    fn error(&self, line: usize, message: String) -> DslError {
        DslError {
            file: self.name.clone(),
            line,
            col: 1,
            message,
            text: Some(self.text.clone()),
            cause: None,
        }
    }

    fn own_ignore(&self) -> Option<std::path::PathBuf> {
        Some(self.dir.join(format!("{}.dockerignore", self.name))).filter(|p| p.is_file())
    }
}

/// Reads a base image's ONBUILD triggers, for the Dockerfile frontend to run
/// them (see `dockerfile::Options::onbuild`).
pub type OnBuildReader<'a> = dyn Fn(&strata_engine::graph::BaseSource) -> Result<Vec<String>, String> + 'a;

fn convert_file(
    path: &Path,
    target: Option<&str>,
    args: Option<&BTreeMap<String, String>>,
    onbuild: Option<&OnBuildReader<'_>>,
    platform: Option<strata_engine::image::Platform>,
) -> Result<(DockerfileSource, dockerfile::Converted), DslError> {
    let (text, dir, name) = read_build_file(path, limits::MAX_DOCKERFILE)?;
    let file = DockerfileSource { text, dir, name };
    // FROM's image as `from()` reads it (a registry reference, or `rootfs:`,
    // `oci:`, `docker-archive:` beside the Dockerfile).
    let read = |image: &str| -> Result<Vec<String>, String> {
        let source = api::states::parse_base(image, &file.dir)?;
        onbuild.map_or(Ok(Vec::new()), |read| read(&source))
    };
    let converted = dockerfile::convert(
        &file.text,
        &dockerfile::Options {
            target,
            context: Some(&file.dir),
            source_name: &file.name,
            args,
            onbuild: onbuild.map(|_| &read as &dockerfile::ReadTriggers),
            platform,
        },
    )
    .map_err(|e| file.error(e.line, e.message))?;
    Ok((file, converted))
}
