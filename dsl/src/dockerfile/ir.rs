//! A converted Dockerfile as data: `let` bindings and calls whose every
//! value is a literal, a variable or a call of a recipe function, never
//! source text. `strata build` evaluates it by calling the recipe
//! functions themselves (the same ones a recipe calls, registered in the
//! Rhai engine), so a Dockerfile's values reach them as strings, whatever
//! characters they hold, and no generated code is ever evaluated.
//! `strata convert` prints it as a recipe: the printer quotes every string,
//! and tests hold the printed recipe to the graph the data makes.

use std::fmt::Write as _;

/// A value of the converted recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Str(String),
    Int(i64),
    Bool(bool),
    /// A recipe variable: a stage's state, an ARG's value.
    Var(String),
    /// A recipe function: `from(…)`, `arg(…)`, `ctx(…)`, `target_platform()`.
    Call(&'static str, Vec<Expr>),
    /// A method of a value: `state.path(…)`, `name.to_lower()`.
    Method(Box<Expr>, &'static str, Vec<Expr>),
    /// A field of a map: `target_platform().arch`.
    Field(Box<Expr>, &'static str),
    Map(Vec<(String, Expr)>),
    Array(Vec<Expr>),
    /// Strings joined.
    Concat(Vec<Expr>),
    /// `then` when `value` is the empty string, else `otherwise` (a
    /// variable's `${NAME:-word}` decided when the recipe runs).
    IfEmpty {
        value: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// The first case whose name is `key` (lowercased), else `otherwise`:
    /// `FROM ${ARG}` naming an earlier stage or an image.
    Choose {
        key: Box<Expr>,
        cases: Vec<(String, Expr)>,
        otherwise: Box<Expr>,
    },
}

impl Expr {
    pub fn str(s: impl Into<String>) -> Expr {
        Expr::Str(s.into())
    }

    pub fn call(name: &'static str, args: Vec<Expr>) -> Expr {
        Expr::Call(name, args)
    }

    pub fn method(self, name: &'static str, args: Vec<Expr>) -> Expr {
        Expr::Method(Box::new(self), name, args)
    }

    /// A list of strings.
    pub fn strings<S: AsRef<str>>(items: &[S]) -> Expr {
        Expr::Array(items.iter().map(|s| Expr::str(s.as_ref())).collect())
    }

    /// `args` with `options` as a last map argument when there are any.
    pub fn with_options(mut args: Vec<Expr>, options: Vec<(String, Expr)>) -> Vec<Expr> {
        if !options.is_empty() {
            args.push(Expr::Map(options));
        }
        args
    }
}

/// A call in a stage's chain: a method of the state, and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub method: &'static str,
    pub args: Vec<Expr>,
    pub line: usize,
}

/// One statement of the program, with the Dockerfile line it came from (0: none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    Comment(String),
    Blank,
    /// `let var = value;`
    Let {
        var: String,
        value: Expr,
        line: usize,
    },
    /// `let var = head` then each step of the chain on the state.
    Stage {
        var: String,
        head: Expr,
        line: usize,
        steps: Vec<Step>,
    },
    /// A call for its effect: `image(…)`, `group(…)`.
    Do {
        value: Expr,
        line: usize,
    },
}

/// The converted Dockerfile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub stmts: Vec<Stmt>,
}

/// A Rhai string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                write!(out, "\\u{:04x}", c as u32).expect("write to a string");
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A map key: bare when it is an identifier, quoted otherwise.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && !super::convert::is_reserved(k);
    if plain {
        k.to_string()
    } else {
        quote(k)
    }
}

