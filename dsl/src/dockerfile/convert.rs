//! Dockerfile instructions into a recipe: stages become variables, `COPY
//! --from` becomes `state.path`, build args become `arg()`, every final
//! stage becomes an `image()`. Variables are substituted here, as BuildKit
//! does before it builds: an `ARG` becomes the recipe variable that holds
//! its value, an `ENV` of the Dockerfile its value. Each line of the recipe
//! remembers the Dockerfile line it came from, so errors name that line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::parse::{self, Dockerfile, Instruction};
use super::words::{self, Part};
use super::DockerfileError;
use strata_engine::image::Platform;

/// What the conversion made.
#[derive(Debug)]
pub struct Converted {
    pub recipe: String,
    /// For each line of `recipe` (0-based), the Dockerfile line it came from (0: none).
    pub lines: Vec<usize>,
    pub warnings: Vec<String>,
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

/// A value: known text, or a Rhai expression computed when the recipe runs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Val {
    Lit(String),
    Expr(String),
}

impl Val {
    fn rhai(&self) -> String {
        match self {
            Val::Lit(s) => quote(s),
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
            _ => Val::Expr(out.iter().map(Val::rhai).collect::<Vec<_>>().join(" + ")),
        }
    }
}

/// A secret's or an agent socket's `mode`, `uid`, `gid` and `required` as
/// recipe options. As BuildKit, one the build is not given is left out
/// unless required.
fn access_options(fields: &BTreeMap<String, String>, m: &mut Vec<String>) {
    for key in ["mode", "uid", "gid"] {
        if let Some(v) = fields.get(key) {
            let v = if key == "mode" { quote(v) } else { v.clone() };
            m.push(format!("{key}: {v}"));
        }
    }
    let required = fields.get("required").is_some_and(|v| v == "true");
    m.push(format!("required: {required}"));
}

