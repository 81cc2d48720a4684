//! The one bounded downloader: every byte strata reads from the network (a
//! registry's manifests, configs and layers, a Debian mirror's or snapshot
//! archive's indexes and packages, a `fetch()` URL) comes through a
//! [`Bounded`] reader. What is downloaded has a bound before the first
//! byte arrives, and the reader enforces it as the bytes stream:
//!
//! - a size: exact for a blob or a package whose descriptor or lock names
//!   it, a fixed bound for a JSON document ([`MAX_DOCUMENT`]), a configured
//!   one for a URL nobody has measured; a body that passes it is an error
//!   at that byte, never read to its end first;
//! - a digest, checked as the bytes pass and at the end;
//! - a stall timeout: a connection that sends nothing for
//!   [`stall_timeout`] is an error that says so;
//! - redirects that carry no credentials (ureq drops `Authorization` on
//!   every redirect; the registry client sends it only to the host that
//!   asked for it).

use std::io::{self, Read};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// Every download stops at its next read once an interrupt is asked for.
fn cancelled() -> bool {
    crate::sys::interrupt::requested()
}

/// How often a wait for the network looks at the interrupt flag.
const TICK: Duration = Duration::from_millis(100);

/// The error an interrupted exchange ends with (not
/// `ErrorKind::Interrupted`: `io::copy` and `read_to_end` would try again).
pub fn interrupted(what: &str) -> io::Error {
    io::Error::other(format!("{what}: interrupted"))
}

/// Runs `exchange` (a request, up to its answer's headers) on a thread of
/// its own and waits for it, watching the interrupt flag: a server that
/// accepts and never answers holds a blocked read, which no flag reaches,
/// for as long as the read timeout. On an interrupt the exchange is left
/// to end by itself and the caller gets [`interrupted`] at once.
pub fn interruptible<T: Send + 'static>(what: &str, exchange: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let job = move || {
        let _ = tx.send(exchange());
    };
    std::thread::Builder::new()
        .name("http".into())
        .spawn(job)
        .map_err(|e| io::Error::other(format!("{what}: cannot start a thread for it: {e}")))?;
    loop {
        match rx.recv_timeout(TICK) {
            Ok(value) => return Ok(value),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if cancelled() => return Err(interrupted(what)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other(format!(
                    "{what}: the exchange failed (its thread panicked)"
                )))
            }
        }
    }
}

/// A network body read on a thread of its own, a chunk at a time, so
/// that the reader can stop waiting at an interrupt (the blocked read of
/// a silent server is left to its read timeout). Chunks are handed over
/// through a channel of two, so at most three chunks are in flight.
pub struct Pumped {
    chunks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    what: String,
    pending: Vec<u8>,
    at: usize,
    done: bool,
}

