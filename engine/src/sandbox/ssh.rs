//! SSH agent forwarding for `ssh` mounts. The step gets a socket of its
//! own, owned and moded as the recipe asks (BuildKit's `uid`, `gid`,
//! `mode`), and every connection to it is passed to the agent the build was
//! given. The agent's socket itself never enters the sandbox, and the
//! forwarding ends with the step.
//!
//! What passes is filtered, as BuildKit's forwarder (a read-only agent)
//! does: the agent protocol's messages are read one by one (a length, a
//! type, at most 256 KiB as OpenSSH's `AGENT_MAX_LEN`), and only a request
//! for the list of keys or for a signature reaches the agent. Adding,
//! removing or locking keys, and extensions, are answered with
//! `SSH_AGENT_FAILURE` without the agent hearing of them, so a step can use
//! the keys but never empty, lock or change the user's agent.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A listening socket that forwards to an agent, until dropped.
pub struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listens at `at` (a new path) for connections to forward to the agent
    /// at `agent`. The socket gets `mode` and `uid:gid`.
    pub fn start(agent: &Path, at: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<AgentProxy> {
        // The agent must answer now: a step should not find out halfway.
        UnixStream::connect(agent)?;
        let listener = UnixListener::bind(at)?;
        std::os::unix::fs::chown(at, Some(uid), Some(gid))?;
        std::fs::set_permissions(at, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ssh-agent-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let agent = agent.clone();
                    let _ = std::thread::Builder::new()
                        .name("ssh-agent-conn".into())
                        .spawn(move || forward(client, &agent));
                }
            })?;
        Ok(AgentProxy {
            path: at.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

/// The largest agent message either side may send (OpenSSH's `AGENT_MAX_LEN`).
pub const MAX_MESSAGE: usize = 256 * 1024;

const REQUEST_IDENTITIES: u8 = 11;
const SIGN_REQUEST: u8 = 13;
/// The answer to a refused request: length 1, `SSH_AGENT_FAILURE`.
pub const FAILURE: [u8; 5] = [0, 0, 0, 1, 5];

/// Whether a request of this message type may reach the agent.
pub fn allowed(kind: u8) -> bool {
    matches!(kind, REQUEST_IDENTITIES | SIGN_REQUEST)
}

/// Reads one message (its length, then that many bytes); `None` at a
/// clean end of the stream. A message that is empty or longer than
/// [`MAX_MESSAGE`] ends the connection.
pub fn read_message(from: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an agent message of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    from.read_exact(&mut body)?;
    Ok(Some(body))
}

fn write_message(to: &mut impl Write, body: &[u8]) -> io::Result<()> {
    to.write_all(&(body.len() as u32).to_be_bytes())?;
    to.write_all(body)?;
    to.flush()
}

/// Serves one connection of the step: each request allowed goes to the
/// agent (`connect` opens the connection when the first one does) and its
/// answer comes back; any other is answered with [`FAILURE`]. Ends at the
/// end of the client's stream or at the first malformed message.
pub fn serve<C: Read + Write, A: Read + Write>(
    client: &mut C,
    mut connect: impl FnMut() -> io::Result<A>,
) -> io::Result<()> {
    let mut agent: Option<A> = None;
    while let Some(request) = read_message(client)? {
        if !allowed(request[0]) {
            client.write_all(&FAILURE)?;
            client.flush()?;
            continue;
        }
        let upstream = match &mut agent {
            Some(a) => a,
            None => agent.insert(connect()?),
        };
        write_message(upstream, &request)?;
        let Some(answer) = read_message(upstream)? else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the agent hung up"));
        };
        write_message(client, &answer)?;
    }
    Ok(())
}

/// Serves the step's connection `client` against the agent at `agent`.
fn forward(mut client: UnixStream, agent: &Path) {
    let _ = serve(&mut client, || UnixStream::connect(agent));
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees `stop`.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake agent: each request is answered with `[type + 1, request…]`;
    /// it counts what reached it.
    fn fake_agent(path: &Path) -> (std::thread::JoinHandle<Vec<u8>>, ()) {
        let agent = UnixListener::bind(path).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            // The first connection is the proxy's check that the agent answers.
            for conn in agent.incoming().take(2) {
                let mut conn = conn.unwrap();
                while let Ok(Some(msg)) = read_message(&mut conn) {
                    seen.push(msg[0]);
                    let mut answer = vec![msg[0] + 1];
                    answer.extend_from_slice(&msg);
                    write_message(&mut conn, &answer).unwrap();
                }
            }
            seen
        });
        (server, ())
    }

    #[test]
    fn list_and_sign_reach_the_agent_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let (server, ()) = fake_agent(&agent_path);
        let at = dir.path().join("step.sock");
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let proxy = AgentProxy::start(&agent_path, &at, me.0, me.1, 0o640).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&at).unwrap().permissions());
        assert_eq!(mode & 0o7777, 0o640);
        let mut conn = UnixStream::connect(&at).unwrap();
        // REMOVE_ALL_IDENTITIES, LOCK "pw", ADD_IDENTITY, an extension: refused here.
        for refused in [&[19u8][..], &[22, 0, 0, 0, 2, b'p', b'w'], &[17, 1, 2, 3], &[27, 0]] {
            write_message(&mut conn, refused).unwrap();
            let mut answer = [0u8; 5];
            conn.read_exact(&mut answer).unwrap();
            assert_eq!(answer, FAILURE, "{refused:?}");
        }
        write_message(&mut conn, &[11]).unwrap();
        assert_eq!(read_message(&mut conn).unwrap().unwrap(), [12, 11]);
        write_message(&mut conn, &[13, 9, 9]).unwrap();
        assert_eq!(read_message(&mut conn).unwrap().unwrap(), [14, 13, 9, 9]);
        // A message past the bound ends the connection.
        conn.write_all(&((MAX_MESSAGE as u32) + 1).to_be_bytes()).unwrap();
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{rest:?}");
        drop(conn);
        drop(proxy);
        assert_eq!(server.join().unwrap(), [11, 13], "only list and sign reached the agent");
        assert!(!at.exists(), "the socket goes with the proxy");
    }

    #[test]
    fn an_agent_that_does_not_answer_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let e = AgentProxy::start(&dir.path().join("none.sock"), &dir.path().join("s"), 0, 0, 0o600)
            .err()
            .expect("no agent");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
