//! `strata worker`: executes RUN steps for builds that use a REAPI service
//! (`strata build --remote-executor`), as a bot of that service.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use strata_engine::exec::worker;
use strata_engine::reapi::{Credentials, Remote};
use strata_engine::store::Store;

use super::CliError;

/// What `strata build` and `strata worker` present to a REAPI service
/// beyond its address (the names follow Bazel's `--remote_instance_name`,
/// `--remote_header`, `--tls_certificate`, `--tls_client_certificate`,
/// `--tls_client_key`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ConnectionArgs {
    /// The service's instance name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub remote_instance: String,
    /// A file holding a bearer token sent with every call (`authorization: Bearer …`).
    #[arg(long, value_name = "FILE")]
    pub remote_token_file: Option<PathBuf>,
    /// A header sent with every call (repeatable), as an API key is.
    #[arg(long, value_name = "NAME=VALUE")]
    pub remote_header: Vec<String>,
    /// The PEM certificates of the authorities a grpcs:// service's
    /// certificate must chain to (default: the system's).
    #[arg(long, value_name = "FILE")]
    pub remote_tls_certificate: Option<PathBuf>,
    /// A PEM certificate to present to the service (mutual TLS; needs
    /// --remote-tls-client-key).
    #[arg(long, value_name = "FILE", requires = "remote_tls_client_key")]
    pub remote_tls_client_certificate: Option<PathBuf>,
    /// The PEM private key of --remote-tls-client-certificate.
    #[arg(long, value_name = "FILE", requires = "remote_tls_client_certificate")]
    pub remote_tls_client_key: Option<PathBuf>,
}

impl ConnectionArgs {
    /// Connects to `endpoint` with these options.
    fn connect(&self, endpoint: &str) -> Result<Remote, CliError> {
        Ok(Remote::connect(endpoint, &self.remote_instance, &self.credentials()?)?)
    }

    /// The files read and the headers checked for their form.
    fn credentials(&self) -> Result<Credentials, CliError> {
        let read = |flag: &str, file: &PathBuf| {
            std::fs::read(file).map_err(|e| CliError::Usage(format!("--{flag} {}: {e}", file.display())))
        };
        let token = match &self.remote_token_file {
            Some(file) => Some(
                String::from_utf8_lossy(&read("remote-token-file", file)?)
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let headers = self
            .remote_header
            .iter()
            .map(|h| match h.split_once('=') {
                Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
                _ => Err(CliError::Usage(format!("--remote-header {h}: expected NAME=VALUE"))),
            })
            .collect::<Result<_, _>>()?;
        let tls_ca = match &self.remote_tls_certificate {
            Some(file) => Some(read("remote-tls-certificate", file)?),
            None => None,
        };
        let tls_client = match (&self.remote_tls_client_certificate, &self.remote_tls_client_key) {
            (Some(cert), Some(key)) => Some((
                read("remote-tls-client-certificate", cert)?,
                read("remote-tls-client-key", key)?,
            )),
            _ => None,
        };
        Ok(Credentials {
            token,
            headers,
            tls_ca,
            tls_client,
        })
    }
}

/// How `strata build` reaches a Remote Execution API service (the names
/// follow Bazel's `--remote_executor`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct RemoteArgs {
    /// Run RUN steps as actions of this REAPI service (`grpc://HOST:PORT`,
    /// or `grpcs://HOST:PORT` for TLS): its ActionCache is looked up first,
    /// and its workers execute the rest.
    #[arg(long, value_name = "grpc://HOST:PORT")]
    pub remote_executor: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// When the service cannot be reached, or fails to run a step, run it
    /// locally instead (with a warning) rather than failing the build.
    #[arg(long)]
    pub remote_fallback: bool,
}

impl RemoteArgs {
    /// The connection, when a service is named; an unreachable one is an error now.
    pub fn connect(&self) -> Result<Option<Arc<Remote>>, CliError> {
        let Some(endpoint) = &self.remote_executor else {
            return Ok(None);
        };
        match self.connection.connect(endpoint) {
            Ok(mut remote) => {
                remote.fallback = self.remote_fallback;
                Ok(Some(Arc::new(remote)))
            }
            // Only the service failing falls back; a usage error (a file
            // that cannot be read) is the user's to mend.
            Err(CliError::Engine(e)) if self.remote_fallback => {
                eprintln!("warning: {}; building locally (--remote-fallback)", e.chain());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The REAPI service to serve (`grpc://HOST:PORT` or
    /// `grpcs://HOST:PORT`), through its Remote Workers API.
    #[arg(long, value_name = "grpc://HOST:PORT")]
    pub remote: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Steps run at once (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// This bot's name in the service (default: strata-HOSTNAME-PID).
    #[arg(long, value_name = "NAME")]
    pub bot_id: Option<String>,
}

pub fn run(store: &Store, args: WorkerArgs) -> Result<(), CliError> {
    let remote = args.connection.connect(&args.remote)?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let opts = worker::WorkerOptions {
        bot_id: args
            .bot_id
            .unwrap_or_else(|| format!("strata-{host}-{}", std::process::id())),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        sandbox_exe: std::env::current_exe()
            .map_err(|e| CliError::Usage(format!("cannot find the strata executable: {e}")))?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    // Seconds since the worker started: enough to follow a lease's course.
    let started = std::time::Instant::now();
    let log = |line: &str| eprintln!("worker {:.3}: {line}", started.elapsed().as_secs_f64());
    worker::serve(store, &remote, &opts, &stop, &log)?;
    Ok(())
}
