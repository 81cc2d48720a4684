//! The instructions that change the image's configuration: ENV, LABEL,
//! WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL, SHELL,
//! HEALTHCHECK, ONBUILD.

use super::super::parse::{self, Instruction};
use super::super::words::{self, Part};
use super::{Converter, Val};
use crate::dockerfile::ir::Expr;
use crate::dockerfile::DockerfileError;

impl Converter<'_> {
    /// `KEY=VALUE` pairs (ENV, LABEL), or the old `KEY VALUE` form.
    pub(super) fn pairs(&self, ins: &Instruction) -> Result<Vec<(String, String)>, DockerfileError> {
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

    pub(super) fn env(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
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
        // One call per pair, in the instruction's order (a map would sort them).
        for (k, v) in &set {
            let options = match expand {
                true => vec![("expand".to_string(), Expr::Bool(true))],
                false => Vec::new(),
            };
            self.call(
                "env",
                Expr::with_options(vec![Expr::str(k), v.expr()], options),
                ins.line,
            );
        }
        Ok(())
    }

    pub(super) fn env_values(
        &self,
        pairs: &[(String, String)],
        line: usize,
    ) -> Result<Vec<(String, Val)>, DockerfileError> {
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

    pub(super) fn healthcheck(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let args = ins.args.trim();
        if args.eq_ignore_ascii_case("NONE") {
            if !ins.flags.is_empty() {
                return Err(Self::err(ins.line, "HEALTHCHECK NONE takes no options"));
            }
            self.call("no_healthcheck", Vec::new(), ins.line);
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
            Some(argv) => Expr::strings(&argv),
            None => Expr::str(command),
        };
        let mut options: Vec<(String, Expr)> = Vec::new();
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
                options.push((key, Expr::Int(n.min(i64::MAX as u64) as i64)));
            } else {
                options.push((key, Expr::str(&value)));
            }
        }
        self.call("healthcheck", Expr::with_options(vec![test], options), ins.line);
        Ok(())
    }

    /// CMD and ENTRYPOINT: the exec form as it is, the shell form through the stage's shell.
    pub(super) fn command_form(&self, ins: &Instruction) -> Expr {
        match parse::json_array(&ins.args) {
            Some(argv) => Expr::strings(&argv),
            None => {
                let stage = self.stages.last().expect("a stage");
                let mut items = stage.shell.clone();
                items.push(ins.args.clone());
                Expr::strings(&items)
            }
        }
    }

    pub(super) fn configure(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let line = ins.line;
        match ins.command.as_str() {
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
                self.call("workdir", vec![dir.expr()], line);
                // As BuildKit, the directory is made, owned by the stage's USER.
                let at = match &dir {
                    Val::Lit(d) if d.starts_with('/') => dir.expr(),
                    _ => Expr::str("."),
                };
                let options = match self.stage().user.clone() {
                    Some(user) => vec![("chown".to_string(), user.expr())],
                    None => Vec::new(),
                };
                self.call("mkdir", Expr::with_options(vec![at], options), line);
            }
            "USER" => {
                let user = self.word(ins.args.trim(), line, self.stages.last())?;
                self.call("user", vec![user.expr()], line);
                self.stage().user = Some(user);
            }
            "CMD" => {
                let argv = self.command_form(ins);
                self.call("cmd", vec![argv.clone()], line);
                self.stage().cmd_set = Some(argv);
            }
            "ENTRYPOINT" => {
                let argv = self.command_form(ins);
                self.call("entrypoint", vec![argv], line);
                // BuildKit resets only a CMD the stage did not set itself.
                if let Some(cmd) = self.stage().cmd_set.clone() {
                    self.call("cmd", vec![cmd], line);
                }
            }
            "EXPOSE" => {
                for port in ins.args.split_whitespace() {
                    let port = self.word(port, line, self.stages.last())?;
                    self.call("expose", vec![port.expr()], line);
                }
            }
            "VOLUME" => {
                let paths = parse::json_array(&ins.args)
                    .unwrap_or_else(|| ins.args.split_whitespace().map(str::to_string).collect());
                for p in paths {
                    let p = self.word(&p, line, self.stages.last())?;
                    self.call("volume", vec![p.expr()], line);
                }
            }
            "LABEL" => {
                for (k, v) in self.pairs(ins)? {
                    let k = self.word(&k, line, self.stages.last())?;
                    let v = self.word(&v, line, self.stages.last())?;
                    self.call("label", vec![k.expr(), v.expr()], line);
                }
            }
            "STOPSIGNAL" => {
                let sig = self.word(ins.args.trim(), line, self.stages.last())?;
                self.call("stop_signal", vec![sig.expr()], line);
            }
            "SHELL" => {
                let shell = parse::json_array(&ins.args).filter(|s| !s.is_empty()).ok_or_else(|| {
                    Self::err(line, "SHELL takes a JSON array: SHELL [\"executable\", \"parameters\"]")
                })?;
                self.call("shell", vec![Expr::strings(&shell)], line);
                self.stage().shell = shell;
            }
            "MAINTAINER" => self.warnings.push(format!(
                "line {line}: MAINTAINER is deprecated and left out (use LABEL maintainer=…)"
            )),
            "ONBUILD" => {
                let trigger = ins.args.trim();
                let word = trigger.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if ["ONBUILD", "FROM", "MAINTAINER", ""].contains(&word.as_str()) {
                    return Err(Self::err(line, format!("ONBUILD cannot take `{word}`")));
                }
                self.call("onbuild", vec![Expr::str(trigger)], line);
                self.stage().onbuild.push(trigger.to_string());
            }
            other => return Err(Self::err(line, format!("unknown instruction `{other}`"))),
        }
        Ok(())
    }
}