impl Pumped {
    pub fn new(mut inner: impl Read + Send + 'static, what: &str) -> io::Result<Pumped> {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        std::thread::Builder::new()
            .name("http-body".into())
            .spawn(move || loop {
                let mut chunk = vec![0u8; 1 << 16];
                let outcome = match inner.read(&mut chunk) {
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let last = !matches!(&outcome, Ok(c) if !c.is_empty());
                // The reader gone (finished, failed or interrupted): stop.
                if tx.send(outcome).is_err() || last {
                    return;
                }
            })
            .map_err(|e| io::Error::other(format!("{what}: cannot start a thread for it: {e}")))?;
        Ok(Pumped {
            chunks: rx,
            what: what.to_string(),
            pending: Vec::new(),
            at: 0,
            done: false,
        })
    }
}

impl Read for Pumped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv_timeout(TICK) {
                Ok(Ok(chunk)) => {
                    self.done = chunk.is_empty();
                    self.pending = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if cancelled() => return Err(interrupted(&self.what)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other(format!("{}: the body's reader stopped", self.what)))
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The least a connection must send in each [`stall_timeout`] (a server
/// trickling a byte every few seconds is stalled too).
pub const MIN_PER_WINDOW: u64 = 1024;

/// The largest manifest, index, image config, token answer or error body
/// strata reads (containerd's bound for manifests is the same order).
pub const MAX_DOCUMENT: u64 = 4 << 20;

/// How long a connection may send nothing before the download fails:
/// `$STRATA_STALL_TIMEOUT` seconds, else 60.
pub fn stall_timeout() -> Duration {
    let secs = std::env::var("STRATA_STALL_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// The bound of a download nobody has measured (a `fetch()` URL without a
/// pinned size): `$STRATA_MAX_DOWNLOAD_SIZE`, else what `fallback` says
/// (the store's free space less a reserve).
pub fn max_unmeasured(fallback: impl FnOnce() -> u64) -> u64 {
    std::env::var("STRATA_MAX_DOWNLOAD_SIZE")
        .ok()
        .and_then(|v| crate::sys::confined::parse_size(&v))
        .unwrap_or_else(fallback)
}

/// The HTTP agent every download uses: 15 s to connect, the stall timeout
/// for every read, five redirects (which ureq follows without the
/// `Authorization` header).
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(stall_timeout())
        .redirects(5)
        .build()
}

/// What a download may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// At most this many bytes.
    pub max: u64,
    /// Exactly `max` bytes (a size a descriptor or a lock names).
    pub exact: bool,
    /// The SHA-256 the bytes must hash to.
    pub sha256: Option<Digest>,
}

impl Expect {
    /// A JSON document: at most [`MAX_DOCUMENT`] bytes.
    pub fn document() -> Expect {
        Expect::at_most(MAX_DOCUMENT)
    }

    pub fn at_most(max: u64) -> Expect {
        Expect {
            max,
            exact: false,
            sha256: None,
        }
    }

    /// Exactly `size` bytes hashing to `digest` (a blob, a package).
    pub fn blob(size: u64, digest: Digest) -> Expect {
        Expect {
            max: size,
            exact: true,
            sha256: Some(digest),
        }
    }

    /// Exactly `size` bytes (the caller checks what they hash to).
    pub fn exact(size: u64) -> Expect {
        Expect {
            max: size,
            exact: true,
            sha256: None,
        }
    }

    pub fn with_digest(self, digest: Digest) -> Expect {
        Expect {
            sha256: Some(digest),
            ..self
        }
    }

    /// Refuses a `Content-Length` the bound rules out, before any byte is read.
    pub fn check_length(&self, what: &str, length: Option<u64>) -> io::Result<()> {
        match length {
            Some(n) if n > self.max => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} is {n} bytes, more than the {} it may be", self.max),
            )),
            Some(n) if self.exact && n != self.max => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} is {n} bytes, but its descriptor says {}", self.max),
            )),
            _ => Ok(()),
        }
    }
}

/// A body read under its [`Expect`]: an error at the first byte past the
/// bound, at an end short of an exact size, at an end whose digest differs,
/// and at a read that stalls.
pub struct Bounded<R> {
    inner: R,
    what: String,
    expect: Expect,
    read: u64,
    hasher: Sha256,
    done: bool,
    /// The current stall window: when it began, and the bytes read in it.
    window: (std::time::Instant, u64),
}

impl Bounded<Pumped> {
    /// A network body under `expect`, read on a thread of its own (see [`Pumped`]).
    pub fn network(inner: impl Read + Send + 'static, what: impl Into<String>, expect: Expect) -> io::Result<Self> {
        let what = what.into();
        Ok(Bounded::new(Pumped::new(inner, &what)?, what, expect))
    }
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, what: impl Into<String>, expect: Expect) -> Bounded<R> {
        Bounded {
            inner,
            what: what.into(),
            expect,
            read: 0,
            hasher: Sha256::new(),
            done: false,
            window: (std::time::Instant::now(), 0),
        }
    }

    /// Everything, into memory (for documents, whose bound is small).
    pub fn into_bytes(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_to_end(&mut out)?;
        Ok(out)
    }

    fn invalid(&self, message: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {message}", self.what))
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        // One byte past the bound is enough to know it was passed.
        let room = (self.expect.max - self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: nothing arrived for {} s after {} bytes (a stalled connection; STRATA_STALL_TIMEOUT sets the limit)",
                        self.what,
                        stall_timeout().as_secs(),
                        self.read
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        self.read += n as u64;
        if cancelled() {
            return Err(interrupted(&self.what));
        }
        // At least MIN_PER_WINDOW bytes in every stall window, or it is a stall.
        self.window.1 += n as u64;
        if self.window.0.elapsed() >= stall_timeout() {
            if self.window.1 < MIN_PER_WINDOW && n > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: {} bytes in {} s after {} bytes (a stalled connection; STRATA_STALL_TIMEOUT sets the window)",
                        self.what,
                        self.window.1,
                        stall_timeout().as_secs(),
                        self.read
                    ),
                ));
            }
            self.window = (std::time::Instant::now(), 0);
        }
        if self.read > self.expect.max {
            return Err(self.invalid(format!(
                "more than the {} bytes it may be; stopped there",
                self.expect.max
            )));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 {
            self.done = true;
            if self.expect.exact && self.read != self.expect.max {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: ended after {} of its {} bytes",
                        self.what, self.read, self.expect.max
                    ),
                ));
            }
            if let Some(expected) = &self.expect.sha256 {
                let actual = Digest::from_bytes(self.hasher.clone().finalize().into());
                if actual != *expected {
                    return Err(self.invalid(format!("content hashes to `{actual}`, expected `{expected}`")));
                }
            }
        }
        Ok(n)
    }
}

