//! Docker's word rules: splitting `ENV`/`LABEL`/`ARG` arguments into
//! words that keep their quotes, and the shell-like lexer that removes the
//! quotes and finds the variables (`$VAR`, `${VAR}`, `${VAR:-word}`,
//! `${VAR:+word}`, `${VAR-word}`, `${VAR+word}`) of one word.

/// One piece of a processed word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var {
        name: String,
        /// `:-`, `-`, `:+` or `+` with its word.
        op: Option<(String, Vec<Part>)>,
    },
}

/// Splits on unquoted whitespace, keeping quotes and escapes in the words
/// (BuildKit's `parseWords`).
pub fn split_quoted(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            word.push(c);
            if let Some(n) = chars.next() {
                word.push(n);
            }
            continue;
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
                word.push(c);
            }
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                word.push(c);
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Lexes one word: quotes removed, escapes applied, variables found.
pub fn lex(word: &str, escape: char) -> Result<Vec<Part>, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut pos = 0;
    let parts = lex_until(&chars, &mut pos, escape, None, 0)?;
    Ok(merge(parts))
}

/// Lexes a heredoc's content as the shell reads an unquoted heredoc: only
/// `$` expansions (and `\$`, `\\`) are special; quotes are text.
pub fn lex_heredoc(content: &str) -> Result<Vec<Part>, String> {
    let chars: Vec<char> = content.chars().collect();
    let mut parts = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let c = chars[pos];
        pos += 1;
        match c {
            '\\' if matches!(chars.get(pos), Some('$' | '\\')) => {
                push_lit(&mut parts, chars[pos]);
                pos += 1;
            }
            '$' => parts.push(variable(&chars, &mut pos, '\\', 0)?),
            c => push_lit(&mut parts, c),
        }
    }
    Ok(merge(parts))
}

fn push_lit(parts: &mut Vec<Part>, c: char) {
    if let Some(Part::Lit(s)) = parts.last_mut() {
        s.push(c);
    } else {
        parts.push(Part::Lit(c.to_string()));
    }
}

