//! `strata run IMAGE [-- CMD…]`: a command in an image of the store, on a
//! throwaway read-write layer; `--commit NAME` keeps that layer as a new
//! image (the seed's "container commit").

use std::io::IsTerminal;
use std::path::PathBuf;

use strata_engine::sandbox::{run_image, RunImage};
use strata_engine::sched::source_date_epoch;
use strata_engine::session;
use strata_engine::store::{State, Store};

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// An image of the store (see `strata images`).
    pub image: String,
    /// The command (after `--`); default: the image's entrypoint and cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = super::parse_kv)]
    pub env: Vec<(String, String)>,
    /// Bind-mount a host path (repeatable; `:ro` for read-only).
    #[arg(short = 'v', long = "volume", value_name = "HOST:PATH[:ro]")]
    pub volumes: Vec<String>,
    /// `host` shares the host's network; the default is none (loopback only).
    #[arg(long, value_enum, default_value_t = Network::None)]
    pub network: Network,
    /// Run as this user instead of the image's.
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Working directory instead of the image's.
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Keep what the command changed as a new image named NAME.
    #[arg(long, value_name = "NAME")]
    pub commit: Option<String>,
    /// Memory limit for the command, like docker's (`512m`, `2g`).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// Most processes and threads the command may have.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pids: Option<u64>,
    /// CPUs the command may use (`1.5`).
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<u64>,
    /// Accepted for docker's habits; strata is interactive whenever stdin is a terminal.
    #[arg(short = 'i', long, hide = true)]
    pub interactive: bool,
    #[arg(short = 't', long, hide = true)]
    pub tty: bool,
}

fn parse_memory(s: &str) -> Result<u64, String> {
    strata_engine::sys::cgroup::parse_size(s)
        .filter(|b| *b >= 1 << 20)
        .ok_or_else(|| format!("`{s}` is not a size of at least 1 MiB like 512m or 2g"))
}

/// CPUs as thousandths of a CPU.
fn parse_cpus(s: &str) -> Result<u64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|c| (0.01..=4096.0).contains(c))
        .map(|c| (c * 1000.0).round() as u64)
        .ok_or_else(|| format!("`{s}` is not a number of CPUs like 1.5"))
}

/// `strata run --network`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Only a loopback interface.
    None,
    /// The host's network.
    Host,
}

fn volume(s: &str) -> Result<(PathBuf, String, bool), CliError> {
    let bad = || CliError::Usage(format!("-v `{s}`: expected HOST:PATH or HOST:PATH:ro"));
    let (rest, readonly) = match s.strip_suffix(":ro") {
        Some(r) => (r, true),
        None => (s.strip_suffix(":rw").unwrap_or(s), false),
    };
    let (host, target) = rest.split_once(':').ok_or_else(bad)?;
    if host.is_empty() || !target.starts_with('/') {
        return Err(bad());
    }
    Ok((PathBuf::from(host), target.to_string(), readonly))
}

pub fn run(store: &Store, args: RunArgs) -> Result<(), CliError> {
    let network_host = args.network == Network::Host;
    if let Some(name) = &args.commit {
        strata_engine::registry::Reference::parse(name).map_err(|e| CliError::Usage(format!("--commit: {e}")))?;
    }
    let binds = args.volumes.iter().map(|v| volume(v)).collect::<Result<_, _>>()?;
    let stored = super::images::find(store, &args.image)?;
    let _in_use = store.hold(false, true)?;
    let exe =
        std::env::current_exe().map_err(|e| CliError::Usage(format!("cannot find the strata executable: {e}")))?;
    let interactive = std::io::stdin().is_terminal();
    let request = RunImage {
        command: args.command.clone(),
        env: args.env.clone(),
        binds,
        network_host,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        interactive,
        limits: strata_engine::sys::cgroup::Limits {
            memory: args.memory,
            pids: args.pids,
            cpu_millis: args.cpus,
        },
    };
    // Ctrl-C is the command's (the terminal delivers it to the container, and
    // the sandbox stops it unless it is interactive). SIGTERM ends strata,
    // and the sandbox dies with it.
    crate::render::signals::pass_to_container();
    let image_state = State::new(stored.config.clone());
    let result = run_image(store, &exe, &image_state, &request)?;
    if let Some(limit) = &result.limit {
        eprintln!("strata: the command {limit}");
    }
    if let Some(name) = &args.commit {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(_) => source_date_epoch()?,
            Err(_) => now,
        };
        let shown = if args.command.is_empty() {
            String::new()
        } else {
            let words: Vec<String> = args
                .command
                .iter()
                .map(|w| strata_engine::sandbox::shell_quote(w))
                .collect();
            format!(" -- {}", words.join(" "))
        };
        let upper = result.scratch.path().join("upper");
        let created_by = format!("strata run {}{shown}", args.image);
        let desc = session::commit(store, &stored.config, &upper, name, created_by, epoch)?;
        crate::outln!("{name}\t{}", desc.digest);
    }
    match result.code {
        0 => Ok(()),
        code => Err(CliError::Exit(u8::try_from(code).unwrap_or(255))),
    }
}
