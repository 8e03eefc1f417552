//! Progress bars for long transfers: bytes done, rate and ETA, drawn only on a terminal
//! (`Printer::progress_allowed`), so pipes and CI logs stay clean.

use std::io::{self, Read, Write};

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::Printer;

/// A byte bar of `total` (an estimate: it grows if the work turns out bigger).
pub fn bytes(out: &Printer, total: u64, message: impl Into<String>) -> ProgressBar {
    if !out.progress_allowed() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.max(1));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message.into());
    bar
}

/// Advance `bar` by `n`, stretching its length when an estimate was too small.
pub fn advance(bar: &ProgressBar, n: u64) {
    bar.inc(n);
    if let Some(len) = bar.length()
        && bar.position() > len
    {
        bar.set_length(bar.position());
    }
}

/// A reader that advances a bar by what passes through it.
#[derive(Debug)]
pub struct Counted<R> {
    pub inner: R,
    pub bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        advance(&self.bar, n as u64);
        Ok(n)
    }
}

/// A writer that counts the bytes written through it.
#[derive(Debug)]
pub struct CountingWriter<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