fn merge(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match (out.last_mut(), p) {
            (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    out
}

/// Lexes until `end` (the `}` of an operator's word) or the end.
/// How deep `${A:-${B:-…}}` may nest: far past any Dockerfile's need, and
/// far from the stack's end.
pub const MAX_NESTING: usize = 32;

fn lex_until(
    chars: &[char],
    pos: &mut usize,
    escape: char,
    end: Option<char>,
    depth: usize,
) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    while *pos < chars.len() {
        let c = chars[*pos];
        if Some(c) == end {
            return Ok(parts);
        }
        *pos += 1;
        match c {
            c if c == escape => {
                if *pos < chars.len() {
                    push_lit(&mut parts, chars[*pos]);
                    *pos += 1;
                }
            }
            '\'' => loop {
                match chars.get(*pos) {
                    None => return Err("unterminated single quote".into()),
                    Some('\'') => {
                        *pos += 1;
                        break;
                    }
                    Some(&q) => {
                        push_lit(&mut parts, q);
                        *pos += 1;
                    }
                }
            },
            '"' => loop {
                match chars.get(*pos) {
                    None => return Err("unterminated double quote".into()),
                    Some('"') => {
                        *pos += 1;
                        break;
                    }
                    Some(&e) if e == escape => {
                        // Inside double quotes the escape only escapes `"`, `$` and itself.
                        match chars.get(*pos + 1) {
                            Some(&n) if n == '"' || n == '$' || n == escape => {
                                push_lit(&mut parts, n);
                                *pos += 2;
                            }
                            _ => {
                                push_lit(&mut parts, e);
                                *pos += 1;
                            }
                        }
                    }
                    Some('$') => {
                        *pos += 1;
                        parts.push(variable(chars, pos, escape, depth)?);
                    }
                    Some(&q) => {
                        push_lit(&mut parts, q);
                        *pos += 1;
                    }
                }
            },
            '$' => parts.push(variable(chars, pos, escape, depth)?),
            c => push_lit(&mut parts, c),
        }
    }
    if let Some(e) = end {
        return Err(format!("missing `{e}`"));
    }
    Ok(parts)
}

/// After a `$`: the variable, or a literal `$` when no name follows.
fn variable(chars: &[char], pos: &mut usize, escape: char, depth: usize) -> Result<Part, String> {
    if depth >= MAX_NESTING {
        return Err(format!("variables nested more than {MAX_NESTING} deep"));
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.get(*pos) {
        Some('{') => {
            *pos += 1;
            let start = *pos;
            while chars.get(*pos).is_some_and(|&c| name_char(c)) {
                *pos += 1;
            }
            let name: String = chars[start..*pos].iter().collect();
            if name.is_empty() {
                return Err("bad substitution: `${` without a name".into());
            }
            match chars.get(*pos) {
                Some('}') => {
                    *pos += 1;
                    Ok(Part::Var { name, op: None })
                }
                Some(':') if matches!(chars.get(*pos + 1), Some('-' | '+')) => {
                    let op = format!(":{}", chars[*pos + 1]);
                    *pos += 2;
                    let word = lex_until(chars, pos, escape, Some('}'), depth + 1)?;
                    *pos += 1;
                    Ok(Part::Var {
                        name,
                        op: Some((op, merge(word))),
                    })
                }
                Some(&c @ ('-' | '+')) => {
                    *pos += 1;
                    let word = lex_until(chars, pos, escape, Some('}'), depth + 1)?;
                    *pos += 1;
                    Ok(Part::Var {
                        name,
                        op: Some((c.to_string(), merge(word))),
                    })
                }
                Some(c) => Err(format!("unsupported modifier `{c}` in `${{{name}…}}`")),
                None => Err(format!("missing `}}` after `${{{name}`")),
            }
        }
        Some(&c) if name_char(c) && !c.is_ascii_digit() => {
            let start = *pos;
            while chars.get(*pos).is_some_and(|&c| name_char(c)) {
                *pos += 1;
            }
            Ok(Part::Var {
                name: chars[start..*pos].iter().collect(),
                op: None,
            })
        }
        _ => Ok(Part::Lit("$".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded_with_an_error_not_a_stack_overflow() {
        let deep = format!("{}x{}", "${A:-".repeat(20_000), "}".repeat(20_000));
        assert_eq!(
            lex(&deep, '\\').unwrap_err(),
            format!("variables nested more than {MAX_NESTING} deep")
        );
        let fine = format!("{}x{}", "${A:-".repeat(8), "}".repeat(8));
        assert!(lex(&fine, '\\').is_ok());
    }

    fn lit(s: &str) -> Part {
        Part::Lit(s.into())
    }
    fn var(s: &str) -> Part {
        Part::Var {
            name: s.into(),
            op: None,
        }
    }

    #[test]
    fn a_heredoc_expands_variables_and_keeps_quotes() {
        assert_eq!(
            lex_heredoc("say \"$WHO\" ${N:-1} \\$HOME 'x'\n").unwrap(),
            vec![
                lit("say \""),
                var("WHO"),
                lit("\" "),
                Part::Var {
                    name: "N".into(),
                    op: Some((":-".into(), vec![lit("1")]))
                },
                lit(" $HOME 'x'\n")
            ]
        );
    }

    #[test]
    fn words_keep_their_quotes_until_lexed() {
        assert_eq!(
            split_quoted(r#"A="a b" B=c\ d C='x y'"#, '\\'),
            vec![r#"A="a b""#, r"B=c\ d", "C='x y'"]
        );
    }

    #[test]
    fn the_lexer_removes_quotes_and_finds_variables() {
        assert_eq!(lex(r#""a b"'c$d'\$e"#, '\\').unwrap(), vec![lit("a bc$d$e")]);
        assert_eq!(
            lex("/opt/$NAME/${VER}x", '\\').unwrap(),
            vec![lit("/opt/"), var("NAME"), lit("/"), var("VER"), lit("x")]
        );
        assert_eq!(lex(r#""$A""#, '\\').unwrap(), vec![var("A")]);
        assert_eq!(
            lex("${A:-/usr/$B}", '\\').unwrap(),
            vec![Part::Var {
                name: "A".into(),
                op: Some((":-".into(), vec![lit("/usr/"), var("B")]))
            }]
        );
        assert_eq!(
            lex("${A+set}", '\\').unwrap(),
            vec![Part::Var {
                name: "A".into(),
                op: Some(("+".into(), vec![lit("set")]))
            }]
        );
        // A `$` with no name after it is itself.
        assert_eq!(lex("a$ $1", '\\').unwrap(), vec![lit("a$ $1")]);
        assert!(lex("${A", '\\').is_err());
        assert!(lex("'open", '\\').is_err());
    }
}
