//! Bridges between the engine's async byte streams and the synchronous tar, zstd and sha256
//! code, which runs on a blocking thread. Bounded channels keep memory flat: a multi-GB image
//! never sits in memory, only a few MiB in flight.
//!
//! [`ChannelWriter`] can hold back the last bytes it was given until [`ChannelWriter::release`]:
//! a load whose input turned out to be damaged then never receives a complete tar, so the
//! engine rejects it and keeps nothing. Unreleased, its stream ends in an error (the HTTP upload
//! is aborted), and what it did send never ends on a 512-byte tar block boundary either.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

/// Chunks in flight from a [`ChannelWriter`] (each up to [`CHUNK`] bytes).
const DEPTH: usize = 8;
/// Chunks in flight into a [`ChannelReader`]: the engine's HTTP frames, tens of KiB each, so a
/// few MiB that let the engine keep streaming while zstd takes a job.
const READ_DEPTH: usize = 256;
/// Size of the chunks a [`ChannelWriter`] sends.
const CHUNK: usize = 512 * 1024;

/// A blocking `Read` over chunks that an async task feeds (see [`forward`]).
#[derive(Debug)]
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

/// A reader and the sender an async task fills it through.
pub fn reader() -> (mpsc::Sender<io::Result<Bytes>>, ChannelReader) {
    let (tx, rx) = mpsc::channel(READ_DEPTH);
    (tx, ChannelReader { rx, current: Bytes::new() })
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                // The sender is gone: the end of the stream.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Copy an async stream into a [`ChannelReader`]'s sender; errors end up in the reader.
/// Returns when the stream ends or the reading side has gone away.
pub async fn forward<S>(stream: S, tx: mpsc::Sender<io::Result<Bytes>>)
where
    S: Stream<Item = anyhow::Result<Bytes>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| io::Error::other(format!("{e:#}")));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// A blocking `Write` whose bytes come out of an async stream (see [`writer`]).
#[derive(Debug)]
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    hold: usize,
    /// Bytes sent so far (the first chunk is one short, so every prefix sent is misaligned).
    sent: u64,
    released: Arc<AtomicBool>,
}

/// A writer that keeps back its last `hold` bytes until released, and the stream it feeds.
pub fn writer(hold: usize) -> (ChannelWriter, impl Stream<Item = io::Result<Bytes>> + Send + 'static) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let released = Arc::new(AtomicBool::new(false));
    let flag = released.clone();
    // The channel closing without a release is an abort: end the stream with an error.
    let stream = futures_util::stream::unfold(Some(rx), move |rx| {
        let flag = flag.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None if flag.load(Ordering::SeqCst) => None,
                None => Some((Err(io::Error::other("berth aborted the transfer")), None)),
            }
        }
    });
    (ChannelWriter { tx, buf: Vec::with_capacity(CHUNK + hold), hold, sent: 0, released }, stream)
}

impl ChannelWriter {
    fn send(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiving side stopped reading"))
    }

    /// Send everything, held-back bytes included, and end the stream.
    pub fn release(mut self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.send(rest)?;
        }
        self.released.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= self.hold + CHUNK {
            let size = if self.sent == 0 { CHUNK - 1 } else { CHUNK };
            let rest = self.buf.split_off(size);
            let chunk = std::mem::replace(&mut self.buf, rest);
            self.send(chunk)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(stream: impl Stream<Item = io::Result<Bytes>>) -> (Vec<u8>, bool) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let mut out = Vec::new();
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(b) => out.extend_from_slice(&b),
                    Err(_) => return (out, true),
                }
            }
            (out, false)
        })
    }

    #[test]
    fn released_writer_delivers_everything() {
        let (mut w, stream) = writer(1000);
        let data: Vec<u8> = (0..CHUNK * 2 + 77).map(|i| (i % 251) as u8).collect();
        let t = std::thread::spawn(move || {
            w.write_all(&data).expect("write");
            w.release().expect("release");
            data
        });
        let (got, failed) = collect(stream);
        let data = t.join().expect("thread");
        assert!(!failed);
        assert_eq!(got, data);
    }

    #[test]
    fn dropped_writer_never_delivers_the_held_back_tail() {
        let (mut w, stream) = writer(4097);
        let data: Vec<u8> = vec![7; CHUNK + 10_000];
        let t = std::thread::spawn(move || {
            w.write_all(&data).expect("write");
            drop(w);
        });
        let (got, failed) = collect(stream);
        t.join().expect("thread");
        assert!(failed, "the stream must end with an error");
        assert!(got.len() <= CHUNK + 10_000 - 4097);
    }

    #[test]
    fn reader_reads_what_was_forwarded() {
        let (tx, mut r) = reader();
        let t = std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).map(|_| s)
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(forward(
            futures_util::stream::iter(vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))]),
            tx,
        ));
        assert_eq!(t.join().expect("thread").expect("read"), "abcd");
    }
}
