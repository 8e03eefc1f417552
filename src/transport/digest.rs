//! sha256 on a thread of its own, so hashing an image overlaps with decompressing it: `unpack`
//! hashes every member, including the layers it does not send, and on two cores the engine is
//! waiting for the end of the stream meanwhile. A member's digest comes back when it ends (the
//! thread is at most a few batches behind), so a swapped layer stops the stream right there.

use std::io::{self, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Bytes gathered before they are handed to the hashing thread.
const BATCH: usize = 256 * 1024;

enum Msg {
    Data(Vec<u8>),
    End,
}

/// A hashing thread: feed one member's bytes, [`HashThread::end`] it for its digest, repeat.
#[derive(Debug)]
pub struct HashThread {
    tx: Option<mpsc::SyncSender<Msg>>,
    digests: mpsc::Receiver<String>,
    handle: Option<JoinHandle<()>>,
    batch: Vec<u8>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Data(_) => "Data",
            Msg::End => "End",
        })
    }
}

impl HashThread {
    pub fn start() -> io::Result<HashThread> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(16);
        let (digest_tx, digests) = mpsc::channel::<String>();
        let handle = std::thread::Builder::new().name("berth-sha256".into()).spawn(move || {
            let mut hasher = Sha256::new();
            for msg in rx {
                match msg {
                    Msg::Data(d) => hasher.update(&d),
                    Msg::End => {
                        if digest_tx.send(hex::encode(hasher.finalize_reset())).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
        Ok(HashThread { tx: Some(tx), digests, handle: Some(handle), batch: Vec::with_capacity(BATCH) })
    }

    fn send(&mut self, msg: Msg) {
        if let Some(tx) = &self.tx {
            // The thread only ends when the sender is dropped, so a send cannot fail earlier.
            let _ = tx.send(msg);
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.batch.extend_from_slice(data);
        if self.batch.len() >= BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.send(Msg::Data(full));
        }
    }

    /// The current member is complete: its digest (hex; empty if the thread died).
    pub fn end(&mut self) -> String {
        let rest = std::mem::take(&mut self.batch);
        if !rest.is_empty() {
            self.send(Msg::Data(rest));
        }
        self.send(Msg::End);
        self.digests.recv().unwrap_or_default()
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A reader that feeds a [`HashThread`] and counts what passes through it.
#[derive(Debug)]
pub struct Tee<'a, R> {
    pub inner: R,
    pub hasher: &'a mut HashThread,
    pub bytes: u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_come_back_in_order() {
        let mut h = HashThread::start().expect("thread");
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.end(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(h.end(), hex::encode(Sha256::digest(b"")));
        let big = vec![7u8; BATCH * 3 + 5];
        let mut tee = Tee { inner: big.as_slice(), hasher: &mut h, bytes: 0 };
        std::io::copy(&mut tee, &mut std::io::sink()).expect("copy");
        assert_eq!(tee.bytes, big.len() as u64);
        assert_eq!(h.end(), hex::encode(Sha256::digest(&big)));
    }
}
