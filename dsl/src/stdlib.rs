//! The standard library: Rhai modules compiled into the binary and loaded
//! with `import "strata/NAME" as name;`, next to the project's own modules
//! (`import "./common" as common;`, resolved beside the recipe).

use std::path::Path;

use rhai::module_resolvers::FileModuleResolver;
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
/// relative to the recipe's directory.
pub struct Resolver {
    files: FileModuleResolver,
}

impl Resolver {
    pub fn new(dir: &Path) -> Resolver {
        Resolver {
            files: FileModuleResolver::new_with_path(dir),
        }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if !path.starts_with("strata/") {
            return self.files.resolve(engine, source, path, pos);
        }
        let text = self::source(path).ok_or_else(|| {
            let known: Vec<String> = MODULES.iter().map(|(n, _)| format!("strata/{n}")).collect();
            Box::new(EvalAltResult::ErrorRuntime(
                format!("no stdlib module `{path}`; there are {}", known.join(", ")).into(),
                pos,
            ))
        })?;
        let in_module = |err: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(path.to_string(), err, pos));
        let mut ast = engine
            .compile(text)
            .map_err(|e| in_module(Box::new(EvalAltResult::ErrorParsing(*e.0, e.1))))?;
        ast.set_source(path);
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        Ok(module.into())
    }
}