/// A Rhai string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One stage as it is being converted.
struct Stage {
    var: String,
    name: Option<String>,
    /// The chained calls, each with its Dockerfile line.
    calls: Vec<(String, usize)>,
    /// The head of the chain (`from(…)`, `scratch()`, another stage's variable).
    head: String,
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
    cmd_set: Option<String>,
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
    /// `let NAME = arg(…)` lines at the top.
    arg_lines: Vec<(String, usize)>,
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

/// The platform values BuildKit predefines, as the recipe reads them
/// (`target_platform().arch`, …), so one recipe serves every platform.
fn platform_args() -> BTreeMap<String, Val> {
    let mut m = BTreeMap::new();
    for (prefix, f) in [("TARGET", "target_platform()"), ("BUILD", "build_platform()")] {
        for (suffix, field) in [
            ("PLATFORM", "platform"),
            ("OS", "os"),
            ("ARCH", "arch"),
            ("VARIANT", "variant"),
        ] {
            m.insert(format!("{prefix}{suffix}"), Val::Expr(format!("{f}.{field}")));
        }
    }
    m
}

/// Their values in this conversion (for a FROM line read before the build).
fn platform_lits(target: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target.clone()), ("BUILD", Platform::host())] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default());
    }
    m
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

    fn call(&mut self, text: String, line: usize) {
        self.stage().calls.push((text, line));
    }

    /// `ARG` values: `(name, default, default as written)`.
    #[allow(clippy::type_complexity)]
    fn arg_pairs(&self, ins: &Instruction) -> Result<Vec<(String, Option<Val>, Option<String>)>, DockerfileError> {
        let mut out = Vec::new();
        for word in words::split_quoted(&ins.args, self.df.escape) {
            let (name, default) = match word.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (word.clone(), None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Self::err(ins.line, format!("ARG: `{name}` is not a valid name")));
            }
            let value = match &default {
                Some(d) => Some(self.word(d, ins.line, self.stages.last())?),
                None => None,
            };
            out.push((name, value, default));
        }
        if out.is_empty() {
            return Err(Self::err(ins.line, "ARG needs a name"));
        }
        Ok(out)
    }

    /// A recipe variable holding `--arg NAME`, else `default`.
    fn arg_var(&mut self, name: &str, default: &Val, line: usize) -> Val {
        let var = self.unique(ident(name));
        self.arg_vars.insert(var.clone());
        self.arg_lines
            .push((format!("let {var} = arg({}, {});", quote(name), default.rhai()), line));
        Val::Expr(var)
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

    /// Runs a base's (or a parent stage's) ONBUILD triggers at the start of
    /// the stage just begun, as BuildKit does, then drops them from the
    /// stage's configuration (they are not inherited by grandchildren).
    fn dispatch_triggers(&mut self, triggers: &[String], line: usize, from: &str) -> Result<(), DockerfileError> {
        if triggers.is_empty() {
            return Ok(());
        }
        for trigger in triggers {
            let fail = |message: String| Self::err(line, format!("ONBUILD `{trigger}` of {from}: {message}"));
            let df = super::parse::parse(trigger).map_err(|e| fail(e.message))?;
            let [ins] = df.instructions.as_slice() else {
                return Err(fail("a trigger is one instruction".into()));
            };
            if ["ONBUILD", "FROM", "MAINTAINER"].contains(&ins.command.as_str()) {
                return Err(fail(format!("ONBUILD cannot take `{}`", ins.command)));
            }
            let ins = Instruction { line, ..ins.clone() };
            self.instruction(&ins).map_err(|e| fail(e.message))?;
        }
        self.call(".no_onbuild()".into(), line);
        Ok(())
    }

    fn global_arg(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        for (name, default, raw) in self.arg_pairs(ins)? {
            let literal = match (self.opts.args.and_then(|a| a.get(&name)), &raw) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(raw)) => self.literal_word(raw, ins.line),
                (None, None) => Some(String::new()),
            };
            match literal {
                Some(v) => self.global_lits.insert(name.clone(), v),
                None => self.global_lits.remove(&name),
            };
            let default = default.unwrap_or(Val::Lit(String::new()));
            let value = match platform_args().get(&name) {
                Some(v) if default == Val::Lit(String::new()) => v.clone(),
                _ => self.arg_var(&name, &default, ins.line),
            };
            self.global_args.insert(name, value);
        }
        Ok(())
    }

    fn stage_arg(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        for (name, default, _) in self.arg_pairs(ins)? {
            let value = match (
                default,
                self.global_args.get(&name).cloned(),
                platform_args().get(&name),
            ) {
                // `ARG NAME` brings in the global ARG's value.
                (None, Some(global), _) => global,
                (None, None, Some(platform)) => platform.clone(),
                (default, _, _) => {
                    let default = default.unwrap_or(Val::Lit(String::new()));
                    self.arg_var(&name, &default, ins.line)
                }
            };
            self.stage().args.insert(name, value);
        }
        Ok(())
    }

    fn from(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        // `--platform`: the build's (a builder stage that cross-compiles),
        // the target's (the default), or one named.
        let mut platform: Option<String> = None;
        for (flag, value) in &ins.flags {
            match (flag.as_str(), value.as_deref()) {
                ("platform", Some(v)) if v.contains("BUILDPLATFORM") => platform = Some("build".into()),
                ("platform", Some(v)) if v.contains("TARGETPLATFORM") => {}
                ("platform", Some(v)) => {
                    // Read with the build's ARG values: `--platform=linux/${ARCH}`.
                    let literal = self.literal_word(v, ins.line).ok_or_else(|| {
                        Self::err(ins.line, format!("FROM --platform={v}: the platform must be known before the build (a literal or a global ARG)"))
                    })?;
                    Platform::parse(&literal).map_err(|e| Self::err(ins.line, format!("FROM --platform: {e}")))?;
                    platform = Some(literal);
                }
                _ => return Err(Self::err(ins.line, format!("FROM does not take --{flag}"))),
            }
        }
        let with_platform = match &platform {
            Some(p) => format!(", #{{ platform: {} }}", quote(p)),
            None => String::new(),
        };
        let words: Vec<&str> = ins.args.split_whitespace().collect();
        let (image, name) = match words.as_slice() {
            [image] => (*image, None),
            [image, as_, name] if as_.eq_ignore_ascii_case("as") => (*image, Some(name.to_ascii_lowercase())),
            _ => return Err(Self::err(ins.line, "FROM takes an image and optionally `AS name`")),
        };
        let raw_image = image;
        let image = self.word(image, ins.line, None)?;
        let parent = match &image {
            Val::Lit(i) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(i.to_ascii_lowercase().as_str())),
            Val::Expr(_) => None,
        };
        let var = self.unique(ident(name.as_deref().unwrap_or(&format!("stage{}", self.stages.len()))));
        let shell = vec!["/bin/sh".to_string(), "-c".to_string()];
        let stage = match parent {
            Some(p) => {
                let parent = &self.stages[p];
                Stage {
                    var,
                    name,
                    calls: Vec::new(),
                    head: parent.var.clone(),
                    head_line: ins.line,
                    env: parent.env.clone(),
                    args: BTreeMap::new(),
                    from_scratch: parent.from_scratch,
                    shell: parent.shell.clone(),
                    uses: BTreeSet::from([p]),
                    cmd_set: None,
                    user: parent.user.clone(),
                    workdir: parent.workdir.clone(),
                    onbuild: Vec::new(),
                }
            }
            None => {
                let scratch = image == Val::Lit("scratch".into());
                let named: Vec<(String, String)> = self
                    .stages
                    .iter()
                    .filter_map(|s| s.name.clone().map(|n| (n, s.var.clone())))
                    .collect();
                let head = match &image {
                    _ if scratch && platform.is_some() => format!(
                        "scratch(#{{ platform: {} }})",
                        quote(platform.as_deref().unwrap_or_default())
                    ),
                    _ if scratch => "scratch()".to_string(),
                    // An ARG names the image or an earlier stage: which one is
                    // known when the recipe runs.
                    Val::Expr(e) if !named.is_empty() => {
                        let mut chain = String::from("(");
                        for (i, (name, var)) in named.iter().enumerate() {
                            let keyword = if i == 0 { "if" } else { " else if" };
                            chain.push_str(&format!("{keyword} ({e}).to_lower() == {} {{ {var} }}", quote(name)));
                        }
                        chain.push_str(&format!(" else {{ from({e}{with_platform}) }})"));
                        chain
                    }
                    _ => format!("from({}{with_platform})", image.rhai()),
                };
                Stage {
                    var,
                    name,
                    calls: Vec::new(),
                    head,
                    head_line: ins.line,
                    env: BTreeMap::new(),
                    args: BTreeMap::new(),
                    from_scratch: scratch,
                    shell,
                    // A stage chosen by an ARG may be any earlier one.
                    uses: if matches!(image, Val::Expr(_)) {
                        (0..self.stages.len()).collect()
                    } else {
                        BTreeSet::new()
                    },
                    cmd_set: None,
                    user: None,
                    workdir: None,
                    onbuild: Vec::new(),
                }
            }
        };
        let scratch = image == Val::Lit("scratch".into());
        self.stages.push(stage);
        if scratch && parent.is_none() {
            // BuildKit's empty image has the default PATH and `/` as its
            // working directory.
            self.call(format!(".env(\"PATH\", {})", quote(DEFAULT_PATH)), ins.line);
            self.call(".workdir(\"/\")".into(), ins.line);
            let stage = self.stage();
            stage.env.insert("PATH".into(), Val::Lit(DEFAULT_PATH.into()));
            stage.workdir = Some(Val::Lit("/".into()));
        }
        // ONBUILD triggers: a parent stage's own, or a base image's.
        match parent {
            Some(p) => {
                let triggers = self.stages[p].onbuild.clone();
                let from = format!("stage `{}`", self.stages[p].name.clone().unwrap_or_default());
                self.dispatch_triggers(&triggers, ins.line, &from)?;
            }
            None if scratch => {}
            None => {
                let literal = match &image {
                    Val::Lit(i) => Some(i.clone()),
                    Val::Expr(_) => self.literal_word(raw_image, ins.line),
                };
                let stage = literal.as_deref().and_then(|i| {
                    self.stages
                        .iter()
                        .position(|s| s.name.as_deref() == Some(i.to_ascii_lowercase().as_str()))
                });
                match (stage, literal, self.opts.onbuild) {
                    // `FROM ${ARG}` naming an earlier stage.
                    (Some(p), Some(image), _) => {
                        let triggers = self.stages[p].onbuild.clone();
                        self.dispatch_triggers(&triggers, ins.line, &format!("stage `{image}`"))?;
                    }
                    (None, Some(image), Some(read)) => {
                        let triggers = read(&image).map_err(|e| Self::err(ins.line, format!("FROM {image}: {e}")))?;
                        self.dispatch_triggers(&triggers, ins.line, &image)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// `KEY=VALUE` pairs (ENV, LABEL), or the old `KEY VALUE` form.
    fn pairs(&self, ins: &Instruction) -> Result<Vec<(String, String)>, DockerfileError> {
        let words = words::split_quoted(&ins.args, self.df.escape);
        if words.is_empty() {
            return Err(Self::err(ins.line, format!("{} needs arguments", ins.command)));
        }
        if !words[0].contains('=') {
            // `ENV NAME value with spaces`
            let rest = ins.args.trim_start()[words[0].len()..].trim().to_string();
            return Ok(vec![(words[0].clone(), rest)]);
        }
        words
            .into_iter()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(Self::err(ins.line, format!("{}: `{w}` is not KEY=VALUE", ins.command))),
            })
            .collect()
    }

    fn env(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let pairs = self.pairs(ins)?;
        // Once with the engine's expansion allowed, to learn whether a
        // value reads the base image's environment; else as plain values.
        self.in_env = true;
        self.expanded.set(false);
        let converted = self.env_values(&pairs, ins.line);
        self.in_env = false;
        let mut set = converted?;
        let expand = self.expanded.get();
        if !expand {
            set = self.env_values(&pairs, ins.line)?;
        }
        for (key, value) in &set {
            if expand {
                // Known only when the image is assembled: later uses read it as the base's.
                self.stage().env.remove(key);
            } else {
                self.stage().env.insert(key.clone(), value.clone());
            }
        }
        let opts = if expand { ", #{ expand: true }" } else { "" };
        // One call per pair, in the instruction's order (a map would sort them).
        for (k, v) in &set {
            self.call(format!(".env({}, {}{opts})", quote(k), v.rhai()), ins.line);
        }
        Ok(())
    }

    fn env_values(&self, pairs: &[(String, String)], line: usize) -> Result<Vec<(String, Val)>, DockerfileError> {
        let mut set = Vec::new();
        for (key, raw) in pairs {
            let key = match words::lex(key, self.df.escape).ok().as_deref() {
                Some([Part::Lit(k)]) => k.clone(),
                _ => return Err(Self::err(line, format!("ENV: `{key}` is not a variable name"))),
            };
            let value = self.word(raw, line, self.stages.last())?;
            set.push((key, value));
        }
        Ok(set)
    }

    fn run(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let mut options: Vec<String> = Vec::new();
        // As BuildKit's, a Dockerfile's RUN reaches the network unless it says
        // --network=none (a recipe's run is hermetic unless it asks).
        let mut network = true;
        let mut caches = Vec::new();
        let mut mounts = Vec::new();
        let mut secrets = Vec::new();
        let mut ssh = Vec::new();
        let mut tmpfs = Vec::new();
        for (flag, value) in &ins.flags {
            let value = value.clone().unwrap_or_default();
            match flag.as_str() {
                "network" => match value.as_str() {
                    "host" | "default" => network = true,
                    "none" => network = false,
                    other => {
                        return Err(Self::err(
                            ins.line,
                            format!("RUN --network={other}: only host, none and default"),
                        ))
                    }
                },
                "security" => match value.as_str() {
                    "insecure" => options.push("security: \"insecure\"".into()),
                    "sandbox" => {}
                    other => {
                        return Err(Self::err(
                            ins.line,
                            format!("RUN --security={other}: only insecure and sandbox"),
                        ))
                    }
                },
                "mount" => {
                    let fields: BTreeMap<String, String> = value
                        .split(',')
                        .map(|kv| match kv.split_once('=') {
                            Some((k, v)) => (k.trim().to_string(), v.trim().trim_matches('"').to_string()),
                            None => (kv.trim().to_string(), "true".to_string()),
                        })
                        .collect();
                    let target = fields
                        .get("target")
                        .or_else(|| fields.get("dst"))
                        .or_else(|| fields.get("destination"))
                        .cloned();
                    match fields.get("type").map(String::as_str).unwrap_or("bind") {
                        "cache" => {
                            let target =
                                target.ok_or_else(|| Self::err(ins.line, "RUN --mount=type=cache needs target="))?;
                            let mut m = vec![format!("target: {}", quote(&target))];
                            if let Some(id) = fields.get("id") {
                                m.push(format!("id: {}", quote(id)));
                            }
                            if let Some(sharing) = fields.get("sharing") {
                                m.push(format!("sharing: {}", quote(sharing)));
                            }
                            caches.push(format!("#{{ {} }}", m.join(", ")));
                        }
                        "bind" => {
                            let target =
                                target.ok_or_else(|| Self::err(ins.line, "RUN --mount=type=bind needs target="))?;
                            let target = self.absolute(&target, ins.line)?;
                            let source = fields.get("source").or_else(|| fields.get("src")).cloned();
                            let from = match fields.get("from") {
                                Some(from) => {
                                    let state = self.state_of(from, ins.line)?;
                                    let source = source.unwrap_or_else(|| "/".into());
                                    format!("{state}.path({})", quote(&source))
                                }
                                // The build context: its files in a state of their own.
                                None => self.context_state(source.as_deref().unwrap_or("."), ins.line)?,
                            };
                            mounts.push(format!("#{{ source: {from}, target: {} }}", quote(&target)));
                        }
                        "tmpfs" => {
                            let target =
                                target.ok_or_else(|| Self::err(ins.line, "RUN --mount=type=tmpfs needs target="))?;
                            let target = self.absolute(&target, ins.line)?;
                            let mut m = vec![format!("target: {}", quote(&target))];
                            if let Some(size) = fields.get("size").or_else(|| fields.get("tmpfs-size")) {
                                m.push(format!("size: {}", quote(size)));
                            }
                            tmpfs.push(format!("#{{ {} }}", m.join(", ")));
                        }
                        "secret" => {
                            let Some(id) = fields.get("id").cloned() else {
                                return Err(Self::err(ins.line, "RUN --mount=type=secret needs id="));
                            };
                            if fields.contains_key("env") {
                                return Err(Self::err(ins.line, "RUN --mount=type=secret,env= is not supported yet"));
                            }
                            let mut m = vec![format!("id: {}", quote(&id))];
                            if let Some(target) = &target {
                                m.push(format!("target: {}", quote(target)));
                            }
                            access_options(&fields, &mut m);
                            secrets.push(format!("#{{ {} }}", m.join(", ")));
                        }
                        "ssh" => {
                            if fields.contains_key("source") || fields.contains_key("src") {
                                return Err(Self::err(ins.line, "RUN --mount=type=ssh takes no source"));
                            }
                            let id = fields.get("id").cloned().unwrap_or_else(|| "default".into());
                            let mut m = vec![format!("id: {}", quote(&id))];
                            if let Some(target) = &target {
                                m.push(format!("target: {}", quote(&self.absolute(target, ins.line)?)));
                            }
                            access_options(&fields, &mut m);
                            ssh.push(format!("#{{ {} }}", m.join(", ")));
                        }
                        other => return Err(Self::err(ins.line, format!("RUN --mount=type={other} is unknown"))),
                    }
                }
                other => return Err(Self::err(ins.line, format!("RUN does not take --{other}"))),
            }
        }
        if network {
            options.insert(0, "network: \"host\"".into());
        }
        if !caches.is_empty() {
            options.push(format!("cache: [{}]", caches.join(", ")));
        }
        if !mounts.is_empty() {
            options.push(format!("mounts: [{}]", mounts.join(", ")));
        }
        if !secrets.is_empty() {
            options.push(format!("secrets: [{}]", secrets.join(", ")));
        }
        if !ssh.is_empty() {
            options.push(format!("ssh: [{}]", ssh.join(", ")));
        }
        if !tmpfs.is_empty() {
            options.push(format!("tmpfs: [{}]", tmpfs.join(", ")));
        }
        if !caches.is_empty() || !mounts.is_empty() || !tmpfs.is_empty() || !secrets.is_empty() || !ssh.is_empty() {
            // BuildKit leaves the mount points in the layer (the directories
            // made for a secret or an agent socket, not the file).
            options.push("keep_mount_points: true".into());
        }
        // Build args in scope reach the command as environment variables.
        let stage = self.stages.last().expect("a stage");
        let env: Vec<String> = stage
            .args
            .iter()
            .filter(|(k, _)| !stage.env.contains_key(*k))
            .map(|(k, v)| format!("{}: {}", rhai_key(k), v.rhai()))
            .collect();
        if !env.is_empty() {
            options.insert(0, format!("env: #{{ {} }}", env.join(", ")));
        }
        let command = match parse::json_array(&ins.args) {
            Some(argv) if ins.heredocs.is_empty() => {
                let items: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                format!("[{}]", items.join(", "))
            }
            _ => {
                // `RUN <<EOF` alone: the heredoc is the script. Otherwise the
                // heredocs feed the command, as the shell reads them.
                let only_heredoc = ins.heredocs.len() == 1 && {
                    let marker = ins.args.trim().trim_start_matches("<<").trim_start_matches('-');
                    marker.trim_matches(['"', '\'']) == ins.heredocs[0].name
                };
                let mut script = ins.args.clone();
                if only_heredoc {
                    script = ins.heredocs[0].content.clone();
                } else {
                    for h in &ins.heredocs {
                        write!(script, "\n{}{}", h.content, h.name).expect("write to a string");
                    }
                }
                let shell = &stage.shell;
                if shell == &["/bin/sh", "-c"] {
                    quote(&script)
                } else {
                    let mut items: Vec<String> = shell.iter().map(|a| quote(a)).collect();
                    items.push(quote(&script));
                    format!("[{}]", items.join(", "))
                }
            }
        };
        self.call(format!(".run({command}{})", render_options(&options)), ins.line);
        Ok(())
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

    /// A state holding `source` of the build context, and the path of it
    /// to mount: a directory's contents at `/`, a file under its name.
    fn context_state(&self, source: &str, line: usize) -> Result<String, DockerfileError> {
        let clean = source.trim_start_matches("./").trim_end_matches('/');
        if clean.is_empty() || clean == "." {
            return Ok("scratch().copy(ctx(\".\"), \"/\").path(\"/\")".to_string());
        }
        let is_dir = self
            .opts
            .context
            .map(|c| c.join(clean).is_dir())
            .ok_or_else(|| Self::err(line, "a bind mount of the build context needs the context's directory"))?;
        if is_dir {
            Ok(format!("scratch().copy(ctx({}), \"/\").path(\"/\")", quote(clean)))
        } else {
            let name = clean.rsplit('/').next().unwrap_or(clean);
            let at = format!("/{name}");
            Ok(format!(
                "scratch().copy(ctx({}), {}).path({})",
                quote(clean),
                quote(&at),
                quote(&at)
            ))
        }
    }

    /// The recipe expression for `--from=X`: a stage's variable, or an image.
    fn state_of(&mut self, from: &str, line: usize) -> Result<String, DockerfileError> {
        let from_val = self.word(from, line, None)?;
        let Val::Lit(from) = from_val else {
            return Ok(format!("from({})", from_val.rhai()));
        };
        let lower = from.to_ascii_lowercase();
        let here = self.stages.len() - 1;
        let index = self.stages[..here]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| from.parse::<usize>().ok().filter(|i| *i < here));
        match index {
            Some(i) => {
                self.stage().uses.insert(i);
                Ok(self.stages[i].var.clone())
            }
            None if from.parse::<usize>().is_ok() => {
                Err(Self::err(line, format!("--from={from}: no earlier stage {from}")))
            }
            None => Ok(format!("from({})", quote(&from))),
        }
    }

    fn copy(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let add = ins.command == "ADD";
        let mut from = None;
        let mut options = Vec::new();
        let mut parents = false;
        let mut checksum: Option<String> = None;
        let mut exclude: Vec<String> = Vec::new();
        for (flag, value) in &ins.flags {
            match (flag.as_str(), value) {
                ("from", Some(v)) if !add => from = Some(v.clone()),
                ("chown", Some(v)) => {
                    let v = self.word(v, ins.line, self.stages.last())?;
                    options.push(format!("chown: {}", v.rhai()));
                }
                ("chmod", Some(v)) => options.push(format!("chmod: {}", quote(v))),
                ("checksum", Some(v)) if add => {
                    let hex = v
                        .strip_prefix("sha256:")
                        .ok_or_else(|| Self::err(ins.line, format!("ADD --checksum={v}: only sha256:HEX checksums")))?;
                    checksum = Some(hex.to_string());
                }
                ("link", _) => {}
                ("parents", None) => parents = true,
                ("parents", Some(v)) if v == "true" => parents = true,
                ("parents", Some(v)) if v == "false" => {}
                ("exclude", Some(v)) => {
                    let v = self.word(v, ins.line, self.stages.last())?;
                    exclude.push(v.rhai());
                }
                ("from" | "chown" | "chmod" | "checksum" | "exclude", None) => {
                    return Err(Self::err(ins.line, format!("{} --{flag} needs a value", ins.command)))
                }
                ("keep-git-dir", _) => {
                    return Err(Self::err(
                        ins.line,
                        format!(
                            "{} --keep-git-dir: ADD of git repositories is not supported yet",
                            ins.command
                        ),
                    ))
                }
                (other, _) => return Err(Self::err(ins.line, format!("{} does not take --{other}", ins.command))),
            }
        }
        if !ins.heredocs.is_empty() {
            return self.copy_heredocs(ins, &options);
        }
        let raw: Vec<String> = match parse::json_array(&ins.args) {
            Some(items) => items,
            None => ins.args.split_whitespace().map(str::to_string).collect(),
        };
        if raw.len() < 2 {
            return Err(Self::err(
                ins.line,
                format!("{} needs a source and a destination", ins.command),
            ));
        }
        let mut vals = Vec::new();
        for w in &raw {
            vals.push(self.word(w, ins.line, self.stages.last())?);
        }
        let dest = vals.pop().expect("a destination");
        if from.is_some() && !exclude.is_empty() {
            return Err(Self::err(ins.line, "COPY --from with --exclude is not supported yet"));
        }
        if parents {
            options.push("parents: true".into());
        }
        if !exclude.is_empty() {
            options.push(format!("exclude: [{}]", exclude.join(", ")));
        }
        let opts = render_options(&options);
        match from {
            Some(from) => {
                let state = self.state_of(&from, ins.line)?;
                for src in &vals {
                    let call = format!(".copy({state}.path({}), {}{opts})", src.rhai(), dest.rhai());
                    self.call(call, ins.line);
                }
            }
            None => {
                for src in &vals {
                    if let Val::Lit(s) = src {
                        let git = s.starts_with("git@") || s.ends_with(".git") || s.contains(".git#");
                        if add && git {
                            return Err(Self::err(
                                ins.line,
                                format!("ADD of a git repository (`{s}`) is not supported yet"),
                            ));
                        }
                        if add && s.contains("://") && !is_url(s) {
                            return Err(Self::err(ins.line, format!("ADD from `{s}`: only http(s) URLs")));
                        }
                    }
                }
                // URLs are fetched (pinned by their checksum, or in strata.lock).
                let (urls, vals): (Vec<&Val>, Vec<&Val>) =
                    vals.iter().partition(|v| matches!(v, Val::Lit(s) if add && is_url(s)));
                for url in urls {
                    let fetch = match &checksum {
                        Some(sum) => format!("fetch({}, #{{ sha256: {} }})", url.rhai(), quote(sum)),
                        None => format!("fetch({})", url.rhai()),
                    };
                    self.call(format!(".copy({fetch}, {}{opts})", dest.rhai()), ins.line);
                }
                if vals.is_empty() {
                    return Ok(());
                }
                let sources: Vec<String> = vals.iter().map(|v| v.rhai()).collect();
                let ctx = if sources.len() == 1 {
                    format!("ctx({})", sources[0])
                } else {
                    format!("ctx([{}])", sources.join(", "))
                };
                // ADD unpacks a local archive (known by its content); other files it copies.
                let opts = if add {
                    render_options(&[options, vec!["extract: true".to_string()]].concat())
                } else {
                    opts
                };
                self.call(format!(".copy({ctx}, {}{opts})", dest.rhai()), ins.line);
            }
        }
        Ok(())
    }

    /// `COPY <<EOF /file` (and several: `COPY <<A <<B /dir/`): each heredoc
    /// is a file, named after its delimiter in a directory destination.
    fn copy_heredocs(&mut self, ins: &Instruction, options: &[String]) -> Result<(), DockerfileError> {
        let words: Vec<&str> = ins.args.split_whitespace().collect();
        let Some((dest, sources)) = words.split_last() else {
            return Err(Self::err(ins.line, format!("{} needs a destination", ins.command)));
        };
        if sources.iter().any(|w| !w.starts_with("<<")) {
            return Err(Self::err(
                ins.line,
                format!(
                    "{} of heredocs and other sources at once is not supported yet",
                    ins.command
                ),
            ));
        }
        let dest = self.word(dest, ins.line, self.stages.last())?;
        let into_dir = ins.heredocs.len() > 1 || matches!(&dest, Val::Lit(d) if d.ends_with('/'));
        let opts = render_options(options);
        for doc in &ins.heredocs {
            // An unquoted delimiter: the content's variables are the stage's.
            let content = if doc.expand {
                let parts = words::lex_heredoc(&doc.content)
                    .map_err(|e| Self::err(ins.line, format!("heredoc `<<{}`: {e}", doc.name)))?;
                self.parts(&parts, ins.line, self.stages.last())?
            } else {
                Val::Lit(doc.content.clone())
            };
            let target = if into_dir {
                Val::concat(vec![
                    dest.clone(),
                    Val::Lit(if matches!(&dest, Val::Lit(d) if d.ends_with('/')) {
                        doc.name.clone()
                    } else {
                        format!("/{}", doc.name)
                    }),
                ])
            } else {
                dest.clone()
            };
            self.call(
                format!(".copy(text({}), {}{opts})", content.rhai(), target.rhai()),
                ins.line,
            );
        }
        Ok(())
    }

    fn healthcheck(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let args = ins.args.trim();
        if args.eq_ignore_ascii_case("NONE") {
            if !ins.flags.is_empty() {
                return Err(Self::err(ins.line, "HEALTHCHECK NONE takes no options"));
            }
            self.call(".no_healthcheck()".into(), ins.line);
            return Ok(());
        }
        let Some(command) = args
            .strip_prefix("CMD")
            .or_else(|| args.strip_prefix("cmd"))
            .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        else {
            return Err(Self::err(ins.line, "HEALTHCHECK takes `CMD command` or `NONE`"));
        };
        let command = command.trim();
        let test = match parse::json_array(command) {
            Some(argv) => list(&argv),
            None => quote(command),
        };
        let mut options = Vec::new();
        for (flag, value) in &ins.flags {
            let value = value.clone().unwrap_or_default();
            let key = match flag.as_str() {
                "interval" | "timeout" | "retries" => flag.clone(),
                "start-period" => "start_period".into(),
                "start-interval" => "start_interval".into(),
                other => return Err(Self::err(ins.line, format!("HEALTHCHECK does not take --{other}"))),
            };
            if key == "retries" {
                let n: u64 = value
                    .parse()
                    .map_err(|_| Self::err(ins.line, format!("HEALTHCHECK --retries={value}: not a number")))?;
                options.push(format!("retries: {n}"));
            } else {
                options.push(format!("{key}: {}", quote(&value)));
            }
        }
        self.call(format!(".healthcheck({test}{})", render_options(&options)), ins.line);
        Ok(())
    }

    /// CMD and ENTRYPOINT: the exec form as it is, the shell form through the stage's shell.
    fn command_form(&self, ins: &Instruction) -> String {
        match parse::json_array(&ins.args) {
            Some(argv) => {
                let items: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                format!("[{}]", items.join(", "))
            }
            None => {
                let stage = self.stages.last().expect("a stage");
                let mut items: Vec<String> = stage.shell.iter().map(|a| quote(a)).collect();
                items.push(quote(&ins.args));
                format!("[{}]", items.join(", "))
            }
        }
    }

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
            "WORKDIR" => {
                let dir = self.word(ins.args.trim(), line, self.stages.last())?;
                let joined = match (&dir, &self.stage().workdir) {
                    (Val::Lit(d), _) if d.starts_with('/') => Some(dir.clone()),
                    (Val::Lit(d), Some(Val::Lit(base))) => {
                        Some(Val::Lit(format!("{}/{}", base.trim_end_matches('/'), d)))
                    }
                    _ => None,
                };
                self.stage().workdir = joined;
                self.call(format!(".workdir({})", dir.rhai()), line);
                // As BuildKit, the directory is made, owned by the stage's USER.
                let at = match &dir {
                    Val::Lit(d) if d.starts_with('/') => dir.rhai(),
                    _ => quote("."),
                };
                let call = match self.stage().user.clone() {
                    Some(user) => format!(".mkdir({at}, #{{ chown: {} }})", user.rhai()),
                    None => format!(".mkdir({at})"),
                };
                self.call(call, line);
            }
            "USER" => {
                let user = self.word(ins.args.trim(), line, self.stages.last())?;
                self.call(format!(".user({})", user.rhai()), line);
                self.stage().user = Some(user);
            }
            "CMD" => {
                let argv = self.command_form(ins);
                self.call(format!(".cmd({argv})"), line);
                self.stage().cmd_set = Some(argv);
            }
            "ENTRYPOINT" => {
                let argv = self.command_form(ins);
                self.call(format!(".entrypoint({argv})"), line);
                // BuildKit resets only a CMD the stage did not set itself.
                if let Some(cmd) = self.stage().cmd_set.clone() {
                    self.call(format!(".cmd({cmd})"), line);
                }
            }
            "EXPOSE" => {
                for port in ins.args.split_whitespace() {
                    let port = self.word(port, line, self.stages.last())?;
                    self.call(format!(".expose({})", port.rhai()), line);
                }
            }
            "VOLUME" => {
                let paths = parse::json_array(&ins.args)
                    .unwrap_or_else(|| ins.args.split_whitespace().map(str::to_string).collect());
                for p in paths {
                    let p = self.word(&p, line, self.stages.last())?;
                    self.call(format!(".volume({})", p.rhai()), line);
                }
            }
            "LABEL" => {
                for (k, v) in self.pairs(ins)? {
                    let k = self.word(&k, line, self.stages.last())?;
                    let v = self.word(&v, line, self.stages.last())?;
                    self.call(format!(".label({}, {})", k.rhai(), v.rhai()), line);
                }
            }
            "STOPSIGNAL" => {
                let sig = self.word(ins.args.trim(), line, self.stages.last())?;
                self.call(format!(".stop_signal({})", sig.rhai()), line);
            }
            "SHELL" => {
                let shell = parse::json_array(&ins.args).filter(|s| !s.is_empty()).ok_or_else(|| {
                    Self::err(line, "SHELL takes a JSON array: SHELL [\"executable\", \"parameters\"]")
                })?;
                self.call(format!(".shell({})", list(&shell)), line);
                self.stage().shell = shell;
            }
            "MAINTAINER" => self.warnings.push(format!(
                "line {line}: MAINTAINER is deprecated and left out (use LABEL maintainer=…)"
            )),
            "HEALTHCHECK" => self.healthcheck(ins)?,
            "ONBUILD" => {
                let trigger = ins.args.trim();
                let word = trigger.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if ["ONBUILD", "FROM", "MAINTAINER", ""].contains(&word.as_str()) {
                    return Err(Self::err(line, format!("ONBUILD cannot take `{word}`")));
                }
                self.call(format!(".onbuild({})", quote(trigger)), line);
                self.stage().onbuild.push(trigger.to_string());
            }
            other => return Err(Self::err(line, format!("unknown instruction `{other}`"))),
        }
        Ok(())
    }

    fn finish(self) -> Result<Converted, DockerfileError> {
        if self.stages.is_empty() {
            return Err(Self::err(1, "no FROM: a Dockerfile needs at least one stage"));
        }
        let mut lines: Vec<(String, usize)> = vec![(
            format!("// Converted from {} by `strata convert`.", self.opts.source_name),
            0,
        )];
        lines.extend(self.arg_lines.iter().cloned());
        let used: BTreeSet<usize> = self.stages.iter().flat_map(|s| s.uses.iter().copied()).collect();
        let last = self.stages.len() - 1;
        let target = match self.opts.target {
            Some(t) => Some(
                self.stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                    .ok_or_else(|| Self::err(1, format!("--target {t}: no stage named `{t}`")))?,
            ),
            None => None,
        };
        for stage in &self.stages {
            lines.push((String::new(), 0));
            if stage.calls.is_empty() {
                lines.push((format!("let {} = {};", stage.var, stage.head), stage.head_line));
                continue;
            }
            lines.push((format!("let {} = {}", stage.var, stage.head), stage.head_line));
            let n = stage.calls.len();
            for (i, (call, line)) in stage.calls.iter().enumerate() {
                let end = if i + 1 == n { ";" } else { "" };
                lines.push((format!("    {call}{end}"), *line));
            }
        }
        lines.push((String::new(), 0));
        let mut images = Vec::new();
        for (i, stage) in self.stages.iter().enumerate() {
            let wanted = match target {
                Some(t) => i == t,
                None => !used.contains(&i),
            };
            if wanted {
                let name = stage.name.clone().unwrap_or_else(|| stage.var.clone());
                lines.push((format!("image({}, {});", quote(&name), stage.var), stage.head_line));
                images.push(name);
            }
        }
        let default = match target {
            Some(t) => self.stages[t]
                .name
                .clone()
                .unwrap_or_else(|| self.stages[t].var.clone()),
            None => self.stages[last]
                .name
                .clone()
                .unwrap_or_else(|| self.stages[last].var.clone()),
        };
        if images.len() > 1 {
            lines.push((format!("group(\"default\", [{}]);", quote(&default)), 0));
        }
        let recipe = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
        Ok(Converted {
            recipe,
            lines: lines.iter().map(|(_, n)| *n).collect(),
            warnings: self.warnings,
        })
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
        (":-", Some(Val::Expr(e))) => Val::Expr(format!("(if {e} == \"\" {{ {} }} else {{ {e} }})", word.rhai())),
        (_, Some(Val::Expr(e))) => Val::Expr(format!("(if {e} == \"\" {{ \"\" }} else {{ {} }})", word.rhai())),
        (_, Some(v)) => v,
        (_, None) => empty,
    }
}

