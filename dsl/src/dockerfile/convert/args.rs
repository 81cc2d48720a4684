//! ARG: global and stage build args, each a recipe variable read with
//! `arg()`, and the platform values BuildKit predefines.

use std::collections::BTreeMap;

use super::super::parse::Instruction;
use super::super::words;
use super::{ident, Converter, Val};
use crate::dockerfile::ir::{Expr, Stmt};
use crate::dockerfile::DockerfileError;
use strata_engine::image::Platform;

/// The platform values BuildKit predefines, as the recipe reads them
/// (`target_platform().arch`, …), so one recipe serves every platform.
pub(super) fn platform_args() -> BTreeMap<String, Val> {
    let mut m = BTreeMap::new();
    for (prefix, f) in [("TARGET", "target_platform"), ("BUILD", "build_platform")] {
        for (suffix, field) in [
            ("PLATFORM", "platform"),
            ("OS", "os"),
            ("ARCH", "arch"),
            ("VARIANT", "variant"),
        ] {
            m.insert(
                format!("{prefix}{suffix}"),
                Val::Expr(Expr::Field(Box::new(Expr::call(f, Vec::new())), field)),
            );
        }
    }
    m
}

/// Their values in this conversion (for a FROM line read before the build).
pub(super) fn platform_lits(target: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target.clone()), ("BUILD", Platform::host())] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default());
    }
    m
}

impl Converter<'_> {
    /// `ARG` values: `(name, default, default as written)`.
    #[allow(clippy::type_complexity)]
    pub(super) fn arg_pairs(
        &self,
        ins: &Instruction,
    ) -> Result<Vec<(String, Option<Val>, Option<String>)>, DockerfileError> {
        let mut out = Vec::new();
        for word in words::split_quoted(&ins.args, self.df.escape) {
            let (name, default) = match word.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (word.clone(), None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Self::err(ins.line, format!("ARG: `{name}` is not a valid name")));
            }
            let value = match &default {
                Some(d) => Some(self.word(d, ins.line, self.stages.last())?),
                None => None,
            };
            out.push((name, value, default));
        }
        if out.is_empty() {
            return Err(Self::err(ins.line, "ARG needs a name"));
        }
        Ok(out)
    }

    /// A recipe variable holding `--arg NAME`, else `default`.
    pub(super) fn arg_var(&mut self, name: &str, default: &Val, line: usize) -> Val {
        let var = self.unique(ident(name));
        self.arg_vars.insert(var.clone());
        self.arg_lines.push(Stmt::Let {
            var: var.clone(),
            value: Expr::call("arg", vec![Expr::str(name), default.expr()]),
            line,
        });
        Val::Expr(Expr::Var(var))
    }

    pub(super) fn global_arg(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        for (name, default, raw) in self.arg_pairs(ins)? {
            let literal = match (self.opts.args.and_then(|a| a.get(&name)), &raw) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(raw)) => self.literal_word(raw, ins.line),
                (None, None) => Some(String::new()),
            };
            match literal {
                Some(v) => self.global_lits.insert(name.clone(), v),
                None => self.global_lits.remove(&name),
            };
            let default = default.unwrap_or(Val::Lit(String::new()));
            let value = match platform_args().get(&name) {
                Some(v) if default == Val::Lit(String::new()) => v.clone(),
                _ => self.arg_var(&name, &default, ins.line),
            };
            self.global_args.insert(name, value);
        }
        Ok(())
    }

    pub(super) fn stage_arg(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        for (name, default, _) in self.arg_pairs(ins)? {
            let value = match (
                default,
                self.global_args.get(&name).cloned(),
                platform_args().get(&name),
            ) {
                // `ARG NAME` brings in the global ARG's value.
                (None, Some(global), _) => global,
                (None, None, Some(platform)) => platform.clone(),
                (default, _, _) => {
                    let default = default.unwrap_or(Val::Lit(String::new()));
                    self.arg_var(&name, &default, ins.line)
                }
            };
            self.stage().args.insert(name, value);
        }
        Ok(())
    }
}
