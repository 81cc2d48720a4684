//! Parallel gzip: the stream is cut into fixed 1 MiB chunks, each chunk is
//! compressed as its own gzip member on the shared rayon pool (so concurrent
//! exports never run more compression threads than there are cores), and the members are
//! written in order. Concatenated members are a valid gzip stream (RFC 1952
//! §2.2; Go's, zlib's and flate2's readers take them), and since the chunk
//! size and the settings are fixed, the bytes do not depend on the number of
//! threads. At most `2 × threads` chunks are in flight, so memory stays
//! bounded whatever the layer's size.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};

/// Size of each independently compressed chunk.
pub const CHUNK: usize = 1 << 20;

type Done = (u64, io::Result<Vec<u8>>);

/// A gzip encoder that compresses on the shared CPU pool.
pub struct ParallelGzip<W: Write> {
    inner: W,
    level: u32,
    buf: Vec<u8>,
    next_submit: u64,
    next_write: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    done_tx: Sender<Done>,
    done: Receiver<Done>,
    in_flight: usize,
    max_in_flight: usize,
}

/// Bytes of a chunk compressed first to judge whether it compresses at all.
const PROBE: usize = 64 << 10;

/// One gzip member with strata's fixed header (no name, mtime 0, OS 255).
/// A chunk whose first 64 KiB do not shrink by 3% at level 1 (random or
/// already compressed data) is stored instead of deflated: the same bytes
/// for the same input, at copying speed.
pub fn gzip_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let level = if data.len() >= PROBE && deflated_len(&data[..PROBE], 1)? * 100 > PROBE * 97 {
        0
    } else {
        level
    };
    let mut enc = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2 + 64), flate2::Compression::new(level));
    enc.write_all(data)?;
    enc.finish()
}

fn deflated_len(data: &[u8], level: u32) -> io::Result<usize> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(data.len()), flate2::Compression::new(level));
    enc.write_all(data)?;
    Ok(enc.finish()?.len())
}

impl<W: Write> ParallelGzip<W> {
    /// `threads` bounds the chunks in flight (twice as many), not the
    /// threads: compression runs on rayon's global pool.
    pub fn new(inner: W, level: u32, threads: usize) -> ParallelGzip<W> {
        let threads = threads.max(1);
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        ParallelGzip {
            inner,
            level,
            buf: Vec::with_capacity(CHUNK),
            next_submit: 0,
            next_write: 0,
            pending: BTreeMap::new(),
            done_tx,
            done: done_rx,
            in_flight: 0,
            max_in_flight: threads * 2,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let (seq, level, tx) = (self.next_submit, self.level, self.done_tx.clone());
        rayon::spawn(move || {
            // The encoder may be gone (an error upstream): nobody is listening then.
            let _ = tx.send((seq, gzip_member(&data, level)));
        });
        self.next_submit += 1;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one finished chunk and writes every chunk that is now in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, result) = self.done.recv().map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.in_flight -= 1;
        self.pending.insert(seq, result?);
        while let Some(member) = self.pending.remove(&self.next_write) {
            self.inner.write_all(&member)?;
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit()?;
        if self.next_submit == 0 {
            // An empty stream is still one (empty) gzip member.
            let member = gzip_member(&[], self.level)?;
            self.inner.write_all(&member)?;
        }
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], threads: usize) -> Vec<u8> {
        let mut enc = ParallelGzip::new(Vec::new(), 6, threads);
        for piece in data.chunks(100_003) {
            enc.write_all(piece).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn output_is_gzip_and_independent_of_the_thread_count() {
        let data: Vec<u8> = (0..3_500_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let one = compress(&data, 1);
        let four = compress(&data, 4);
        assert_eq!(one, four);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&one[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn incompressible_chunks_are_stored_and_still_read_back() {
        let mut state = 0x9e3779b97f4a7c15u64;
        let random: Vec<u8> = (0..2_500_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let out = compress(&random, 2);
        assert!(out.len() > random.len(), "stored, not deflated: {}", out.len());
        assert!(out.len() < random.len() + random.len() / 100);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, random);
    }

    #[test]
    fn an_empty_stream_is_a_valid_gzip_stream() {
        let empty = compress(&[], 2);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&empty[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
