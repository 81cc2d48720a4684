//! `strata worker`: executes RUN steps for builds that use a REAPI service
//! (`strata build --remote-executor`), as a bot of that service.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use strata_engine::exec::worker;
use strata_engine::reapi::Remote;
use strata_engine::store::Store;

use super::CliError;

/// How to reach a Remote Execution API service (the names follow Bazel's
/// `--remote_executor`, `--remote_instance_name`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct RemoteArgs {
    /// Run RUN steps as actions of this REAPI service (`grpc://HOST:PORT`):
    /// its ActionCache is looked up first, and its workers execute the rest.
    #[arg(long, value_name = "grpc://HOST:PORT")]
    pub remote_executor: Option<String>,
    /// The service's instance name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub remote_instance: String,
    /// A file holding a bearer token sent with every call (`authorization: Bearer …`).
    #[arg(long, value_name = "FILE")]
    pub remote_token_file: Option<std::path::PathBuf>,
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
        match Remote::connect(endpoint, &self.remote_instance, self.token()?) {
            Ok(mut remote) => {
                remote.fallback = self.remote_fallback;
                Ok(Some(Arc::new(remote)))
            }
            Err(e) if self.remote_fallback => {
                eprintln!("warning: {}; building locally (--remote-fallback)", e.chain());
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn token(&self) -> Result<Option<String>, CliError> {
        let Some(file) = &self.remote_token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(file)
            .map_err(|e| CliError::Usage(format!("--remote-token-file {}: {e}", file.display())))?;
        Ok(Some(token.trim().to_string()))
    }
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The REAPI service to serve (`grpc://HOST:PORT`), through its Remote Workers API.
    #[arg(long, value_name = "grpc://HOST:PORT")]
    pub remote: String,
    /// The service's instance name.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub remote_instance: String,
    /// A file holding a bearer token sent with every call.
    #[arg(long, value_name = "FILE")]
    pub remote_token_file: Option<std::path::PathBuf>,
    /// Steps run at once (default: one per core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// This bot's name in the service (default: strata-HOSTNAME-PID).
    #[arg(long, value_name = "NAME")]
    pub bot_id: Option<String>,
}

pub fn run(store: &Store, args: WorkerArgs) -> Result<(), CliError> {
    let remote = RemoteArgs {
        remote_executor: Some(args.remote.clone()),
        remote_instance: args.remote_instance.clone(),
        remote_token_file: args.remote_token_file.clone(),
        remote_fallback: false,
    }
    .connect()?
    .expect("a service is named");
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
    let log = |line: &str| eprintln!("worker: {line}");
    worker::serve(store, &remote, &opts, &stop, &log)?;
    Ok(())
}
