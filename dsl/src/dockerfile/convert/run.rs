//! RUN: the command (exec or shell form, heredocs), its network, security
//! and mounts (cache, bind, tmpfs, secret, ssh), and the build args it sees.

use std::collections::BTreeMap;

use super::super::parse::{self, Instruction};
use super::Converter;
use crate::dockerfile::ir::Expr;
use crate::dockerfile::DockerfileError;

/// A secret's or an agent socket's `mode`, `uid`, `gid` and `required` as
/// recipe options. As BuildKit, one the build is not given is left out
/// unless required; `uid` and `gid` are numbers, anything else an error.
fn access_options(
    fields: &BTreeMap<String, String>,
    m: &mut Vec<(String, Expr)>,
    line: usize,
    what: &str,
) -> Result<(), DockerfileError> {
    for key in ["mode", "uid", "gid"] {
        if let Some(v) = fields.get(key) {
            let value = match key {
                "mode" => Expr::str(v),
                _ => Expr::Int(v.parse::<u32>().map(i64::from).map_err(|_| {
                    DockerfileError::at(line, format!("RUN --mount=type={what},{key}={v}: not a number"))
                })?),
            };
            m.push((key.to_string(), value));
        }
    }
    let required = fields.get("required").is_some_and(|v| v == "true");
    m.push(("required".into(), Expr::Bool(required)));
    Ok(())
}

impl Converter<'_> {
    pub(super) fn run(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let mut options: Vec<(String, Expr)> = Vec::new();
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
                    "insecure" => options.push(("security".into(), Expr::str("insecure"))),
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
                            let mut m = vec![("target".to_string(), Expr::str(&target))];
                            if let Some(id) = fields.get("id") {
                                m.push(("id".into(), Expr::str(id)));
                            }
                            if let Some(sharing) = fields.get("sharing") {
                                m.push(("sharing".into(), Expr::str(sharing)));
                            }
                            caches.push(Expr::Map(m));
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
                                    state.method("path", vec![Expr::str(&source)])
                                }
                                // The build context: its files in a state of their own.
                                None => self.context_state(source.as_deref().unwrap_or("."), ins.line)?,
                            };
                            mounts.push(Expr::Map(vec![
                                ("source".into(), from),
                                ("target".into(), Expr::str(&target)),
                            ]));
                        }
                        "tmpfs" => {
                            let target =
                                target.ok_or_else(|| Self::err(ins.line, "RUN --mount=type=tmpfs needs target="))?;
                            let target = self.absolute(&target, ins.line)?;
                            let mut m = vec![("target".to_string(), Expr::str(&target))];
                            if let Some(size) = fields.get("size").or_else(|| fields.get("tmpfs-size")) {
                                m.push(("size".into(), Expr::str(size)));
                            }
                            tmpfs.push(Expr::Map(m));
                        }
                        "secret" => {
                            let Some(id) = fields.get("id").cloned() else {
                                return Err(Self::err(ins.line, "RUN --mount=type=secret needs id="));
                            };
                            if fields.contains_key("env") {
                                return Err(Self::err(ins.line, "RUN --mount=type=secret,env= is not supported yet"));
                            }
                            let mut m = vec![("id".to_string(), Expr::str(&id))];
                            if let Some(target) = &target {
                                m.push(("target".into(), Expr::str(target)));
                            }
                            access_options(&fields, &mut m, ins.line, "secret")?;
                            secrets.push(Expr::Map(m));
                        }
                        "ssh" => {
                            if fields.contains_key("source") || fields.contains_key("src") {
                                return Err(Self::err(ins.line, "RUN --mount=type=ssh takes no source"));
                            }
                            let id = fields.get("id").cloned().unwrap_or_else(|| "default".into());
                            let mut m = vec![("id".to_string(), Expr::str(&id))];
                            if let Some(target) = &target {
                                m.push(("target".into(), Expr::str(self.absolute(target, ins.line)?)));
                            }
                            access_options(&fields, &mut m, ins.line, "ssh")?;
                            ssh.push(Expr::Map(m));
                        }
                        other => return Err(Self::err(ins.line, format!("RUN --mount=type={other} is unknown"))),
                    }
                }
                other => return Err(Self::err(ins.line, format!("RUN does not take --{other}"))),
            }
        }
        if network {
            options.insert(0, ("network".into(), Expr::str("host")));
        }
        let any_mount =
            !caches.is_empty() || !mounts.is_empty() || !tmpfs.is_empty() || !secrets.is_empty() || !ssh.is_empty();
        for (key, list) in [
            ("cache", caches),
            ("mounts", mounts),
            ("secrets", secrets),
            ("ssh", ssh),
            ("tmpfs", tmpfs),
        ] {
            if !list.is_empty() {
                options.push((key.into(), Expr::Array(list)));
            }
        }
        if any_mount {
            // BuildKit leaves the mount points in the layer (the directories
            // made for a secret or an agent socket, not the file).
            options.push(("keep_mount_points".into(), Expr::Bool(true)));
        }
        // Build args in scope reach the command as environment variables.
        let stage = self.stages.last().expect("a stage");
        let env: Vec<(String, Expr)> = stage
            .args
            .iter()
            .filter(|(k, _)| !stage.env.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.expr()))
            .collect();
        if !env.is_empty() {
            options.insert(0, ("env".into(), Expr::Map(env)));
        }
        let command = match parse::json_array(&ins.args) {
            Some(argv) if ins.heredocs.is_empty() => Expr::strings(&argv),
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
                        script.push_str(&format!("\n{}{}", h.content, h.name));
                    }
                }
                let shell = &stage.shell;
                if shell == &["/bin/sh", "-c"] {
                    Expr::str(script)
                } else {
                    let mut items = shell.clone();
                    items.push(script);
                    Expr::strings(&items)
                }
            }
        };
        self.call("run", Expr::with_options(vec![command], options), ins.line);
        Ok(())
    }

    /// A state holding `source` of the build context, and the path of it
    /// to mount: a directory's contents at `/`, a file under its name.
    pub(super) fn context_state(&self, source: &str, line: usize) -> Result<Expr, DockerfileError> {
        let clean = source.trim_start_matches("./").trim_end_matches('/');
        let copied = |what: &str, at: &str| {
            Expr::call("scratch", Vec::new())
                .method("copy", vec![Expr::call("ctx", vec![Expr::str(what)]), Expr::str(at)])
                .method("path", vec![Expr::str(at)])
        };
        if clean.is_empty() || clean == "." {
            return Ok(copied(".", "/"));
        }
        let is_dir = self
            .opts
            .context
            .map(|c| c.join(clean).is_dir())
            .ok_or_else(|| Self::err(line, "a bind mount of the build context needs the context's directory"))?;
        if is_dir {
            Ok(copied(clean, "/"))
        } else {
            let name = clean.rsplit('/').next().unwrap_or(clean);
            Ok(copied(clean, &format!("/{name}")))
        }
    }
}
