//! Keeping a server's copy of the project in step with the laptop's (`berth --on NAME …`), and
//! bringing results back (`berth --on NAME fetch`), over one pair of byte streams (ssh's).
//!
//! Push: the laptop sends a manifest ([`manifest`]); the server answers which files it needs and
//! which it keeps; the laptop sends just those bytes ([`wire`]). The server (`berth serve-on … --sync`)
//! treats the stream as untrusted: every path is checked ([`tree::RelPath`]), nothing is
//! written through a symlink, a file is written beside its place and renamed in only when whole
//! and verified. It never deletes, and never overwrites a file whose content differs from what a
//! sync last wrote there (its record, `DIR/.berth/sync-record.json`): a checkpoint or a file
//! edited on the server stays, and is reported as skipped.
//!
//! Fetch: the server (`berth serve-on … --send`) lists the asked paths; the laptop takes the files it
//! lacks or holds an older copy of, never replacing a newer local file without `force`.

pub mod manifest;
pub mod tree;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use manifest::Entry;
use tree::{Kind, RelPath, Root};
use wire::{Counting, Received};

use crate::error::{Advice, Code};

/// A failed sync or fetch.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the sync stream is broken: {0}")]
    Protocol(String),
    #[error("{doing}: {source}")]
    Io { doing: String, source: std::io::Error },
    #[error("refusing the path {path:?}: {why}")]
    BadPath { path: String, why: String },
    #[error("not in the server's project folder: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("the server's berth refused: {0}")]
    Remote(String),
    #[error(
        "fetching needs {} and the laptop's disk has {} free",
        crate::spec::size::format_size(*wanted),
        crate::spec::size::format_size(*free)
    )]
    NoRoom { wanted: u64, free: u64 },
}

impl Advice for SyncError {
    fn code(&self) -> Code {
        match self {
            SyncError::BadPath { .. } | SyncError::Missing(_) => Code::BadInput,
            SyncError::NoRoom { .. } => Code::Refused,
            SyncError::Remote(_) => Code::Refused,
            _ => Code::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SyncError::Protocol(_) => {
                "run it again: files are written whole or not at all, so an interrupted \
                 sync leaves nothing half-written; if it persists, check that the server's berth is this \
                 version (`berth --version` there)"
                    .into()
            }
            SyncError::Io { .. } => "check that the folder exists and is writable by you".into(),
            SyncError::BadPath { .. } => {
                "give paths inside the project folder, relative to it (no `..`, not in .berth)".into()
            }
            SyncError::Missing(_) => "check the path on the server (`berth --on NAME exec -- ls`)".into(),
            SyncError::Remote(_) => return None,
            SyncError::NoRoom { .. } => {
                "free some space, or fetch less at once (a folder or file inside what you asked for)".into()
            }
        })
    }
}

/// A file not sent, not written or not fetched, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// What a push did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SyncReport {
    /// Files (and symlinks) written on the server.
    pub files_sent: usize,
    /// Content bytes of the files sent.
    pub bytes_sent: u64,
    /// Everything written to the server's stream: the manifest, the framing, the files.
    pub stream_bytes: u64,
    /// Files already the same on the server.
    pub unchanged: usize,
    /// Files left as they are, with the reason (changed or made on the server, ignored symlinks).
    pub files_skipped: Vec<Skipped>,
    /// Files a sync wrote earlier that the laptop no longer offers (deleted or now ignored):
    /// kept on the server, since a sync never deletes.
    pub kept_on_server: Vec<String>,
}

/// What a fetch did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FetchReport {
    pub files_fetched: usize,
    pub bytes_received: u64,
    pub unchanged: usize,
    pub files_skipped: Vec<Skipped>,
}

