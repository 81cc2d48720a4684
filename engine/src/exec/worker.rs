//! `strata worker`: a bot of a REAPI service, through the Remote Workers
//! API. It opens a bot session, long-polls it for leases, runs each
//! lease's action with [`super::remote::execute_action`] (at most `jobs` at
//! once, announced to the service as the bot's `capacity`), and reports
//! each result in the session. The service retries a lease whose bot went
//! away (its session expires), and writes finished results to its
//! ActionCache.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::protobuf::Any;
use bazel_remote_apis::google::rpc::Status;
use prost::Message;

use crate::error::Result;
use crate::reapi::bots::{
    BotSession, BotStatus, BotsClient, CreateBotSessionRequest, Device, LeaseState, Property, UpdateBotSessionRequest,
    Worker,
};
use crate::reapi::Remote;
use crate::store::Store;

const ACTION_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.Action";
const DIGEST_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.Digest";
const RESULT_TYPE: &str = "type.googleapis.com/build.bazel.remote.execution.v2.ActionResult";
/// How long one `UpdateBotSession` may wait for work.
const POLL: Duration = Duration::from_secs(5);
/// How often, at most, a bot at capacity tells the service it is alive
/// (sooner when its session expires sooner: see [`keepalive`]).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// How a worker runs.
pub struct WorkerOptions {
    /// The bot's name in the service (default: `strata-HOSTNAME-PID`).
    pub bot_id: String,
    /// Leases run at once.
    pub jobs: usize,
    /// The `strata` executable, for the sandbox.
    pub sandbox_exe: PathBuf,
}

