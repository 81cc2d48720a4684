//! The standard library: Rhai modules compiled into the binary and loaded
//! with `import "strata/NAME" as name;`, next to the project's own modules
//! (`import "./common" as common;`, resolved beside the recipe).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

/// `(name, source)` of every stdlib module.
pub const MODULES: &[(&str, &str)] = &[
    ("debian", include_str!("../../stdlib/debian.rhai")),
    ("distroless", include_str!("../../stdlib/distroless.rhai")),
    ("node", include_str!("../../stdlib/node.rhai")),
    ("python", include_str!("../../stdlib/python.rhai")),
    ("rust", include_str!("../../stdlib/rust.rhai")),
];

/// How errors and origins name a module: `./lib/common` → `lib/common.rhai`,
/// `strata/rust` → `strata/rust.rhai`; a recipe's own name stays as it is.
pub fn file_name(source: &str) -> String {
    let name = source.trim_start_matches("./");
    if name.ends_with(".rhai") {
        name.to_string()
    } else {
        format!("{name}.rhai")
    }
}

/// The source of `strata/NAME`.
pub fn source(path: &str) -> Option<&'static str> {
    let name = path.strip_prefix("strata/")?.trim_end_matches(".rhai");
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Resolves `strata/…` to the embedded modules and everything else to files
/// relative to the recipe's directory. A file module is evaluated once
/// (later imports share it); an import of a module that is still being
/// evaluated is a cycle, reported with its files; a module outside the
/// recipe's directory is refused unless the build allows it (a hermetic
/// build reads only its own tree).
pub struct Resolver {
    dir: PathBuf,
    allow_outside: bool,
    /// Files being evaluated, outermost first (the recipe itself at the bottom).
    stack: RefCell<Vec<PathBuf>>,
    done: RefCell<HashMap<PathBuf, Shared<Module>>>,
    /// Every module loaded: (name, SHA256 of its text).
    loaded: std::rc::Rc<RefCell<Vec<(String, String)>>>,
}

impl Resolver {
    /// `dir` is the recipe's (canonical) directory, `recipe` its file.
    /// `loaded` hears of every module it loads.
    pub fn new(
        dir: &Path,
        recipe: &Path,
        allow_outside: bool,
        loaded: std::rc::Rc<RefCell<Vec<(String, String)>>>,
    ) -> Resolver {
        Resolver {
            dir: dir.to_path_buf(),
            allow_outside,
            stack: RefCell::new(vec![recipe.to_path_buf()]),
            done: RefCell::new(HashMap::new()),
            loaded,
        }
    }

    fn note(&self, name: String, text: &str) {
        let mut loaded = self.loaded.borrow_mut();
        if !loaded.iter().any(|(n, _)| *n == name) {
            loaded.push((
                name,
                strata_engine::digest::Digest::of(text.as_bytes()).hex().to_string(),
            ));
        }
    }

    /// How messages name a module file: relative to the recipe's directory.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir).unwrap_or(path).display().to_string()
    }

    fn resolve_file(&self, engine: &Engine, path: &str, pos: Position) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let runtime = |message: String| Box::new(EvalAltResult::ErrorRuntime(message.into(), pos));
        let mut file = self.dir.join(path);
        if file.extension().is_none_or(|e| e != "rhai") {
            file.as_mut_os_string().push(".rhai");
        }
        let canonical = match std::fs::canonicalize(&file) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Box::new(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos)))
            }
            Err(e) => {
                return Err(runtime(format!(
                    "cannot read module `{path}` ({}): {e}",
                    file.display()
                )))
            }
        };
        if !self.allow_outside && !canonical.starts_with(&self.dir) {
            return Err(runtime(format!(
                "import `{path}` reads `{}`, outside the recipe's directory `{}`; a hermetic build reads only its own tree (move the module in, or build with --allow-import-outside)",
                canonical.display(),
                self.dir.display()
            )));
        }
        if let Some(module) = self.done.borrow().get(&canonical) {
            return Ok(module.clone());
        }
        {
            let mut stack = self.stack.borrow_mut();
            if let Some(at) = stack.iter().position(|p| *p == canonical) {
                let cycle: Vec<String> = stack[at..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| self.shown(p))
                    .collect();
                return Err(runtime(format!("import cycle: {}", cycle.join(" → "))));
            }
            stack.push(canonical.clone());
        }
        let result = (|| -> Result<Shared<Module>, Box<EvalAltResult>> {
            let text = crate::limits::read_bounded(&canonical, crate::limits::MAX_RECIPE)
                .map_err(|e| runtime(format!("cannot read module `{path}` ({}): {e}", canonical.display())))?;
            self.note(self.shown(&canonical), &text);
            let in_module =
                |err: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(path.to_string(), err, pos));
            crate::limits::check_recipe(&text).map_err(|e| {
                in_module(Box::new(EvalAltResult::ErrorRuntime(
                    e.message.into(),
                    Position::new(
                        e.line.min(u16::MAX as usize) as u16,
                        e.col.min(u16::MAX as usize) as u16,
                    ),
                )))
            })?;
            let mut ast = engine
                .compile(text)
                .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
            ast.set_source(path);
            let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
                .map_err(in_module)?
                .into();
            Ok(module)
        })();
        self.stack.borrow_mut().pop();
        let module = result?;
        self.done.borrow_mut().insert(canonical, module.clone());
        Ok(module)
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if !path.starts_with("strata/") {
            return self.resolve_file(engine, path, pos);
        }
        let text = self::source(path).ok_or_else(|| {
            let known: Vec<String> = MODULES.iter().map(|(n, _)| format!("strata/{n}")).collect();
            Box::new(EvalAltResult::ErrorRuntime(
                format!("no stdlib module `{path}`; there are {}", known.join(", ")).into(),
                pos,
            ))
        })?;
        self.note(path.to_string(), text);
        let in_module = |err: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(path.to_string(), err, pos));
        let mut ast = engine
            .compile(text)
            .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
        ast.set_source(path);
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        Ok(module.into())
    }
}