/// A failed plain GET.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("`{url}` answered {status}")]
    Status { url: String, status: u16 },
    #[error("cannot download `{url}`: {reason}")]
    Transport { url: String, reason: String },
}

/// A plain GET of `url` (a mirror's file, a `fetch()` URL), with retries of
/// transient failures, as a [`Bounded`] body.
pub fn get(agent: &ureq::Agent, url: &str, expect: Expect) -> Result<Bounded<Pumped>, DownloadError> {
    let shown = format!("`{url}`");
    let transport = |e: io::Error| DownloadError::Transport {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        if cancelled() {
            return Err(transport(interrupted(&shown)));
        }
        let request = agent.get(url);
        match interruptible(&shown, move || request.call().map_err(Box::new))
            .map_err(transport)?
            .map_err(|e| *e)
        {
            Ok(resp) => {
                let length = resp.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
                expect
                    .check_length(&format!("`{url}`"), length)
                    .map_err(|e| DownloadError::Transport {
                        url: url.to_string(),
                        reason: e.to_string(),
                    })?;
                return Bounded::network(resp.into_reader(), shown, expect).map_err(transport);
            }
            Err(ureq::Error::Status(code, _)) if (code == 429 || code >= 500) && attempt < 4 => {}
            Err(ureq::Error::Status(status, _)) => {
                return Err(DownloadError::Status {
                    url: url.to_string(),
                    status,
                })
            }
            Err(e) if attempt >= 4 => {
                return Err(DownloadError::Transport {
                    url: url.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(250 << attempt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], expect: Expect) -> io::Result<Vec<u8>> {
        Bounded::new(bytes, "test", expect).into_bytes()
    }

    #[test]
    fn a_body_past_its_bound_stops_at_the_bound() {
        let mut reader = Bounded::new(io::repeat(b'x'), "endless", Expect::at_most(1000));
        let mut sink = Vec::new();
        let e = reader.read_to_end(&mut sink).unwrap_err();
        assert!(e.to_string().contains("more than the 1000 bytes"), "{e}");
        assert!(sink.len() <= 1000, "{}", sink.len());
    }

    #[test]
    fn exact_sizes_and_digests_are_checked_as_the_bytes_stream() {
        let digest = Digest::of(b"hello");
        assert_eq!(read_all(b"hello", Expect::blob(5, digest.clone())).unwrap(), b"hello");
        let e = read_all(b"hell", Expect::blob(5, digest.clone())).unwrap_err();
        assert!(e.to_string().contains("ended after 4 of its 5 bytes"), "{e}");
        let e = read_all(b"hellO", Expect::blob(5, digest.clone())).unwrap_err();
        assert!(e.to_string().contains("hashes to"), "{e}");
        let e = read_all(b"hello!", Expect::blob(5, digest)).unwrap_err();
        assert!(e.to_string().contains("more than the 5 bytes"), "{e}");
    }

    #[test]
    fn a_length_header_past_the_bound_is_refused_before_reading() {
        let e = Expect::at_most(10).check_length("`u`", Some(11)).unwrap_err();
        assert_eq!(e.to_string(), "`u` is 11 bytes, more than the 10 it may be");
        let e = Expect::blob(10, Digest::of(b""))
            .check_length("`u`", Some(9))
            .unwrap_err();
        assert_eq!(e.to_string(), "`u` is 9 bytes, but its descriptor says 10");
        Expect::at_most(10).check_length("`u`", None).unwrap();
    }
}