impl Expr {
    /// The recipe text of this value.
    pub fn to_rhai(&self) -> String {
        match self {
            Expr::Str(s) => quote(s),
            Expr::Int(n) => n.to_string(),
            Expr::Bool(b) => b.to_string(),
            Expr::Var(v) => v.clone(),
            Expr::Call(name, args) => format!("{name}({})", list(args)),
            Expr::Method(recv, name, args) => format!("{}.{name}({})", recv.to_rhai(), list(args)),
            Expr::Field(recv, name) => format!("{}.{name}", recv.to_rhai()),
            Expr::Map(entries) if entries.is_empty() => "#{}".into(),
            Expr::Map(entries) => {
                let items: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", key(k), v.to_rhai()))
                    .collect();
                format!("#{{ {} }}", items.join(", "))
            }
            Expr::Array(items) => format!("[{}]", list(items)),
            Expr::Concat(parts) => parts.iter().map(Expr::to_rhai).collect::<Vec<_>>().join(" + "),
            Expr::IfEmpty { value, then, otherwise } => format!(
                "(if {} == \"\" {{ {} }} else {{ {} }})",
                value.to_rhai(),
                then.to_rhai(),
                otherwise.to_rhai()
            ),
            Expr::Choose { key, cases, otherwise } => {
                let mut chain = String::from("(");
                let key = key.to_rhai();
                for (i, (name, value)) in cases.iter().enumerate() {
                    let keyword = if i == 0 { "if" } else { " else if" };
                    write!(
                        chain,
                        "{keyword} ({key}).to_lower() == {} {{ {} }}",
                        quote(name),
                        value.to_rhai()
                    )
                    .expect("write to a string");
                }
                write!(chain, " else {{ {} }})", otherwise.to_rhai()).expect("write to a string");
                chain
            }
        }
    }
}

fn list(items: &[Expr]) -> String {
    items.iter().map(Expr::to_rhai).collect::<Vec<_>>().join(", ")
}

impl Program {
    /// The recipe text, and for each of its lines (0-based) the Dockerfile
    /// line it came from (0: none).
    pub fn to_rhai(&self) -> (String, Vec<usize>) {
        let mut lines: Vec<(String, usize)> = Vec::new();
        for stmt in &self.stmts {
            match stmt {
                Stmt::Comment(text) => lines.push((format!("// {text}"), 0)),
                Stmt::Blank => lines.push((String::new(), 0)),
                Stmt::Let { var, value, line } => lines.push((format!("let {var} = {};", value.to_rhai()), *line)),
                Stmt::Stage { var, head, line, steps } if steps.is_empty() => {
                    lines.push((format!("let {var} = {};", head.to_rhai()), *line))
                }
                Stmt::Stage { var, head, line, steps } => {
                    lines.push((format!("let {var} = {}", head.to_rhai()), *line));
                    for (i, step) in steps.iter().enumerate() {
                        let end = if i + 1 == steps.len() { ";" } else { "" };
                        lines.push((format!("    .{}({}){end}", step.method, list(&step.args)), step.line));
                    }
                }
                Stmt::Do { value, line } => lines.push((format!("{};", value.to_rhai()), *line)),
            }
        }
        let text = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
        (text, lines.into_iter().map(|(_, n)| n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_quoted_whatever_it_holds() {
        for hostile in [
            "\"); image(\"pwn\", scratch()); (\"",
            "`${x}`",
            "${ \"}",
            "}\n\nlet x = 1;\n{",
            "#{secrets:[#{id:\"s\"}+#{file:\"/host/file\"}]}",
            "a\\\"b",
            "\u{0}\u{1b}[2J",
        ] {
            let printed = Expr::str(hostile).to_rhai();
            let engine = rhai::Engine::new();
            let back: String = engine.eval(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(back, hostile, "{printed}");
        }
    }

    #[test]
    fn a_program_prints_as_a_recipe_with_its_lines() {
        let program = Program {
            stmts: vec![
                Stmt::Comment("Converted".into()),
                Stmt::Let {
                    var: "v".into(),
                    value: Expr::call("arg", vec![Expr::str("V"), Expr::str("1")]),
                    line: 2,
                },
                Stmt::Stage {
                    var: "s".into(),
                    head: Expr::call("scratch", vec![]),
                    line: 3,
                    steps: vec![Step {
                        method: "env",
                        args: vec![
                            Expr::str("A"),
                            Expr::Concat(vec![Expr::str("x"), Expr::Var("v".into())]),
                        ],
                        line: 4,
                    }],
                },
                Stmt::Do {
                    value: Expr::call("image", vec![Expr::str("s"), Expr::Var("s".into())]),
                    line: 3,
                },
            ],
        };
        let (text, lines) = program.to_rhai();
        assert_eq!(
            text,
            "// Converted\nlet v = arg(\"V\", \"1\");\nlet s = scratch()\n    .env(\"A\", \"x\" + v);\nimage(\"s\", s);\n"
        );
        assert_eq!(lines, [0, 2, 3, 4, 3]);
    }
}
