//! The end of a conversion: the program's statements, the image of each
//! final stage (or of `--target`), the default group.

use std::collections::BTreeSet;

use super::{Converted, Converter};
use crate::dockerfile::ir::{Expr, Program, Stmt};
use crate::dockerfile::DockerfileError;

impl Converter<'_> {
    pub(super) fn finish(self) -> Result<Converted, DockerfileError> {
        if self.stages.is_empty() {
            return Err(Self::err(1, "no FROM: a Dockerfile needs at least one stage"));
        }
        let mut stmts = vec![Stmt::Comment(format!(
            "Converted from {} by `strata convert`.",
            self.opts.source_name
        ))];
        stmts.extend(self.arg_lines.iter().cloned());
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
            stmts.push(Stmt::Blank);
            stmts.push(Stmt::Stage {
                var: stage.var.clone(),
                head: stage.head.clone(),
                line: stage.head_line,
                steps: stage.calls.clone(),
            });
        }
        stmts.push(Stmt::Blank);
        let mut images = Vec::new();
        for (i, stage) in self.stages.iter().enumerate() {
            let wanted = match target {
                Some(t) => i == t,
                None => !used.contains(&i),
            };
            if wanted {
                let name = stage.name.clone().unwrap_or_else(|| stage.var.clone());
                stmts.push(Stmt::Do {
                    value: Expr::call("image", vec![Expr::str(&name), Expr::Var(stage.var.clone())]),
                    line: stage.head_line,
                });
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
            stmts.push(Stmt::Do {
                value: Expr::call("group", vec![Expr::str("default"), Expr::strings(&[default])]),
                line: 0,
            });
        }
        Ok(Converted {
            program: Program { stmts },
            warnings: self.warnings,
        })
    }
}
