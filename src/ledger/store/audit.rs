//! The audit log (spec §15.7): `audit.log` and its closed segments, one hash-chained record a
//! line. [`AuditLog`] owns the chain's head, its verification state and rotation; the store
//! appends through it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{StoreError, canonical_line, io_err, read_optional};
use crate::fault;
use crate::files;
use crate::ledger::canonical::{caps, decode_value, to_jcs};
use crate::ledger::log::{AuditEvent, AuditKind, AuditRecord};
use crate::ledger::types::{Blake3Digest, Sha256Digest, Uint};

pub(super) const AUDIT: &str = "audit.log";

/// The size at which `audit.log` is closed as a segment and a new one started.
pub const AUDIT_SEGMENT_BYTES: usize = 64 << 20;

/// The name of closed audit segment `n` (1 is the oldest): `audit.000001.log`.
fn audit_segment_name(n: u64) -> String {
    format!("audit.{n:06}.log")
}

/// The closed audit segments in `dir`, oldest first.
fn audit_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("audit."))
            .and_then(|s| s.strip_suffix(".log"))
            .filter(|s| s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((n, e.path()));
    }
    out.sort();
    Ok(out)
}

/// The last line of a file, read from its end (at most the last MiB).
fn last_line(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    files::check_private(path, false)?;
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let from = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(from)).map_err(io_err(path))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).map_err(io_err(path))?;
    Ok(tail
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .map(<[u8]>::to_vec))
}

/// The whole audit chain as [`super::Store::verify_audit`] walked it.
#[derive(Clone, Debug)]
pub struct AuditChain {
    /// Closed segments beside `audit.log`.
    pub segments: usize,
    /// Records that verified.
    pub records: usize,
    /// Where the chain breaks, if it does.
    pub broken: Option<String>,
    /// When the oldest segments were archived away: the index of the record before the first
    /// one present (the walk could not link that record to the genesis).
    pub starts_after: Option<u64>,
}

/// State of the audit chain as found on open.
#[derive(Clone, Debug)]
pub struct AuditStatus {
    /// Records that verified.
    pub records: usize,
    /// Where the chain breaks, if it does.
    pub broken: Option<String>,
}

/// The audit chain of one state directory: where it stands (next index, head, the bytes of
/// `audit.log` read and written so far), how it verified on open, and the last record.
#[derive(Clone)]
pub struct AuditLog {
    dir: PathBuf,
    next: u64,
    head: Blake3Digest,
    /// BLAKE3 of the `audit.log` bytes read and written so far, and their length.
    prefix: blake3::Hasher,
    len: usize,
    segment_bytes: usize,
    status: AuditStatus,
    last: Option<(AuditEvent, String)>,
}

impl AuditLog {
    /// An empty chain in `dir`, starting from the genesis.
    pub(super) fn new(dir: &Path, genesis_bytes: &[u8]) -> AuditLog {
        AuditLog {
            dir: dir.to_owned(),
            next: 1,
            head: Blake3Digest::of(genesis_bytes),
            prefix: blake3::Hasher::new(),
            len: 0,
            segment_bytes: AUDIT_SEGMENT_BYTES,
            status: AuditStatus {
                records: 0,
                broken: None,
            },
            last: None,
        }
    }

    /// Removes every audit file of `dir` (a bootstrap starts a new chain).
    pub(super) fn remove_all(dir: &Path) -> Result<(), StoreError> {
        let _ = fs::remove_file(dir.join(AUDIT));
        for (_, segment) in audit_segments(dir)? {
            let _ = fs::remove_file(segment);
        }
        Ok(())
    }

    /// How the chain verified on open.
    pub(super) fn status(&self) -> &AuditStatus {
        &self.status
    }

