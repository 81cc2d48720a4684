//! Dockerfile instructions into a recipe program (`ir::Program`): stages
//! become variables, `COPY --from` becomes `state.path`, build args become
//! `arg()`, every final stage becomes an `image()`. Variables are
//! substituted here, as BuildKit does before it builds: an `ARG` becomes the
//! recipe variable that holds its value, an `ENV` of the Dockerfile its
//! value. Every value is data (`ir::Expr`), never recipe text: the program
//! is evaluated by calling the recipe functions (`eval`), and printed as a
//! recipe only for `strata convert`. Each call remembers the Dockerfile
//! line it came from, so errors name that line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::ir::{Expr, Program, Step, Stmt};
use super::parse::{self, Dockerfile, Instruction};
use super::words::{self, Part};
use super::DockerfileError;
use strata_engine::image::Platform;

mod args;
use args::{platform_args, platform_lits};
mod config;
mod copy;
mod finish;
mod from;
mod run;

/// What the conversion made.
#[derive(Debug)]
pub struct Converted {
    pub program: Program,
    pub warnings: Vec<String>,
}

impl Converted {
    /// The recipe `strata convert` prints, and for each of its lines
    /// (0-based) the Dockerfile line it came from (0: none).
    pub fn recipe(&self) -> (String, Vec<usize>) {
        self.program.to_rhai()
    }
}

/// Reads the ONBUILD triggers of the image a FROM names.
pub type ReadTriggers<'a> = dyn Fn(&str) -> Result<Vec<String>, String> + 'a;

/// How to convert.
#[derive(Default)]
pub struct Options<'a> {
    /// `--target`: this stage becomes an image even when others use it.
    pub target: Option<&'a str>,
    /// The build context, for checks on ADD sources.
    pub context: Option<&'a Path>,
    /// What the recipe's header says it came from.
    pub source_name: &'a str,
    /// `--build-arg` values: FROM lines whose image an ARG names are read
    /// with them to find the base whose ONBUILD triggers to run.
    pub args: Option<&'a BTreeMap<String, String>>,
    /// Reads a base image's ONBUILD triggers (its config's `OnBuild`).
    /// `None`: bases are not read, and their triggers are not run (a
    /// warning says so when a stage may need them).
    pub onbuild: Option<&'a ReadTriggers<'a>>,
    /// The platform this conversion is for (FROM lines read before the
    /// build see its TARGET* values); `None` is this machine's.
    pub platform: Option<Platform>,
}

/// A value: known text, or one computed when the recipe runs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Val {
    Lit(String),
    Expr(Expr),
}

impl Val {
    fn expr(&self) -> Expr {
        match self {
            Val::Lit(s) => Expr::Str(s.clone()),
            Val::Expr(e) => e.clone(),
        }
    }

    fn concat(parts: Vec<Val>) -> Val {
        let mut out: Vec<Val> = Vec::new();
        for p in parts {
            match (out.last_mut(), p) {
                (Some(Val::Lit(a)), Val::Lit(b)) => a.push_str(&b),
                (_, Val::Lit(b)) if b.is_empty() => {}
                (_, p) => out.push(p),
            }
        }
        match out.len() {
            0 => Val::Lit(String::new()),
            1 => out.pop().expect("one part"),
            _ => Val::Expr(Expr::Concat(out.iter().map(Val::expr).collect())),
        }
    }
}

/// One stage as it is being converted.
struct Stage {
    var: String,
    name: Option<String>,
    /// The chained calls, each with its Dockerfile line.
    calls: Vec<Step>,
    /// The head of the chain (`from(…)`, `scratch()`, another stage's variable).
    head: Expr,
    head_line: usize,
    /// ENV set by the Dockerfile in this stage's chain (inherited from a parent stage).
    env: BTreeMap<String, Val>,
    /// ARGs declared in this stage.
    args: BTreeMap<String, Val>,
    /// Whether everything below comes from scratch (no base image environment).
    from_scratch: bool,
    /// `SHELL`: the argv shell-form commands run with.
    shell: Vec<String>,
    /// Stages (by index) this one reads.
    uses: BTreeSet<usize>,
    /// The stage's own CMD so far (an ENTRYPOINT after it keeps it).
    cmd_set: Option<Expr>,
    /// The USER set in this stage's chain.
    user: Option<Val>,
    /// The WORKDIR set in this stage's chain (absolute), when known.
    workdir: Option<Val>,
    /// The stage's own ONBUILD triggers: a stage FROM this one runs them.
    onbuild: Vec<String>,
}

