//! Image configuration: `env`, `workdir`, `user`, `cmd`, `entrypoint`,
//! `expose`, `label`, `volume`, `stop_signal`, and Docker's `healthcheck`,
//! `shell` and `onbuild`. Each adds a metadata node (no layer; an
//! `empty_layer` history entry).
//!
//! ```rhai
//! let app = scratch()
//!     .env("PATH", "/bin")
//!     .workdir("/srv")
//!     .user("1000:1000")
//!     .entrypoint(["/bin/app"])
//!     .cmd(["--port", "8080"])
//!     .expose(8080)
//!     .label("org.opencontainers.image.title", "app")
//!     .volume("/data")
//!     .stop_signal("SIGINT")
//!     .healthcheck(["/bin/app", "--check"], #{ interval: "30s", timeout: "3s", retries: 3 })
//!     .shell(["/bin/sh", "-eu", "-c"])
//!     .onbuild("RUN /bin/app --prepare");
//! ```

use rhai::{Dynamic, Engine, Map, NativeCallContext};
use strata_engine::graph::{Healthcheck, MetaChange, Op};

use super::{argv, quote, quote_list, State};
use crate::recorder::{runtime, Shared};

type Res<T> = Result<T, Box<rhai::EvalAltResult>>;

fn meta(rec: &Shared, ctx: &NativeCallContext, state: &State, change: MetaChange, desc: String) -> State {
    State {
        node: rec.borrow_mut().add(ctx, Op::Meta(change), Some(state.node), desc),
    }
}

fn check_env_name(name: &str, pos: rhai::Position) -> Res<()> {
    if name.is_empty() || name.contains('=') {
        return Err(runtime(
            pos,
            format!("`{name}` is not a valid environment variable name"),
        ));
    }
    Ok(())
}