    /// Reads and verifies the audit chain; from `cache` on when the file still begins with the
    /// bytes it read.
    pub(super) fn load(
        &mut self,
        genesis_bytes: &[u8],
        cache: Option<&mut AuditLog>,
    ) -> Result<(), StoreError> {
        // The chain enters audit.log from the last record of the newest closed segment (only
        // that line is read; `rn member log --verify` walks every segment).
        let mut prev = Blake3Digest::of(genesis_bytes);
        let mut n = 0u64;
        if let Some((seq, path)) = audit_segments(&self.dir)?.pop() {
            let line = last_line(&path)?;
            let rec = line
                .as_deref()
                .and_then(|l| decode_value::<AuditRecord>("audit record", l).ok());
            match (&line, rec) {
                (Some(l), Some(r)) => {
                    prev = Blake3Digest::of(l);
                    n = r.index.get();
                }
                _ => {
                    self.status.broken = Some(format!(
                        "{}: its last record does not verify",
                        audit_segment_name(seq)
                    ));
                    if let Some(l) = &line {
                        prev = Blake3Digest::of(l);
                    }
                }
            }
            self.head = prev;
            self.next = n + 1;
        }
        let Some(bytes) = read_optional(&self.dir.join(AUDIT), caps::LOG)? else {
            return Ok(());
        };
        let mut start = 0usize;
        let mut first_line = 0usize;
        if let Some(c) = cache
            && c.len <= bytes.len()
            && blake3::hash(&bytes[..c.len]) == c.prefix.finalize()
        {
            start = c.len;
            prev = c.head;
            n = c.next - 1;
            first_line = usize::try_from(n).unwrap_or(usize::MAX);
            self.status = c.status.clone();
            self.last = c.last.take();
            self.head = c.head;
            self.prefix = c.prefix.clone();
        }
        self.prefix.update(&bytes[start..]);
        self.len = bytes.len();
        let mut last_line: Option<&[u8]> = None;
        for (i, line) in bytes[start..]
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, l)| (first_line + i, l))
        {
            if line.is_empty() {
                continue;
            }
            last_line = Some(line);
            let ok = decode_value::<AuditRecord>("audit record", line)
                .ok()
                .filter(|r| to_jcs(r) == line && r.prev == prev && r.index.get() == n + 1);
            self.last = ok.as_ref().map(|r| (r.event, r.detail.clone()));
            if ok.is_none() && self.status.broken.is_none() {
                self.status.broken = Some(format!("audit.log line {} does not verify", i + 1));
            }
            if self.status.broken.is_none() {
                self.status.records += 1;
            }
            prev = Blake3Digest::of(line);
            n += 1;
        }
        // New records chain to whatever the last line is, so a break stays visible.
        if let Some(l) = last_line {
            self.head = Blake3Digest::of(l);
        }
        self.next = n + 1;
        Ok(())
    }

    /// Appends one hash-chained audit record (fsynced).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append(
        &mut self,
        now: u64,
        epoch: Uint,
        event: AuditEvent,
        source: Option<&str>,
        update: Option<Sha256Digest>,
        check: Option<String>,
        detail: String,
    ) -> Result<(), StoreError> {
        // A restriction found again on the next open is not a new transition.
        if event == AuditEvent::Restricted && self.last.as_ref() == Some(&(event, detail.clone())) {
            return Ok(());
        }
        let rec = AuditRecord {
            kind: AuditKind,
            index: Uint::new(self.next).unwrap_or(Uint::ZERO),
            prev: self.head,
            at: Uint::new(now).unwrap_or(Uint::ZERO),
            event,
            epoch,
            source: source.map(str::to_owned),
            update,
            check,
            detail,
        };
        let line = canonical_line(&rec);
        let path = self.dir.join(AUDIT);
        fault::fail("audit_write").map_err(io_err(&path))?;
        if self.len > 0 && self.len + line.len() > self.segment_bytes {
            self.rotate()?;
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&path))?;
        self.head = Blake3Digest::of(&line[..line.len() - 1]);
        self.prefix.update(&line);
        self.len += line.len();
        self.next += 1;
        self.last = Some((rec.event, rec.detail));
        Ok(())
    }

    /// Closes `audit.log` as the next segment (`audit.NNNNNN.log`); the next record starts a new
    /// `audit.log` whose chain continues from the segment's last record.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let next = audit_segments(&self.dir)?.last().map_or(1, |(n, _)| n + 1);
        let to = self.dir.join(audit_segment_name(next));
        let from = self.dir.join(AUDIT);
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &from,
            rustix::fs::CWD,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| io_err(&to)(io::Error::from(e)))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        self.len = 0;
        self.prefix = blake3::Hasher::new();
        Ok(())
    }

    /// Sets the size at which `audit.log` is closed as a segment (default
    /// [`AUDIT_SEGMENT_BYTES`]); small values let tests and tools rotate often.
    pub(super) fn set_segment_bytes(&mut self, bytes: usize) {
        self.segment_bytes = bytes.max(1);
    }

    /// Walks the whole audit chain, every closed segment (oldest first) and then `audit.log`:
    /// each record canonical, indexed and chained to the one before, the first to the genesis.
    /// If the oldest segments were archived away, the walk starts at the oldest one present
    /// and says so.
    pub(super) fn verify(&self, genesis_bytes: &[u8]) -> Result<AuditChain, StoreError> {
        let mut files: Vec<(String, PathBuf)> = audit_segments(&self.dir)?
            .into_iter()
            .map(|(n, p)| (audit_segment_name(n), p))
            .collect();
        let first_segment = files.first().map(|(name, _)| name.clone());
        files.push((AUDIT.to_owned(), self.dir.join(AUDIT)));
        let mut chain = AuditChain {
            segments: files.len() - 1,
            records: 0,
            broken: None,
            starts_after: None,
        };
        let mut prev = Some(Blake3Digest::of(genesis_bytes));
        let mut n = 0u64;
        if first_segment.is_some_and(|name| name != audit_segment_name(1)) {
            prev = None;
        }
        for (name, path) in files {
            let Some(bytes) = read_optional(&path, caps::LOG)? else {
                continue;
            };
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.is_empty() {
                    continue;
                }
                let rec = decode_value::<AuditRecord>("audit record", line)
                    .ok()
                    .filter(|r| to_jcs(r) == line);
                let ok = match (&rec, prev) {
                    (Some(r), Some(p)) => r.prev == p && r.index.get() == n + 1,
                    // The oldest segments were archived: start from the first record present.
                    (Some(r), None) => {
                        chain.starts_after = Some(r.index.get() - 1);
                        true
                    }
                    (None, _) => false,
                };
                if !ok {
                    chain.broken = Some(format!("{name} line {} does not verify", i + 1));
                    return Ok(chain);
                }
                chain.records += 1;
                prev = Some(Blake3Digest::of(line));
                n = rec.map_or(n + 1, |r| r.index.get());
            }
        }
        Ok(chain)
    }

    /// The audit records of every segment, oldest first (for `rn member log --audit`).
    pub(super) fn records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let mut paths: Vec<PathBuf> = audit_segments(&self.dir)?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        paths.push(self.dir.join(AUDIT));
        let mut out = Vec::new();
        for path in paths {
            let bytes = read_optional(&path, caps::LOG)?.unwrap_or_default();
            out.extend(
                bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .filter_map(|l| decode_value::<AuditRecord>("audit record", l).ok()),
            );
        }
        Ok(out)
    }
}
