//! States and layers: `scratch`, `from`, `ctx`, `path`, `copy`, `run`.
//!
//! ```rhai
//! let base = from("rootfs:busybox.tar");
//! let app = scratch()
//!     .copy(ctx(["hello.txt"]), "/srv/")
//!     .copy(base.path("/bin/busybox"), "/bin/busybox", #{ chmod: "0755" });
//! ```

use std::path::PathBuf;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};
use strata_engine::graph::{
    BaseSource, BindMount, CacheMount, CopyOp, CopySource, Network, Op, RunOp, SecretMount, SecretSource, SshMount,
};

use super::{argv, check_options, quote, quote_list, strings, type_name, Ctx, Fetched, PathRef, State, Text};
use crate::recorder::{runtime, Shared};

type Res<T> = Result<T, Box<rhai::EvalAltResult>>;

fn base_source(rec: &Shared, reference: &str, ctx: &NativeCallContext) -> Res<BaseSource> {
    let dir = rec.borrow().dir.clone();
    parse_base(reference, &dir).map_err(|e| runtime(ctx.call_position(), e))
}

/// What `from(reference)` names, local files read from `dir`.
pub(crate) fn parse_base(reference: &str, dir: &std::path::Path) -> Result<BaseSource, String> {
    let local = |p: &str| -> PathBuf { dir.join(p) };
    if let Some(rest) = reference.strip_prefix("oci:") {
        // `oci:DIR:REF`, split at the first `:` as skopeo does (REF may hold `/` and `:`).
        let (path, tag) = match rest.split_once(':') {
            Some((p, t)) if !p.is_empty() && !t.is_empty() => (p, Some(t.to_string())),
            _ => (rest, None),
        };
        return Ok(BaseSource::OciLayout { dir: local(path), tag });
    }
    if let Some(file) = reference.strip_prefix("docker-archive:") {
        return Ok(BaseSource::DockerArchive { file: local(file) });
    }
    if let Some(file) = reference.strip_prefix("rootfs:") {
        return Ok(BaseSource::Rootfs { file: local(file) });
    }
    strata_engine::registry::Reference::parse(reference).map_err(|e| {
        format!(
            "{e}; bases are \"oci:DIR[:TAG]\", \"docker-archive:FILE\", \"rootfs:FILE.tar\" or a registry reference"
        )
    })?;
    Ok(BaseSource::Registry {
        reference: reference.to_string(),
    })
}

/// `scratch(#{ platform })`: an empty state.
fn scratch(rec: &Shared, ctx: &NativeCallContext, opts: Map) -> Res<State> {
    check_options(&opts, &["platform"], "scratch", ctx.call_position())?;
    let platform = platform_option(rec, &opts, "scratch", ctx.call_position())?;
    Ok(State {
        node: rec
            .borrow_mut()
            .add_for(ctx, Op::Scratch, None, "scratch()".into(), platform),
    })
}

/// `from(reference, #{ platform })`: a base image.
fn from(rec: &Shared, ctx: &NativeCallContext, reference: &str, opts: Map) -> Res<State> {
    check_options(&opts, &["platform"], "from", ctx.call_position())?;
    let source = base_source(rec, reference, ctx)?;
    let platform = platform_option(rec, &opts, "from", ctx.call_position())?;
    let desc = format!("from({})", quote(reference));
    Ok(State {
        node: rec.borrow_mut().add_for(ctx, Op::Base(source), None, desc, platform),
    })
}

