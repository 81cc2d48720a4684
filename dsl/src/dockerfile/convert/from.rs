//! FROM: a stage's head (an image, `scratch`, an earlier stage, or one an
//! ARG names) and the ONBUILD triggers it runs.

use std::collections::{BTreeMap, BTreeSet};

use super::super::parse::Instruction;
use super::{ident, Converter, Stage, Val, DEFAULT_PATH};
use crate::dockerfile::ir::Expr;
use crate::dockerfile::DockerfileError;
use strata_engine::image::Platform;

impl Converter<'_> {
    /// Runs a base's (or a parent stage's) ONBUILD triggers at the start of
    /// the stage just begun, as BuildKit does, then drops them from the
    /// stage's configuration (they are not inherited by grandchildren).
    pub(super) fn dispatch_triggers(
        &mut self,
        triggers: &[String],
        line: usize,
        from: &str,
    ) -> Result<(), DockerfileError> {
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
        self.call("no_onbuild", Vec::new(), line);
        Ok(())
    }

    pub(super) fn from(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
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
        let with_platform = |mut args: Vec<Expr>| -> Vec<Expr> {
            if let Some(p) = &platform {
                args.push(Expr::Map(vec![("platform".into(), Expr::str(p))]));
            }
            args
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
                    head: Expr::Var(parent.var.clone()),
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
                    _ if scratch => Expr::call("scratch", with_platform(Vec::new())),
                    // An ARG names the image or an earlier stage: which one is
                    // known when the recipe runs.
                    Val::Expr(e) if !named.is_empty() => Expr::Choose {
                        key: Box::new(e.clone()),
                        cases: named
                            .iter()
                            .map(|(name, var)| (name.clone(), Expr::Var(var.clone())))
                            .collect(),
                        otherwise: Box::new(Expr::call("from", with_platform(vec![e.clone()]))),
                    },
                    _ => Expr::call("from", with_platform(vec![image.expr()])),
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
            self.call("env", vec![Expr::str("PATH"), Expr::str(DEFAULT_PATH)], ins.line);
            self.call("workdir", vec![Expr::str("/")], ins.line);
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
}
