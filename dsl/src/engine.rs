//! The Rhai engine set-up for one evaluation: limits that keep a hostile
//! recipe from hanging or exhausting memory, the module resolver for
//! relative imports, the recipe functions, and error translation into
//! [`DslError`] with file, line, column and a hint.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use rhai::{Engine, EvalAltResult, Position};
use strata_engine::graph::Graph;

use crate::api::{self, SIGNATURES};
use crate::error::DslError;
use crate::recorder::Recorder;

pub fn evaluate(source: &str, name: &str, dir: &Path, args: &BTreeMap<String, String>) -> Result<Graph, DslError> {
    evaluate_with(source, name, dir, args, &crate::Options::default()).map(|c| c.graph)
}

/// What an evaluation runs: a recipe's text, or a converted Dockerfile.
pub enum Input<'a> {
    Recipe(&'a str),
    Dockerfile(&'a crate::dockerfile::Program),
}

pub fn evaluate_with(
    source: &str,
    name: &str,
    dir: &Path,
    args: &BTreeMap<String, String>,
    opts: &crate::Options,
) -> Result<crate::Compiled, DslError> {
    evaluate_input(Input::Recipe(source), name, dir, args, opts)
}

/// Evaluates `input` with the recipe functions registered. A converted
/// Dockerfile's calls are made by `dockerfile::eval` with their values as
/// data; an error says its Dockerfile line (`text` is left for the caller).
pub fn evaluate_input(
    input: Input<'_>,
    name: &str,
    dir: &Path,
    args: &BTreeMap<String, String>,
    opts: &crate::Options,
) -> Result<crate::Compiled, DslError> {
    let rec = Rc::new(RefCell::new(Recorder {
        graph: Graph::new(dir.to_path_buf()),
        args: args.clone(),
        args_read: Default::default(),
        file: name.to_string(),
        dir: dir.to_path_buf(),
        target_platform: opts
            .platform
            .clone()
            .unwrap_or_else(strata_engine::image::Platform::host),
        build_platform: strata_engine::image::Platform::host(),
        line: None,
    }));
    let mut engine = Engine::new();
    engine
        .set_max_operations(20_000_000)
        .set_max_call_levels(64)
        .set_max_expr_depths(128, 64)
        .set_max_string_size(1 << 20)
        .set_max_array_size(1 << 16)
        .set_max_map_size(1 << 16)
        .set_max_modules(256)
        .set_strict_variables(true)
        // Rhai's optimizer removes statements one `Vec::remove` at a time and
        // flattens blocks by searching from the start each time: quadratic
        // in a block's statements. Recipes describe; there is little to fold.
        .set_optimization_level(rhai::OptimizationLevel::None);
    if let Some(flag) = opts.cancel {
        // Ctrl-C stops a long evaluation at once (a loop, a huge recipe).
        engine.on_progress(move |_| {
            flag.load(std::sync::atomic::Ordering::Relaxed)
                .then(|| rhai::Dynamic::from("interrupted"))
        });
    }
    let loaded = Rc::new(RefCell::new(Vec::new()));
    engine.set_module_resolver(crate::stdlib::Resolver::new(
        dir,
        &dir.join(name),
        opts.allow_import_outside,
        loaded.clone(),
    ));
    api::register(&mut engine, &rec);

    let text = match &input {
        Input::Recipe(source) => source.to_string(),
        Input::Dockerfile(_) => String::new(),
    };
    let sources: Rc<RefCell<BTreeMap<String, String>>> =
        Rc::new(RefCell::new(BTreeMap::from([(name.to_string(), text)])));
    let to_error = |err: &EvalAltResult, fallback_file: &str| translate(err, fallback_file, dir, &sources.borrow());

    match input {
        Input::Recipe(source) => {
            crate::limits::check_recipe(source).map_err(|e| DslError {
                file: name.to_string(),
                line: e.line,
                col: e.col,
                message: e.message,
                text: Some(source.to_string()),
                cause: None,
            })?;
            let mut ast = engine.compile(source).map_err(|e| {
                let err = EvalAltResult::ErrorParsing(*e.0, e.1);
                to_error(&err, name)
            })?;
            ast.set_source(name);
            engine.run_ast(&ast).map_err(|e| to_error(&e, name))?;
        }
        Input::Dockerfile(program) => {
            crate::dockerfile::eval::run(&engine, &rec, program).map_err(|failed| {
                let mut e = to_error(&failed.error, name);
                e.line = failed.line;
                e.col = 1;
                e.text = None;
                e
            })?;
        }
    }
    drop(engine);
    let rec = Rc::try_unwrap(rec).map_err(|_| DslError {
        file: name.into(),
        line: 0,
        col: 0,
        message: "internal error: the recorder is still in use".into(),
        text: None,
        cause: None,
    })?;
    let mut rec = rec.into_inner();
    rec.graph.modules = loaded.take();
    Ok(crate::Compiled {
        graph: rec.graph,
        args_read: rec.args_read,
    })
}

/// Finds the innermost error (inside function calls and modules) and its file.
fn innermost<'a>(err: &'a EvalAltResult, file: &str) -> (&'a EvalAltResult, String) {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, src, inner, _) => {
            let f = if src.is_empty() {
                file.to_string()
            } else {
                crate::stdlib::file_name(src)
            };
            innermost(inner, &f)
        }
        EvalAltResult::ErrorInModule(module, inner, _) => innermost(inner, &crate::stdlib::file_name(module)),
        other => (other, file.to_string()),
    }
}