/// `debian(suite, packages, #{mirror, arch, variant})`: a native Debian base.
fn debian(rec: &Shared, ctx: &NativeCallContext, suite: &str, packages: Array, opts: Map) -> Res<State> {
    let pos = ctx.call_position();
    check_options(
        &opts,
        &[
            "mirror",
            "arch",
            "variant",
            "platform",
            "recommends",
            "docs",
            "updates",
            "security",
            "security_mirror",
            "components",
            "snapshot",
            "snapshot_url",
            "locales",
        ],
        "debian",
        pos,
    )?;
    let flag = |key: &str, default: bool| -> Res<bool> {
        match opts.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .map_err(|_| runtime(pos, format!("debian option `{key}` must be true or false"))),
        }
    };
    let (recommends, docs) = (flag("recommends", false)?, flag("docs", false)?);
    let (updates, security) = (flag("updates", true)?, flag("security", true)?);
    let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !valid(suite) {
        return Err(runtime(
            pos,
            format!("`{suite}` is not a Debian suite name (like \"bookworm\")"),
        ));
    }
    let packages = strings(&packages, "debian packages", pos)?;
    for p in &packages {
        let name = p.split('=').next().unwrap_or("");
        if !valid(name) || name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(runtime(
                pos,
                format!("`{p}` is not a package name (NAME or NAME=VERSION)"),
            ));
        }
    }
    let opt = |key: &str| -> Res<Option<String>> {
        match opts.get(key) {
            None => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|_| runtime(pos, format!("debian option `{key}` must be a string"))),
        }
    };
    let variant = opt("variant")?;
    if let Some(v) = &variant {
        if v != "required" && v != "essential" {
            return Err(runtime(
                pos,
                format!("debian variant `{v}`: expected \"required\" or \"essential\""),
            ));
        }
    }
    let mirror = opt("mirror")?.filter(|m| !m.is_empty());
    let security_mirror = opt("security_mirror")?.filter(|m| !m.is_empty());
    let snapshot_url = opt("snapshot_url")?.filter(|m| !m.is_empty());
    for (key, m) in [
        ("mirror", &mirror),
        ("security_mirror", &security_mirror),
        ("snapshot_url", &snapshot_url),
    ] {
        if let Some(m) = m {
            if !m.starts_with("http://") && !m.starts_with("https://") {
                return Err(runtime(
                    pos,
                    format!("debian {key} `{m}` must be an http:// or https:// URL"),
                ));
            }
        }
    }
    if let Some(url) = &snapshot_url {
        if !url.contains("{archive}") || !url.contains("{snapshot}") {
            return Err(runtime(
                pos,
                format!("debian snapshot_url `{url}` needs {{archive}} and {{snapshot}} (e.g. \"https://HOST/archive/{{archive}}/{{snapshot}}\")"),
            ));
        }
    }
    let snapshot = opt("snapshot")?;
    if let Some(instant) = &snapshot {
        let b = instant.as_bytes();
        let ok =
            b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        if !ok {
            return Err(runtime(
                pos,
                format!("debian snapshot `{instant}` is not an instant like \"20261101T000000Z\""),
            ));
        }
        if mirror.is_some() || security_mirror.is_some() {
            return Err(runtime(
                pos,
                "debian `snapshot` reads the snapshot archive: give `snapshot_url`, not `mirror` or `security_mirror`",
            ));
        }
    }
    let locales = match opts.get("locales") {
        None => Vec::new(),
        Some(v) => {
            let list = v
                .clone()
                .into_array()
                .map_err(|_| runtime(pos, "debian option `locales` must be a list of strings"))?;
            let list = strings(&list, "debian locales", pos)?;
            if let Some(bad) = list
                .iter()
                .find(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || "_@.-".contains(c)))
            {
                return Err(runtime(
                    pos,
                    format!("debian locale `{bad}` is not a locale directory name (like \"de\" or \"pt_BR\")"),
                ));
            }
            list
        }
    };
    let components = match opts.get("components") {
        None => vec!["main".to_string()],
        Some(v) => {
            let list = v
                .clone()
                .into_array()
                .map_err(|_| runtime(pos, "debian option `components` must be a list of strings"))?;
            let list = strings(&list, "debian components", pos)?;
            if list.is_empty() || list.iter().any(|c| !valid(c)) {
                return Err(runtime(
                    pos,
                    "debian `components` names the archive's components, like [\"main\", \"contrib\", \"non-free-firmware\"]",
                ));
            }
            list
        }
    };
    // `arch` names the platform too; without it, the state's platform
    // names the architecture (this machine's stays implicit, as before).
    let arch = opt("arch")?;
    let platform = match &arch {
        Some(a) => debian_platform(a).ok_or_else(|| {
            runtime(
                pos,
                format!(
                    "debian arch `{a}` is not one strata knows (amd64, arm64, armhf, i386, ppc64el, s390x, riscv64)"
                ),
            )
        })?,
        None => platform_option(rec, &opts, "debian", pos)?,
    };
    let arch = arch.or_else(|| (platform != strata_engine::image::Platform::host()).then(|| debian_arch(&platform)));
    let spec = strata_engine::graph::DebianBase {
        suite: suite.to_string(),
        packages: packages.clone(),
        mirror,
        arch,
        variant,
        recommends,
        docs,
        locales,
        updates,
        security,
        security_mirror,
        components,
        snapshot,
        snapshot_url,
    };
    let desc = format!("debian({}, {})", quote(suite), quote_list(&packages));
    Ok(State {
        node: rec
            .borrow_mut()
            .add_for(ctx, Op::Base(BaseSource::Debian(spec)), None, desc, platform),
    })
}

