//! Image configuration: `env`, `workdir`, `user`, `cmd`, `entrypoint`,
//! `expose`, `label`, `volume`, `stop_signal`. Each adds a metadata node
//! (no layer; an `empty_layer` history entry).
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
//!     .stop_signal("SIGINT");
//! ```

use rhai::{Dynamic, Engine, Map, NativeCallContext};
use strata_engine::graph::{MetaChange, Op};

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
            let change = if expand {
                MetaChange::EnvExpand(pairs)
            } else {
                MetaChange::Env(pairs)
            };
            Ok(meta(&r, &ctx, s, change, desc))
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
            let change = if expand {
                MetaChange::EnvExpand(pairs)
            } else {
                MetaChange::Env(pairs)
            };
            Ok(meta(&r, &ctx, s, change, desc))
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
