//! Everything the user sees: progress, diagnostics, signal handling.

pub mod diagnostics;
pub mod progress;
pub mod signals;

/// Writes to stdout; when the reader has gone (`strata graph | head -1`),
/// exits quietly with status 0, as ripgrep does, instead of panicking.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: failed to write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the command's results: a closed stdout is a quiet exit.
#[macro_export]
macro_rules! outln {
    () => { $crate::render::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::render::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for the command's results: a closed stdout is a quiet exit.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::render::write_stdout(format_args!($($arg)*)) };
}