/// The `platform` option of a base: `"target"` (the default), `"build"`
/// (this machine's, as `FROM --platform=$BUILDPLATFORM`) or `OS/ARCH[/VARIANT]`.
fn platform_option(rec: &Shared, opts: &Map, what: &str, pos: rhai::Position) -> Res<strata_engine::image::Platform> {
    let r = rec.borrow();
    match opts.get("platform") {
        None => Ok(r.target_platform.clone()),
        Some(v) => {
            let text = v
                .clone()
                .into_string()
                .map_err(|_| runtime(pos, format!("{what} option `platform` must be a string")))?;
            match text.as_str() {
                "target" => Ok(r.target_platform.clone()),
                "build" => Ok(r.build_platform.clone()),
                other => strata_engine::image::Platform::parse(other)
                    .map_err(|e| runtime(pos, format!("{what} option `platform`: {e} (or \"build\", \"target\")"))),
            }
        }
    }
}

/// Debian's name for a platform's architecture.
pub(crate) fn debian_arch(p: &strata_engine::image::Platform) -> String {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm", Some("v7")) | ("arm", None) => "armhf".into(),
        ("arm", Some("v5")) => "armel".into(),
        ("386", _) => "i386".into(),
        ("ppc64le", _) => "ppc64el".into(),
        (arch, _) => arch.into(),
    }
}

/// The platform of a Debian architecture.
fn debian_platform(arch: &str) -> Option<strata_engine::image::Platform> {
    let (architecture, variant) = match arch {
        "amd64" | "arm64" | "s390x" | "riscv64" => (arch, None),
        "armhf" => ("arm", Some("v7")),
        "armel" => ("arm", Some("v5")),
        "i386" => ("386", None),
        "ppc64el" => ("ppc64le", None),
        _ => return None,
    };
    Some(strata_engine::image::Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: variant.map(str::to_string),
    })
}

/// A platform as a recipe sees it: `#{ os, arch, variant, platform }`.
fn platform_map(p: &strata_engine::image::Platform) -> Map {
    let mut m = Map::new();
    m.insert("os".into(), p.os.clone().into());
    m.insert("arch".into(), p.architecture.clone().into());
    m.insert("variant".into(), p.variant.clone().unwrap_or_default().into());
    m.insert("platform".into(), p.to_string().into());
    m
}

fn check_ctx_path(p: &str, pos: rhai::Position) -> Res<()> {
    if strata_engine::context::clean_relative(p).is_none() {
        return Err(runtime(pos, format!("ctx path `{p}` leaves the build context")));
    }
    Ok(())
}

fn check_image_path(p: &str, what: &str, pos: rhai::Position) -> Res<()> {
    if !p.starts_with('/') {
        return Err(runtime(
            pos,
            format!("{what} `{p}` must be an absolute path inside the image"),
        ));
    }
    Ok(())
}

fn octal_mode(v: &Dynamic, pos: rhai::Position) -> Res<u32> {
    let mode = if let Ok(n) = v.as_int() {
        u32::try_from(n).ok()
    } else if let Ok(s) = v.clone().into_string() {
        u32::from_str_radix(s.trim_start_matches("0o"), 8).ok()
    } else {
        None
    };
    mode.filter(|m| *m <= 0o7777)
        .ok_or_else(|| runtime(pos, "chmod must be an octal string like \"0755\""))
}

