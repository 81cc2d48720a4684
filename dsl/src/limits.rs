//! Bounds on the files a build reads before it evaluates anything: a
//! recipe (or module) and a Dockerfile have a greatest size, and a recipe
//! file declares a bounded number of variables.
//!
//! Rhai's parser resolves every declaration and every variable reference
//! by scanning the variables declared before it (`ParseState::find_var`),
//! so parsing is quadratic in the number of variables one scope holds: a
//! recipe of 300,000 top-level `let`s parses for many minutes, and no
//! signal stops a parse. Counting the declarations first, in one pass,
//! refuses such a file at the line of the first declaration past the
//! bound, before Rhai sees it.

use std::io::Read;
use std::path::Path;

/// The largest recipe or module file, in bytes.
pub const MAX_RECIPE: u64 = 1 << 20;
/// The largest Dockerfile, in bytes (heredocs may carry whole files).
pub const MAX_DOCKERFILE: u64 = 4 << 20;
/// The most `let` and `const` declarations one recipe or module file may
/// hold (with the size bound, what keeps a parse under a second).
pub const MAX_DECLARATIONS: usize = 1024;

/// Reads `path` as text, refusing a file larger than `max` bytes without
/// reading past it (a recipe named `/dev/zero` is refused, not read).
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is larger than {} MiB, the most a {} may be",
                max >> 20,
                if max == MAX_DOCKERFILE {
                    "Dockerfile"
                } else {
                    "recipe file"
                }
            ),
        ));
    }
    Ok(text)
}

/// A bound a recipe's text goes past: where (1-based) and which.
#[derive(Debug, PartialEq, Eq)]
pub struct Excess {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Checks a recipe or module file's text against [`MAX_RECIPE`] and
/// [`MAX_DECLARATIONS`]. Declarations are counted as Rhai tokenizes: not in
/// comments or string literals, but in the code of a template string's
/// `${…}` (so no quoting trick hides one).
pub fn check_recipe(text: &str) -> Result<(), Excess> {
    if text.len() as u64 > MAX_RECIPE {
        return Err(Excess {
            line: 1,
            col: 1,
            message: format!(
                "the recipe is {} bytes; a recipe file may be at most {} MiB",
                text.len(),
                MAX_RECIPE >> 20
            ),
        });
    }
    let mut declarations = 0usize;
    for_each_word(text, |word, line, col| {
        if word == "let" || word == "const" {
            declarations += 1;
            if declarations > MAX_DECLARATIONS {
                return Err(Excess {
                    line,
                    col,
                    message: format!(
                        "more than {MAX_DECLARATIONS} variables are declared (`let`, `const`) in this file; \
                         build many values with a loop, an array or a map instead"
                    ),
                });
            }
        }
        Ok(())
    })
}

/// Where the scanner is: what closes the innermost open context.
enum Context {
    /// Code; inside a template string's `${`, the braces open within it.
    Code { braces: usize },
    /// The literal text of a back-tick template string.
    Template,
}

/// Calls `f` with every identifier of Rhai code in `text`, and its line
/// and column, skipping comments and the text of string and character
/// literals.
fn for_each_word<E>(text: &str, mut f: impl FnMut(&str, usize, usize) -> Result<(), E>) -> Result<(), E> {
    let bytes = text.as_bytes();
    let mut stack = vec![Context::Code { braces: 0 }];
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    // Advances past byte `i`, counting lines.
    macro_rules! step {
        () => {{
            if bytes[i] == b'\n' {
                line += 1;
                line_start = i + 1;
            }
            i += 1;
        }};
    }
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(Context::Template) = stack.last() {
            match c {
                b'`' => {
                    stack.pop();
                    i += 1;
                }
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    stack.push(Context::Code { braces: 0 });
                    i += 2;
                }
                _ => step!(),
            }
            continue;
        }
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // Rhai's block comments nest.
                let mut depth = 0usize;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        step!();
                    }
                }
            }
            b'"' | b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    step!();
                }
                i += 1;
            }
            b'#' if matches!(bytes.get(i + 1), Some(b'#' | b'"')) => {
                // A raw string: `#"…"#`, with as many `#` on each side.
                let hashes = bytes[i..].iter().take_while(|&&b| b == b'#').count();
                i += hashes;
                if bytes.get(i) == Some(&b'"') {
                    i += 1;
                    let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                    while i < bytes.len() && !bytes[i..].starts_with(&close) {
                        step!();
                    }
                    i += close.len();
                }
            }
            b'`' => {
                stack.push(Context::Template);
                i += 1;
            }
            b'{' => {
                if let Some(Context::Code { braces }) = stack.last_mut() {
                    *braces += 1;
                }
                i += 1;
            }
            b'}' => {
                let nested = stack.len() > 1;
                match stack.last_mut() {
                    Some(Context::Code { braces: 0 }) if nested => {
                        stack.pop();
                    }
                    Some(Context::Code { braces }) => *braces = braces.saturating_sub(1),
                    _ => {}
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                f(&text[start..i], line, start - line_start + 1)?;
            }
            c if c.is_ascii_digit() => {
                // A number (`1e5`, `0x_ff`) is not a word.
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.') {
                    i += 1;
                }
            }
            _ => step!(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize, usize)> {
        let mut out = Vec::new();
        for_each_word::<()>(text, |w, line, col| {
            out.push((w.to_string(), line, col));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn words_are_found_in_code_and_template_code_only() {
        let text = "let a = \"let b\"; // let c\n/* let /* d */ let e */ const f = `let g ${ let h = #{x: 1}; h } let i`;\nlet j = '\\'' + #\"let \"k\"#;";
        let found: Vec<String> = words(text)
            .into_iter()
            .map(|(w, ..)| w)
            .filter(|w| w == "let" || w == "const")
            .collect();
        assert_eq!(found, ["let", "const", "let", "let"]);
        let at: Vec<(usize, usize)> = words(text)
            .into_iter()
            .filter(|(w, ..)| w == "h" || w == "j")
            .map(|(_, l, c)| (l, c))
            .collect();
        assert_eq!(at, [(2, 49), (2, 62), (3, 5)]);
    }

    #[test]
    fn a_quote_in_a_template_does_not_hide_the_code_after_it() {
        // Were the `"` taken as a string's start, the lets after it would go uncounted.
        let mut text = String::from("let q = `\"`;\n");
        text.push_str(&"let v = 1;\n".repeat(MAX_DECLARATIONS));
        let err = check_recipe(&text).unwrap_err();
        assert_eq!((err.line, err.col), (MAX_DECLARATIONS + 1, 1));
    }

    #[test]
    fn the_declaration_past_the_bound_is_named_by_its_line() {
        let text: String = (0..MAX_DECLARATIONS + 10)
            .map(|i| format!("let v{i} = {i};\n"))
            .collect();
        let err = check_recipe(&text).unwrap_err();
        assert_eq!(err.line, MAX_DECLARATIONS + 1);
        assert!(
            err.message.starts_with("more than 1024 variables are declared"),
            "{}",
            err.message
        );
        let ok: String = (0..MAX_DECLARATIONS).map(|i| format!("let v{i} = {i};\n")).collect();
        assert_eq!(check_recipe(&ok), Ok(()));
    }

    #[test]
    fn a_recipe_past_the_size_bound_is_refused() {
        let text = format!("// {}\n", "x".repeat(MAX_RECIPE as usize));
        let err = check_recipe(&text).unwrap_err();
        assert!(
            err.message.contains("a recipe file may be at most 1 MiB"),
            "{}",
            err.message
        );
    }
}