struct Converter<'a> {
    df: &'a Dockerfile,
    opts: &'a Options<'a>,
    /// `let NAME = arg(…)` statements at the top.
    arg_lines: Vec<Stmt>,
    arg_vars: BTreeSet<String>,
    global_args: BTreeMap<String, Val>,
    stages: Vec<Stage>,
    warnings: Vec<String>,
    /// Set while an ENV value is converted: a variable the Dockerfile does
    /// not set is left to the engine (`${NAME}`, read from the base image's
    /// environment); `expanded` records that one was.
    in_env: bool,
    expanded: std::cell::Cell<bool>,
    /// Global ARGs' values with `opts.args` applied (for FROM's image).
    global_lits: BTreeMap<String, String>,
    /// Set while FROM's image is read with `global_lits`.
    literal: std::cell::Cell<bool>,
}

/// The PATH BuildKit gives an image that has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether `word` is a Rhai keyword (a map key must then be quoted).
pub(super) fn is_reserved(word: &str) -> bool {
    RESERVED.contains(&word)
}

const RESERVED: [&str; 24] = [
    "let", "const", "fn", "if", "else", "while", "loop", "for", "in", "do", "until", "return", "throw", "try", "catch",
    "import", "export", "as", "private", "this", "true", "false", "switch", "break",
];

/// A Rhai identifier for `name`: lower case, `_` for the rest.
fn ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if RESERVED.contains(&s.as_str())
        || ["ctx", "scratch", "from", "image", "arg", "group", "debian"].contains(&s.as_str())
    {
        s.push_str("_stage");
    }
    s
}

impl<'a> Converter<'a> {
    fn err(line: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError::at(line, message)
    }

    fn unique(&self, base: String) -> String {
        let taken = |n: &str| self.arg_vars.contains(n) || self.stages.iter().any(|s| s.var == n);
        if !taken(&base) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !taken(n))
            .expect("a free name")
    }

    /// The value of a word after substitution, in the current stage (or
    /// the global scope for FROM).
    fn word(&self, raw: &str, line: usize, stage: Option<&Stage>) -> Result<Val, DockerfileError> {
        let parts = words::lex(raw, self.df.escape).map_err(|e| Self::err(line, format!("`{raw}`: {e}")))?;
        self.parts(&parts, line, stage)
    }

    fn parts(&self, parts: &[Part], line: usize, stage: Option<&Stage>) -> Result<Val, DockerfileError> {
        let mut vals = Vec::new();
        for p in parts {
            match p {
                Part::Lit(s) if self.in_env => vals.push(Val::Lit(s.replace('$', "$$"))),
                Part::Lit(s) => vals.push(Val::Lit(s.clone())),
                Part::Var { name, op } => {
                    let value = self.lookup(name, line, stage, op.is_some())?;
                    vals.push(match op {
                        None => value.unwrap_or(Val::Lit(String::new())),
                        Some((op, word)) => {
                            let word = self.parts(word, line, stage)?;
                            apply_op(op, value, word)
                        }
                    });
                }
            }
        }
        Ok(Val::concat(vals))
    }

    /// A variable's value: the stage's ENV, then its ARGs (global ARGs in
    /// FROM). `None` when unset.
    fn lookup(
        &self,
        name: &str,
        line: usize,
        stage: Option<&Stage>,
        has_op: bool,
    ) -> Result<Option<Val>, DockerfileError> {
        let Some(stage) = stage else {
            if self.literal.get() {
                return Ok(self.global_lits.get(name).cloned().map(Val::Lit));
            }
            return Ok(self.global_args.get(name).cloned());
        };
        if let Some(v) = stage.env.get(name) {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = stage.args.get(name) {
            return Ok(Some(v.clone()));
        }
        if stage.from_scratch {
            return Ok(None);
        }
        if self.in_env && !has_op {
            self.expanded.set(true);
            return Ok(Some(Val::Lit(format!("${{{name}}}"))));
        }
        Err(Self::err(
            line,
            format!(
                "`${name}` is not set by this Dockerfile; a value from the base image's environment can only be read by a plain `$NAME` in ENV yet"
            ),
        ))
    }

    fn stage(&mut self) -> &mut Stage {
        self.stages.last_mut().expect("a stage")
    }

    fn call(&mut self, method: &'static str, args: Vec<Expr>, line: usize) {
        self.stage().calls.push(Step { method, args, line });
    }

    /// `raw` in the global scope with the build's ARG values, when every
    /// part of it is known.
    fn literal_word(&self, raw: &str, line: usize) -> Option<String> {
        self.literal.set(true);
        let value = self.word(raw, line, None);
        self.literal.set(false);
        match value {
            Ok(Val::Lit(v)) => Some(v),
            _ => None,
        }
    }

    /// A mount target: absolute, or under the WORKDIR this Dockerfile set.
    fn absolute(&self, target: &str, line: usize) -> Result<String, DockerfileError> {
        if target.starts_with('/') {
            return Ok(target.to_string());
        }
        match &self.stages.last().expect("a stage").workdir {
            Some(Val::Lit(dir)) => Ok(format!("{}/{}", dir.trim_end_matches('/'), target.trim_start_matches("./"))),
            _ => Err(Self::err(
                line,
                format!("the relative mount target `{target}` needs a WORKDIR set by this Dockerfile (or an absolute target)"),
            )),
        }
    }

    /// The instructions that change the image's configuration (and
    /// MAINTAINER, which is left out with a warning).
    fn instruction(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let line = ins.line;
        if ins.command != "FROM" && ins.command != "ARG" && self.stages.is_empty() {
            return Err(Self::err(line, format!("{} before the first FROM", ins.command)));
        }
        if !ins.flags.is_empty() && !["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"].contains(&ins.command.as_str()) {
            return Err(Self::err(line, format!("{} takes no --flags", ins.command)));
        }
        match ins.command.as_str() {
            "FROM" => self.from(ins)?,
            "ARG" if self.stages.is_empty() => self.global_arg(ins)?,
            "ARG" => self.stage_arg(ins)?,
            "ENV" => self.env(ins)?,
            "RUN" => self.run(ins)?,
            "COPY" | "ADD" => self.copy(ins)?,
            "HEALTHCHECK" => self.healthcheck(ins)?,
            _ => self.configure(ins)?,
        }
        Ok(())
    }
}