fn copy(
    rec: &Shared,
    ctx: &NativeCallContext,
    state: &State,
    src: CopySource,
    src_desc: String,
    dst: &str,
    opts: Map,
) -> Res<State> {
    let pos = ctx.call_position();
    check_options(&opts, &["chown", "chmod", "parents", "exclude", "extract"], "copy", pos)?;
    let extract = match opts.get("extract") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| runtime(pos, "copy option `extract` must be true or false"))?,
    };
    let mut src = src;
    let parents = match opts.get("parents") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| runtime(pos, "copy option `parents` must be true or false"))?,
    };
    let exclude = match opts.get("exclude") {
        None => Vec::new(),
        Some(v) => {
            let list = v
                .clone()
                .try_cast::<rhai::Array>()
                .ok_or_else(|| runtime(pos, "copy option `exclude` must be a list of patterns"))?;
            super::strings(&list, "exclude", pos)?
        }
    };
    match &mut src {
        CopySource::Context { exclude: e, .. } => *e = exclude.clone(),
        CopySource::State { .. } if !exclude.is_empty() || extract => {
            return Err(runtime(
                pos,
                "copy options `exclude` and `extract` take a ctx() source (not another state's path) yet",
            ))
        }
        CopySource::Mkdir | CopySource::Fetch { .. } | CopySource::Text { .. }
            if parents || !exclude.is_empty() || extract =>
        {
            return Err(runtime(
                pos,
                "copy options `parents`, `exclude` and `extract` take a ctx() or state.path() source",
            ))
        }
        CopySource::State { .. } | CopySource::Mkdir | CopySource::Fetch { .. } | CopySource::Text { .. } => {}
    }
    if dst.is_empty() {
        return Err(runtime(pos, "copy destination must not be empty"));
    }
    let chown = match opts.get("chown") {
        None => None,
        Some(v) if v.is_int() => Some(v.as_int().unwrap_or_default().to_string()),
        Some(v) => Some(
            v.clone()
                .into_string()
                .map_err(|_| runtime(pos, "chown must be a string like \"1000:1000\" or \"app\""))?,
        ),
    };
    let chmod = opts.get("chmod").map(|v| octal_mode(v, pos)).transpose()?;
    // `copy(SOURCE, DST` or `mkdir(DST`.
    let call = if matches!(src, CopySource::Mkdir) {
        format!("mkdir({}", quote(dst))
    } else {
        format!("copy({src_desc}, {}", quote(dst))
    };
    let mut desc = format!("{call})");
    if !opts.is_empty() {
        let parts: Vec<String> = [
            chown.as_ref().map(|c| format!("chown: {}", quote(c))),
            chmod.map(|m| format!("chmod: \"{m:04o}\"")),
            parents.then(|| "parents: true".to_string()),
            (!exclude.is_empty()).then(|| format!("exclude: {}", quote_list(&exclude))),
            extract.then(|| "extract: true".to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        desc = format!("{call}, #{{{}}})", parts.join(", "));
    }
    let op = Op::Copy(CopyOp {
        source: src,
        dst: dst.to_string(),
        chown,
        chmod,
        parents,
        extract,
    });
    let node = rec.borrow_mut().add(ctx, op, Some(state.node), desc);
    Ok(State { node })
}

/// `limits: #{ memory: "2g", pids: 4096, cpu: 1.5 }`.
fn run_limits(v: &Dynamic, pos: rhai::Position) -> Res<strata_engine::sys::cgroup::Limits> {
    let map = v.clone().try_cast::<Map>().ok_or_else(|| {
        runtime(
            pos,
            "run option `limits` must be a map like #{ memory: \"2g\", pids: 4096, cpu: 2 }",
        )
    })?;
    check_options(&map, &["memory", "pids", "cpu"], "limits", pos)?;
    let mut limits = strata_engine::sys::cgroup::Limits::default();
    if let Some(m) = map.get("memory") {
        let bytes = if let Ok(n) = m.as_int() {
            u64::try_from(n).ok()
        } else {
            m.clone()
                .into_string()
                .ok()
                .and_then(|s| strata_engine::sys::cgroup::parse_size(&s))
        };
        limits.memory = Some(bytes.filter(|b| *b >= 1 << 20).ok_or_else(|| {
            runtime(
                pos,
                format!("limits: `memory` must be a size of at least 1 MiB like \"512m\" or \"2g\", not `{m}`"),
            )
        })?);
    }
    if let Some(p) = map.get("pids") {
        limits.pids = Some(
            p.as_int()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| runtime(pos, format!("limits: `pids` must be a positive number, not `{p}`")))?,
        );
    }
    if let Some(c) = map.get("cpu") {
        let cpus = c.as_float().ok().or_else(|| c.as_int().ok().map(|n| n as f64));
        limits.cpu_millis = Some(
            cpus.filter(|c| *c >= 0.01 && *c <= 4096.0)
                .map(|c| (c * 1000.0).round() as u64)
                .ok_or_else(|| {
                    runtime(
                        pos,
                        format!("limits: `cpu` must be a number of CPUs like 1.5, not `{c}`"),
                    )
                })?,
        );
    }
    Ok(limits)
}