// Messages, in the order they travel.

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
enum Reply<T> {
    Ok(T),
    Error { message: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    need: Vec<u32>,
    unchanged: usize,
    skipped: Vec<Skipped>,
    kept_on_server: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Done {
    written: Vec<String>,
    skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FetchRequest {
    /// Project-relative paths; `""` is the whole project.
    paths: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FetchOffer {
    entries: Vec<Entry>,
    missing: Vec<String>,
    skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Need {
    need: Vec<u32>,
}

fn read_reply<T: serde::de::DeserializeOwned>(r: &mut impl Read) -> Result<T, SyncError> {
    match wire::read_message::<Reply<T>>(r)? {
        Reply::Ok(t) => Ok(t),
        Reply::Error { message } => Err(SyncError::Remote(message)),
    }
}

/// A write to the server failed: its own words (why it stopped) say more than "broken pipe".
fn explain_write_failure(e: SyncError, from_server: &mut impl Read) -> SyncError {
    match wire::read_magic(from_server)
        .and_then(|()| wire::read_message::<Reply<serde_json::Value>>(from_server))
    {
        Ok(Reply::Error { message }) => SyncError::Remote(message),
        Err(explained @ SyncError::Protocol(_)) if !explained.to_string().contains("ended early") => {
            explained
        }
        _ => e,
    }
}

/// Laptop side of a sync: offers `project`'s files, sends the ones the server needs.
pub fn push(project: &Path, to_server: impl Write, from_server: impl Read) -> Result<SyncReport, SyncError> {
    push_start(project, to_server)?.finish(&mut BufReader::new(from_server))
}

/// A push whose manifest is on its way: the server's answer is read by [`Push::finish`]. Split
/// in two so that the manifest travels with the request that starts the server's berth (no
/// round trip waits for it) and the caller can read a greeting in between.
pub struct Push<W: Write> {
    offer: manifest::Offer,
    root: Root,
    w: Counting<BufWriter<W>>,
    /// A failed write: the server's own words, read in `finish`, say more than "broken pipe".
    sent: Result<(), SyncError>,
}

impl<W: Write> std::fmt::Debug for Push<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push").field("entries", &self.offer.entries.len()).finish_non_exhaustive()
    }
}

/// Walks `project` and writes the manifest to the server.
pub fn push_start<W: Write>(project: &Path, to_server: W) -> Result<Push<W>, SyncError> {
    let offer = manifest::offer(project)?;
    let root = Root::open(project)
        .map_err(|e| SyncError::Io { doing: format!("opening {}", project.display()), source: e })?;
    let mut w = Counting { inner: BufWriter::with_capacity(1 << 20, to_server), bytes: 0 };
    let sent = wire::write_magic(&mut w)
        .and_then(|()| wire::write_message(&mut w, &Manifest { entries: offer.entries.clone() }));
    Ok(Push { offer, root, w, sent })
}

impl<W: Write> Push<W> {
    /// Reads the server's plan, sends the files it needs, reads what it did.
    pub fn finish(self, r: &mut impl BufRead) -> Result<SyncReport, SyncError> {
        let Push { offer, root, mut w, sent } = self;
        if let Err(e) = sent {
            return Err(explain_write_failure(e, r));
        }
        wire::read_magic(r)?;
        let plan: Plan = read_reply(r)?;
        let mut bytes_sent = 0;
        for &i in &plan.need {
            let entry = offer
                .entries
                .get(i as usize)
                .ok_or_else(|| SyncError::Protocol("the server asked for a file not offered".into()))?;
            if entry.link.is_some() {
                continue;
            }
            let rel = RelPath::parse(&entry.path)
                .map_err(|why| SyncError::BadPath { path: entry.path.clone(), why })?;
            let mut file = root.open_file(&rel).ok();
            let n = wire::send_file(&mut w, file.as_mut().map(|f| f as &mut dyn Read));
            let n = match n {
                Ok(n) => n,
                Err(e) => return Err(explain_write_failure(e, r)),
            };
            bytes_sent += n.unwrap_or(0);
        }
        w.flush().map_err(|e| SyncError::Protocol(format!("writing the stream: {e}")))?;
        let done: Done = read_reply(r)?;
        let mut files_skipped = offer.skipped;
        files_skipped.extend(plan.skipped);
        files_skipped.extend(done.skipped);
        Ok(SyncReport {
            files_sent: done.written.len(),
            bytes_sent,
            stream_bytes: w.bytes,
            unchanged: plan.unchanged,
            files_skipped,
            kept_on_server: plan.kept_on_server,
        })
    }
}

/// The server's record of what a sync last wrote at each path.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    files: BTreeMap<String, Recorded>,
    /// The file as it was last read or written: a sync that changed nothing writes nothing
    /// (each atomic write costs two disk syncs, most of a no-op `berth --on … up`).
    #[serde(skip)]
    on_disk: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Recorded {
    /// [`Entry::content_id`] of what berth wrote.
    content: String,
    /// Its size and mtime as written, so an unchanged file need not be read to be recognised.
    #[serde(default)]
    size: u64,
    #[serde(default)]
    mtime: (i64, u32),
    /// What a sync that was cut short may already have put there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<String>,
}

impl Record {
    fn load(path: &Path) -> Record {
        let Ok(bytes) = std::fs::read(path) else { return Record::default() };
        match serde_json::from_slice::<Record>(&bytes) {
            Ok(record) => Record { on_disk: bytes, ..record },
            Err(_) => Record::default(),
        }
    }

    fn save(&mut self, path: &Path) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(self).map_err(|e| SyncError::Protocol(e.to_string()))?;
        if bytes == self.on_disk {
            return Ok(());
        }
        crate::fsutil::write_atomic(path, &bytes, 0o600).map_err(|e| SyncError::Io {
            doing: format!("writing {}: {e:#}", path.display()),
            source: std::io::Error::other("write"),
        })?;
        self.on_disk = bytes;
        Ok(())
    }
}

/// Creates the server's project folder (missing parents and the folder itself private, 0700)
/// and its `.berth`.
fn prepare_dir(dir: &Path) -> Result<(), SyncError> {
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(|e| SyncError::Io { doing: format!("creating {}", dir.display()), source: e })?;
    let state = crate::state::dir(dir);
    crate::fsutil::create_state_dir(&state).map_err(|e| SyncError::Io {
        doing: format!("{e:#}"),
        source: std::io::Error::other("state folder"),
    })?;
    crate::state::ignore_in_git(&state);
    Ok(())
}

/// What is at a path on the server now, as a content id ([`Entry::content_id`]).
fn current_content(
    root: &Root,
    rel: &RelPath,
    kind: Kind,
    record: Option<&Recorded>,
) -> std::io::Result<Option<String>> {
    match kind {
        Kind::File { size, mtime, .. } => {
            if let Some(r) =
                record.filter(|r| r.size == size && r.mtime == mtime && !r.content.starts_with("link:"))
            {
                return Ok(Some(r.content.clone()));
            }
            let file = root.open_file(rel).map_err(|e| std::io::Error::other(e.to_string()))?;
            manifest::hash_reader(file).map(Some)
        }
        Kind::Symlink => {
            let target = root.read_link(rel).map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(Some(format!("link:{target}")))
        }
        Kind::Dir | Kind::Other => Ok(None),
    }
}

/// Server side of a push (`berth serve-on … --sync`). The stream is untrusted: a bad path or
/// symlink refuses the whole manifest before anything is written.
pub fn receive(dir: &Path, input: impl Read, output: impl Write) -> Result<SyncReport, SyncError> {
    let mut r = BufReader::with_capacity(1 << 20, input);
    let mut w = BufWriter::new(output);
    wire::write_magic(&mut w)?;
    let result = receive_inner(dir, &mut r, &mut w);
    if let Err(e) = &result
        && !matches!(e, SyncError::Protocol(_))
    {
        let _ = wire::write_message(&mut w, &Reply::<()>::Error { message: e.to_string() });
    }
    let _ = w.flush();
    result
}

fn receive_inner(dir: &Path, r: &mut impl Read, w: &mut impl Write) -> Result<SyncReport, SyncError> {
    prepare_dir(dir)?;
    let _lock = tree::lock(&crate::state::sync_lock(dir))
        .map_err(|e| SyncError::Io { doing: "taking the sync lock".into(), source: e })?;
    let root = Root::open(dir)
        .map_err(|e| SyncError::Io { doing: format!("opening {}", dir.display()), source: e })?;
    wire::read_magic(r)?;
    let manifest: Manifest = wire::read_message(r)?;
    let entries = validate(&manifest.entries)?;
    let record_path = crate::state::sync_record(dir);
    let mut record = Record::load(&record_path);

    let mut need = Vec::new();
    let mut seen = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    let mut unchanged = 0;
    for (i, (rel, entry)) in entries.iter().enumerate() {
        let wanted = entry.content_id();
        let recorded = record.files.get(rel.as_str());
        let kind = match root.kind(rel) {
            Ok(k) => k,
            Err(e) => {
                seen.push(None);
                skipped.push(Skipped { path: entry.path.clone(), reason: format!("on the server, {e}") });
                continue;
            }
        };
        seen.push(kind);
        let Some(kind) = kind else {
            need.push(i as u32);
            continue;
        };
        let current = match current_content(&root, rel, kind, recorded) {
            Ok(Some(c)) => c,
            Ok(None) => {
                skipped.push(Skipped {
                    path: entry.path.clone(),
                    reason: "a folder or special file has this name on the server (kept)".into(),
                });
                continue;
            }
            Err(e) => {
                skipped.push(Skipped {
                    path: entry.path.clone(),
                    reason: format!("cannot be read on the server: {e}"),
                });
                continue;
            }
        };
        if current == wanted {
            unchanged += 1;
            if let Kind::File { size, mtime, .. } = kind {
                record
                    .files
                    .insert(entry.path.clone(), Recorded { content: current, size, mtime, pending: None });
            } else {
                record.files.insert(entry.path.clone(), Recorded { content: current, ..Recorded::default() });
            }
            continue;
        }
        let berths =
            recorded.is_some_and(|r| r.content == current || r.pending.as_deref() == Some(current.as_str()));
        if berths {
            need.push(i as u32);
        } else {
            let reason = if recorded.is_some() {
                "changed on the server since berth last synced it (kept; not overwritten)"
            } else {
                "made on the server (kept; not overwritten)"
            };
            skipped.push(Skipped { path: entry.path.clone(), reason: reason.into() });
        }
    }
    let offered: BTreeSet<&str> = entries.iter().map(|(r, _)| r.as_str()).collect();
    let kept_on_server: Vec<String> = record
        .files
        .keys()
        .filter(|p| !offered.contains(p.as_str()))
        .filter(|p| RelPath::parse(p).ok().is_some_and(|rel| matches!(root.kind(&rel), Ok(Some(_)))))
        .cloned()
        .collect();
    // Before anything is written: what is about to be put there counts as berth's, should this
    // sync be cut short after a rename.
    for &i in &need {
        let (rel, entry) = &entries[i as usize];
        record.files.entry(rel.as_str().to_string()).or_default().pending = Some(entry.content_id());
    }
    record.save(&record_path)?;
    wire::write_message(
        w,
        &Reply::Ok(Plan {
            need: need.clone(),
            unchanged,
            skipped: skipped.clone(),
            kept_on_server: kept_on_server.clone(),
        }),
    )?;

    let mut written = Vec::new();
    let mut late = Vec::new();
    let result = (|| -> Result<(), SyncError> {
        for &i in &need {
            let i = i as usize;
            let (rel, entry) = &entries[i];
            let before = seen[i];
            if let Some(target) = &entry.link {
                match root.write_link(rel, target, |now| now == before) {
                    Ok(true) => {
                        written.push(entry.path.clone());
                        record.files.insert(
                            entry.path.clone(),
                            Recorded { content: entry.content_id(), ..Recorded::default() },
                        );
                    }
                    Ok(false) => late.push(Skipped {
                        path: entry.path.clone(),
                        reason: "changed on the server during the sync (kept)".into(),
                    }),
                    Err(e) => {
                        late.push(Skipped { path: entry.path.clone(), reason: format!("on the server, {e}") })
                    }
                }
                continue;
            }
            let mut why_not = None;
            let mut consumed = false;
            let outcome = root.write_file(
                rel,
                entry.mode,
                entry.mtime,
                |file| {
                    consumed = true;
                    match wire::receive_file(r, file, entry.size)? {
                        Received::Whole { len, sha256 }
                            if len == entry.size && Some(&sha256) == entry.sha256.as_ref() =>
                        {
                            Ok(true)
                        }
                        Received::Whole { .. } => {
                            why_not = Some("changed on the laptop during the sync (not sent; sync again)");
                            Ok(false)
                        }
                        Received::Aborted => {
                            why_not = Some("could not be read on the laptop (not sent)");
                            Ok(false)
                        }
                    }
                },
                |now| now == before,
            )?;
            if !consumed {
                // Its bytes come all the same: read past them.
                wire::receive_file(r, &mut std::io::sink(), entry.size)?;
            }
            match outcome {
                Ok(true) => {
                    written.push(entry.path.clone());
                    record.files.insert(
                        entry.path.clone(),
                        Recorded {
                            content: entry.content_id(),
                            size: entry.size,
                            mtime: entry.mtime,
                            pending: None,
                        },
                    );
                }
                Ok(false) => late.push(Skipped {
                    path: entry.path.clone(),
                    reason: why_not.unwrap_or("changed on the server during the sync (kept)").into(),
                }),
                Err(e) => {
                    late.push(Skipped { path: entry.path.clone(), reason: format!("on the server, {e}") })
                }
            }
        }
        Ok(())
    })();
    record.save(&record_path)?;
    result?;
    wire::write_message(w, &Reply::Ok(Done { written: written.clone(), skipped: late.clone() }))?;
    skipped.extend(late);
    Ok(SyncReport {
        files_sent: written.len(),
        bytes_sent: 0,
        stream_bytes: 0,
        unchanged,
        files_skipped: skipped,
        kept_on_server,
    })
}

/// Every path and symlink of a manifest checked, or the whole manifest refused.
fn validate(entries: &[Entry]) -> Result<Vec<(RelPath, &Entry)>, SyncError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let rel = RelPath::parse(&e.path).map_err(|why| SyncError::BadPath { path: e.path.clone(), why })?;
        if !seen.insert(rel.clone()) {
            return Err(SyncError::BadPath { path: e.path.clone(), why: "listed twice".into() });
        }
        match (&e.link, &e.sha256) {
            (Some(target), None) if tree::link_stays_inside(&rel, target) => {}
            (Some(target), None) => {
                return Err(SyncError::BadPath {
                    path: e.path.clone(),
                    why: format!("a symlink to {target}, outside the project"),
                });
            }
            (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
            _ => {
                return Err(SyncError::BadPath {
                    path: e.path.clone(),
                    why: "neither a file with a sha256 nor a symlink".into(),
                });
            }
        }
        out.push((rel, e));
    }
    // A path under another entry would need that entry to be a folder.
    for (rel, _) in &out {
        let mut prefix = rel.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if let Ok(p) = RelPath::parse(parent)
                && seen.contains(&p)
            {
                return Err(SyncError::BadPath {
                    path: rel.to_string(),
                    why: format!("{parent} is also listed as a file"),
                });
            }
            prefix = parent;
        }
    }
    Ok(out)
}