/// Serves `remote` until `stop` is set (the session is then closed).
pub fn serve(
    store: &Store,
    remote: &Remote,
    opts: &WorkerOptions,
    stop: &AtomicBool,
    log: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let mut bots = BotsClient::new(remote.channel());
    let session = BotSession {
        bot_id: opts.bot_id.clone(),
        status: BotStatus::Ok as i32,
        worker: Some(Worker {
            devices: vec![Device {
                handle: opts.bot_id.clone(),
                properties: Vec::new(),
            }],
            properties: Vec::new(),
            configs: vec![Property {
                key: "capacity".into(),
                value: opts.jobs.max(1).to_string(),
            }],
        }),
        ..Default::default()
    };
    // The service may hold the creation until it has work (BuildGrid waits
    // most of the call's deadline): the deadline keeps that short.
    let mut create = remote.request(CreateBotSessionRequest {
        parent: remote.instance.clone(),
        bot_session: Some(session),
    });
    create.set_timeout(POLL);
    let mut session = remote
        .block_on(bots.create_bot_session(create))
        .map_err(|s| remote.error("CreateBotSession", s))?
        .into_inner();
    log(&format!(
        "bot {} serving {} as session {}",
        opts.bot_id, remote.endpoint, session.name
    ));

    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Result<re::ActionResult>)>();
    let mut running: HashSet<String> = HashSet::new();
    std::thread::scope(|scope| -> Result<()> {
        loop {
            if stop.load(Ordering::SeqCst) {
                session.status = BotStatus::BotTerminating as i32;
            }
            while let Ok((id, outcome)) = done_rx.try_recv() {
                finish(&mut session, &mut running, &id, outcome, log);
            }
            let at_capacity = running.len() >= opts.jobs.max(1);
            if at_capacity {
                // Nothing to ask for: wait for a lease to finish, or say we are alive.
                let wait = keepalive(&session);
                let finished = remote.block_on(async { tokio::time::timeout(wait, done_rx.recv()).await });
                if let Ok(Some((id, outcome))) = finished {
                    finish(&mut session, &mut running, &id, outcome, log);
                }
            }
            let request = update(remote, &session);
            // A lease finishing ends the wait for work: its result goes out at once.
            let reply = remote.block_on(async {
                tokio::select! {
                    reply = bots.update_bot_session(request) => Some(reply),
                    finished = done_rx.recv(), if !running.is_empty() => {
                        if let Some((id, outcome)) = finished {
                            finish(&mut session, &mut running, &id, outcome, log);
                        }
                        None
                    }
                }
            });
            let Some(reply) = reply else { continue };
            match reply {
                Ok(reply) => {
                    session = reply.into_inner();
                }
                Err(status) if status.code() == tonic::Code::DeadlineExceeded => continue,
                Err(status) => {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    log(&format!(
                        "UpdateBotSession: {} ({:?}); retrying",
                        status.message(),
                        status.code()
                    ));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
            if stop.load(Ordering::SeqCst) && running.is_empty() {
                // Say goodbye, so that the service gives any lease it has
                // just handed this bot to another one now, not when the
                // session expires.
                session.status = BotStatus::BotTerminating as i32;
                let _ = remote.block_on(bots.update_bot_session(update(remote, &session)));
                log(&format!("bot {} stopped", opts.bot_id));
                return Ok(());
            }
            for lease in &mut session.leases {
                // A lease this bot is not running is new work, PENDING or, as
                // BuildGrid hands them out, already ACTIVE.
                let new = lease.state == LeaseState::Pending as i32 || lease.state == LeaseState::Active as i32;
                if !new || running.contains(&lease.id) {
                    continue;
                }
                if stop.load(Ordering::SeqCst) {
                    continue;
                }
                lease.state = LeaseState::Active as i32;
                running.insert(lease.id.clone());
                let id = lease.id.clone();
                let payload = lease.payload.clone();
                let tx = done_tx.clone();
                scope.spawn(move || {
                    let outcome = run_lease(store, remote, opts, payload, log);
                    let _ = tx.send((id, outcome));
                });
            }
        }
    })
}

/// How long a bot at capacity may wait before updating its session: half
/// the time left before the service expires it, within 0.5–10 s.
fn keepalive(session: &BotSession) -> Duration {
    let Some(expires) = &session.expire_time else {
        return KEEPALIVE;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let at = Duration::new(expires.seconds.max(0) as u64, expires.nanos.max(0) as u32);
    (at.saturating_sub(now) / 2).clamp(Duration::from_millis(500), KEEPALIVE)
}

/// The session as it stands, as an update that waits at most [`POLL`].
fn update(remote: &Remote, session: &BotSession) -> tonic::Request<UpdateBotSessionRequest> {
    let mut request = remote.request(UpdateBotSessionRequest {
        name: session.name.clone(),
        bot_session: Some(session.clone()),
    });
    request.set_timeout(POLL);
    request
}

/// Marks the lease `id` completed with `outcome`; it no longer runs.
fn finish(
    session: &mut BotSession,
    running: &mut HashSet<String>,
    id: &str,
    outcome: Result<re::ActionResult>,
    log: &(dyn Fn(&str) + Sync),
) {
    running.remove(id);
    let Some(lease) = session.leases.iter_mut().find(|l| l.id == id) else {
        return;
    };
    lease.state = LeaseState::Completed as i32;
    match outcome {
        Ok(result) => {
            log(&format!("lease {id}: done, exit code {}", result.exit_code));
            lease.result = Some(Any {
                type_url: RESULT_TYPE.into(),
                value: result.encode_to_vec(),
            });
            lease.status = Some(Status::default());
        }
        Err(e) => {
            log(&format!("lease {id}: {}", e.chain()));
            lease.result = None;
            // INTERNAL: the service reports the action failed.
            lease.status = Some(Status {
                code: 13,
                message: e.chain(),
                details: Vec::new(),
            });
        }
    }
}

fn run_lease(
    store: &Store,
    remote: &Remote,
    opts: &WorkerOptions,
    payload: Option<Any>,
    log: &(dyn Fn(&str) + Sync),
) -> Result<re::ActionResult> {
    let payload = payload.ok_or_else(|| remote.fail("a lease without a payload"))?;
    let action = match payload.type_url.as_str() {
        ACTION_TYPE => {
            re::Action::decode(payload.value.as_slice()).map_err(|e| remote.fail(format!("a lease's action: {e}")))?
        }
        DIGEST_TYPE => {
            let digest = re::Digest::decode(payload.value.as_slice())
                .map_err(|e| remote.fail(format!("a lease's digest: {e}")))?;
            remote.read_message(&digest)?
        }
        other => return Err(remote.fail(format!("a lease carries `{other}`, not an action"))),
    };
    let (_, digest) = crate::reapi::encoded(&action);
    log(&format!("executing action {}", &digest.hash[..12]));
    super::remote::execute_action(store, remote, &action, &opts.sandbox_exe, &|line| {
        log(&format!("action {}: {line}", &digest.hash[..12]))
    })
}
