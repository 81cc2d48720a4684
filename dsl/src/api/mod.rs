//! Recipe functions, one file per group. Each function records into the
//! shared [`Recorder`](crate::recorder::Recorder) and returns a value the
//! recipe can keep using; none of them touches the filesystem.

mod meta;
pub(crate) mod states;
pub(crate) mod targets;

use rhai::{Array, Dynamic, Engine, Map, Position};
use strata_engine::graph::NodeId;

use crate::recorder::{runtime, Shared};

/// An image state: every method returns a new state (a new node).
#[derive(Clone, Debug)]
pub struct State {
    pub node: NodeId,
}

/// A path inside a state, for `copy`, `run` mounts and `artifact`.
#[derive(Clone, Debug)]
pub struct PathRef {
    pub node: NodeId,
    pub path: String,
}

/// A selection of build-context paths.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub paths: Vec<String>,
}

/// `fetch(url)` / `fetch(url, #{sha256})`: a file from a URL, for `copy`.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub url: String,
    pub sha256: Option<String>,
}

/// `text("content")`: a file's content, for `copy`.
#[derive(Clone, Debug)]
pub struct Text {
    pub content: String,
}

/// Every recipe function with its usage, for error hints and the docs.
pub const SIGNATURES: &[(&str, &str)] = &[
    ("scratch", "scratch()"),
    (
        "from",
        "from(\"oci:DIR[:TAG]\" | \"docker-archive:FILE\" | \"rootfs:FILE.tar\")",
    ),
    (
        "debian",
        "debian(\"bookworm\", [packages]) or debian(suite, [packages], #{mirror, arch, variant})",
    ),
    ("ctx", "ctx(path) or ctx([paths])"),
    ("fetch", "fetch(url) or fetch(url, #{sha256: \"hex\"})"),
    ("text", "text(\"file content\")"),
    ("path", "state.path(\"/absolute/path\")"),
    (
        "copy",
        "state.copy(ctx(...) or state.path(...), dst) or state.copy(source, dst, #{chown, chmod})",
    ),
    (
        "run",
        "state.run(\"shell command\" or [argv], #{env, user, network, cache, secrets, ssh, mounts, tmpfs, timeout})",
    ),
    ("healthcheck", "state.healthcheck(\"shell command\" or [argv]) or state.healthcheck(…, #{interval, timeout, start_period, start_interval, retries})"),
    ("shell", "state.shell([\"/bin/sh\", \"-c\"])"),
    ("onbuild", "state.onbuild(\"RUN make\")"),
    ("no_onbuild", "state.no_onbuild()"),
    ("mkdir", "state.mkdir(path) or state.mkdir(path, #{chown, chmod})"),
    ("env", "state.env(name, value) or state.env(#{NAME: value}), with #{expand: true} to read the state's environment (\"${PATH}\")"),
    ("workdir", "state.workdir(path)"),
    ("user", "state.user(\"name[:group]\" or \"uid[:gid]\")"),
    ("cmd", "state.cmd([argv]) or state.cmd(\"shell command\")"),
    (
        "entrypoint",
        "state.entrypoint([argv]) or state.entrypoint(\"shell command\")",
    ),
    ("expose", "state.expose(80) or state.expose(\"53/udp\")"),
    ("label", "state.label(key, value)"),
    ("volume", "state.volume(path)"),
    ("stop_signal", "state.stop_signal(\"SIGTERM\")"),
    ("image", "image(name, state) or image(name, state, #{tags: [...]})"),
    ("artifact", "artifact(name, state.path(...))"),
    ("group", "group(name, [target names])"),
    ("arg", "arg(name, default)"),
];

/// Registers the types and every recipe function.
pub fn register(engine: &mut Engine, rec: &Shared) {
    engine.register_type_with_name::<State>("State");
    engine.register_type_with_name::<PathRef>("PathRef");
    engine.register_type_with_name::<Ctx>("Ctx");
    engine.register_type_with_name::<Fetched>("Fetched");
    engine.register_type_with_name::<Text>("Text");
    states::register(engine, rec);
    meta::register(engine, rec);
    meta::register_docker(engine, rec);
    targets::register(engine, rec);
}

/// The type name a recipe author would recognise.
pub fn type_name(v: &Dynamic) -> String {
    let name = v.type_name();
    name.rsplit("::")
        .next()
        .unwrap_or(name)
        .replace("ImmutableString", "string")
        .replace("i64", "integer")
}

/// A list of strings from an array argument.
pub fn strings(v: &Array, what: &str, pos: Position) -> Result<Vec<String>, Box<rhai::EvalAltResult>> {
    v.iter()
        .map(|item| {
            item.clone().into_string().map_err(|_| {
                runtime(
                    pos,
                    format!("{what} must be a list of strings, found a {}", type_name(item)),
                )
            })
        })
        .collect()
}

/// An argv from a shell string (`/bin/sh -c`) or an array.
pub fn argv(v: Dynamic, what: &str, pos: Position) -> Result<Vec<String>, Box<rhai::EvalAltResult>> {
    if v.is_string() {
        return Ok(vec!["/bin/sh".into(), "-c".into(), v.into_string().unwrap_or_default()]);
    }
    if v.is_array() {
        let arr = v.into_array().unwrap_or_default();
        let argv = strings(&arr, what, pos)?;
        if argv.is_empty() {
            return Err(runtime(pos, format!("{what} must not be empty")));
        }
        return Ok(argv);
    }
    Err(runtime(
        pos,
        format!(
            "{what} must be a string or a list of strings, found a {}",
            type_name(&v)
        ),
    ))
}

/// Checks an options map against the keys a function accepts.
pub fn check_options(opts: &Map, allowed: &[&str], func: &str, pos: Position) -> Result<(), Box<rhai::EvalAltResult>> {
    for key in opts.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(runtime(
                pos,
                format!(
                    "unknown option `{key}` for {func}; expected one of: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Quotes a string the way the recipe would write it, for history entries.
pub fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// `["a", "b"]`, for history entries.
pub fn quote_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "))
}
