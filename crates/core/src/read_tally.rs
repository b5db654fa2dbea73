//! A reader that keeps count of what passes through it, for files read as a stream: bytes,
//! their SHA-256, line numbers (as an editor shows them) of byte offsets, and a bound on the
//! length of a line. The UTF-8 byte-order mark Excel writes first is counted and hashed but
//! not passed on, so the parsers above never see it.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{self, Read};

/// The byte-order mark Excel writes at the start of a UTF-8 CSV.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Raised (as an `io::Error`) when a line is longer than the tally allows: the read stops
/// there, so a file without line ends never fills memory.
#[derive(Debug, thiserror::Error)]
#[error("line {line} is longer than {max} bytes")]
pub struct LineTooLong {
    pub line: u64,
    pub max: usize,
}

pub struct ReadTally<R> {
    inner: R,
    /// Bytes read from `inner`, the mark included.
    bytes: u64,
    hash: Sha256,
    /// Whether the first bytes were read (and checked for the mark).
    started: bool,
    /// The first bytes, when they were not the mark, still to pass on.
    carry: Vec<u8>,
    /// Offsets (in the bytes passed on) of line feeds not yet counted by [`Self::line_at`].
    newlines: VecDeque<u64>,
    /// Bytes passed on.
    passed: u64,
    /// The line `line_at` stands on (1-based).
    line: u64,
    /// Line feeds passed on in all.
    lines_passed: u64,
    /// Whether [`Self::line_at`] will be asked (else line feeds are only counted).
    track_offsets: bool,
    /// Bytes since the last line feed, and the most allowed.
    run: usize,
    max_line: usize,
}

impl<R: Read> ReadTally<R> {
    pub fn new(inner: R, max_line: usize) -> Self {
        Self {
            inner,
            bytes: 0,
            hash: Sha256::new(),
            started: false,
            carry: Vec::new(),
            newlines: VecDeque::new(),
            passed: 0,
            line: 1,
            lines_passed: 0,
            run: 0,
            max_line,
            track_offsets: true,
        }
    }

    /// For a reader that reads line by line and counts lines itself: no offsets kept.
    pub fn without_offsets(mut self) -> Self {
        self.track_offsets = false;
        self
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// SHA-256 of every byte read, base64 (as S3's `x-amz-checksum-sha256`).
    pub fn sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.hash.clone().finalize())
    }

    /// The line of the first character at or after `offset` (of the bytes passed on) that is
    /// not a line feed. Offsets asked for only grow, so this forgets what it has counted.
    /// (`csv` reports the `\n` of a CRLF as the start of the next record, hence the skip.)
    pub fn line_at(&mut self, offset: u64) -> u64 {
        let mut start = offset;
        while let Some(&at) = self.newlines.front() {
            if at > start {
                break;
            }
            if at == start {
                start += 1;
            }
            self.newlines.pop_front();
            self.line += 1;
        }
        self.line
    }

    /// The line being read now: where a read stopped.
    pub fn current_line(&self) -> u64 {
        self.lines_passed + 1
    }

    /// Reads the first three bytes, and keeps them to pass on unless they are the mark.
    fn read_start(&mut self) -> io::Result<()> {
        let mut head = [0u8; 3];
        let mut have = 0;
        while have < head.len() {
            let n = self.inner.read(&mut head[have..])?;
            if n == 0 {
                break;
            }
            have += n;
        }
        self.take_in(&head[..have]);
        if &head[..have] != BOM {
            self.carry = head[..have].to_vec();
        }
        self.started = true;
        Ok(())
    }

    fn take_in(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
    }
}

impl<R: Read> Read for ReadTally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.read_start()?;
        }
        let n = if self.carry.is_empty() {
            let n = self.inner.read(buf)?;
            self.take_in(&buf[..n]);
            n
        } else {
            let n = self.carry.len().min(buf.len());
            buf[..n].copy_from_slice(&self.carry[..n]);
            self.carry.drain(..n);
            n
        };
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                if self.track_offsets {
                    self.newlines.push_back(self.passed + i as u64);
                }
                self.lines_passed += 1;
                self.run = 0;
            } else {
                self.run += 1;
                if self.run > self.max_line {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        LineTooLong {
                            line: self.lines_passed + 1,
                            max: self.max_line,
                        },
                    ));
                }
            }
        }
        self.passed += n as u64;
        Ok(n)
    }
}

/// The [`LineTooLong`] an `io::Error` carries, if it is one.
pub fn line_too_long(error: &io::Error) -> Option<&LineTooLong> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<LineTooLong>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything through a tally in reads of `step` bytes.
    fn drain(data: &[u8], step: usize, max_line: usize) -> (Vec<u8>, ReadTally<&[u8]>) {
        let mut tally = ReadTally::new(data, max_line);
        let mut out = Vec::new();
        let mut buf = vec![0; step];
        loop {
            let n = tally.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (out, tally)
    }

    #[test]
    fn the_mark_is_hashed_and_counted_but_not_passed_on() {
        let data = b"\xEF\xBB\xBFa,b\r\nc,d\n";
        for step in [1, 2, 3, 4, 64] {
            let (out, tally) = drain(data, step, 100);
            assert_eq!(out, b"a,b\r\nc,d\n", "step {step}");
            assert_eq!(tally.bytes_read(), data.len() as u64);
            let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data));
            assert_eq!(tally.sha256_base64(), expected);
        }
    }

    #[test]
    fn lines_of_offsets_skip_a_crlf_line_feed() {
        let (_, mut tally) = drain(b"h\r\na\r\nb\n\nc\n", 64, 100);
        assert_eq!(tally.line_at(0), 1);
        assert_eq!(
            tally.line_at(2),
            2,
            "the \\n of the first CRLF starts line 2"
        );
        assert_eq!(tally.line_at(6), 3);
        assert_eq!(tally.line_at(9), 5);
    }

    #[test]
    fn a_line_longer_than_allowed_stops_the_read_at_its_line() {
        let mut tally = ReadTally::new(&b"ok\nok\nxxxxxxxxxx\n"[..], 4);
        let mut buf = vec![0; 64];
        let e = loop {
            match tally.read(&mut buf) {
                Ok(0) => panic!("read to the end"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(line_too_long(&e).unwrap().line, 3);
    }
}
