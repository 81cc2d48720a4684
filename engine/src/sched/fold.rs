//! Folding node results into image states: a layer node appends its
//! layers and a history entry, a metadata node changes the config (an
//! `empty_layer` history entry). Pure functions of the parent's config.

use super::Scheduler;
use crate::fsview;
use crate::graph::{MetaChange, Node, Op};
use crate::image::{self, Empty, History, ImageConfig};
use crate::store::{Record, State};

impl Scheduler<'_> {
    fn history(&self, node: &Node, empty_layer: bool) -> History {
        History {
            created: Some(image::rfc3339(self.opts.epoch)),
            created_by: Some(node.description.clone()),
            comment: Some("strata".into()),
            empty_layer,
            ..History::default()
        }
    }

    pub(super) fn fold_layer(&self, node: &Node, parent: Option<State>, record: &Record) -> State {
        match (&node.op, &record.config) {
            (Op::Base(_), Some(config)) => State::new(config.clone()),
            _ => {
                let mut config = parent
                    .map(|p| p.config)
                    .unwrap_or_else(|| ImageConfig::empty_for(&node.platform));
                config.created = Some(image::rfc3339(self.opts.epoch));
                for layer in &record.layers {
                    config.rootfs.diff_ids.push(layer.diff_id.clone());
                    config.history.push(self.history(node, false));
                }
                State::new(config)
            }
        }
    }

    pub(super) fn fold_meta(&self, node: &Node, parent: Option<State>) -> State {
        let (mut config, mut env_index) = match parent {
            Some(p) => (p.config, p.env_index),
            None => (ImageConfig::empty_for(&node.platform), None),
        };
        config.created = Some(image::rfc3339(self.opts.epoch));
        let c = &mut config.config;
        match &node.op {
            Op::Scratch => return State::new(config),
            Op::Meta(change) => match change {
                MetaChange::Env(pairs) | MetaChange::EnvExpand(pairs) => {
                    let expand = matches!(change, MetaChange::EnvExpand(_));
                    let mut env = c.env.take().unwrap_or_default();
                    // Values read the environment as it was before this step
                    // (copied only when a value has something to expand).
                    let before = (expand && pairs.iter().any(|(_, v)| v.contains('$'))).then(|| env.clone());
                    let index = env_index.get_or_insert_with(|| index_env(&env));
                    for (k, v) in pairs {
                        let v = match &before {
                            Some(before) => expand_env(v, before),
                            None => v.clone(),
                        };
                        // As BuildKit: a variable set again keeps its place.
                        let kv = format!("{k}={v}");
                        match index.get(k) {
                            Some(&at) => env[at] = kv,
                            None => {
                                index.insert(k.clone(), env.len());
                                env.push(kv);
                            }
                        }
                    }
                    c.env = Some(env);
                }
                MetaChange::Workdir(dir) => {
                    // As BuildKit: an absolute path is kept as written (a
                    // trailing slash too), a relative one joined and cleaned.
                    let base = c.working_dir.clone().unwrap_or_else(|| "/".into());
                    c.working_dir = Some(if dir.starts_with('/') {
                        dir.clone()
                    } else {
                        fsview::join_image_path(&base, dir)
                    });
                }
                MetaChange::User(user) => c.user = Some(user.clone()),
                MetaChange::Cmd(argv) => c.cmd = Some(argv.clone()),
                MetaChange::Entrypoint(argv) => {
                    c.entrypoint = Some(argv.clone());
                    // As in Docker, a new entrypoint resets an inherited cmd.
                    c.cmd = None;
                }
                MetaChange::Expose(port) => {
                    c.exposed_ports
                        .get_or_insert_with(Default::default)
                        .insert(port.clone(), Empty {});
                }
                MetaChange::Label(k, v) => {
                    c.labels
                        .get_or_insert_with(Default::default)
                        .insert(k.clone(), v.clone());
                }
                MetaChange::Volume(path) => {
                    c.volumes
                        .get_or_insert_with(Default::default)
                        .insert(path.clone(), Empty {});
                }
                MetaChange::StopSignal(sig) => c.stop_signal = Some(sig.clone()),
                MetaChange::Healthcheck(None) => {
                    c.healthcheck = Some(image::Healthcheck {
                        test: Some(vec!["NONE".into()]),
                        ..Default::default()
                    })
                }
                MetaChange::Healthcheck(Some(h)) => {
                    c.healthcheck = Some(image::Healthcheck {
                        test: Some(h.test.clone()),
                        interval: h.interval,
                        timeout: h.timeout,
                        start_period: h.start_period,
                        start_interval: h.start_interval,
                        retries: h.retries,
                    })
                }
                MetaChange::Shell(argv) => c.shell = Some(argv.clone()),
                MetaChange::OnBuild(trigger) => c.on_build.get_or_insert_with(Vec::new).push(trigger.clone()),
                MetaChange::NoOnBuild => c.on_build = None,
            },
            _ => unreachable!("layer ops are folded by fold_layer"),
        }
        config.history.push(self.history(node, true));
        State { config, env_index }
    }
}

/// Where each variable of `env` (`NAME=value` strings) is, by name (the
/// last, when one appears twice).
fn index_env(env: &[String]) -> std::collections::HashMap<String, usize> {
    env.iter()
        .enumerate()
        .map(|(i, kv)| (kv.split_once('=').map_or(kv.as_str(), |(name, _)| name).to_string(), i))
        .collect()
}

/// `${NAME}` in `value` replaced by NAME's value in `env` (`NAME=value`
/// strings; empty when unset), `$$` by `$`; any other `$` stays.
pub fn expand_env(value: &str, env: &[String]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or("")
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('{').and_then(|a| a.split_once('}')) {
            out.push_str(lookup(name));
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn expansion_reads_the_environment_before_the_step() {
        let env = vec!["PATH=/usr/bin:/bin".to_string(), "EMPTY=".to_string()];
        assert_eq!(super::expand_env("/go/bin:${PATH}", &env), "/go/bin:/usr/bin:/bin");
        assert_eq!(super::expand_env("a${UNSET}b${EMPTY}c", &env), "abc");
        assert_eq!(super::expand_env("cost $$5 and $HOME", &env), "cost $5 and $HOME");
    }
}
