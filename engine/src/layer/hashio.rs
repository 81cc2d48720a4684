//! Readers and writers that compute sha256 and count bytes as data streams
//! through them, so a digest never needs a second pass over a file.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// Hashes and counts everything written through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
    /// Time spent hashing (not writing).
    hashing: std::time::Duration,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> HashWriter<W> {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
            hashing: std::time::Duration::ZERO,
        }
    }

    /// Time spent in sha256 so far.
    pub fn hashing(&self) -> std::time::Duration {
        self.hashing
    }

    /// The inner writer, the digest and the byte count of what went through.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let start = std::time::Instant::now();
        self.hasher.update(&buf[..n]);
        self.hashing += start.elapsed();
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts everything read through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> HashReader<R> {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (so trailing padding is hashed too) and
    /// returns the digest and byte count of the whole stream.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Reports the running byte count to a callback every 4 MiB written.
pub struct Counting<'f, W> {
    inner: W,
    count: u64,
    next_report: u64,
    on_bytes: &'f dyn Fn(u64),
}

impl<'f, W: Write> Counting<'f, W> {
    pub fn new(inner: W, on_bytes: &'f dyn Fn(u64)) -> Counting<'f, W> {
        Counting {
            inner,
            count: 0,
            next_report: 4 << 20,
            on_bytes,
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        if self.count >= self.next_report {
            (self.on_bytes)(self.count);
            self.next_report = self.count + (4 << 20);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
