//! The SSH agent filter on arbitrary bytes from a step: whatever the step
//! sends, the agent hears only list (11) and sign (13) requests, each a
//! whole message within the bound, and every answer the step gets is a
//! whole message. It must never panic.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use strata_engine::sandbox::ssh::{self, FAILURE, MAX_MESSAGE};

/// The step's end: its bytes to read, what it was sent.
struct Step<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for Step<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Step<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An agent that records every message and answers SSH_AGENT_SUCCESS.
#[derive(Default)]
struct Agent {
    received: Vec<u8>,
    answers: Vec<u8>,
}

impl Read for &mut Agent {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.answers.len());
        buf[..n].copy_from_slice(&self.answers[..n]);
        self.answers.drain(..n);
        Ok(n)
    }
}

impl Write for &mut Agent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.received.extend_from_slice(buf);
        // A whole request in: one answer out.
        while let Some(len) = whole(&self.received) {
            self.received.drain(..4 + len);
            self.answers.extend_from_slice(&[0, 0, 0, 1, 6]);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of the first whole message of `bytes`, checking the filter's rules.
fn whole(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert!(len >= 1 && len <= MAX_MESSAGE, "the agent got a message of {len} bytes");
    if bytes.len() < 4 + len {
        return None;
    }
    assert!(ssh::allowed(bytes[4]), "the agent got a request of type {}", bytes[4]);
    Some(len)
}

fuzz_target!(|data: &[u8]| {
    let mut step = Step {
        input: data,
        output: Vec::new(),
    };
    let mut agent = Agent::default();
    let _ = ssh::serve(&mut step, || Ok(&mut agent));
    // What the step got back: whole answers, each a failure or the agent's.
    let mut rest = &step.output[..];
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "a torn answer");
        assert!(rest[..5] == FAILURE || rest[..5] == [0, 0, 0, 1, 6], "{:?}", &rest[..5]);
        rest = &rest[5..];
    }
});
