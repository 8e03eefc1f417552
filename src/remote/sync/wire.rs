//! The byte format both sides of a sync speak over one pair of streams (ssh's stdin and stdout).
//!
//! Each side opens with [`MAGIC`]; then messages are zstd-compressed JSON behind a 4-byte length,
//! and a file's bytes travel as chunks behind a 4-byte length, closed by an empty chunk and the
//! sha256 of what was sent (or by [`ABORT`] when the sender could not read the file). Every length
//! is bounded, so a hostile or broken stream costs at most those bounds in memory.

use std::io::{Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::SyncError;

/// What each side writes first: a berth that speaks another version of the protocol, or a login
/// script that prints on stdout, is noticed before anything is written.
pub const MAGIC: &[u8; 12] = b"BERTH-SYNC1\n";
/// The largest message (compressed, and once decompressed): a manifest of ~1M files.
const MAX_MESSAGE: u64 = 256 << 20;
/// The largest chunk of a file.
pub const CHUNK: usize = 1 << 20;
/// A chunk length that says: the sender could not read this file; nothing more of it follows.
const ABORT: u32 = u32::MAX;

/// A writer that counts what went through it.
pub struct Counting<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn broken(what: impl Into<String>) -> SyncError {
    SyncError::Protocol(what.into())
}

fn read_io(e: std::io::Error) -> SyncError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        broken("the stream ended early (the other side stopped or the connection dropped)")
    } else {
        broken(format!("reading the stream: {e}"))
    }
}

fn write_io(e: std::io::Error) -> SyncError {
    broken(format!("writing the stream: {e}"))
}

pub fn write_magic(w: &mut impl Write) -> Result<(), SyncError> {
    w.write_all(MAGIC).map_err(write_io)
}

/// Reads [`MAGIC`], or says what came instead (a shell's greeting, another berth's error).
pub fn read_magic(r: &mut impl Read) -> Result<(), SyncError> {
    let mut got = Vec::with_capacity(MAGIC.len());
    r.take(MAGIC.len() as u64).read_to_end(&mut got).map_err(read_io)?;
    if got == MAGIC {
        return Ok(());
    }
    if got.is_empty() {
        return Err(broken("the other side sent nothing (is berth there new enough to sync?)"));
    }
    // Show a little more of what came instead: usually a message.
    let mut rest = Vec::new();
    let _ = r.take(200).read_to_end(&mut rest);
    got.extend(rest);
    Err(broken(format!(
        "the other side does not speak berth's sync protocol; it sent: {}",
        String::from_utf8_lossy(&got).trim()
    )))
}

pub fn write_message<T: Serialize>(w: &mut impl Write, message: &T) -> Result<(), SyncError> {
    let json = serde_json::to_vec(message).map_err(|e| broken(format!("encoding a message: {e}")))?;
    let packed = zstd::bulk::compress(&json, 3).map_err(write_io)?;
    let len = u32::try_from(packed.len()).map_err(|_| broken("a message is too large"))?;
    w.write_all(&len.to_be_bytes()).map_err(write_io)?;
    w.write_all(&packed).map_err(write_io)?;
    w.flush().map_err(write_io)
}

pub fn read_message<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, SyncError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(read_io)?;
    let len = u64::from(u32::from_be_bytes(len));
    if len > MAX_MESSAGE {
        return Err(broken(format!("a message claims {len} bytes, more than berth accepts")));
    }
    let mut packed = Vec::new();
    r.take(len).read_to_end(&mut packed).map_err(read_io)?;
    if packed.len() as u64 != len {
        return Err(read_io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    let decoder = zstd::Decoder::new(packed.as_slice()).map_err(|e| broken(format!("a bad message: {e}")))?;
    let mut json = Vec::new();
    decoder
        .take(MAX_MESSAGE + 1)
        .read_to_end(&mut json)
        .map_err(|e| broken(format!("a bad message: {e}")))?;
    if json.len() as u64 > MAX_MESSAGE {
        return Err(broken("a message is larger than berth accepts"));
    }
    serde_json::from_slice(&json).map_err(|e| broken(format!("a message berth does not understand: {e}")))
}

/// Sends one file's bytes from `source` (streamed, never whole in memory): chunks, an empty
/// chunk, the sha256 of what was sent. A read error mid-file sends [`ABORT`] and returns it.
/// Returns the number of content bytes sent.
pub fn send_file(
    w: &mut impl Write,
    source: Option<&mut dyn Read>,
) -> Result<Result<u64, std::io::Error>, SyncError> {
    let Some(source) = source else {
        w.write_all(&ABORT.to_be_bytes()).map_err(write_io)?;
        return Ok(Err(std::io::ErrorKind::NotFound.into()));
    };
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                w.write_all(&ABORT.to_be_bytes()).map_err(write_io)?;
                return Ok(Err(e));
            }
        };
        hash.update(&buf[..n]);
        w.write_all(&(n as u32).to_be_bytes()).map_err(write_io)?;
        w.write_all(&buf[..n]).map_err(write_io)?;
        sent += n as u64;
    }
    w.write_all(&0u32.to_be_bytes()).map_err(write_io)?;
    w.write_all(&hash.finalize()).map_err(write_io)?;
    Ok(Ok(sent))
}