/// `${VAR:-word}` and friends on a value known now or when the recipe runs.
fn apply_op(op: &str, value: Option<Val>, word: Val) -> Val {
    let empty = Val::Lit(String::new());
    match (op, value) {
        (":-", None) | ("-", None) => word,
        (":+", None) | ("+", None) => empty,
        ("-", Some(v)) => v,
        ("+", Some(_)) => word,
        (":-", Some(Val::Lit(v))) => {
            if v.is_empty() {
                word
            } else {
                Val::Lit(v)
            }
        }
        (":+", Some(Val::Lit(v))) => {
            if v.is_empty() {
                empty
            } else {
                word
            }
        }
        (":-", Some(Val::Expr(e))) => Val::Expr(Expr::IfEmpty {
            value: Box::new(e.clone()),
            then: Box::new(word.expr()),
            otherwise: Box::new(e),
        }),
        (_, Some(Val::Expr(e))) => Val::Expr(Expr::IfEmpty {
            value: Box::new(e),
            then: Box::new(Expr::str("")),
            otherwise: Box::new(word.expr()),
        }),
        (_, Some(v)) => v,
        (_, None) => empty,
    }
}

pub fn convert(df: &Dockerfile, opts: &Options<'_>) -> Result<Converted, DockerfileError> {
    let mut c = Converter {
        df,
        opts,
        arg_lines: Vec::new(),
        arg_vars: BTreeSet::new(),
        global_args: BTreeMap::new(),
        stages: Vec::new(),
        warnings: Vec::new(),
        in_env: false,
        expanded: std::cell::Cell::new(false),
        global_lits: BTreeMap::new(),
        literal: std::cell::Cell::new(false),
    };
    c.global_args = platform_args();
    c.global_lits = platform_lits(&opts.platform.clone().unwrap_or_else(Platform::host));
    for ins in &df.instructions {
        c.instruction(ins)?;
    }
    c.finish()
}

#[cfg(test)]
mod tests;
