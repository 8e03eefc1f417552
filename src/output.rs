//! The one printer: status lines on stderr, data (tables, `--json`) on stdout, progress bars only
//! on terminals. Every line berth prints goes through here, so pipes stay clean.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::cell::RefCell;
use std::io::{self, IsTerminal, Read, Write};

use indicatif::{ProgressBar, ProgressStyle};

use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Printer {
        Printer { json, quiet }
    }

    /// A line saying what berth did (stderr, so stdout stays data only).
    pub fn status(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", escape_lines(line.as_ref()));
        }
    }

    /// A warning (stderr), printed even with `--quiet`.
    pub fn warn(&self, line: impl AsRef<str>) {
        eprintln!("warning: {}", escape_lines(line.as_ref()));
    }

    /// Data for the user or a script (stdout).
    pub fn data(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_ref().as_bytes());
        let _ = out.flush();
    }

    /// Raw bytes for stdout (a command's or a log's output, not necessarily UTF-8 or whole
    /// characters: a chunk may end inside one).
    pub fn data_bytes(&self, bytes: &[u8]) {
        let _ = stream_stdout(bytes);
    }

    /// Raw bytes for stderr.
    pub fn err_bytes(&self, bytes: &[u8]) {
        stream_stderr(bytes);
    }

    /// A counting bar (`{pos}/{len}` in `template`), drawn only on a terminal.
    pub fn count_bar(&self, len: u64, template: &str) -> ProgressBar {
        let bar = if self.progress_allowed() { ProgressBar::new(len) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }

    /// A spinner with the elapsed time and what happens now (a build), drawn at once.
    pub fn spinner(&self) -> Activity {
        let activity = Activity { out: *self, kind: ActivityKind::Spinner, bar: RefCell::new(None) };
        activity.bar();
        activity
    }

    /// A byte bar for a transfer whose size is learnt as it goes (a pull), drawn from its first
    /// report: nothing shows when there turns out to be nothing to do.
    pub fn transfer(&self) -> Activity {
        Activity { out: *self, kind: ActivityKind::Transfer, bar: RefCell::new(None) }
    }

    /// One JSON document on stdout.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.data(format!("{text}\n"));
        Ok(())
    }

    /// Ask a yes/no question on the terminal (stderr), default no; `None` when stdin is not a
    /// terminal, so nobody could answer.
    pub fn confirm(&self, question: &str) -> Option<bool> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).ok()?;
        Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
    }

    /// Whether progress bars may be drawn (stderr is a terminal).
    pub fn progress_allowed(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// `text` with every control character written out (`\\n`, `\\t`, `\\x1b`, `\\u{9b}`) and a
/// backslash doubled, so text a user does not control (a path, a name, a job's command) can
/// neither break a table row or a message line nor send escape sequences to a terminal, and
/// the escaped form reads back unambiguously. The one escaping rule: tables, messages and
/// errors all go through it.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`escape`] for a message berth wrote over several lines: its own line breaks stay, anything
/// else is escaped, and every line after the first is indented, so a line break inside a path or
/// name (which berth cannot tell from its own) never starts a line that passes for one of
/// berth's (`error:`, `warning:`, a status line).
pub fn escape_lines(text: &str) -> String {
    let mut lines = text.split('\n').map(escape);
    let mut out = lines.next().map(|l| l.into_owned()).unwrap_or_default();
    for line in lines {
        out.push('\n');
        if !line.is_empty() && !line.starts_with([' ', '\t']) {
            out.push_str("  ");
        }
        out.push_str(&line);
    }
    out
}

/// `text` without terminal escape sequences (colours, cursor moves, titles: `ESC [ ... x`,
/// `ESC ] ... BEL`, `ESC x`) and without other control characters but line breaks and tabs: what
/// a program wrote for a terminal, made fit for a log file someone reads later.
pub fn strip_terminal_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in `@`..`~`.
                Some('[') => {
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC (a window title, a hyperlink): up to BEL or ESC \.
                Some(']') => {
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                // Intermediates (a character-set choice, `ESC ( B`), then one final byte.
                Some(' '..='/') => {
                    while chars.next_if(|n| (' '..='/').contains(n)).is_some() {}
                    chars.next();
                }
                _ => {}
            },
            '\n' | '\t' => out.push(c),
            // A lone carriage return (a progress bar redrawing its line) becomes a line break.
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A command's output inside the environment, passed through as it comes (`exec`, `shell`).
/// An error: the reader went away (`| head`), and nothing more is worth producing.
pub fn stream_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// A command's error output inside the environment, passed through as it comes.
pub fn stream_stderr(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

#[derive(Debug, Clone, Copy)]
enum ActivityKind {
    Spinner,
    Transfer,
}

/// Long engine work shown to the user: the engine reports to it through
/// [`crate::engine::Progress`]; it clears itself when dropped.
#[derive(Debug)]
pub struct Activity {
    out: Printer,
    kind: ActivityKind,
    bar: RefCell<Option<ProgressBar>>,
}

impl Activity {
    fn bar(&self) -> ProgressBar {
        self.bar
            .borrow_mut()
            .get_or_insert_with(|| {
                if !self.out.progress_allowed() {
                    return ProgressBar::hidden();
                }
                match self.kind {
                    ActivityKind::Spinner => {
                        let bar = ProgressBar::new_spinner();
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.enable_steady_tick(std::time::Duration::from_millis(120));
                        bar
                    }
                    ActivityKind::Transfer => {
                        let bar = ProgressBar::new(0);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{spinner} {msg} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar
                    }
                }
            })
            .clone()
    }
}

impl crate::engine::Progress for Activity {
    fn status(&self, line: &str) {
        self.out.status(line);
    }

    fn message(&self, text: &str) {
        self.bar().set_message(text.to_string());
    }

    fn bytes(&self, done: u64, total: u64) {
        let bar = self.bar();
        bar.set_length(total);
        bar.set_position(done);
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        crate::engine::Progress::finish(self);
    }
}

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

/// Print an error the way every berth command does.
pub fn print_error(text: &str) {
    eprint!("{text}");
}

/// `1 item`, `3 items`: a count and its noun, plural when needed.
pub fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A plain text table: a header row and aligned columns, two spaces apart.
///
/// Every cell goes through [`escape`]: a row stays one line whatever its text holds.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect()).collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// stdout as a byte stream for a protocol (the server's side of a sync): nothing else may be
/// printed on it while it is in use.
pub fn protocol_stdout() -> impl Write {
    std::io::stdout().lock()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", "STATE"],
            &[vec!["a".into(), "running".into()], vec!["long-name".into(), "exited".into()]],
        );
        assert_eq!(t, "NAME       STATE\na          running\nlong-name  exited\n");
    }

    #[test]
    fn terminal_codes_are_stripped_from_logs() {
        let raw =
            "\x1b[1;31mERROR\x1b[0m: no\r\n\x1b]0;title\x0750%\r100%\n\x1b]8;;u\x1b\\link\x1b(B\x07\tok\n";
        assert_eq!(strip_terminal_codes(raw), "ERROR: no\n50%\n100%\nlink\tok\n");
        assert_eq!(strip_terminal_codes("plain\n"), "plain\n");
    }

    #[test]
    fn control_characters_in_a_cell_cannot_break_or_forge_a_row() {
        let forged = "/home/a/p\nberth-b-x  running  /home/b\x1b[2K\u{9b}31m\\n";
        let t = table(&["NAME", "PROJECT"], &[vec!["a".into(), forged.into()]]);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(t.contains("/home/a/p\\nberth-b-x  running  /home/b\\x1b[2K\\u{9b}31m\\n"), "{t}");
        assert_eq!(escape("plain/path"), "plain/path");
        assert_eq!(escape_lines("one\ntwo\x07"), "one\n  two\\x07");
        assert_eq!(escape_lines("packing /tmp/a\nerror: forged"), "packing /tmp/a\n  error: forged");
        assert_eq!(escape_lines("list:\n    kept as written"), "list:\n    kept as written");
    }
}
