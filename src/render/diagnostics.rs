//! Turns errors into messages on stderr and exit codes.

use std::error::Error as _;

use crate::cli::CliError;

/// Prints `err` with its causes and returns the exit code.
pub fn report(err: &CliError) -> u8 {
    if let CliError::Exit(code) = err {
        return *code;
    }
    let code = match err {
        CliError::Exit(code) => *code,
        CliError::Recipe(_) | CliError::Usage(_) | CliError::Epoch(_) | CliError::Platform(_) => 2,
        CliError::Engine(e) if e.is_input() => 2,
        CliError::Engine(e) if e.is_interrupted() => 130,
        CliError::Engine(_) => 1,
    };
    let mut text = format!("error: {err}");
    let mut cause = err.source();
    // A transparent wrapper's source is the wrapped error itself; skip repeats.
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.ends_with(&line) && !text.contains(&format!("error: {line}")) {
            text.push_str(&format!("\n  caused by: {line}"));
        }
        cause = c.source();
    }
    if let CliError::Engine(strata_engine::Error::Step { detail, .. }) = err {
        if !detail.is_empty() {
            text.push_str(&format!("\n{detail}"));
        }
    }
    eprintln!("{text}");
    code
}