/// A secret's or an agent socket's `mode`, `uid`, `gid` and `required`
/// (default true).
struct Access {
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    required: bool,
}

fn access(m: &Map, what: &str, pos: rhai::Position) -> Res<Access> {
    let required = match m.get("required") {
        None => true,
        Some(v) => v
            .as_bool()
            .map_err(|_| runtime(pos, format!("{what} option `required` must be true or false")))?,
    };
    let id_of = |key: &str| -> Res<Option<u32>> {
        m.get(key)
            .map(|v| {
                v.as_int()
                    .ok()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| runtime(pos, format!("{what} `{key}` must be a number, not `{v}`")))
            })
            .transpose()
    };
    Ok(Access {
        mode: m.get("mode").map(|v| octal_mode(v, pos)).transpose()?,
        uid: id_of("uid")?,
        gid: id_of("gid")?,
        required,
    })
}

fn run(rec: &Shared, ctx: &NativeCallContext, state: &State, cmd: Dynamic, opts: Map) -> Res<State> {
    let pos = ctx.call_position();
    check_options(
        &opts,
        &[
            "env",
            "user",
            "network",
            "cache",
            "secrets",
            "ssh",
            "mounts",
            "timeout",
            "security",
            "limits",
            "keep_mount_points",
            "tmpfs",
        ],
        "run",
        pos,
    )?;
    let argv = argv(cmd, "run command", pos)?;
    let mut op = RunOp::new(argv.clone());
    if let Some(security) = opts.get("security") {
        op.insecure = match security.to_string().as_str() {
            "sandbox" => false,
            "insecure" => true,
            other => {
                return Err(runtime(
                    pos,
                    format!("run option `security` must be \"sandbox\" or \"insecure\", not `{other}`"),
                ))
            }
        };
    }
    if let Some(limits) = opts.get("limits") {
        op.limits = run_limits(limits, pos)?;
    }
    if let Some(tmpfs) = opts.get("tmpfs") {
        let items = tmpfs
            .clone()
            .into_array()
            .map_err(|_| runtime(pos, "run option `tmpfs` must be a list of paths or #{target, size}"))?;
        for item in items {
            let (target, size) = if item.is_string() {
                (item.to_string(), None)
            } else {
                let m = item
                    .try_cast::<Map>()
                    .ok_or_else(|| runtime(pos, "a tmpfs is a path or #{target, size}"))?;
                check_options(&m, &["target", "size"], "a tmpfs", pos)?;
                let target = m
                    .get("target")
                    .map(|v| v.to_string())
                    .ok_or_else(|| runtime(pos, "a tmpfs needs a `target`"))?;
                let size = match m.get("size") {
                    None => None,
                    Some(v) => Some(
                        strata_engine::sys::cgroup::parse_size(&v.to_string())
                            .ok_or_else(|| runtime(pos, format!("tmpfs `size` is a size like \"64m\", not `{v}`")))?,
                    ),
                };
                (target, size)
            };
            check_image_path(&target, "tmpfs target", pos)?;
            op.tmpfs.push(strata_engine::graph::TmpfsMount { target, size });
        }
    }
    if let Some(keep) = opts.get("keep_mount_points") {
        op.keep_mount_points = keep
            .as_bool()
            .map_err(|_| runtime(pos, "run option `keep_mount_points` must be true or false"))?;
    }
    if let Some(env) = opts.get("env") {
        let map = env
            .clone()
            .try_cast::<Map>()
            .ok_or_else(|| runtime(pos, "run option `env` must be a map #{NAME: \"value\"}"))?;
        for (k, v) in map {
            op.env.push((k.to_string(), v.to_string()));
        }
    }
    if let Some(user) = opts.get("user") {
        op.user = Some(user.to_string());
    }
    if let Some(net) = opts.get("network") {
        op.network = match net.to_string().as_str() {
            "none" => Network::None,
            "host" => Network::Host,
            other => {
                return Err(runtime(
                    pos,
                    format!("run option `network` must be \"none\" or \"host\", not `{other}`"),
                ))
            }
        };
    }
    if let Some(timeout) = opts.get("timeout") {
        let secs = timeout
            .as_int()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| runtime(pos, "run option `timeout` must be a positive number of seconds"))?;
        op.timeout = Some(secs as u64);
    }
    if let Some(cache) = opts.get("cache") {
        let items = cache
            .clone()
            .into_array()
            .map_err(|_| runtime(pos, "run option `cache` must be a list"))?;
        for item in items {
            let (target, id, shared, export) = if item.is_string() {
                let t = item.into_string().unwrap_or_default();
                (t.clone(), t, false, None)
            } else if let Some(m) = item.clone().try_cast::<Map>() {
                check_options(&m, &["target", "id", "sharing", "export"], "a cache mount", pos)?;
                let export = match m.get("export") {
                    None => None,
                    Some(v) => Some(
                        v.clone()
                            .try_cast::<super::Ctx>()
                            .ok_or_else(|| {
                                runtime(
                                    pos,
                                    "a cache mount's `export` is the context files that name its content: ctx(\"Cargo.lock\")",
                                )
                            })?
                            .paths,
                    ),
                };
                let target = m
                    .get("target")
                    .map(|v| v.to_string())
                    .ok_or_else(|| runtime(pos, "a cache mount needs a `target`"))?;
                let id = m.get("id").map(|v| v.to_string()).unwrap_or_else(|| target.clone());
                let shared = match m.get("sharing").map(|v| v.to_string()).as_deref() {
                    None | Some("locked") => false,
                    Some("shared") => true,
                    Some(other) => {
                        return Err(runtime(
                            pos,
                            format!("cache `sharing` is \"locked\" or \"shared\", not `{other}`"),
                        ))
                    }
                };
                (target, id, shared, export)
            } else {
                return Err(runtime(
                    pos,
                    format!("a cache mount is a path or #{{target, id}}, not a {}", type_name(&item)),
                ));
            };
            check_image_path(&target, "cache target", pos)?;
            op.caches.push(CacheMount {
                target,
                id,
                shared,
                export,
            });
        }
    }
    if let Some(secrets) = opts.get("secrets") {
        let items = secrets
            .clone()
            .into_array()
            .map_err(|_| runtime(pos, "run option `secrets` must be a list"))?;
        for item in items {
            let m = item.try_cast::<Map>().ok_or_else(|| {
                runtime(
                    pos,
                    "a secret is #{id, file}, #{id, env} or #{id} (given by `strata build --secret`)",
                )
            })?;
            let id = m
                .get("id")
                .map(|v| v.to_string())
                .ok_or_else(|| runtime(pos, "a secret needs an `id`"))?;
            let source = match (m.get("file"), m.get("env")) {
                (Some(f), None) => SecretSource::File(rec.borrow().dir.join(f.to_string())),
                (None, Some(e)) => SecretSource::Env(e.to_string()),
                (None, None) => SecretSource::Given,
                _ => {
                    return Err(runtime(
                        pos,
                        format!(
                            "secret `{id}` takes one of `file` or `env`, or neither (given by `strata build --secret`)"
                        ),
                    ))
                }
            };
            let target = m
                .get("target")
                .map(|v| v.to_string())
                .unwrap_or_else(|| format!("/run/secrets/{id}"));
            check_image_path(&target, "secret target", pos)?;
            check_options(
                &m,
                &[
                    "id",
                    "file",
                    "env",
                    "target",
                    "mode",
                    "uid",
                    "gid",
                    "required",
                    "invalidate",
                ],
                "a secret",
                pos,
            )?;
            let invalidate = match m.get("invalidate") {
                None => false,
                Some(v) => v
                    .as_bool()
                    .map_err(|_| runtime(pos, format!("secret `{id}`: `invalidate` must be true or false")))?,
            };
            let Access {
                mode,
                uid,
                gid,
                required,
            } = access(&m, "secret", pos)?;
            op.secrets.push(SecretMount {
                id,
                target,
                source,
                mode,
                uid,
                gid,
                required,
                invalidate,
            });
        }
    }
    if let Some(ssh) = opts.get("ssh") {
        let items = ssh
            .clone()
            .into_array()
            .map_err(|_| runtime(pos, "run option `ssh` must be a list"))?;
        for (i, item) in items.into_iter().enumerate() {
            let m = if item.is_string() {
                Map::from([("id".into(), item)])
            } else {
                item.try_cast::<Map>()
                    .ok_or_else(|| runtime(pos, "an ssh agent is \"ID\" or #{id, target, mode, uid, gid, required}"))?
            };
            check_options(
                &m,
                &["id", "target", "mode", "uid", "gid", "required"],
                "an ssh agent",
                pos,
            )?;
            let id = m.get("id").map(|v| v.to_string()).unwrap_or_else(|| "default".into());
            let target = m
                .get("target")
                .map(|v| v.to_string())
                .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{i}"));
            check_image_path(&target, "ssh target", pos)?;
            let Access {
                mode,
                uid,
                gid,
                required,
            } = access(&m, "ssh", pos)?;
            op.ssh.push(SshMount {
                id,
                target,
                mode,
                uid,
                gid,
                required,
            });
        }
    }
    if let Some(mounts) = opts.get("mounts") {
        let items = mounts
            .clone()
            .into_array()
            .map_err(|_| runtime(pos, "run option `mounts` must be a list"))?;
        for item in items {
            let m = item
                .try_cast::<Map>()
                .ok_or_else(|| runtime(pos, "a mount is #{source: state.path(...), target}"))?;
            let source = m
                .get("source")
                .and_then(|v| v.clone().try_cast::<PathRef>())
                .ok_or_else(|| runtime(pos, "a mount's `source` must be state.path(...)"))?;
            let target = m
                .get("target")
                .map(|v| v.to_string())
                .unwrap_or_else(|| source.path.clone());
            check_image_path(&target, "mount target", pos)?;
            if strata_engine::fsview::is_glob(&source.path) {
                return Err(runtime(
                    pos,
                    format!("a mount's source is one path, not a pattern like `{}`", source.path),
                ));
            }
            op.mounts.push(BindMount {
                node: source.node,
                path: source.path,
                target,
            });
        }
    }
    let shown = if argv.len() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" {
        quote(&argv[2])
    } else {
        quote_list(&argv)
    };
    let node = rec
        .borrow_mut()
        .add(ctx, Op::Run(op), Some(state.node), format!("run({shown})"));
    Ok(State { node })
}

