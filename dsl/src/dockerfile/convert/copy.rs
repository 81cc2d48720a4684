//! COPY and ADD: context files, another stage's paths, URLs (fetched by
//! checksum or pinned), archives ADD unpacks, and heredoc files.

use super::super::parse::{self, Instruction};
use super::super::words;
use super::{Converter, Val};
use crate::dockerfile::ir::Expr;
use crate::dockerfile::DockerfileError;

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

impl Converter<'_> {
    /// The recipe value for `--from=X`: a stage's variable, or an image.
    pub(super) fn state_of(&mut self, from: &str, line: usize) -> Result<Expr, DockerfileError> {
        let from_val = self.word(from, line, None)?;
        let Val::Lit(from) = from_val else {
            return Ok(Expr::call("from", vec![from_val.expr()]));
        };
        let lower = from.to_ascii_lowercase();
        let here = self.stages.len() - 1;
        let index = self.stages[..here]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| from.parse::<usize>().ok().filter(|i| *i < here));
        match index {
            Some(i) => {
                self.stage().uses.insert(i);
                Ok(Expr::Var(self.stages[i].var.clone()))
            }
            None if from.parse::<usize>().is_ok() => {
                Err(Self::err(line, format!("--from={from}: no earlier stage {from}")))
            }
            None => Ok(Expr::call("from", vec![Expr::str(&from)])),
        }
    }

    pub(super) fn copy(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let add = ins.command == "ADD";
        let mut from = None;
        let mut options: Vec<(String, Expr)> = Vec::new();
        let mut parents = false;
        let mut checksum: Option<String> = None;
        let mut exclude: Vec<Expr> = Vec::new();
        for (flag, value) in &ins.flags {
            match (flag.as_str(), value) {
                ("from", Some(v)) if !add => from = Some(v.clone()),
                ("chown", Some(v)) => {
                    let v = self.word(v, ins.line, self.stages.last())?;
                    options.push(("chown".into(), v.expr()));
                }
                ("chmod", Some(v)) => options.push(("chmod".into(), Expr::str(v))),
                ("checksum", Some(v)) if add => {
                    let hex = v
                        .strip_prefix("sha256:")
                        .ok_or_else(|| Self::err(ins.line, format!("ADD --checksum={v}: only sha256:HEX checksums")))?;
                    checksum = Some(hex.to_string());
                }
                ("link", _) => {}
                ("parents", None) => parents = true,
                ("parents", Some(v)) if v == "true" => parents = true,
                ("parents", Some(v)) if v == "false" => {}
                ("exclude", Some(v)) => {
                    let v = self.word(v, ins.line, self.stages.last())?;
                    exclude.push(v.expr());
                }
                ("from" | "chown" | "chmod" | "checksum" | "exclude", None) => {
                    return Err(Self::err(ins.line, format!("{} --{flag} needs a value", ins.command)))
                }
                ("keep-git-dir", _) => {
                    return Err(Self::err(
                        ins.line,
                        format!(
                            "{} --keep-git-dir: ADD of git repositories is not supported yet",
                            ins.command
                        ),
                    ))
                }
                (other, _) => return Err(Self::err(ins.line, format!("{} does not take --{other}", ins.command))),
            }
        }
        if !ins.heredocs.is_empty() {
            return self.copy_heredocs(ins, &options);
        }
        let raw: Vec<String> = match parse::json_array(&ins.args) {
            Some(items) => items,
            None => ins.args.split_whitespace().map(str::to_string).collect(),
        };
        if raw.len() < 2 {
            return Err(Self::err(
                ins.line,
                format!("{} needs a source and a destination", ins.command),
            ));
        }
        let mut vals = Vec::new();
        for w in &raw {
            vals.push(self.word(w, ins.line, self.stages.last())?);
        }
        let dest = vals.pop().expect("a destination");
        if from.is_some() && !exclude.is_empty() {
            return Err(Self::err(ins.line, "COPY --from with --exclude is not supported yet"));
        }
        if parents {
            options.push(("parents".into(), Expr::Bool(true)));
        }
        if !exclude.is_empty() {
            options.push(("exclude".into(), Expr::Array(exclude)));
        }
        match from {
            Some(from) => {
                let state = self.state_of(&from, ins.line)?;
                for src in &vals {
                    let source = state.clone().method("path", vec![src.expr()]);
                    self.call(
                        "copy",
                        Expr::with_options(vec![source, dest.expr()], options.clone()),
                        ins.line,
                    );
                }
            }
            None => {
                for src in &vals {
                    if let Val::Lit(s) = src {
                        let git = s.starts_with("git@") || s.ends_with(".git") || s.contains(".git#");
                        if add && git {
                            return Err(Self::err(
                                ins.line,
                                format!("ADD of a git repository (`{s}`) is not supported yet"),
                            ));
                        }
                        if add && s.contains("://") && !is_url(s) {
                            return Err(Self::err(ins.line, format!("ADD from `{s}`: only http(s) URLs")));
                        }
                    }
                }
                // URLs are fetched (pinned by their checksum, or in strata.lock).
                let (urls, vals): (Vec<&Val>, Vec<&Val>) =
                    vals.iter().partition(|v| matches!(v, Val::Lit(s) if add && is_url(s)));
                for url in urls {
                    let fetch = match &checksum {
                        Some(sum) => Expr::call(
                            "fetch",
                            vec![url.expr(), Expr::Map(vec![("sha256".into(), Expr::str(sum))])],
                        ),
                        None => Expr::call("fetch", vec![url.expr()]),
                    };
                    self.call(
                        "copy",
                        Expr::with_options(vec![fetch, dest.expr()], options.clone()),
                        ins.line,
                    );
                }
                if vals.is_empty() {
                    return Ok(());
                }
                let sources: Vec<Expr> = vals.iter().map(|v| v.expr()).collect();
                let ctx = match sources.len() {
                    1 => Expr::call("ctx", sources),
                    _ => Expr::call("ctx", vec![Expr::Array(sources)]),
                };
                // ADD unpacks a local archive (known by its content); other files it copies.
                let mut options = options;
                if add {
                    options.push(("extract".into(), Expr::Bool(true)));
                }
                self.call("copy", Expr::with_options(vec![ctx, dest.expr()], options), ins.line);
            }
        }
        Ok(())
    }

    /// `COPY <<EOF /file` (and several: `COPY <<A <<B /dir/`): each heredoc
    /// is a file, named after its delimiter in a directory destination.
    pub(super) fn copy_heredocs(
        &mut self,
        ins: &Instruction,
        options: &[(String, Expr)],
    ) -> Result<(), DockerfileError> {
        let words: Vec<&str> = ins.args.split_whitespace().collect();
        let Some((dest, sources)) = words.split_last() else {
            return Err(Self::err(ins.line, format!("{} needs a destination", ins.command)));
        };
        if sources.iter().any(|w| !w.starts_with("<<")) {
            return Err(Self::err(
                ins.line,
                format!(
                    "{} of heredocs and other sources at once is not supported yet",
                    ins.command
                ),
            ));
        }
        let dest = self.word(dest, ins.line, self.stages.last())?;
        let into_dir = ins.heredocs.len() > 1 || matches!(&dest, Val::Lit(d) if d.ends_with('/'));
        for doc in &ins.heredocs {
            // An unquoted delimiter: the content's variables are the stage's.
            let content = if doc.expand {
                let parts = words::lex_heredoc(&doc.content)
                    .map_err(|e| Self::err(ins.line, format!("heredoc `<<{}`: {e}", doc.name)))?;
                self.parts(&parts, ins.line, self.stages.last())?
            } else {
                Val::Lit(doc.content.clone())
            };
            let target = if into_dir {
                Val::concat(vec![
                    dest.clone(),
                    Val::Lit(if matches!(&dest, Val::Lit(d) if d.ends_with('/')) {
                        doc.name.clone()
                    } else {
                        format!("/{}", doc.name)
                    }),
                ])
            } else {
                dest.clone()
            };
            let source = Expr::call("text", vec![content.expr()]);
            self.call(
                "copy",
                Expr::with_options(vec![source, target.expr()], options.to_vec()),
                ins.line,
            );
        }
        Ok(())
    }
}
