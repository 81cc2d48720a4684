//! A converted Dockerfile evaluated: each call of the [`Program`] is a call
//! of the recipe function of that name (`from`, `run`, `copy`, …, as the
//! Rhai engine has them registered), with its arguments as values. The
//! Dockerfile's text is never parsed as recipe code, so no value can be
//! more than the string it is. Each call records its nodes at the
//! Dockerfile line it came from.

use std::collections::HashMap;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, AST};

use super::ir::{Expr, Program, Stmt};
use crate::recorder::Shared;

/// What went wrong, at a Dockerfile line (0: none).
pub struct Failed {
    pub line: usize,
    pub error: Box<EvalAltResult>,
}

/// Evaluates `program` with `engine`'s recipe functions, recording into `rec`.
pub fn run(engine: &Engine, rec: &Shared, program: &Program) -> Result<(), Failed> {
    let mut eval = Eval {
        engine,
        ast: AST::empty(),
        rec,
        vars: HashMap::new(),
    };
    for stmt in &program.stmts {
        match stmt {
            Stmt::Comment(_) | Stmt::Blank => {}
            Stmt::Let { var, value, line } => {
                let v = eval.at(*line, |e| e.eval(value))?;
                eval.vars.insert(var.clone(), v);
            }
            Stmt::Do { value, line } => {
                let _ = eval.at(*line, |e| e.eval(value))?;
            }
            Stmt::Stage { var, head, line, steps } => {
                let mut state = eval.at(*line, |e| e.eval(head))?;
                for step in steps {
                    state = eval.at(step.line, |e| {
                        let mut args = vec![state.clone()];
                        for a in &step.args {
                            args.push(e.eval(a)?);
                        }
                        e.call(step.method, args)
                    })?;
                }
                eval.vars.insert(var.clone(), state);
            }
        }
    }
    rec.borrow_mut().line = None;
    Ok(())
}

struct Eval<'a> {
    engine: &'a Engine,
    ast: AST,
    rec: &'a Shared,
    vars: HashMap<String, Dynamic>,
}

fn error(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), rhai::Position::NONE))
}

impl Eval<'_> {
    /// Runs `f` with the recorder's origin at `line`; an error gets the line.
    fn at(
        &mut self,
        line: usize,
        f: impl FnOnce(&mut Self) -> Result<Dynamic, Box<EvalAltResult>>,
    ) -> Result<Dynamic, Failed> {
        self.rec.borrow_mut().line = Some(line as u32);
        f(self).map_err(|error| Failed { line, error })
    }

    fn call(&self, name: &str, args: Vec<Dynamic>) -> Result<Dynamic, Box<EvalAltResult>> {
        FnPtr::new(name)?.call::<Dynamic>(self.engine, &self.ast, args)
    }

    fn text(&mut self, e: &Expr) -> Result<String, Box<EvalAltResult>> {
        let v = self.eval(e)?;
        v.clone()
            .into_immutable_string()
            .map(|s| s.to_string())
            .map_err(|found| error(format!("expected a string, found a {found}")))
    }

    fn eval(&mut self, e: &Expr) -> Result<Dynamic, Box<EvalAltResult>> {
        Ok(match e {
            Expr::Str(s) => Dynamic::from(ImmutableString::from(s.as_str())),
            Expr::Int(n) => Dynamic::from(*n),
            Expr::Bool(b) => Dynamic::from(*b),
            Expr::Var(v) => self
                .vars
                .get(v)
                .cloned()
                .ok_or_else(|| error(format!("internal error: no variable `{v}`")))?,
            Expr::Call(name, args) => {
                let args = args.iter().map(|a| self.eval(a)).collect::<Result<Vec<_>, _>>()?;
                self.call(name, args)?
            }
            Expr::Method(recv, name, args) => {
                let mut all = vec![self.eval(recv)?];
                for a in args {
                    all.push(self.eval(a)?);
                }
                self.call(name, all)?
            }
            Expr::Field(recv, name) => {
                let map = self
                    .eval(recv)?
                    .try_cast::<Map>()
                    .ok_or_else(|| error(format!("internal error: `.{name}` of something that is not a map")))?;
                map.get(*name).cloned().unwrap_or(Dynamic::UNIT)
            }
            Expr::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    map.insert(k.as_str().into(), self.eval(v)?);
                }
                Dynamic::from_map(map)
            }
            Expr::Array(items) => {
                Dynamic::from_array(items.iter().map(|i| self.eval(i)).collect::<Result<Vec<_>, _>>()?)
            }
            Expr::Concat(parts) => {
                let mut out = String::new();
                for p in parts {
                    out.push_str(&self.text(p)?);
                }
                Dynamic::from(ImmutableString::from(out))
            }
            Expr::IfEmpty { value, then, otherwise } => match self.text(value)?.is_empty() {
                true => self.eval(then)?,
                false => self.eval(otherwise)?,
            },
            Expr::Choose { key, cases, otherwise } => {
                let key = self.text(key)?.to_lowercase();
                match cases.iter().find(|(name, _)| *name == key) {
                    Some((_, value)) => self.eval(value)?,
                    None => self.eval(otherwise)?,
                }
            }
        })
    }
}
