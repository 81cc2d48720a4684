//! The Dockerfile's lines into instructions, as BuildKit's parser reads
//! them: parser directives (`# escape=`, `# syntax=`) at the top, comments,
//! line continuations with the escape character, `--flag=value` options,
//! the JSON (exec) form, and heredocs (`<<EOF`, `<<-EOF`, quoted
//! delimiters) for RUN, COPY and ADD.

use super::DockerfileError;

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the instruction's first line.
    pub line: usize,
    /// Upper case: `RUN`, `COPY`, …
    pub command: String,
    /// `--name=value` options before the arguments (`--name` alone has no value).
    pub flags: Vec<(String, Option<String>)>,
    /// The rest of the (joined) line.
    pub args: String,
    pub heredocs: Vec<Heredoc>,
}

/// A heredoc: `<<NAME` in the arguments, its lines after the instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// An unquoted delimiter: variables in the content are expanded (by the shell, for RUN).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from each line.
    pub strip_tabs: bool,
}

/// The parsed file: its directives and instructions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
}

const HEREDOC_COMMANDS: [&str; 3] = ["RUN", "COPY", "ADD"];
const FLAG_COMMANDS: [&str; 5] = ["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"];

pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Dockerfile {
        escape: '\\',
        ..Default::default()
    };
    let mut i = 0;
    // Directives: `# key=value` lines before anything else.
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        match key.as_str() {
            "escape" => {
                out.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(DockerfileError::at(
                            i + 1,
                            format!("invalid escape directive `{other}`: it must be \\ or `"),
                        ))
                    }
                }
            }
            "syntax" => out.syntax = Some(value),
            _ => {}
        }
        i += 1;
    }
    let escape = out.escape;
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        if is_blank_or_comment(first) {
            continue;
        }
        // Join continuation lines; comment lines inside are dropped, as are
        // empty ones (BuildKit warns about those).
        let mut joined = String::new();
        let mut current = first;
        loop {
            match continued(current, escape) {
                Some(head) => {
                    joined.push_str(head);
                    // Skip comments and empty lines inside the instruction.
                    while i < lines.len() && is_blank_or_comment(lines[i]) {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    current = lines[i];
                    i += 1;
                }
                None => {
                    joined.push_str(current);
                    break;
                }
            }
        }
        let trimmed = joined.trim_start();
        let (word, rest) = trimmed.split_once(|c: char| c.is_whitespace()).unwrap_or((trimmed, ""));
        let command = word.to_ascii_uppercase();
        if !command.chars().all(|c| c.is_ascii_alphabetic()) || command.is_empty() {
            return Err(DockerfileError::at(start + 1, format!("unknown instruction `{word}`")));
        }
        let mut rest = rest.trim().to_string();
        let mut flags = Vec::new();
        if FLAG_COMMANDS.contains(&command.as_str()) {
            (flags, rest) = take_flags(&rest);
        }
        let mut heredocs = Vec::new();
        if HEREDOC_COMMANDS.contains(&command.as_str()) && !rest.starts_with('[') {
            for (name, expand, strip_tabs) in heredoc_markers(&rest) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let line = lines[i];
                    i += 1;
                    let line = if strip_tabs {
                        line.trim_start_matches('\t')
                    } else {
                        line
                    };
                    if line == name {
                        closed = true;
                        break;
                    }
                    content.push_str(line);
                    content.push('\n');
                }
                if !closed {
                    return Err(DockerfileError::at(
                        start + 1,
                        format!("heredoc `<<{name}` is not closed: no line `{name}` follows"),
                    ));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    strip_tabs,
                });
            }
        }
        out.instructions.push(Instruction {
            line: start + 1,
            command,
            flags,
            args: rest,
            heredocs,
        });
    }
    Ok(out)
}

/// `# key=value` (lower-cased key), the form of a parser directive.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?.trim();
    let (key, value) = body.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.trim().to_string()))
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// The line without its trailing escape character when it continues on the next.
fn continued(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end();
    t.strip_suffix(escape)
}

/// Leading `--name[=value]` options, and what follows them.
fn take_flags(args: &str) -> (Vec<(String, Option<String>)>, String) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let flag = &after[..end];
        if flag.is_empty() {
            break;
        }
        match flag.split_once('=') {
            Some((name, value)) => flags.push((name.to_string(), Some(unquote(value)))),
            None => flags.push((flag.to_string(), None)),
        }
        rest = after[end..].trim_start();
    }
    (flags, rest.to_string())
}