/// A user's path as a project-relative one: `.`, `""` or the project itself is the whole project.
fn request_path(text: &str) -> Result<Option<RelPath>, SyncError> {
    let trimmed = text.trim_end_matches('/');
    let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
    if trimmed.is_empty() || trimmed == "." {
        return Ok(None);
    }
    RelPath::parse(trimmed).map(Some).map_err(|why| SyncError::BadPath { path: text.into(), why })
}

/// Laptop side of a fetch: copies `paths` (project-relative, files or folders) from the server's
/// project folder into `project`, never replacing a newer local file unless `force`.
pub fn fetch(
    project: &Path,
    paths: &[PathBuf],
    force: bool,
    to_server: impl Write,
    from_server: impl Read,
) -> Result<FetchReport, SyncError> {
    fetch_start(project, paths, to_server)?.finish(force, &mut BufReader::with_capacity(1 << 20, from_server))
}

/// A fetch whose request is on its way (see [`Push`] for why it is split).
pub struct Fetch<W: Write> {
    asked: Vec<Option<RelPath>>,
    root: Root,
    w: BufWriter<W>,
    sent: Result<(), SyncError>,
}

impl<W: Write> std::fmt::Debug for Fetch<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch").field("asked", &self.asked).finish_non_exhaustive()
    }
}