fn translate(err: &EvalAltResult, file: &str, dir: &Path, sources: &BTreeMap<String, String>) -> DslError {
    let (inner, file) = innermost(err, file);
    let pos: Position = inner.position();
    let message = match inner {
        EvalAltResult::ErrorRuntime(msg, _) => msg.to_string(),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => function_hint(sig),
        EvalAltResult::ErrorParsing(kind, _) => format!("syntax error: {kind}"),
        EvalAltResult::ErrorVariableNotFound(var, _) => format!("unknown variable `{var}`"),
        EvalAltResult::ErrorMismatchDataType(expected, found, _) => {
            format!("expected a {expected}, found a {found}")
        }
        EvalAltResult::ErrorTerminated(..) => "interrupted".into(),
        EvalAltResult::ErrorTooManyOperations(_) => {
            "the recipe runs too long (operation limit reached); is there an endless loop?".into()
        }
        other => {
            let text = other.to_string();
            text.rsplit_once(" (line").map(|(m, _)| m.to_string()).unwrap_or(text)
        }
    };
    let line = pos.line().unwrap_or(0);
    let text = sources
        .get(&file)
        .cloned()
        .or_else(|| crate::stdlib::source(&file).map(str::to_string))
        .or_else(|| std::fs::read_to_string(dir.join(&file)).ok());
    // A Rhai keyword as a map's key (a cache mount's `export`) must be quoted.
    let mut message = message;
    if let (EvalAltResult::ErrorParsing(..), Some(text), Some(col)) = (inner, &text, pos.position()) {
        let at: String = text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .chars()
            .skip(col.saturating_sub(1))
            .collect();
        if let Some(word) = ["export", "import", "as", "fn", "private", "global"]
            .into_iter()
            .find(|w| {
                at.strip_prefix(w)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
        {
            message = format!("{message}: `{word}` is a Rhai keyword; as a map key, quote it: \"{word}\":");
        }
    }
    DslError {
        file,
        line,
        col: pos.position().unwrap_or(0),
        message,
        text,
        cause: None,
    }
}

/// "no function `copy (State, i64)`" plus what the function does take.
fn function_hint(signature: &str) -> String {
    let name = signature.split([' ', '(']).next().unwrap_or(signature);
    let args = signature.get(name.len()..).unwrap_or("").trim();
    let args = args
        .replace("strata_dsl::api::", "")
        .replace("rhai::", "")
        .replace("ImmutableString", "string")
        .replace("&str | string | String", "string")
        .replace("i64", "integer");
    match SIGNATURES.iter().find(|(n, _)| *n == name) {
        Some((_, usage)) => format!("`{name}` does not take {args}; expected {usage}"),
        None => format!("unknown function `{name}` {args}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Result<Graph, DslError> {
        let dir = tempfile::tempdir().unwrap();
        evaluate(src, "strata.rhai", dir.path(), &BTreeMap::new())
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = compile("let a = scratch();\nlet b = a.env(\"A\" \"1\");\n").unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("strata.rhai", 2));
        assert!(err.message.starts_with("syntax error"), "{}", err.message);
        assert_eq!(err.source_line(), Some("let b = a.env(\"A\" \"1\");"), "{err}");
    }

    #[test]
    fn a_keyword_as_a_map_key_says_to_quote_it() {
        let err = compile("let a = #{ target: \"/c\", export: 1 };").unwrap_err();
        assert!(
            err.message
                .ends_with(": `export` is a Rhai keyword; as a map key, quote it: \"export\":"),
            "{}",
            err.message
        );
        // Quoted, it is an ordinary key.
        compile("let a = #{ target: \"/c\", \"export\": 1 };").unwrap();
    }

    #[test]
    fn an_interrupt_stops_the_evaluation_at_its_next_operation() {
        static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::Options {
            cancel: Some(&INTERRUPTED),
            ..Default::default()
        };
        let err = evaluate_with(
            "let n = 0;\nloop { n += 1; }",
            "strata.rhai",
            dir.path(),
            &BTreeMap::new(),
            &opts,
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!((err.message.as_str(), err.line), ("interrupted", 1), "{err}");
    }

    #[test]
    fn unknown_functions_are_named() {
        let err = compile("let a = scrach();").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("scrach"), "{}", err.message);
    }

    #[test]
    fn wrong_argument_types_say_what_was_expected() {
        let err = compile("let a = scratch();\n\n  a.copy(42, \"/x\");").unwrap_err();
        assert_eq!((err.line, err.col), (3, 5));
        assert!(err.message.contains("expected state.copy("), "{}", err.message);
    }

    #[test]
    fn every_recipe_function_records_its_origin() {
        let g = compile("let a = scratch()\n  .env(\"A\", \"1\");\nimage(\"a\", a);").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!((g.node(1).origin.line, g.node(1).origin.col), (2, 4));
        assert_eq!(g.targets[0].origin.line, 3);
        assert_eq!(g.node(1).description, "env(\"A\", \"1\")");
    }

    #[test]
    fn errors_inside_modules_name_the_module_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("common.rhai"),
            "fn base() {\n    scratch()\n}\nfn broken(s) {\n    s.copy(42, \"/x\")\n}\n",
        )
        .unwrap();
        let run = |src: &str| evaluate(src, "strata.rhai", dir.path(), &BTreeMap::new());
        let g = run("import \"./common\" as common;\nimage(\"a\", common::base().env(\"A\", \"1\"));").unwrap();
        assert_eq!(g.len(), 2);
        let err = run("import \"./common\" as common;\nlet s = common::broken(common::base());").unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("common.rhai", 5), "{err}");
        assert_eq!(err.source_line(), Some("    s.copy(42, \"/x\")"), "{err}");
        let err = run("import \"strata/nope\" as n;").unwrap_err();
        assert!(err.message.contains("no stdlib module `strata/nope`"), "{err}");
    }

    #[test]
    fn every_stdlib_module_compiles_and_its_examples_evaluate() {
        for (name, source) in crate::stdlib::MODULES {
            let example: String = source
                .lines()
                .skip_while(|l| !l.starts_with("// ```rhai"))
                .skip(1)
                .take_while(|l| !l.starts_with("// ```"))
                .map(|l| format!("{}\n", l.trim_start_matches("//").trim_start_matches(' ')))
                .collect();
            assert!(!example.is_empty(), "strata/{name} has no example");
            let g = compile(&example).unwrap_or_else(|e| panic!("strata/{name}: {e}\n{example}"));
            assert!(!g.targets.is_empty(), "strata/{name}'s example defines no target");
        }
    }

    #[test]
    fn doc_examples_evaluate() {
        for doc in [
            include_str!("api/states.rs"),
            include_str!("api/meta.rs"),
            include_str!("api/targets.rs"),
        ] {
            let example: String = doc
                .lines()
                .skip_while(|l| !l.starts_with("//! ```rhai"))
                .skip(1)
                .take_while(|l| !l.starts_with("//! ```"))
                .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
                .collect();
            assert!(!example.is_empty());
            compile(&example).unwrap_or_else(|e| panic!("{e}\n{example}"));
        }
    }
}