pub fn register(engine: &mut Engine, rec: &Shared) {
    let r = rec.clone();
    engine.register_fn(
        "env",
        move |ctx: NativeCallContext, s: &mut State, k: &str, v: Dynamic| -> Res<State> {
            check_env_name(k, ctx.call_position())?;
            let v = v.to_string();
            let desc = format!("env({}, {})", quote(k), quote(&v));
            Ok(meta(&r, &ctx, s, MetaChange::Env(vec![(k.to_string(), v)]), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "env",
        move |ctx: NativeCallContext, s: &mut State, vars: Map| -> Res<State> {
            let mut pairs = Vec::new();
            for (k, v) in vars {
                check_env_name(&k, ctx.call_position())?;
                pairs.push((k.to_string(), v.to_string()));
            }
            let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {}", quote(v))).collect();
            let desc = format!("env(#{{{}}})", shown.join(", "));
            Ok(meta(&r, &ctx, s, MetaChange::Env(pairs), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "env",
        move |ctx: NativeCallContext, s: &mut State, k: &str, v: Dynamic, opts: Map| -> Res<State> {
            check_env_name(k, ctx.call_position())?;
            let expand = expand_option(&opts, ctx.call_position())?;
            let v = v.to_string();
            let desc = format!("env({}, {}, #{{expand: {expand}}})", quote(k), quote(&v));
            let pairs = vec![(k.to_string(), v)];
            Ok(meta(&r, &ctx, s, env_change(pairs, expand), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "env",
        move |ctx: NativeCallContext, s: &mut State, vars: Map, opts: Map| -> Res<State> {
            let expand = expand_option(&opts, ctx.call_position())?;
            let mut pairs = Vec::new();
            for (k, v) in vars {
                check_env_name(&k, ctx.call_position())?;
                pairs.push((k.to_string(), v.to_string()));
            }
            let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {}", quote(v))).collect();
            let desc = format!("env(#{{{}}}, #{{expand: {expand}}})", shown.join(", "));
            Ok(meta(&r, &ctx, s, env_change(pairs, expand), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "workdir",
        move |ctx: NativeCallContext, s: &mut State, dir: &str| -> Res<State> {
            if dir.is_empty() {
                return Err(runtime(ctx.call_position(), "workdir must not be empty"));
            }
            Ok(meta(
                &r,
                &ctx,
                s,
                MetaChange::Workdir(dir.into()),
                format!("workdir({})", quote(dir)),
            ))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "user",
        move |ctx: NativeCallContext, s: &mut State, user: Dynamic| -> Res<State> {
            let user = user.to_string();
            if user.is_empty() {
                return Err(runtime(ctx.call_position(), "user must not be empty"));
            }
            Ok(meta(
                &r,
                &ctx,
                s,
                MetaChange::User(user.clone()),
                format!("user({})", quote(&user)),
            ))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "cmd",
        move |ctx: NativeCallContext, s: &mut State, cmd: Dynamic| -> Res<State> {
            let argv = argv(cmd, "cmd", ctx.call_position())?;
            let desc = format!("cmd({})", quote_list(&argv));
            Ok(meta(&r, &ctx, s, MetaChange::Cmd(argv), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "entrypoint",
        move |ctx: NativeCallContext, s: &mut State, cmd: Dynamic| -> Res<State> {
            let argv = argv(cmd, "entrypoint", ctx.call_position())?;
            let desc = format!("entrypoint({})", quote_list(&argv));
            Ok(meta(&r, &ctx, s, MetaChange::Entrypoint(argv), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "expose",
        move |ctx: NativeCallContext, s: &mut State, port: Dynamic| -> Res<State> {
            let pos = ctx.call_position();
            let text = port.to_string();
            let (num, proto) = text.split_once('/').unwrap_or((&text, "tcp"));
            let valid = num.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp" | "sctp");
            if !valid {
                return Err(runtime(
                    pos,
                    format!("expose takes a port like 80 or \"53/udp\", not `{text}`"),
                ));
            }
            let port = format!("{num}/{proto}");
            Ok(meta(
                &r,
                &ctx,
                s,
                MetaChange::Expose(port.clone()),
                format!("expose({})", quote(&port)),
            ))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "label",
        move |ctx: NativeCallContext, s: &mut State, k: &str, v: Dynamic| -> State {
            let v = v.to_string();
            let desc = format!("label({}, {})", quote(k), quote(&v));
            meta(&r, &ctx, s, MetaChange::Label(k.into(), v), desc)
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "volume",
        move |ctx: NativeCallContext, s: &mut State, path: &str| -> Res<State> {
            if !path.starts_with('/') {
                return Err(runtime(
                    ctx.call_position(),
                    format!("volume `{path}` must be an absolute path"),
                ));
            }
            Ok(meta(
                &r,
                &ctx,
                s,
                MetaChange::Volume(path.into()),
                format!("volume({})", quote(path)),
            ))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "stop_signal",
        move |ctx: NativeCallContext, s: &mut State, sig: Dynamic| -> Res<State> {
            let sig = sig.to_string();
            if sig.is_empty() {
                return Err(runtime(ctx.call_position(), "stop_signal must not be empty"));
            }
            Ok(meta(
                &r,
                &ctx,
                s,
                MetaChange::StopSignal(sig.clone()),
                format!("stop_signal({})", quote(&sig)),
            ))
        },
    );
}

fn env_change(pairs: Vec<(String, String)>, expand: bool) -> MetaChange {
    if expand {
        MetaChange::EnvExpand(pairs)
    } else {
        MetaChange::Env(pairs)
    }
}

/// `#{ expand: true }`: env values read the state's environment (`${NAME}`).
fn expand_option(opts: &Map, pos: rhai::Position) -> Res<bool> {
    if let Some(other) = opts.keys().find(|k| k.as_str() != "expand") {
        return Err(runtime(pos, format!("env takes the option `expand`, not `{other}`")));
    }
    match opts.get("expand") {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| runtime(pos, "env option `expand` must be true or false")),
    }
}

/// The health check, Docker's Healthcheck options and the shell and trigger
/// settings.
pub fn register_docker(engine: &mut Engine, rec: &Shared) {
    let r = rec.clone();
    engine.register_fn(
        "healthcheck",
        move |ctx: NativeCallContext, s: &mut State, test: Dynamic| -> Res<State> {
            healthcheck(&r, &ctx, s, test, Map::new())
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "healthcheck",
        move |ctx: NativeCallContext, s: &mut State, test: Dynamic, opts: Map| -> Res<State> {
            healthcheck(&r, &ctx, s, test, opts)
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "no_healthcheck",
        move |ctx: NativeCallContext, s: &mut State| -> Res<State> {
            Ok(meta(
                &r,
                &ctx,
                s,
                MetaChange::Healthcheck(None),
                "no_healthcheck()".into(),
            ))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "shell",
        move |ctx: NativeCallContext, s: &mut State, shell: rhai::Array| -> Res<State> {
            let shell = super::strings(&shell, "shell", ctx.call_position())?;
            if shell.is_empty() {
                return Err(runtime(ctx.call_position(), "shell must not be empty"));
            }
            let desc = format!("shell({})", quote_list(&shell));
            Ok(meta(&r, &ctx, s, MetaChange::Shell(shell), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "onbuild",
        move |ctx: NativeCallContext, s: &mut State, trigger: &str| -> Res<State> {
            if trigger.trim().is_empty() {
                return Err(runtime(ctx.call_position(), "onbuild needs an instruction"));
            }
            let desc = format!("onbuild({})", quote(trigger));
            Ok(meta(&r, &ctx, s, MetaChange::OnBuild(trigger.to_string()), desc))
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "no_onbuild",
        move |ctx: NativeCallContext, s: &mut State| -> Res<State> {
            Ok(meta(&r, &ctx, s, MetaChange::NoOnBuild, "no_onbuild()".into()))
        },
    );
}

fn healthcheck(rec: &Shared, ctx: &NativeCallContext, s: &State, test: Dynamic, opts: Map) -> Res<State> {
    let pos = ctx.call_position();
    // A string is a shell command (CMD-SHELL), a list an argv (CMD).
    let test = if test.is_string() {
        vec!["CMD-SHELL".to_string(), test.to_string()]
    } else {
        let argv = argv(test, "healthcheck", pos)?;
        std::iter::once("CMD".to_string()).chain(argv).collect()
    };
    let mut check = Healthcheck {
        test,
        ..Default::default()
    };
    for (k, v) in &opts {
        let duration = || -> Res<u64> {
            parse_duration(&v.to_string()).ok_or_else(|| {
                runtime(
                    pos,
                    format!("healthcheck `{k}` is a duration like \"30s\" or \"1m30s\", not `{v}`"),
                )
            })
        };
        match k.as_str() {
            "interval" => check.interval = Some(duration()?),
            "timeout" => check.timeout = Some(duration()?),
            "start_period" => check.start_period = Some(duration()?),
            "start_interval" => check.start_interval = Some(duration()?),
            "retries" => {
                check.retries = Some(
                    v.as_int()
                        .ok()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| runtime(pos, "healthcheck `retries` is a number"))?,
                )
            }
            other => {
                return Err(runtime(
                    pos,
                    format!(
                        "healthcheck takes interval, timeout, start_period, start_interval and retries, not `{other}`"
                    ),
                ))
            }
        }
    }
    let mut desc = format!("healthcheck({}", quote_list(&check.test));
    if !opts.is_empty() {
        let shown: Vec<String> = opts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        desc.push_str(&format!(", #{{{}}}", shown.join(", ")));
    }
    desc.push(')');
    Ok(meta(rec, ctx, s, MetaChange::Healthcheck(Some(check)), desc))
}

/// `30s`, `1m30s`, `500ms`, `1h` in nanoseconds (Go's duration syntax, as Docker's flags).
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add((number * scale).round() as u64)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_docker_writes_them() {
        assert_eq!(super::parse_duration("30s"), Some(30_000_000_000));
        assert_eq!(super::parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(super::parse_duration("500ms"), Some(500_000_000));
        assert_eq!(super::parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(super::parse_duration("0"), Some(0));
        assert_eq!(super::parse_duration("30"), None);
        assert_eq!(super::parse_duration("3x"), None);
    }
}
