//! The `strata` command line. Parsing only validates; each subcommand lives
//! in `cli/<command>.rs`. Printing and exit codes live here and in
//! `render/`: 0 ok, 1 build failed, 2 bad usage or bad recipe.

mod cli;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Nothing the invoking process left open reaches a child (a sandbox, git, gpgv).
    strata_engine::sys::cloexec_inherited();
    // The engine starts this same binary as the sandbox of each RUN step.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().take(3).collect();
    if raw.len() == 3 && raw[1] == "__sandbox" {
        strata_engine::sandbox::init::main(std::path::Path::new(&raw[2]));
    }
    let args = cli::Cli::parse();
    // Before any thread exists: the kernel moves only single-threaded
    // processes into a new user namespace.
    if let Err(err) = cli::enter_rootless(&args) {
        return ExitCode::from(render::diagnostics::report(&err));
    }
    render::signals::install();
    let result = cli::run(args);
    // Out of the cgroup the builds ran in, which then goes.
    strata_engine::sys::cgroup::leave_build();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(cli::CliError::Exit(code)) => ExitCode::from(code),
        // Whatever stopped at the interrupt (a download, an evaluation) says so as a build would.
        Err(_) if render::signals::cancelled().load(std::sync::atomic::Ordering::SeqCst) => {
            let code = render::diagnostics::report(&cli::CliError::Engine(strata_engine::Error::Interrupted));
            ExitCode::from(code)
        }
        Err(err) => {
            let code = render::diagnostics::report(&err);
            ExitCode::from(code)
        }
    }
}
