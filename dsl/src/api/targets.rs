//! Targets and arguments: `image`, `artifact`, `group`, `arg`.
//!
//! ```rhai
//! let greeting = arg("greeting", "hello");
//! let app = scratch().label("greeting", greeting);
//! image("app", app, #{ tags: ["example/app:latest"] });
//! artifact("files", app.path("/"));
//! group("all", ["app", "files"]);
//! ```

use rhai::{Array, Engine, Map, NativeCallContext};
use strata_engine::graph::{Target, TargetKind};

use super::{check_options, strings, PathRef, State};
use crate::recorder::{runtime, Shared};

type Res<T> = Result<T, Box<rhai::EvalAltResult>>;

fn check_name(name: &str, pos: rhai::Position) -> Res<()> {
    // An artifact's name becomes a directory under --out-dir: `.` and `..` never.
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(runtime(
            pos,
            format!("target name `{name}` may only use letters, digits, `-`, `_` and `.`, and is not `.` or `..`"),
        ));
    }
    Ok(())
}

/// Validates an image reference used as a tag (`name[:tag]`, lowercase repository).
fn check_tag(tag: &str, pos: rhai::Position) -> Res<()> {
    if !valid_tag(tag) {
        return Err(runtime(
            pos,
            format!("`{tag}` is not a valid image name (lowercase `repo/name:tag`)"),
        ));
    }
    Ok(())
}

/// True for an image name a target may be tagged with (`repo/name[:tag]`,
/// lowercase repository), in a recipe or by `strata build --tag`.
pub fn valid_tag(tag: &str) -> bool {
    let (repo, version) = match tag.rsplit_once(':') {
        Some((r, v)) if !v.contains('/') => (r, Some(v)),
        _ => (tag, None),
    };
    let repo_ok = !repo.is_empty()
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | ':'))
        });
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.len() <= 128
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    repo_ok && version_ok
}

fn image(rec: &Shared, ctx: &NativeCallContext, name: &str, state: &State, opts: Map) -> Res<()> {
    let pos = ctx.call_position();
    check_name(name, pos)?;
    check_options(&opts, &["tags"], "image", pos)?;
    let tags = match opts.get("tags") {
        None => vec![name.to_lowercase()],
        Some(v) => {
            let arr = v
                .clone()
                .into_array()
                .map_err(|_| runtime(pos, "image option `tags` must be a list of strings"))?;
            strings(&arr, "image tags", pos)?
        }
    };
    for tag in &tags {
        check_tag(tag, pos)?;
    }
    let mut r = rec.borrow_mut();
    let origin = r.origin(ctx);
    r.add_target(
        ctx,
        Target {
            platform: None,
            name: name.into(),
            kind: TargetKind::Image { node: state.node, tags },
            origin,
        },
    )
}

pub fn register(engine: &mut Engine, rec: &Shared) {
    let r = rec.clone();
    engine.register_fn("image", move |ctx: NativeCallContext, name: &str, state: State| {
        image(&r, &ctx, name, &state, Map::new())
    });
    let r = rec.clone();
    engine.register_fn(
        "image",
        move |ctx: NativeCallContext, name: &str, state: State, opts: Map| image(&r, &ctx, name, &state, opts),
    );
    let r = rec.clone();
    engine.register_fn(
        "artifact",
        move |ctx: NativeCallContext, name: &str, path: PathRef| -> Res<()> {
            check_name(name, ctx.call_position())?;
            let mut rec = r.borrow_mut();
            let origin = rec.origin(&ctx);
            let kind = TargetKind::Artifact {
                node: path.node,
                path: path.path,
            };
            rec.add_target(
                &ctx,
                Target {
                    platform: None,
                    name: name.into(),
                    kind,
                    origin,
                },
            )
        },
    );
    let r = rec.clone();
    engine.register_fn(
        "group",
        move |ctx: NativeCallContext, name: &str, members: Array| -> Res<()> {
            let pos = ctx.call_position();
            check_name(name, pos)?;
            let members = strings(&members, "group members", pos)?;
            let mut rec = r.borrow_mut();
            for m in &members {
                if rec.graph.target(m).is_none() {
                    return Err(runtime(
                        pos,
                        format!(
                            "group `{name}` names `{m}`, which is not defined (yet); define targets before the group"
                        ),
                    ));
                }
            }
            let origin = rec.origin(&ctx);
            rec.add_target(
                &ctx,
                Target {
                    platform: None,
                    name: name.into(),
                    kind: TargetKind::Group { members },
                    origin,
                },
            )
        },
    );
    let r = rec.clone();
    engine.register_fn("arg", move |name: &str, default: &str| -> String {
        r.borrow_mut().args_read.insert(name.to_string());
        r.borrow()
            .args
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    });
}
