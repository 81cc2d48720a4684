//! SSH agent forwarding for `ssh` mounts. The step gets a socket of its
//! own, owned and moded as the recipe asks (BuildKit's `uid`, `gid`,
//! `mode`), and every connection to it is passed to the agent the build was
//! given. The agent's socket itself never enters the sandbox, and the
//! forwarding ends with the step.

use std::io;
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

/// Copies bytes both ways between the step's connection and the agent.
fn forward(client: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(mut client_in), Ok(mut upstream_out)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let requests = std::thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut upstream_out);
        let _ = upstream_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_in, mut client_out) = (upstream, client);
    let _ = io::copy(&mut upstream_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = requests.join();
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
    use std::io::{Read, Write};

    #[test]
    fn connections_reach_the_agent_and_the_socket_has_the_asked_mode() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        // An "agent" that answers a request with it reversed (the first
        // connection is the proxy's check that it answers).
        let server = std::thread::spawn(move || loop {
            let (mut conn, _) = agent.accept().unwrap();
            let mut buf = [0u8; 5];
            if conn.read_exact(&mut buf).is_ok() {
                buf.reverse();
                conn.write_all(&buf).unwrap();
                return;
            }
        });
        let at = dir.path().join("step.sock");
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let proxy = AgentProxy::start(&agent_path, &at, me.0, me.1, 0o640).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&at).unwrap().permissions());
        assert_eq!(mode & 0o7777, 0o640);
        let mut conn = UnixStream::connect(&at).unwrap();
        conn.write_all(b"hello").unwrap();
        let mut answer = [0u8; 5];
        conn.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"olleh");
        server.join().unwrap();
        drop(proxy);
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