/// What [`receive_file`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// All of it: its length and sha256 (hex), checked against the trailer.
    Whole { len: u64, sha256: String },
    /// The sender could not read the file; what was written to `sink` is to be thrown away.
    Aborted,
}

/// Receives one file into `sink`, refusing more than `limit` bytes, and checks the trailer.
pub fn receive_file(r: &mut impl Read, sink: &mut impl Write, limit: u64) -> Result<Received, SyncError> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let mut head = [0u8; 4];
        r.read_exact(&mut head).map_err(read_io)?;
        let n = u32::from_be_bytes(head);
        if n == ABORT {
            return Ok(Received::Aborted);
        }
        if n == 0 {
            break;
        }
        let n = n as usize;
        if n > CHUNK {
            return Err(broken(format!("a chunk of {n} bytes, more than berth sends")));
        }
        len += n as u64;
        if len > limit {
            return Err(broken("a file is longer than its manifest said"));
        }
        r.read_exact(&mut buf[..n]).map_err(read_io)?;
        hash.update(&buf[..n]);
        sink.write_all(&buf[..n])
            .map_err(|e| SyncError::Io { doing: "writing a received file".into(), source: e })?;
    }
    let mut trailer = [0u8; 32];
    r.read_exact(&mut trailer).map_err(read_io)?;
    let got = hash.finalize();
    if got.as_slice() != trailer {
        return Err(broken("a file's checksum does not match what was sent"));
    }
    Ok(Received::Whole { len, sha256: hex::encode(got) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_goes_through_and_its_checksum_is_checked() {
        let mut wire = Vec::new();
        let data = vec![7u8; CHUNK + 10];
        let sent = send_file(&mut wire, Some(&mut data.as_slice())).expect("send").expect("read");
        assert_eq!(sent, data.len() as u64);
        assert_eq!(wire.len(), data.len() + 4 * 3 + 32, "two chunks, the end and the checksum");
        let mut out = Vec::new();
        let got = receive_file(&mut wire.as_slice(), &mut out, u64::MAX).expect("receive");
        assert!(matches!(got, Received::Whole { len, .. } if len == data.len() as u64));
        assert_eq!(out, data);
        // One flipped byte is noticed.
        let mut bad = wire.clone();
        bad[10] ^= 1;
        assert!(receive_file(&mut bad.as_slice(), &mut Vec::new(), u64::MAX).is_err());
        // A stream cut anywhere is an error, never a short file taken as whole.
        for cut in [0, 3, 4, 100, wire.len() - 1] {
            let err = receive_file(&mut &wire[..cut], &mut Vec::new(), u64::MAX).expect_err("truncated");
            assert!(err.to_string().contains("ended early"), "{err}");
        }
        // More bytes than announced are refused.
        assert!(receive_file(&mut wire.as_slice(), &mut Vec::new(), 10).is_err());
    }

    #[test]
    fn oversized_chunks_and_messages_are_refused_without_allocating_them() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&(CHUNK as u32 + 1).to_be_bytes());
        assert!(receive_file(&mut wire.as_slice(), &mut Vec::new(), u64::MAX).is_err());
        let huge = (u32::MAX - 1).to_be_bytes();
        let err = read_message::<serde_json::Value>(&mut &huge[..]).expect_err("too big");
        assert!(err.to_string().contains("more than berth accepts"), "{err}");
    }

    #[test]
    fn a_greeting_instead_of_the_protocol_is_shown() {
        let err = read_magic(&mut &b"Welcome to the server!\nberth: command not found\n"[..])
            .expect_err("no magic");
        assert!(err.to_string().contains("command not found"), "{err}");
        assert!(read_magic(&mut &MAGIC[..]).is_ok());
    }
}