/// A flag value without one pair of surrounding quotes.
fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return value[1..value.len() - 1].to_string();
        }
    }
    value.to_string()
}

/// The heredoc markers in an instruction's arguments, in order:
/// `(name, expand, strip_tabs)`.
fn heredoc_markers(args: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let mut rest = args;
    while let Some(at) = rest.find("<<") {
        let mut after = &rest[at + 2..];
        let strip_tabs = after.starts_with('-');
        if strip_tabs {
            after = &after[1..];
        }
        let (name, expand, len) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (after[1..1 + end].to_string(), false, end + 2),
                None => break,
            },
            _ => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (after[..end].to_string(), true, end)
            }
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push((name, expand, strip_tabs));
        }
        rest = &after[len.max(1).min(after.len())..];
    }
    out
}

/// The JSON (exec) form, when `args` is one: `["a", "b"]`.
pub fn json_array(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        let df = parse(text).unwrap();
        assert_eq!(df.instructions.len(), 1, "{:?}", df.instructions);
        df.instructions[0].clone()
    }

    #[test]
    fn continuations_join_lines_and_skip_comments_inside() {
        let df = parse("FROM busybox\nRUN echo a \\\n  # a comment\n\n  && echo b\nCMD [\"sh\"]\n").unwrap();
        let run = &df.instructions[1];
        assert_eq!((run.line, run.command.as_str()), (2, "RUN"));
        assert_eq!(run.args, "echo a   && echo b");
        assert_eq!(df.instructions[2].line, 6);
    }

    #[test]
    fn the_escape_directive_makes_the_backtick_the_continuation() {
        let df = parse("# escape=`\nFROM scratch\nCOPY a `\n  C:\\dir\\\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, "a   C:\\dir\\");
        // A directive after the first instruction is a comment.
        let df = parse("FROM scratch\n# escape=`\nRUN a \\\n b\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions[1].args, "a  b");
    }

    #[test]
    fn flags_come_before_the_arguments() {
        let i = one("COPY --from=build --chown=1:2 --link /a /b\n");
        assert_eq!(
            i.flags,
            vec![
                ("from".into(), Some("build".into())),
                ("chown".into(), Some("1:2".into())),
                ("link".into(), None)
            ]
        );
        assert_eq!(i.args, "/a /b");
        let i = one("RUN --mount=type=cache,target=/root/.cache,id=\"pip\" pip install x\n");
        assert_eq!(
            i.flags[0].1.as_deref(),
            Some("type=cache,target=/root/.cache,id=\"pip\"")
        );
        // Only instructions that take flags have them.
        assert_eq!(one("ENV --x=1\n").args, "--x=1");
    }

    #[test]
    fn heredocs_take_the_following_lines() {
        let df =
            parse("FROM busybox\nRUN <<EOF\necho a\necho $HOME\nEOF\nRUN <<-'END' cat > /x\n\tline\n\tEND\n").unwrap();
        let run = &df.instructions[1];
        assert_eq!(run.args, "<<EOF");
        assert_eq!(
            run.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "echo a\necho $HOME\n".into(),
                expand: true,
                strip_tabs: false
            }]
        );
        let second = &df.instructions[2];
        assert_eq!(second.line, 6);
        assert_eq!(second.heredocs[0].content, "line\n");
        assert!(!second.heredocs[0].expand && second.heredocs[0].strip_tabs);
        let err = parse("FROM busybox\nRUN <<EOF\necho a\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("heredoc `<<EOF` is not closed"), "{}", err.message);
    }

    #[test]
    fn two_heredocs_in_one_copy() {
        let i = one("COPY <<A /a <<B /b\none\nA\ntwo\nB\n");
        assert_eq!(i.heredocs.len(), 2);
        assert_eq!(
            (i.heredocs[0].name.as_str(), i.heredocs[1].content.as_str()),
            ("A", "two\n")
        );
    }

    #[test]
    fn json_form_only_when_it_is_valid_json() {
        assert_eq!(json_array(r#"["a", "b c"]"#), Some(vec!["a".into(), "b c".into()]));
        assert_eq!(json_array("[a, b]"), None);
        assert_eq!(json_array("echo [x]"), None);
    }

    #[test]
    fn unknown_instruction_words_are_errors_with_the_line() {
        let err = parse("FROM busybox\n\nRUN-IT x\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.message, "unknown instruction `RUN-IT`");
    }
}