pub fn register(engine: &mut Engine, rec: &Shared) {
    let r = rec.clone();
    engine.register_fn("scratch", move |ctx: NativeCallContext| -> Res<State> {
        scratch(&r, &ctx, Map::new())
    });
    let r = rec.clone();
    engine.register_fn("scratch", move |ctx: NativeCallContext, opts: Map| -> Res<State> {
        scratch(&r, &ctx, opts)
    });
    let r = rec.clone();
    engine.register_fn("from", move |ctx: NativeCallContext, reference: &str| -> Res<State> {
        from(&r, &ctx, reference, Map::new())
    });
    let r = rec.clone();
    engine.register_fn(
        "from",
        move |ctx: NativeCallContext, reference: &str, opts: Map| -> Res<State> { from(&r, &ctx, reference, opts) },
    );
    let r = rec.clone();
    engine.register_fn("target_platform", move || -> Map {
        platform_map(&r.borrow().target_platform)
    });
    let r = rec.clone();
    engine.register_fn("build_platform", move || -> Map {
        platform_map(&r.borrow().build_platform)
    });
    let r = rec.clone();
    engine.register_fn(
        "debian",
        move |ctx: NativeCallContext, suite: &str, packages: Array| -> Res<State> {
            debian(&r, &ctx, suite, packages, Map::new())
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "debian",
        move |ctx: NativeCallContext, suite: &str, packages: Array, opts: Map| -> Res<State> {
            debian(&r, &ctx, suite, packages, opts)
        },
    );
    engine.register_fn("ctx", move |ctx: NativeCallContext, path: &str| -> Res<Ctx> {
        check_ctx_path(path, ctx.call_position())?;
        Ok(Ctx {
            paths: vec![path.to_string()],
        })
    });
    engine.register_fn("ctx", move |ctx: NativeCallContext, paths: Array| -> Res<Ctx> {
        let pos = ctx.call_position();
        let paths = strings(&paths, "ctx paths", pos)?;
        if paths.is_empty() {
            return Err(runtime(pos, "ctx needs at least one path"));
        }
        for p in &paths {
            check_ctx_path(p, pos)?;
        }
        Ok(Ctx { paths })
    });
    engine.register_fn(
        "path",
        move |ctx: NativeCallContext, state: &mut State, path: &str| -> Res<PathRef> {
            check_image_path(path, "state path", ctx.call_position())?;
            Ok(PathRef {
                node: state.node,
                path: path.to_string(),
            })
        },
    );

    // `state.copy(SOURCE, DST)` and `state.copy(SOURCE, DST, #{…})`, for each kind of source.
    register_copy(engine, rec, |src: Ctx| {
        let desc = format!("ctx({})", quote_list(&src.paths));
        let source = CopySource::Context {
            paths: src.paths,
            exclude: Vec::new(),
        };
        (source, desc)
    });
    register_copy(engine, rec, |src: PathRef| {
        let desc = format!("<state>.path({})", quote(&src.path));
        let source = CopySource::State {
            node: src.node,
            path: src.path,
        };
        (source, desc)
    });
    register_copy(engine, rec, |src: Fetched| {
        let desc = match &src.sha256 {
            Some(h) => format!("fetch({}, #{{sha256: {}}})", quote(&src.url), quote(h)),
            None => format!("fetch({})", quote(&src.url)),
        };
        let source = CopySource::Fetch {
            url: src.url,
            sha256: src.sha256,
        };
        (source, desc)
    });
    register_copy(engine, rec, |src: Text| {
        let shown: String = src.content.chars().take(40).collect();
        let desc = format!("text({})", quote(&shown));
        (CopySource::Text { content: src.content }, desc)
    });
    engine.register_fn("fetch", move |ctx: NativeCallContext, url: &str| -> Res<Fetched> {
        fetched(url, Map::new(), ctx.call_position())
    });
    engine.register_fn(
        "fetch",
        move |ctx: NativeCallContext, url: &str, opts: Map| -> Res<Fetched> { fetched(url, opts, ctx.call_position()) },
    );
    engine.register_fn("text", |content: &str| Text {
        content: content.to_string(),
    });
    // `state.mkdir(path)`, `state.mkdir(path, #{ chown, chmod })`: a directory and its parents.
    let r = rec.clone();
    engine.register_fn(
        "mkdir",
        move |ctx: NativeCallContext, s: &mut State, path: &str| -> Res<State> {
            copy(&r, &ctx, s, CopySource::Mkdir, String::new(), path, Map::new())
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "mkdir",
        move |ctx: NativeCallContext, s: &mut State, path: &str, opts: Map| -> Res<State> {
            copy(&r, &ctx, s, CopySource::Mkdir, String::new(), path, opts)
        },
    );
    let r = rec.clone();
    engine.register_fn("run", move |ctx: NativeCallContext, s: &mut State, cmd: Dynamic| {
        run(&r, &ctx, s, cmd, Map::new())
    });
    let r = rec.clone();
    engine.register_fn(
        "run",
        move |ctx: NativeCallContext, s: &mut State, cmd: Dynamic, opts: Map| run(&r, &ctx, s, cmd, opts),
    );
}

/// Registers `state.copy(src, dst)` and `state.copy(src, dst, #{…})` for
/// sources of type `T`; `source` gives the copy's source and how its
/// description shows it.
fn register_copy<T: rhai::Variant + Clone>(engine: &mut Engine, rec: &Shared, source: fn(T) -> (CopySource, String)) {
    let r = rec.clone();
    engine.register_fn(
        "copy",
        move |ctx: NativeCallContext, s: &mut State, src: T, dst: &str| -> Res<State> {
            let (src, desc) = source(src);
            copy(&r, &ctx, s, src, desc, dst, Map::new())
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "copy",
        move |ctx: NativeCallContext, s: &mut State, src: T, dst: &str, opts: Map| -> Res<State> {
            let (src, desc) = source(src);
            copy(&r, &ctx, s, src, desc, dst, opts)
        },
    );
}

/// `fetch(url, #{ sha256 })`: an http(s) URL and an optional SHA-256 (hex,
/// or `sha256:hex`).
fn fetched(url: &str, opts: Map, pos: rhai::Position) -> Res<Fetched> {
    check_options(&opts, &["sha256"], "fetch", pos)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(runtime(
            pos,
            format!("fetch takes an http:// or https:// URL, not `{url}`"),
        ));
    }
    let sha256 = match opts.get("sha256") {
        None => None,
        Some(v) => {
            let hex = v.to_string();
            let hex = hex.strip_prefix("sha256:").unwrap_or(&hex).to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(runtime(pos, format!("fetch `sha256` is 64 hex digits, not `{v}`")));
            }
            Some(hex)
        }
    };
    Ok(Fetched {
        url: url.to_string(),
        sha256,
    })
}
