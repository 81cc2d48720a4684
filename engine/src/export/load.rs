//! `--load`: images go into the local docker or podman as a docker-archive,
//! through the Docker Engine API's `POST /images/load` on a unix socket
//! (docker's, or podman's compatible service), or `podman load` when podman
//! has no service running. Which one is found first:
//!
//! 1. `DOCKER_HOST=unix://PATH` (any other scheme is refused: strata does
//!    not send images over the network);
//! 2. `/var/run/docker.sock`;
//! 3. podman's sockets: `$XDG_RUNTIME_DIR/podman/podman.sock`, `/run/podman/podman.sock`;
//! 4. the `podman` command.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::image::Descriptor;
use crate::store::Store;

/// Where `--load` sends images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// A Docker Engine API on a unix socket.
    Socket(PathBuf),
    /// `podman load -i FILE`.
    PodmanCommand,
}

impl std::fmt::Display for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Daemon::Socket(path) => write!(f, "the engine API at unix://{}", path.display()),
            Daemon::PodmanCommand => f.write_str("`podman load`"),
        }
    }
}

/// The docker or podman `--load` talks to, found as the module says.
pub fn find_daemon() -> Result<Daemon> {
    if let Some(host) = std::env::var_os("DOCKER_HOST").filter(|h| !h.is_empty()) {
        let host = host.to_string_lossy().into_owned();
        let Some(path) = host.strip_prefix("unix://") else {
            return Err(Error::Load(format!(
                "DOCKER_HOST is `{host}`; strata loads images through a local unix socket only (unix:///var/run/docker.sock), or write them out with -o docker-archive:FILE"
            )));
        };
        let path = PathBuf::from(path);
        if !is_socket(&path) {
            return Err(Error::Load(format!(
                "DOCKER_HOST names `{}`, and no socket is there: is the docker daemon (or `podman system service`) running?",
                path.display()
            )));
        }
        return Ok(Daemon::Socket(path));
    }
    let mut candidates = vec![PathBuf::from("/var/run/docker.sock")];
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(Path::new(&runtime).join("podman/podman.sock"));
    }
    candidates.push(PathBuf::from("/run/podman/podman.sock"));
    if let Some(socket) = candidates.into_iter().find(|p| is_socket(p)) {
        return Ok(Daemon::Socket(socket));
    }
    if crate::sys::find_on_path("podman").is_some() {
        return Ok(Daemon::PodmanCommand);
    }
    Err(Error::Load(
        "found neither docker nor podman: no socket at DOCKER_HOST, /var/run/docker.sock or podman's \
         ($XDG_RUNTIME_DIR/podman/podman.sock, /run/podman/podman.sock), and no `podman` command; \
         start one (`systemctl start docker`, `systemctl --user start podman.socket`) or write the \
         images out with -o docker-archive:FILE"
            .into(),
    ))
}

fn is_socket(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
}

/// Loads `images` (each under its tags) into `daemon`; returns what it
/// said it loaded (`Loaded image: example/hello:latest`, one per line).
pub fn load(store: &Store, images: &[(Vec<String>, Descriptor)], daemon: &Daemon) -> Result<Vec<String>> {
    let tmp = store.tmp_dir()?;
    let archive = tmp.path().join("load.tar");
    super::to_docker_archive(store, images, super::ArchiveSink::Path(&archive))?;
    match daemon {
        Daemon::Socket(socket) => post_load(socket, &archive),
        Daemon::PodmanCommand => podman_load(&archive),
    }
}

fn podman_load(archive: &Path) -> Result<Vec<String>> {
    let out = Command::new("podman")
        .arg("load")
        .arg("--input")
        .arg(archive)
        .output()
        .map_err(|e| Error::Load(format!("cannot run `podman load`: {e}")))?;
    if !out.status.success() {
        return Err(Error::Load(format!(
            "`podman load` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("Loaded image"))
        .map(str::to_string)
        .collect())
}

/// `POST /images/load` with the archive as its body; the answer is a
/// stream of JSON messages (`{"stream": "Loaded image: …"}`, or
/// `{"errorDetail": …}` when the daemon refused the archive).
fn post_load(socket: &Path, archive: &Path) -> Result<Vec<String>> {
    let fail = |what: &str, e: std::io::Error| Error::Load(format!("{what} unix://{}: {e}", socket.display()));
    let mut file = std::fs::File::open(archive).map_err(Error::io("open", archive))?;
    let len = file.metadata().map_err(Error::io("stat", archive))?.len();
    let mut conn = UnixStream::connect(socket).map_err(|e| fail("cannot connect to", e))?;
    write!(
        conn,
        "POST /images/load?quiet=0 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail("cannot send to", e))?;
    std::io::copy(&mut file, &mut conn).map_err(|e| fail("cannot send the images to", e))?;
    let mut reader = BufReader::new(conn);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(|e| fail("no answer from", e))?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| fail("cannot read from", e))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("transfer-encoding") && value.trim().eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)
    } else {
        read_all(&mut reader)
    }
    .map_err(|e| fail("cannot read from", e))?;
    let body = String::from_utf8_lossy(&body);
    if !(200..300).contains(&code) {
        return Err(Error::Load(format!(
            "unix://{} answered {}: {}",
            socket.display(),
            status.trim(),
            message_of(&body)
        )));
    }
    let mut loaded = Vec::new();
    for value in serde_json::Deserializer::from_str(&body).into_iter::<serde_json::Value>() {
        let Ok(value) = value else { break };
        if let Some(error) = value.get("errorDetail").or_else(|| value.get("error")) {
            let text = error.get("message").and_then(|m| m.as_str()).map(str::to_string);
            return Err(Error::Load(format!(
                "unix://{} refused the images: {}",
                socket.display(),
                text.unwrap_or_else(|| error.to_string())
            )));
        }
        if let Some(stream) = value.get("stream").and_then(|s| s.as_str()) {
            loaded.extend(
                stream
                    .lines()
                    .filter(|l| l.starts_with("Loaded image"))
                    .map(str::to_string),
            );
        }
    }
    Ok(loaded)
}

/// The `message` of a JSON error body, or the body itself.
fn message_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

fn read_all(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    reader.take(16 << 20).read_to_end(&mut body)?;
    Ok(body)
}

/// An HTTP/1.1 chunked body (at most 16 MiB: the answer is a few messages).
fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 || body.len() + size > 16 << 20 {
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_joined() {
        let mut r = BufReader::new(&b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"[..]);
        assert_eq!(read_chunked(&mut r).unwrap(), b"hello world");
    }

    #[test]
    fn an_error_body_gives_its_message() {
        assert_eq!(message_of(r#"{"message":"no space left"}"#), "no space left");
        assert_eq!(message_of("plain\n"), "plain");
    }
}