/// `, #{ a, b }` for a call's options, or nothing.
fn render_options(options: &[String]) -> String {
    if options.is_empty() {
        String::new()
    } else {
        format!(", #{{ {} }}", options.join(", "))
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// A Rhai list of string literals.
fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|a| quote(a)).collect();
    format!("[{}]", items.join(", "))
}

/// A map key in Rhai: bare when it is an identifier, quoted otherwise.
fn rhai_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit())
    {
        k.to_string()
    } else {
        quote(k)
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
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn recipe(text: &str) -> String {
        let df = parse(text).unwrap();
        convert(
            &df,
            &Options {
                source_name: "Dockerfile",
                args: None,
                onbuild: None,
                ..Options::default()
            },
        )
        .unwrap()
        .recipe
    }

    fn error(text: &str) -> DockerfileError {
        convert(&parse(text).unwrap(), &Options::default()).unwrap_err()
    }

    #[test]
    fn stages_become_variables_and_copy_from_becomes_path() {
        let r = recipe(
            "FROM debian:bookworm AS build\nRUN make\nFROM scratch\nCOPY --from=build --chown=1:1 /out/app /app\nCMD [\"/app\"]\n",
        );
        assert_eq!(
            r,
            "// Converted from Dockerfile by `strata convert`.\n\nlet build = from(\"debian:bookworm\")\n    .run(\"make\", #{ network: \"host\" });\n\nlet stage1 = scratch()\n    .env(\"PATH\", \"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\")\n    .workdir(\"/\")\n    .copy(build.path(\"/out/app\"), \"/app\", #{ chown: \"1:1\" })\n    .cmd([\"/app\"]);\n\nimage(\"stage1\", stage1);\n"
        );
    }

    #[test]
    fn args_are_recipe_args_and_reach_run_as_environment() {
        let r = recipe("ARG BASE=busybox\nFROM ${BASE}:1.36\nARG MODE=release\nRUN make $MODE\nENV OUT=/out/${MODE}\n");
        assert!(r.contains("let base = arg(\"BASE\", \"busybox\");"), "{r}");
        assert!(r.contains("let mode = arg(\"MODE\", \"release\");"), "{r}");
        assert!(r.contains("from(base + \":1.36\")"), "{r}");
        assert!(
            r.contains(".run(\"make $MODE\", #{ env: #{ MODE: mode }, network: \"host\" })"),
            "{r}"
        );
        assert!(r.contains(".env(\"OUT\", \"/out/\" + mode)"), "{r}");
    }

    #[test]
    fn env_values_substitute_the_dockerfiles_own_variables() {
        // As Docker: the pairs of one ENV read the variables as they were before it.
        let r = recipe("FROM scratch\nENV A=/opt B=\"$A/bin\" C=${A:+set} D=${NOPE:-dflt}\nENV E=$A/lib\nWORKDIR $E\n");
        assert!(
            r.contains(
                ".env(\"A\", \"/opt\")\n    .env(\"B\", \"/bin\")\n    .env(\"C\", \"\")\n    .env(\"D\", \"dflt\")"
            ),
            "{r}"
        );
        assert!(r.contains(".workdir(\"/opt/lib\")"), "{r}");
    }

    #[test]
    fn env_reads_the_base_images_environment_through_the_engine() {
        let r = recipe("FROM debian\nENV PATH=/go/bin:$PATH COST='$5'\n");
        assert!(
            r.contains(".env(\"PATH\", \"/go/bin:${PATH}\", #{ expand: true })\n    .env(\"COST\", \"$$5\", #{ expand: true })"),
            "{r}"
        );
        let r = recipe("FROM debian\nENV A=1\nENV B=$A\nWORKDIR /x/$B\n");
        assert!(
            r.contains(".env(\"B\", \"1\")") && r.contains(".workdir(\"/x/1\")"),
            "{r}"
        );
    }

    #[test]
    fn an_unset_modifier_on_an_arg_is_decided_when_the_recipe_runs() {
        let r = recipe("FROM scratch\nARG V\nLABEL v=${V:-none}\n");
        assert!(
            r.contains(".label(\"v\", (if v == \"\" { \"none\" } else { v }))"),
            "{r}"
        );
    }

    #[test]
    fn shell_form_commands_use_the_shell_and_heredocs_are_scripts() {
        let r = recipe("FROM scratch\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN <<EOF\necho a\nEOF\nCMD run it\n");
        assert!(
            r.contains(".run([\"/bin/bash\", \"-eu\", \"-c\", \"echo a\\n\"], #{ network: \"host\" })"),
            "{r}"
        );
        assert!(r.contains(".cmd([\"/bin/bash\", \"-eu\", \"-c\", \"run it\"])"), "{r}");
        let r = recipe("FROM scratch\nRUN cat > /x <<EOF\nhi\nEOF\n");
        assert!(
            r.contains(".run(\"cat > /x <<EOF\\nhi\\nEOF\", #{ network: \"host\" })"),
            "{r}"
        );
    }

    #[test]
    fn a_parent_stages_onbuild_triggers_run_first_in_its_child() {
        let r = recipe(
            "FROM scratch AS parent\nONBUILD COPY a.txt /a.txt\nONBUILD LABEL seen=yes\nFROM parent\nLABEL own=1\n",
        );
        let child = &r[r.find("let stage1").expect("the child stage")..];
        assert_eq!(
            child.lines().take(5).collect::<Vec<_>>(),
            [
                "let stage1 = parent",
                "    .copy(ctx(\"a.txt\"), \"/a.txt\")",
                "    .label(\"seen\", \"yes\")",
                "    .no_onbuild()",
                "    .label(\"own\", \"1\");",
            ],
            "{r}"
        );
    }

    #[test]
    fn a_base_images_onbuild_triggers_are_read_with_the_build_args() {
        let asked = std::cell::RefCell::new(Vec::new());
        let read = |image: &str| -> Result<Vec<String>, String> {
            asked.borrow_mut().push(image.to_string());
            Ok(vec!["RUN make".into(), "ENV BUILT=1".into()])
        };
        let args = BTreeMap::from([("TAG".to_string(), "2.0".to_string())]);
        let df = parse("ARG TAG=1.0\nFROM registry.test/base:${TAG}\nRUN true\n").unwrap();
        let r = convert(
            &df,
            &Options {
                source_name: "Dockerfile",
                args: Some(&args),
                onbuild: Some(&read),
                ..Options::default()
            },
        )
        .unwrap()
        .recipe;
        assert_eq!(*asked.borrow(), ["registry.test/base:2.0"]);
        let runs: Vec<&str> = r
            .lines()
            .filter(|l| l.contains(".run(") || l.contains("onbuild"))
            .collect();
        assert_eq!(runs.len(), 3, "{r}");
        assert!(
            runs[0].contains("make") && runs[1].contains("no_onbuild") && runs[2].contains("true"),
            "{r}"
        );
        assert!(r.contains(".env(\"BUILT\", \"1\")"), "{r}");
    }

    #[test]
    fn a_trigger_that_cannot_run_names_the_base_and_the_from_line() {
        let read = |_: &str| -> Result<Vec<String>, String> { Ok(vec!["FROM other".into()]) };
        let e = convert(
            &parse("\nFROM registry.test/base\n").unwrap(),
            &Options {
                onbuild: Some(&read),
                ..Options::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            e.message,
            "ONBUILD `FROM other` of registry.test/base: ONBUILD cannot take `FROM`"
        );
        let unreadable = |_: &str| -> Result<Vec<String>, String> { Err("registry down".into()) };
        let e = convert(
            &parse("FROM registry.test/base\n").unwrap(),
            &Options {
                onbuild: Some(&unreadable),
                ..Options::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.message, "FROM registry.test/base: registry down");
    }

    #[test]
    fn healthcheck_shell_and_onbuild_are_configuration() {
        let r = recipe(
            "FROM scratch\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/\nSHELL [\"/bin/ash\", \"-c\"]\nONBUILD RUN make\nFROM scratch\nHEALTHCHECK NONE\nHEALTHCHECK CMD [\"/bin/check\"]\n",
        );
        assert!(
            r.contains(".healthcheck(\"curl -f http://localhost/\", #{ interval: \"5s\", retries: 3 })"),
            "{r}"
        );
        assert!(
            r.contains(".shell([\"/bin/ash\", \"-c\"])") && r.contains(".onbuild(\"RUN make\")"),
            "{r}"
        );
        assert!(
            r.contains(".no_healthcheck()") && r.contains(".healthcheck([\"/bin/check\"])"),
            "{r}"
        );
    }

    #[test]
    fn copy_wildcards_parents_and_exclude() {
        let r = recipe("FROM scratch\nCOPY --parents --exclude=*.md --exclude=tests svc/*/pkg.json /app/\n");
        assert!(
            r.contains(".copy(ctx(\"svc/*/pkg.json\"), \"/app/\", #{ parents: true, exclude: [\"*.md\", \"tests\"] })"),
            "{r}"
        );
    }

    #[test]
    fn an_arg_in_from_may_name_a_stage() {
        let r = recipe("ARG STAGE=a\nFROM scratch AS a\nFROM scratch AS b\nFROM ${STAGE}\n");
        assert!(
            r.contains("let stage2 = (if (stage).to_lower() == \"a\" { a } else if (stage).to_lower() == \"b\" { b } else { from(stage) });"),
            "{r}"
        );
        assert!(
            r.contains("image(\"stage2\", stage2);") && !r.contains("image(\"a\""),
            "{r}"
        );
    }

    #[test]
    fn secret_mounts_are_given_by_the_command_line() {
        let r = recipe("FROM scratch\nRUN --mount=type=secret,id=npm,target=/root/.npmrc,mode=0440 --mount=type=secret,id=tok,required=true true\n");
        assert!(
            r.contains(".run(\"true\", #{ network: \"host\", secrets: [#{ id: \"npm\", target: \"/root/.npmrc\", mode: \"0440\", required: false }, #{ id: \"tok\", required: true }], keep_mount_points: true })"),
            "{r}"
        );
    }

    #[test]
    fn from_platform_is_read_with_the_args() {
        let r = recipe("ARG ARCH=arm64\nFROM --platform=linux/${ARCH} scratch\nFROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nRUN echo $TARGETARCH\n");
        assert!(r.contains("scratch(#{ platform: \"linux/arm64\" })"), "{r}");
        assert!(r.contains("from(\"busybox\", #{ platform: \"build\" })"), "{r}");
        assert!(r.contains("env: #{ TARGETARCH: target_platform().arch }"), "{r}");
        let e = error("ARG ARCH\nFROM --platform=linux/${ARCH}/x/y scratch\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message.starts_with("FROM --platform: `linux//x/y` is not a platform"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ssh_mounts_reach_the_agents_the_command_line_gives() {
        let r = recipe("FROM scratch\nRUN --mount=type=ssh --mount=type=ssh,id=deploy,target=/run/deploy.sock,mode=0666,uid=1000,required ssh-add -l\n");
        assert!(
            r.contains(".run(\"ssh-add -l\", #{ network: \"host\", ssh: [#{ id: \"default\", required: false }, #{ id: \"deploy\", target: \"/run/deploy.sock\", mode: \"0666\", uid: 1000, required: true }], keep_mount_points: true })"),
            "{r}"
        );
    }

    #[test]
    fn tmpfs_and_context_bind_mounts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("go.mod"), "module x\n").unwrap();
        let df = parse("FROM scratch\nWORKDIR /app\nRUN --mount=type=tmpfs,target=/tmp,size=64m --mount=type=bind,source=go.mod,target=go.mod --mount=type=bind,source=src,target=/s --mount=type=bind,target=/all true\n").unwrap();
        let r = convert(
            &df,
            &Options {
                context: Some(dir.path()),
                ..Options::default()
            },
        )
        .unwrap()
        .recipe;
        assert!(
            r.contains("mounts: [#{ source: scratch().copy(ctx(\"go.mod\"), \"/go.mod\").path(\"/go.mod\"), target: \"/app/go.mod\" }, #{ source: scratch().copy(ctx(\"src\"), \"/\").path(\"/\"), target: \"/s\" }, #{ source: scratch().copy(ctx(\".\"), \"/\").path(\"/\"), target: \"/all\" }], tmpfs: [#{ target: \"/tmp\", size: \"64m\" }], keep_mount_points: true"),
            "{r}"
        );
    }

    #[test]
    fn add_of_a_url_is_a_fetch() {
        let r = recipe(&format!(
            "FROM scratch\nADD --checksum=sha256:{} https://example.org/tool.tgz /opt/\nADD http://example.org/a.txt local.txt /both/\n",
            "ab".repeat(32)
        ));
        assert!(
            r.contains(&format!(
                ".copy(fetch(\"https://example.org/tool.tgz\", #{{ sha256: \"{}\" }}), \"/opt/\")",
                "ab".repeat(32)
            )),
            "{r}"
        );
        assert!(
            r.contains(".copy(fetch(\"http://example.org/a.txt\"), \"/both/\")"),
            "{r}"
        );
        assert!(
            r.contains(".copy(ctx(\"local.txt\"), \"/both/\", #{ extract: true })"),
            "{r}"
        );
    }

    #[test]
    fn a_dockerfiles_run_has_the_network_unless_it_says_none() {
        let r = recipe("FROM scratch\nRUN --network=none true\nRUN --network=default false\n");
        assert!(
            r.contains(".run(\"true\")\n    .run(\"false\", #{ network: \"host\" })"),
            "{r}"
        );
    }

    #[test]
    fn an_unquoted_copy_heredoc_takes_the_stages_variables() {
        let r = recipe("FROM scratch\nARG NAME=world\nENV GREETING=hello\nCOPY <<EOF <<'RAW' /etc/\n$GREETING \"${NAME}\"\nEOF\n$GREETING\nRAW\n");
        assert!(
            r.contains(".copy(text(\"hello \\\"\" + name + \"\\\"\\n\"), \"/etc/EOF\")\n    .copy(text(\"$GREETING\\n\"), \"/etc/RAW\")"),
            "{r}"
        );
    }

    #[test]
    fn copy_heredocs_are_text_files() {
        let r = recipe("FROM scratch\nCOPY --chmod=0755 <<EOF /usr/local/bin/hi\n#!/bin/sh\necho hi\nEOF\nCOPY <<A <<'B' /etc/\none\nA\n$two\nB\n");
        assert!(
            r.contains(".copy(text(\"#!/bin/sh\\necho hi\\n\"), \"/usr/local/bin/hi\", #{ chmod: \"0755\" })"),
            "{r}"
        );
        assert!(
            r.contains(".copy(text(\"one\\n\"), \"/etc/A\")\n    .copy(text(\"$two\\n\"), \"/etc/B\")"),
            "{r}"
        );
    }

    #[test]
    fn run_mounts_network_and_security() {
        let r = recipe(
            "FROM scratch AS tools\nFROM scratch\nRUN --network=host --security=insecure --mount=type=cache,target=/c,sharing=shared --mount=type=bind,from=tools,source=/bin,target=/t true\n",
        );
        assert!(
            r.contains(".run(\"true\", #{ network: \"host\", security: \"insecure\", cache: [#{ target: \"/c\", sharing: \"shared\" }], mounts: [#{ source: tools.path(\"/bin\"), target: \"/t\" }], keep_mount_points: true })"),
            "{r}"
        );
    }

    #[test]
    fn the_target_stage_is_the_image() {
        let df = parse("FROM scratch AS a\nFROM a AS b\nFROM scratch AS c\n").unwrap();
        let r = convert(
            &df,
            &Options {
                target: Some("a"),
                ..Options::default()
            },
        )
        .unwrap()
        .recipe;
        assert!(r.contains("image(\"a\", a);") && !r.contains("image(\"c\""), "{r}");
        // Without one, every stage no other uses.
        let r = recipe("FROM scratch AS a\nFROM a AS b\nFROM scratch AS c\n");
        assert!(
            r.contains("image(\"b\", b);\nimage(\"c\", c);\ngroup(\"default\", [\"c\"]);"),
            "{r}"
        );
    }

    #[test]
    fn what_is_not_supported_yet_is_an_error_at_its_line() {
        let cases = [
            ("FROM scratch\n\nHEALTHCHECK true\n", 3, "HEALTHCHECK takes `CMD command` or `NONE`"),
            ("FROM scratch\nONBUILD ONBUILD RUN x\n", 2, "ONBUILD cannot take `ONBUILD`"),
            ("FROM scratch\nADD git@github.com:x/y.git /y\n", 2, "ADD of a git repository (`git@github.com:x/y.git`) is not supported yet"),
            ("FROM scratch\nCOPY --from=x --exclude=b a /\n", 2, "COPY --from with --exclude is not supported yet"),
            ("FROM scratch\nCOPY --chmod a /\n", 2, "COPY --chmod needs a value"),
            ("FROM scratch\nCOPY --form=x a /\n", 2, "COPY does not take --form"),
            ("FROM scratch\nADD --from=x a /\n", 2, "ADD does not take --from"),
            ("FROM scratch\nRUN --mount=type=ssh,src=/x true\n", 2, "RUN --mount=type=ssh takes no source"),
            ("FROM scratch\nRUN --mount=type=sshh true\n", 2, "RUN --mount=type=sshh is unknown"),
            (
                "FROM debian\nRUN --mount=type=tmpfs,target=rel true\n",
                2,
                "the relative mount target `rel` needs a WORKDIR set by this Dockerfile (or an absolute target)",
            ),
            ("RUN true\n", 1, "RUN before the first FROM"),
            ("FROM scratch\nCOPY --from=3 /a /b\n", 2, "--from=3: no earlier stage 3"),
            (
                "FROM debian\nWORKDIR $HOME\n",
                2,
                "`$HOME` is not set by this Dockerfile; a value from the base image's environment can only be read by a plain `$NAME` in ENV yet",
            ),
        ];
        for (text, line, message) in cases {
            let e = error(text);
            assert_eq!((e.line, e.message.as_str()), (line, message), "{text}");
        }
    }
}