/// Checks `paths` and writes the request to the server.
pub fn fetch_start<W: Write>(project: &Path, paths: &[PathBuf], to_server: W) -> Result<Fetch<W>, SyncError> {
    let mut asked = Vec::new();
    for p in paths {
        let text = p
            .to_str()
            .ok_or_else(|| SyncError::BadPath { path: p.display().to_string(), why: "not UTF-8".into() })?;
        asked.push(request_path(text)?);
    }
    let root = Root::open(project)
        .map_err(|e| SyncError::Io { doing: format!("opening {}", project.display()), source: e })?;
    let mut w = BufWriter::new(to_server);
    let request = FetchRequest {
        paths: asked.iter().map(|p| p.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect(),
    };
    let sent = wire::write_magic(&mut w).and_then(|()| wire::write_message(&mut w, &request));
    Ok(Fetch { asked, root, w, sent })
}

impl<W: Write> Fetch<W> {
    /// Reads the server's offer, asks for what is missing or older here, writes it in.
    pub fn finish(self, force: bool, r: &mut impl BufRead) -> Result<FetchReport, SyncError> {
        let Fetch { asked, root, mut w, sent } = self;
        if let Err(e) = sent {
            return Err(explain_write_failure(e, r));
        }
        fetch_finish(&asked, &root, force, &mut w, r)
    }
}

fn fetch_finish(
    asked: &[Option<RelPath>],
    root: &Root,
    force: bool,
    mut w: impl Write,
    mut r: impl BufRead,
) -> Result<FetchReport, SyncError> {
    wire::read_magic(&mut r)?;
    let offer: FetchOffer = read_reply(&mut r)?;
    if !offer.missing.is_empty() {
        let _ = wire::write_message(&mut w, &Need { need: Vec::new() });
        return Err(SyncError::Missing(offer.missing));
    }
    let mut report = FetchReport { files_skipped: offer.skipped, ..FetchReport::default() };
    // The server is untrusted too: only plain files inside what was asked for.
    let mut entries = Vec::with_capacity(offer.entries.len());
    for e in &offer.entries {
        let rel = RelPath::parse(&e.path).map_err(|why| SyncError::BadPath { path: e.path.clone(), why })?;
        let inside = asked.iter().any(|a| a.as_ref().is_none_or(|a| rel.is_within(a)));
        if !inside || e.link.is_some() {
            return Err(SyncError::BadPath {
                path: e.path.clone(),
                why: "the server offered what was not asked for".into(),
            });
        }
        entries.push(rel);
    }
    let mut need = Vec::new();
    let mut seen = Vec::with_capacity(entries.len());
    for (i, (rel, e)) in entries.iter().zip(&offer.entries).enumerate() {
        if rel.as_str().split('/').any(|part| part == ".git") {
            // A hook or a config there would run on the laptop at the next git command.
            seen.push(None);
            report.files_skipped.push(Skipped {
                path: e.path.clone(),
                reason: "inside a .git folder (never fetched: git would run what is there)".into(),
            });
            continue;
        }
        let local = root.kind(rel);
        seen.push(local.as_ref().ok().copied().flatten());
        match local {
            Ok(None) => need.push(i as u32),
            Ok(Some(Kind::File { size, mtime, .. })) => {
                if size == e.size && mtime == e.mtime {
                    report.unchanged += 1;
                } else if mtime > e.mtime && !force {
                    report.files_skipped.push(Skipped {
                        path: e.path.clone(),
                        reason: "newer on the laptop than on the server (kept; --force replaces it)".into(),
                    });
                } else {
                    need.push(i as u32);
                }
            }
            Ok(Some(_)) => report.files_skipped.push(Skipped {
                path: e.path.clone(),
                reason: "a folder, symlink or special file has this name on the laptop (kept)".into(),
            }),
            Err(err) => report
                .files_skipped
                .push(Skipped { path: e.path.clone(), reason: format!("on the laptop, {err}") }),
        }
    }
    // The sizes are the server's word, and each file is held to its own: no more than this can
    // arrive, so a disk that cannot hold it is said before anything is written.
    let wanted = need.iter().fold(0u64, |sum, &i| sum.saturating_add(offer.entries[i as usize].size));
    if let Ok(free) = root.free_bytes()
        && wanted > free
    {
        let _ = wire::write_message(&mut w, &Need { need: Vec::new() });
        return Err(SyncError::NoRoom { wanted, free });
    }
    wire::write_message(&mut w, &Need { need: need.clone() })?;
    for &i in &need {
        let i = i as usize;
        let (rel, e) = (&entries[i], &offer.entries[i]);
        let before = seen[i];
        let mut why_not = None;
        let mut consumed = false;
        let mut got = 0;
        let outcome = root.write_file(
            rel,
            // Nothing fetched is writable by others, whatever the server says.
            e.mode & 0o755,
            e.mtime,
            |file| {
                consumed = true;
                match wire::receive_file(&mut r, file, e.size)? {
                    Received::Whole { len, .. } => {
                        got = len;
                        Ok(true)
                    }
                    Received::Aborted => {
                        why_not = Some("could not be read on the server (not fetched)");
                        Ok(false)
                    }
                }
            },
            |now| now == before,
        )?;
        if !consumed {
            wire::receive_file(&mut r, &mut std::io::sink(), e.size)?;
        }
        match outcome {
            Ok(true) => {
                report.files_fetched += 1;
                report.bytes_received += got;
            }
            Ok(false) => report.files_skipped.push(Skipped {
                path: e.path.clone(),
                reason: why_not.unwrap_or("changed on the laptop during the fetch (kept)").into(),
            }),
            Err(err) => report
                .files_skipped
                .push(Skipped { path: e.path.clone(), reason: format!("on the laptop, {err}") }),
        }
    }
    Ok(report)
}

/// Server side of a fetch (`berth serve-on … --send`): lists what was asked, sends what is needed.
pub fn send(dir: &Path, input: impl Read, output: impl Write) -> Result<(), SyncError> {
    let mut r = BufReader::new(input);
    let mut w = BufWriter::with_capacity(1 << 20, output);
    wire::write_magic(&mut w)?;
    let result = send_inner(dir, &mut r, &mut w);
    if let Err(e) = &result
        && !matches!(e, SyncError::Protocol(_))
    {
        let _ = wire::write_message(&mut w, &Reply::<()>::Error { message: e.to_string() });
    }
    let _ = w.flush();
    result
}

fn send_inner(dir: &Path, r: &mut impl Read, w: &mut impl Write) -> Result<(), SyncError> {
    let root = Root::open(dir).map_err(|e| SyncError::Io {
        doing: format!("opening the project folder {} on the server (has it been synced?)", dir.display()),
        source: e,
    })?;
    wire::read_magic(r)?;
    let request: FetchRequest = wire::read_message(r)?;
    let mut offer = FetchOffer { entries: Vec::new(), missing: Vec::new(), skipped: Vec::new() };
    let mut listed = BTreeSet::new();
    for text in &request.paths {
        let start = request_path(text)?;
        let kind = match &start {
            None => Ok(Some(Kind::Dir)),
            Some(rel) => root.kind(rel),
        };
        match kind {
            Ok(None) | Err(_) => offer.missing.push(text.clone()),
            Ok(Some(kind)) => list_for_fetch(&root, start, kind, &mut listed, &mut offer)?,
        }
    }
    wire::write_message(w, &Reply::Ok(&offer))?;
    w.flush().map_err(|e| SyncError::Protocol(format!("writing the stream: {e}")))?;
    let need: Need = wire::read_message(r)?;
    for &i in &need.need {
        let e = offer
            .entries
            .get(i as usize)
            .ok_or_else(|| SyncError::Protocol("asked for a file not offered".into()))?;
        let rel = RelPath::parse(&e.path).map_err(|why| SyncError::BadPath { path: e.path.clone(), why })?;
        let mut file = root.open_file(&rel).ok();
        // Never more than was announced: a file growing meanwhile (a checkpoint being written)
        // is sent as far as its listed size.
        let mut limited = file.as_mut().map(|f| f.take(e.size));
        wire::send_file(w, limited.as_mut().map(|f| f as &mut dyn Read))?.ok();
    }
    w.flush().map_err(|e| SyncError::Protocol(format!("writing the stream: {e}")))
}

fn list_for_fetch(
    root: &Root,
    at: Option<RelPath>,
    kind: Kind,
    listed: &mut BTreeSet<String>,
    offer: &mut FetchOffer,
) -> Result<(), SyncError> {
    match kind {
        Kind::File { size, mtime, mode } => {
            if let Some(rel) = at
                && listed.insert(rel.to_string())
            {
                offer.entries.push(Entry {
                    path: rel.to_string(),
                    size,
                    mode,
                    mtime,
                    sha256: None,
                    link: None,
                });
            }
        }
        Kind::Dir => {
            let names = root.list(at.as_ref()).map_err(|e| SyncError::Io {
                doing: format!("listing {}", at.as_ref().map(RelPath::as_str).unwrap_or(".")),
                source: std::io::Error::other(e.to_string()),
            })?;
            for (name, kind) in names {
                if tree::is_temporary(&name) {
                    continue;
                }
                let child = match &at {
                    None => RelPath::parse(&name),
                    Some(rel) => rel.join(&name),
                };
                // `.berth` (berth's own state), `.git` (the sync never sends it; the laptop never
                // takes it) and names that are not paths are never offered.
                let Ok(child) = child else { continue };
                if name == ".git" {
                    continue;
                }
                list_for_fetch(root, Some(child), kind, listed, offer)?;
            }
        }
        Kind::Symlink => offer.skipped.push(Skipped {
            path: at.map(|r| r.to_string()).unwrap_or_default(),
            reason: "a symlink on the server (not fetched)".into(),
        }),
        Kind::Other => {}
    }
    Ok(())
}

/// One warning per file left as it was, so a kept server file is never a silent surprise.
pub fn warn_skipped(out: &crate::output::Printer, skipped: &[Skipped]) {
    for s in skipped {
        out.warn(format!("{}: {}", crate::output::escape(&s.path), s.reason));
    }
}

#[cfg(test)]
mod tests;
