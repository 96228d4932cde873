//! The state directory (spec §4.6–4.8): the only code that writes ledger files.
//!
//! ```text
//! DIR/            0700, owned by the effective uid
//!   genesis.pin   the pinned genesis root ("sha256:…\n")
//!   genesis.json  canonical signed genesis + "\n"
//!   ledger.log    one canonical log entry per line — the truth
//!   ledger.snapshot, ledger.watermark, audit.log, lock, evidence/
//! ```
//!
//! Opening verifies everything from the genesis (permissions, pin, every log line through the
//! gate, the watermark, the snapshot) and repairs only what a crash can leave (an unfinished
//! commit, a torn last line beyond the watermark, a stale snapshot). Anything else puts the
//! ledger in restricted mode with a reason; nothing is committed until an operator
//! investigates (`rn member recover --danger-accept-current`).

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::canonical::{caps, decode, decode_canonical, decode_value, to_jcs};
use super::carried::{Bundle, BundleKind, Carried, PinnedDoc};
use super::error::{DecodeError, Rejection};
use super::gate::{
    ChainRejection, Freshness, Ledger, VerifiedGenesis, accept_with, judge_chain, judge_chain_from,
    replay_verified, verify_genesis,
};
use super::log::{
    AuditEvent, AuditKind, AuditRecord, LogEntry, LogEntryKind, Snapshot, SnapshotKind, Watermark,
    WatermarkKind,
};
use super::model::State;
use super::quorum;
use super::types::{Blake3Digest, Sha256Digest, Uint, UpdateId};
use super::update::{SignedGenesis, SignedUpdate};
use crate::fault;
use crate::files::{self, FileError};

const PIN: &str = "genesis.pin";
const GENESIS: &str = "genesis.json";
const LOG: &str = "ledger.log";
const SNAPSHOT: &str = "ledger.snapshot";
const WATERMARK: &str = "ledger.watermark";
const AUDIT: &str = "audit.log";
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
const LOCK: &str = "lock";
const EVIDENCE: &str = "evidence";
const POLICY_DIR: &str = "policy";

/// How long `open` waits for another rn process to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why a ledger is restricted: its trust state is in doubt, so it grants nothing and commits
/// nothing until an operator investigates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// A complete line of `ledger.log` does not verify.
    LogTampered {
        /// 1-based line number.
        line: usize,
        /// What failed.
        detail: String,
    },
    /// The log is behind the highest state this ledger ever committed.
    Rollback {
        /// Epoch the log reaches.
        log_epoch: u64,
        /// Epoch the watermark records.
        watermark_epoch: u64,
    },
    /// The watermark is missing beside a bootstrapped ledger.
    MissingWatermark,
    /// The watermark is unreadable or disagrees with the log at its epoch.
    WatermarkMismatch {
        /// What disagrees.
        detail: String,
    },
    /// The snapshot claims more than the log holds.
    SnapshotAhead {
        /// The snapshot's log index.
        snapshot_index: u64,
        /// Epoch the log reaches.
        log_epoch: u64,
    },
}

impl Restriction {
    /// Stable name for `--json` and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Restriction::LogTampered { .. } => "LogTampered",
            Restriction::Rollback { .. } => "Rollback",
            Restriction::MissingWatermark => "MissingWatermark",
            Restriction::WatermarkMismatch { .. } => "WatermarkMismatch",
            Restriction::SnapshotAhead { .. } => "SnapshotAhead",
        }
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restriction::LogTampered { line, detail } => {
                write!(f, "ledger.log line {line} does not verify: {detail}")
            }
            Restriction::Rollback {
                log_epoch,
                watermark_epoch,
            } => write!(
                f,
                "rollback: the log reaches epoch {log_epoch} but this ledger already committed epoch {watermark_epoch}"
            ),
            Restriction::MissingWatermark => {
                write!(
                    f,
                    "ledger.watermark is missing beside a bootstrapped ledger"
                )
            }
            Restriction::WatermarkMismatch { detail } => {
                write!(f, "ledger.watermark disagrees with the log: {detail}")
            }
            Restriction::SnapshotAhead {
                snapshot_index,
                log_epoch,
            } => write!(
                f,
                "ledger.snapshot claims epoch {snapshot_index}, beyond the log's epoch {log_epoch}"
            ),
        }
    }
}

/// Trusted, or restricted with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Verified from the genesis; may commit and grant.
    Trusted,
    /// In doubt: grants nothing, commits nothing.
    Restricted(Restriction),
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No ledger in this directory.
    #[error(
        "{dir}: no ledger here; create one with rn member bootstrap --genesis FILE --pin sha256:ROOT --state-dir {dir}"
    )]
    NotBootstrapped {
        /// The directory.
        dir: String,
    },
    /// Bootstrap into a directory that already holds a ledger.
    #[error("{dir} already holds a ledger (genesis.json exists)")]
    AlreadyBootstrapped {
        /// The directory.
        dir: String,
    },
    /// Another process holds the lock.
    #[error("{dir} is locked by another rn process; retry")]
    Busy {
        /// The directory.
        dir: String,
    },
    /// A file problem (missing, unsafe permissions, I/O).
    #[error(transparent)]
    File(#[from] FileError),
    /// A file that must decode does not.
    #[error("{file}: {error}")]
    Decode {
        /// The file.
        file: String,
        /// Why.
        error: DecodeError,
    },
    /// The genesis or its pin does not verify.
    #[error("{GENESIS}: {0}")]
    Genesis(Rejection),
    /// The ledger is restricted: nothing is committed.
    #[error(
        "the ledger is restricted ({0}); investigate, then rn member recover --danger-accept-current"
    )]
    Restricted(Restriction),
    /// An input update was refused by the gate; nothing was committed. The verdict stands even
    /// when its audit record (or the fork evidence) could not be written: `unrecorded` says why.
    #[error("update {position} of {count} ({update}) rejected: {rejection}")]
    Rejected {
        /// 1-based position in the input.
        position: usize,
        /// Updates in the input.
        count: usize,
        /// Hash of the update.
        update: Sha256Digest,
        /// The gate's verdict.
        rejection: Box<Rejection>,
        /// What could not be recorded, if anything (the audit record, the fork evidence).
        unrecorded: Option<String>,
    },
    /// The updates were committed — their log lines are durable, and the log is the truth — but
    /// a later step failed. The next open finishes the commit from the log (spec §15.9).
    #[error(
        "committed epoch {from} -> {to} (the log line is durable), but then {step} failed: {error}; {then}"
    )]
    CommittedUnfinished {
        /// Epoch before.
        from: u64,
        /// Epoch after.
        to: u64,
        /// What failed (writing the snapshot and watermark, the audit record).
        step: &'static str,
        /// The error.
        error: String,
        /// What happens next, and what to do.
        then: &'static str,
    },
    /// Recovery refused.
    #[error("cannot recover: {0}")]
    Unrecoverable(String),
    /// An I/O error on a file the store holds open.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl StoreError {
    /// The gate's rejection, if that is what this is.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            StoreError::Rejected { rejection, .. } => Some(rejection),
            StoreError::Genesis(rejection) => Some(rejection),
            _ => None,
        }
    }
}

/// One committed update.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The signed update as committed.
    pub signed: SignedUpdate,
    /// `sha256(JCS(update))`.
    pub hash: Sha256Digest,
    /// BLAKE3 of its log line.
    pub line_hash: Blake3Digest,
}

/// What `apply` did.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    /// Updates already in the ledger (skipped).
    pub already: usize,
    /// Updates committed now.
    pub committed: Vec<Sha256Digest>,
    /// Epoch before.
    pub from_epoch: u64,
    /// Epoch after.
    pub to_epoch: u64,
}

/// What opening a state directory repaired; each is audited (`repaired`) in the words of its
/// `Display`.
#[derive(Clone, Debug, PartialEq)]
pub enum Repair {
    /// The mirror beside the directory was missing and was written.
    CreatedMirror,
    /// Lines beyond the watermark passed the gate: the commit was finished.
    FinishedCommit {
        /// The epoch the watermarks were brought to.
        epoch: u64,
    },
    /// A torn final line beyond the watermark was cut off.
    TruncatedTornLine,
    /// Lines beyond the watermark would not pass the gate now and were cut off.
    DroppedBeyondWatermark {
        /// How many lines.
        lines: usize,
        /// The watermark's epoch, where the ledger stays.
        watermark_epoch: u64,
        /// The epoch of the update that failed.
        epoch: u64,
        /// Why it failed.
        rejection: Box<Rejection>,
    },
    /// The snapshot did not match the log and was written again from it.
    RewroteSnapshot,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::CreatedMirror => {
                f.write_str("created the watermark mirror beside the directory")
            }
            Repair::FinishedCommit { epoch } => write!(
                f,
                "finished an interrupted commit (watermarks brought to epoch {epoch})"
            ),
            Repair::TruncatedTornLine => {
                f.write_str("truncated a torn final line of ledger.log beyond the watermark")
            }
            Repair::DroppedBeyondWatermark {
                lines,
                watermark_epoch,
                epoch,
                rejection,
            } => write!(
                f,
                "dropped {lines} line(s) of ledger.log beyond the watermark (epoch {watermark_epoch}): the update for epoch {epoch} would not pass the gate now ({}: {rejection})",
                rejection.name()
            ),
            Repair::RewroteSnapshot => f.write_str("rewrote ledger.snapshot from the log"),
        }
    }
}

/// The whole audit chain as [`Store::verify_audit`] walked it.
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

/// What a long-running reader (the node agent) keeps of a verified store between opens, so
/// that the next open verifies only the log lines appended since: the verified state and the
/// BLAKE3 of exactly the log bytes it was verified from (hashed as they were verified, never
/// re-read). It holds no lock. An open that finds the prefix changed in any byte, or the
/// genesis changed, verifies everything again.
pub struct StoreCache {
    genesis_bytes: Vec<u8>,
    verified_len: u64,
    prefix: blake3::Hasher,
    state: State,
    history: Vec<Committed>,
    seen: HashSet<UpdateId>,
    audit: AuditCache,
}

/// The audit chain as read and written through its first `len` bytes, hashed as it went.
#[derive(Clone)]
struct AuditCache {
    len: usize,
    prefix: blake3::Hasher,
    next: u64,
    head: Blake3Digest,
    status: AuditStatus,
    last: Option<(AuditEvent, String)>,
}

/// An open, locked, verified state directory.
pub struct Store {
    dir: PathBuf,
    _lock: File,
    genesis: VerifiedGenesis,
    genesis_bytes: Vec<u8>,
    state: State,
    mode: Mode,
    history: Vec<Committed>,
    seen: HashSet<UpdateId>,
    audit_next: u64,
    audit_head: Blake3Digest,
    /// BLAKE3 of the audit log bytes read and written so far, and their length.
    audit_prefix: blake3::Hasher,
    audit_len: usize,
    audit_segment_bytes: usize,
    audit_status: AuditStatus,
    last_audit: Option<(AuditEvent, String)>,
    repairs: Vec<Repair>,
    verified_len: u64,
    /// BLAKE3 of the first `verified_len` bytes of the log: the bytes verified.
    log_prefix: blake3::Hasher,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |error| StoreError::Io {
        path: path.to_owned(),
        error,
    }
}

fn canonical_line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = to_jcs(v);
    b.push(b'\n');
    b
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK);
    // Opened read-only once it exists: closing a file opened for writing would wake every
    // inotify watcher of the directory on each open.
    if fs::symlink_metadata(&path).is_err() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
    }
    let file = File::open(&path).map_err(io_err(&path))?;
    files::check_private(&path, false)?;
    let start = Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(StoreError::Busy {
                    dir: dir.display().to_string(),
                });
            }
            Err(e) => return Err(io_err(&path)(e.into())),
        }
    }
}

/// The watermark mirror beside the state directory: `DIR.watermark`.
pub fn mirror_path(dir: &Path) -> PathBuf {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let s = dir.as_os_str().to_string_lossy();
    PathBuf::from(format!("{}.watermark", s.trim_end_matches('/')))
}

/// Every key each approver id has had, as far as a reader of the log has seen: the
/// candidates a worker tries when pre-verifying signatures.
#[derive(Clone)]
struct ApproverKeys(std::collections::HashMap<super::types::Id, Vec<super::types::ApproverKey>>);

impl ApproverKeys {
    fn from_state(s: &State) -> Self {
        ApproverKeys(
            s.approvers()
                .map(|a| (a.id.clone(), vec![a.pubkey]))
                .collect(),
        )
    }

    fn learn(&mut self, update: &super::update::Update) {
        for (id, key) in update
            .ops
            .iter()
            .filter_map(super::update::Op::new_approver_key)
        {
            let keys = self.0.entry(id.clone()).or_default();
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
    }
}

/// A log line decoded, checked canonical, hashed and its signatures pre-verified.
struct Prepared {
    entry: LogEntry,
    line_hash: Blake3Digest,
    pre: quorum::PreVerified,
}

impl Prepared {
    fn new(line: &[u8], keys: &mut ApproverKeys) -> Result<Prepared, String> {
        // Exactly canonical bytes: that settles the shape too, so each line is parsed once.
        let entry: LogEntry = decode_canonical(line).map_err(|e| match e {
            DecodeError::Malformed { detail, .. } if detail == "not in canonical form" => detail,
            e => e.to_string(),
        })?;
        let su = &entry.signed_update;
        keys.learn(&su.update);
        let new_keys: Vec<_> = su
            .update
            .ops
            .iter()
            .filter_map(super::update::Op::new_approver_key)
            .collect();
        let pre = quorum::PreVerified::compute(&su.update, &su.signatures, |s| {
            if s.new_key {
                new_keys
                    .iter()
                    .filter(|(id, _)| **id == s.approver)
                    .map(|(_, k)| **k)
                    .collect()
            } else {
                keys.0.get(&s.approver).cloned().unwrap_or_default()
            }
        });
        Ok(Prepared {
            line_hash: Blake3Digest::of(line),
            entry,
            pre,
        })
    }
}

fn read_optional(path: &Path, cap: usize) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
        Ok(_) => {
            files::check_private(path, false)?;
            Ok(Some(files::read_capped(path, cap)?))
        }
    }
}

impl Store {
    /// Creates a ledger in `dir` from a fully signed genesis whose root equals `pin`.
    pub fn bootstrap(
        dir: &Path,
        genesis_bytes: &[u8],
        pin: &Sha256Digest,
        now: u64,
    ) -> Result<Store, StoreError> {
        let signed: SignedGenesis = decode(genesis_bytes).map_err(|error| StoreError::Decode {
            file: "genesis".into(),
            error,
        })?;
        let verified = verify_genesis(&signed, Some(pin)).map_err(StoreError::Genesis)?;
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_err(dir))?;
            }
            Err(e) => return Err(io_err(dir)(e)),
            Ok(_) => {}
        }
        files::check_private(dir, true)?;
        let lock = lock_dir(dir)?;
        if dir.join(GENESIS).exists() {
            return Err(StoreError::AlreadyBootstrapped {
                dir: dir.display().to_string(),
            });
        }
        let canonical = canonical_line(&signed);
        // genesis.json last: until it exists the directory is not a ledger, and a crashed
        // bootstrap can simply be run again.
        files::write_atomic(&dir.join(PIN), format!("{pin}\n").as_bytes(), 0o600, true)?;
        files::write_atomic(&dir.join(LOG), b"", 0o600, true)?;
        let _ = fs::remove_file(dir.join(AUDIT));
        for (_, segment) in audit_segments(dir)? {
            let _ = fs::remove_file(segment);
        }
        let mut store = Store::at_genesis(
            dir,
            lock,
            verified,
            canonical[..canonical.len() - 1].to_vec(),
        );
        store.write_snapshot_and_watermark()?;
        store.audit(
            now,
            AuditEvent::Bootstrap,
            None,
            None,
            None,
            format!("pinned {pin}"),
        )?;
        files::write_atomic(&dir.join(GENESIS), &canonical, 0o600, false)?;
        Ok(store)
    }

    /// Opens, locks and verifies the ledger in `dir`. `pin`, when given (the node config's
    /// pinned root), must equal the stored pin. Doubts about the trust state give a store in
    /// restricted mode; only unreadable or unsafe directories are errors.
    pub fn open(dir: &Path, pin: Option<&Sha256Digest>, now: u64) -> Result<Store, StoreError> {
        Store::open_cached(dir, pin, now, None)
    }

    /// [`Store::open`], resuming from `cache` (from [`Store::into_cache`]) when the log still
    /// begins with exactly the bytes the cache verified and the genesis is the same: only the
    /// lines after them are verified. Every other check of an open (pin, genesis, audit chain,
    /// watermarks, snapshot, policy) runs as always.
    pub fn open_cached(
        dir: &Path,
        pin: Option<&Sha256Digest>,
        now: u64,
        mut cache: Option<StoreCache>,
    ) -> Result<Store, StoreError> {
        let not_bootstrapped = || StoreError::NotBootstrapped {
            dir: dir.display().to_string(),
        };
        match files::check_private(dir, true) {
            Err(FileError::Missing { .. }) => return Err(not_bootstrapped()),
            other => other?,
        }
        if fs::symlink_metadata(dir.join(GENESIS)).is_err() {
            return Err(not_bootstrapped());
        }
        let lock = lock_dir(dir)?;
        for name in [PIN, GENESIS, LOG, SNAPSHOT, WATERMARK, AUDIT] {
            let p = dir.join(name);
            if fs::symlink_metadata(&p).is_ok() {
                files::check_private(&p, false)?;
            }
        }
        for sub in [EVIDENCE, POLICY_DIR] {
            let p = dir.join(sub);
            if fs::symlink_metadata(&p).is_ok() {
                files::check_private(&p, true)?;
            }
        }

        // Genesis against the pin.
        let stored_pin = read_optional(&dir.join(PIN), 128)?.ok_or_else(|| FileError::Missing {
            path: dir.join(PIN),
        })?;
        let stored_pin: Sha256Digest = std::str::from_utf8(&stored_pin)
            .ok()
            .and_then(|s| s.trim_end_matches('\n').parse().ok())
            .ok_or_else(|| StoreError::Decode {
                file: PIN.into(),
                error: DecodeError::Malformed {
                    what: "pin",
                    detail: "expected sha256:<64 hex> and a newline".into(),
                },
            })?;
        if let Some(pin) = pin
            && *pin != stored_pin
        {
            return Err(StoreError::Genesis(Rejection::PinMismatch {
                pinned: *pin,
                found: stored_pin,
            }));
        }
        let genesis_file = files::read_capped(&dir.join(GENESIS), caps::UPDATE)?;
        let signed: SignedGenesis = decode(&genesis_file).map_err(|error| StoreError::Decode {
            file: GENESIS.into(),
            error,
        })?;
        if canonical_line(&signed) != genesis_file {
            return Err(StoreError::Decode {
                file: GENESIS.into(),
                error: DecodeError::Malformed {
                    what: "genesis",
                    detail: "not in canonical form (the file was edited)".into(),
                },
            });
        }
        let genesis = verify_genesis(&signed, Some(&stored_pin)).map_err(StoreError::Genesis)?;
        let genesis_bytes = genesis_file[..genesis_file.len() - 1].to_vec();
        let mut store = Store::at_genesis(dir, lock, genesis, genesis_bytes);
        if cache
            .as_ref()
            .is_some_and(|c| c.genesis_bytes != store.genesis_bytes)
        {
            cache = None;
        }
        store.load_audit(cache.as_mut().map(|c| &mut c.audit))?;
        let (verified_len, torn) = store.replay_log(now, cache)?;
        store.verified_len = verified_len;
        store.check_watermark_and_snapshot(torn, now)?;
        Ok(store)
    }

    /// What to keep for [`Store::open_cached`], releasing the lock: `None` for a restricted
    /// store (the next open verifies everything) or when the log cannot be read back.
    pub fn into_cache(self) -> Option<StoreCache> {
        if self.mode != Mode::Trusted {
            return None;
        }
        Some(StoreCache {
            audit: AuditCache {
                len: self.audit_len,
                prefix: self.audit_prefix,
                next: self.audit_next,
                head: self.audit_head,
                status: self.audit_status,
                last: self.last_audit,
            },
            genesis_bytes: self.genesis_bytes,
            verified_len: self.verified_len,
            prefix: self.log_prefix,
            state: self.state,
            history: self.history,
            seen: self.seen,
        })
    }

    /// A store at the genesis state, before any log line or audit record is read.
    fn at_genesis(
        dir: &Path,
        lock: File,
        genesis: VerifiedGenesis,
        genesis_bytes: Vec<u8>,
    ) -> Store {
        Store {
            dir: dir.to_owned(),
            _lock: lock,
            state: genesis.state().clone(),
            audit_head: Blake3Digest::of(&genesis_bytes),
            audit_prefix: blake3::Hasher::new(),
            audit_len: 0,
            audit_segment_bytes: AUDIT_SEGMENT_BYTES,
            genesis,
            genesis_bytes,
            mode: Mode::Trusted,
            history: Vec::new(),
            seen: HashSet::new(),
            audit_next: 1,
            audit_status: AuditStatus {
                records: 0,
                broken: None,
            },
            last_audit: None,
            repairs: Vec::new(),
            verified_len: 0,
            log_prefix: blake3::Hasher::new(),
        }
    }

    /// [`Store::open`], refusing a restricted ledger: for everything that builds on, grants
    /// from or hands on the ledger's state (proposals, policy decisions, exports).
    pub fn open_trusted(
        dir: &Path,
        pin: Option<&Sha256Digest>,
        now: u64,
    ) -> Result<Store, StoreError> {
        let store = Store::open(dir, pin, now)?;
        match store.mode() {
            Mode::Trusted => Ok(store),
            Mode::Restricted(r) => Err(StoreError::Restricted(r.clone())),
        }
    }

    /// Verifies every complete line of the log; returns the byte length of the verified
    /// prefix and whether a torn (newline-less) tail follows it.
    ///
    /// Decoding, the canonical-bytes check, the line hash and the signature checks of each
    /// line run on worker threads ahead of the main thread, which chains the lines and runs
    /// each through the gate in order (reusing those signature checks, spec §4.5.1).
    fn replay_log(
        &mut self,
        now: u64,
        cache: Option<StoreCache>,
    ) -> Result<(u64, bool), StoreError> {
        let path = self.dir.join(LOG);
        let bytes = files::read_capped(&path, caps::LOG)?;
        let mut offset = 0usize;
        let mut keys = ApproverKeys::from_state(self.genesis.state());
        if let Some(c) = cache
            && c.genesis_bytes == self.genesis_bytes
            && let Ok(len) = usize::try_from(c.verified_len)
            && len <= bytes.len()
            && blake3::hash(&bytes[..len]) == c.prefix.finalize()
        {
            // Resume: the state the cache verified, its keys as the approvers hold them now.
            keys = ApproverKeys::from_state(&c.state);
            self.state = c.state;
            self.history = c.history;
            self.seen = c.seen;
            self.log_prefix = c.prefix;
            offset = len;
        }
        let (first_line, resumed) = (self.history.len(), offset);
        let mut lines: Vec<(usize, &[u8])> = Vec::new();
        while let Some(nl) = bytes[offset..].iter().position(|&b| b == b'\n') {
            lines.push((offset, &bytes[offset..offset + nl]));
            offset += nl + 1;
        }
        let torn = offset < bytes.len();
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
            .min(lines.len().max(1));
        let mut prev = self.log_head();
        let mut failure = None;
        std::thread::scope(|scope| {
            let mut receivers = Vec::with_capacity(workers);
            for w in 0..workers {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, String>>(64);
                receivers.push(rx);
                let (lines, mut keys) = (&lines, keys.clone());
                scope.spawn(move || {
                    for (_, line) in lines.iter().skip(w).step_by(workers) {
                        if tx.send(Prepared::new(line, &mut keys)).is_err() {
                            break;
                        }
                    }
                });
            }
            for (i, (start, _)) in lines.iter().enumerate() {
                let prepared = receivers[i % workers]
                    .recv()
                    .unwrap_or_else(|_| Err("worker stopped".into()));
                match prepared.and_then(|p| self.verify_line(p, &prev, now)) {
                    Ok(c) => {
                        prev = c.line_hash;
                        self.seen.insert(c.signed.update.update_id);
                        self.history.push(c);
                    }
                    Err(detail) => {
                        failure = Some((first_line + i + 1, *start, detail));
                        break;
                    }
                }
            }
            // Dropping the receivers stops the workers.
        });
        if let Some((line, start, detail)) = failure {
            self.mode = Mode::Restricted(Restriction::LogTampered { line, detail });
            return Ok((start as u64, false));
        }
        self.log_prefix.update(&bytes[resumed..offset]);
        Ok((offset as u64, torn))
    }

    fn verify_line(
        &mut self,
        p: Prepared,
        prev: &Blake3Digest,
        now: u64,
    ) -> Result<Committed, String> {
        let entry = p.entry;
        let expected = self.state.epoch().get() + 1;
        if entry.index.get() != expected {
            return Err(format!(
                "index {} where {expected} was expected",
                entry.index
            ));
        }
        if entry.prev != *prev {
            return Err(format!(
                "prev {} does not chain to the previous line {prev}",
                entry.prev
            ));
        }
        if entry.signed_update.update.epoch_new != entry.index {
            return Err("index differs from the update's epoch_new".into());
        }
        let v = accept_with(
            &self.state,
            &self.seen,
            &entry.signed_update,
            now,
            Freshness::History,
            Some(&p.pre),
        )
        .map_err(|r| format!("{}: {r}", r.name()))?;
        let hash = Sha256Digest::of(p.pre.message());
        let signed = v.commit_to(&mut self.state);
        Ok(Committed {
            signed,
            hash,
            line_hash: p.line_hash,
        })
    }

    fn log_head(&self) -> Blake3Digest {
        self.history
            .last()
            .map_or_else(|| Blake3Digest::of(&self.genesis_bytes), |c| c.line_hash)
    }

    fn check_watermark_and_snapshot(&mut self, torn: bool, now: u64) -> Result<(), StoreError> {
        if let Mode::Restricted(r) = self.mode.clone() {
            return self.restrict(now, r);
        }
        let log_epoch = self.state.epoch().get();
        // The watermark in the directory, then its mirror beside the directory (which catches
        // a whole directory swapped for an older copy).
        let inside = read_optional(&self.dir.join(WATERMARK), 4096)?;
        let mirror = read_optional(&mirror_path(&self.dir), 4096)?;
        let mut restriction = match &inside {
            None => Some(Restriction::MissingWatermark),
            Some(b) => self.judge_watermark(b, WATERMARK),
        };
        if restriction.is_none()
            && let Some(b) = &mirror
        {
            restriction = self.judge_watermark(b, "the watermark mirror");
        }
        if let Some(r) = restriction {
            return self.restrict(now, r);
        }
        // Lines beyond the watermark are an interrupted commit only if they would pass the gate
        // now, time rules included; anyone who can write the directory could have appended a
        // quorum-signed update that was never committed and has since expired.
        let watermark_epoch = [&inside, &mirror]
            .into_iter()
            .flatten()
            .filter_map(|b| decode::<Watermark>(b).ok())
            .map(|w| w.epoch.get())
            .min()
            .unwrap_or(log_epoch);
        if watermark_epoch < log_epoch {
            self.judge_beyond_watermark(watermark_epoch, now)?;
        }
        let log_epoch = self.state.epoch().get();
        let ahead = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .and_then(|b| decode::<Watermark>(b).ok())
                .is_none_or(|w| w.epoch.get() < log_epoch)
        };
        if mirror.is_none() {
            self.repairs.push(Repair::CreatedMirror);
        } else if ahead(&inside) || ahead(&mirror) {
            self.repairs
                .push(Repair::FinishedCommit { epoch: log_epoch });
        }
        if torn {
            fault::point("before_truncate");
            self.truncate_log(self.verified_len)?;
            self.repairs.push(Repair::TruncatedTornLine);
        }
        // The snapshot is a cache: rewrite it unless it claims more than the log.
        let snap_ok = match read_optional(&self.dir.join(SNAPSHOT), caps::LOG)? {
            None => false,
            Some(b) => match decode::<Snapshot>(&b) {
                Ok(s) if s.log_index.get() > log_epoch => {
                    let r = Restriction::SnapshotAhead {
                        snapshot_index: s.log_index.get(),
                        log_epoch,
                    };
                    return self.restrict(now, r);
                }
                Ok(s) => {
                    s.log_index.get() == log_epoch
                        && s.root == self.state.root()
                        && s.state.root() == self.state.root()
                        && s.log_head == self.log_head()
                }
                Err(_) => false,
            },
        };
        let finishing = self
            .repairs
            .iter()
            .any(|r| matches!(r, Repair::FinishedCommit { .. } | Repair::CreatedMirror));
        if !snap_ok && !finishing {
            self.repairs.push(Repair::RewroteSnapshot);
        }
        if !snap_ok || finishing {
            self.write_snapshot_and_watermark()?;
        }
        for r in self.repairs.clone() {
            self.audit(now, AuditEvent::Repaired, None, None, None, r.to_string())?;
        }
        Ok(())
    }

    /// The log holds lines beyond the watermark at `watermark_epoch`: runs them through the gate
    /// again as the chain one commit wrote — with `now`, the last one's expiry checked (spec
    /// §4.7). If they pass, the commit is finished by the caller; if not, they are cut off like a
    /// torn tail, the store goes back to the watermark's state, and the repair says why.
    fn judge_beyond_watermark(&mut self, watermark_epoch: u64, now: u64) -> Result<(), StoreError> {
        let at = watermark_epoch as usize;
        let base = self.state_at(watermark_epoch)?;
        let seen: HashSet<UpdateId> = self.history[..at]
            .iter()
            .map(|c| c.signed.update.update_id)
            .collect();
        let beyond: Vec<SignedUpdate> = self.history[at..]
            .iter()
            .map(|c| c.signed.clone())
            .collect();
        let Err(ChainRejection {
            position,
            rejection,
            ..
        }) = judge_chain_from(&base, &seen, &beyond, now)
        else {
            return Ok(());
        };
        let epoch = at + position + 1;
        // Cut the log after the watermark's line, and go back to its state.
        let path = self.dir.join(LOG);
        let bytes = files::read_capped(&path, caps::LOG)?;
        let keep = match at {
            0 => 0,
            _ => bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(at - 1)
                .map_or(0, |(i, _)| i + 1),
        };
        fault::point("before_truncate");
        self.truncate_log(keep as u64)?;
        let dropped = self.history.len() - at;
        self.history.truncate(at);
        self.state = base;
        self.seen = seen;
        self.verified_len = keep as u64;
        self.log_prefix = blake3::Hasher::new();
        self.log_prefix.update(&bytes[..keep]);
        self.repairs.push(Repair::DroppedBeyondWatermark {
            lines: dropped,
            watermark_epoch,
            epoch: epoch as u64,
            rejection: Box::new(rejection),
        });
        Ok(())
    }

    /// Enters restricted mode with `r`, auditing the transition.
    fn restrict(&mut self, now: u64, r: Restriction) -> Result<(), StoreError> {
        self.audit(
            now,
            AuditEvent::Restricted,
            None,
            None,
            Some(r.name().into()),
            r.to_string(),
        )?;
        self.mode = Mode::Restricted(r);
        Ok(())
    }

    /// Cuts `ledger.log` back to its verified prefix (a torn tail), durably.
    fn truncate_log(&self, len: u64) -> Result<(), StoreError> {
        let path = self.dir.join(LOG);
        if fs::metadata(&path).map_err(io_err(&path))?.len() == len {
            return Ok(());
        }
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.set_len(len).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))
    }

    /// A watermark against the verified log: `None` if consistent (equal, or behind with a
    /// head that is the log's line at its epoch: an interrupted commit).
    fn judge_watermark(&self, bytes: &[u8], which: &str) -> Option<Restriction> {
        let log_epoch = self.state.epoch().get();
        let wm = match decode::<Watermark>(bytes) {
            Err(e) => {
                return Some(Restriction::WatermarkMismatch {
                    detail: format!("{which} is unreadable: {e}"),
                });
            }
            Ok(wm) => wm,
        };
        if wm.network_id != *self.state.network_id() {
            return Some(Restriction::WatermarkMismatch {
                detail: format!("{which} names network {}", wm.network_id),
            });
        }
        let at = wm.epoch.get();
        if at > log_epoch {
            return Some(Restriction::Rollback {
                log_epoch,
                watermark_epoch: at,
            });
        }
        let (root, head) = if at == log_epoch {
            (self.state.root(), self.log_head())
        } else {
            let head = match at {
                0 => Blake3Digest::of(&self.genesis_bytes),
                _ => self.history[at as usize - 1].line_hash,
            };
            let root = match at {
                0 => self.genesis.root(),
                _ => self.history[at as usize - 1].signed.update.new_root,
            };
            (root, head)
        };
        if wm.root != root || wm.log_head != head {
            return Some(Restriction::WatermarkMismatch {
                detail: format!(
                    "{which} records root {} and head {} at epoch {at}; the log has {root} and {head}",
                    wm.root, wm.log_head
                ),
            });
        }
        None
    }

    fn write_snapshot_and_watermark(&mut self) -> Result<(), StoreError> {
        fault::fail("snapshot_write").map_err(io_err(&self.dir.join(SNAPSHOT)))?;
        let snapshot = Snapshot {
            kind: SnapshotKind,
            state: self.state.clone(),
            root: self.state.root(),
            log_index: self.state.epoch(),
            log_head: self.log_head(),
        };
        files::write_atomic_with(
            &self.dir.join(SNAPSHOT),
            &canonical_line(&snapshot),
            0o600,
            true,
            || fault::point("mid_snapshot"),
        )?;
        fault::point("after_snapshot");
        let watermark = Watermark {
            kind: WatermarkKind,
            network_id: self.state.network_id().clone(),
            epoch: self.state.epoch(),
            root: self.state.root(),
            log_head: self.log_head(),
        };
        let line = canonical_line(&watermark);
        files::write_atomic_with(&self.dir.join(WATERMARK), &line, 0o600, true, || {
            fault::point("mid_watermark")
        })?;
        fault::point("after_watermark");
        files::write_atomic(&mirror_path(&self.dir), &line, 0o600, true)?;
        Ok(())
    }

    /// Reads and verifies the audit chain; from `cache` on when the file still begins with the
    /// bytes it read.
    fn load_audit(&mut self, cache: Option<&mut AuditCache>) -> Result<(), StoreError> {
        // The chain enters audit.log from the last record of the newest closed segment (only
        // that line is read; `rn member log --verify` walks every segment).
        let mut prev = Blake3Digest::of(&self.genesis_bytes);
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
                    self.audit_status.broken = Some(format!(
                        "{}: its last record does not verify",
                        audit_segment_name(seq)
                    ));
                    if let Some(l) = &line {
                        prev = Blake3Digest::of(l);
                    }
                }
            }
            self.audit_head = prev;
            self.audit_next = n + 1;
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
            self.audit_status = c.status.clone();
            self.last_audit = c.last.take();
            self.audit_head = c.head;
            self.audit_prefix = c.prefix.clone();
        }
        self.audit_prefix.update(&bytes[start..]);
        self.audit_len = bytes.len();
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
            self.last_audit = ok.as_ref().map(|r| (r.event, r.detail.clone()));
            if ok.is_none() && self.audit_status.broken.is_none() {
                self.audit_status.broken =
                    Some(format!("audit.log line {} does not verify", i + 1));
            }
            if self.audit_status.broken.is_none() {
                self.audit_status.records += 1;
            }
            prev = Blake3Digest::of(line);
            n += 1;
        }
        // New records chain to whatever the last line is, so a break stays visible.
        if let Some(l) = last_line {
            self.audit_head = Blake3Digest::of(l);
        }
        self.audit_next = n + 1;
        Ok(())
    }

    /// Appends one hash-chained audit record (fsynced).
    fn audit(
        &mut self,
        now: u64,
        event: AuditEvent,
        source: Option<&str>,
        update: Option<Sha256Digest>,
        check: Option<String>,
        detail: String,
    ) -> Result<(), StoreError> {
        // A restriction found again on the next open is not a new transition.
        if event == AuditEvent::Restricted
            && self.last_audit.as_ref() == Some(&(event, detail.clone()))
        {
            return Ok(());
        }
        let rec = AuditRecord {
            kind: AuditKind,
            index: Uint::new(self.audit_next).unwrap_or(Uint::ZERO),
            prev: self.audit_head,
            at: Uint::new(now).unwrap_or(Uint::ZERO),
            event,
            epoch: self.state.epoch(),
            source: source.map(str::to_owned),
            update,
            check,
            detail,
        };
        let line = canonical_line(&rec);
        let path = self.dir.join(AUDIT);
        fault::fail("audit_write").map_err(io_err(&path))?;
        if self.audit_len > 0 && self.audit_len + line.len() > self.audit_segment_bytes {
            self.rotate_audit()?;
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
        self.audit_head = Blake3Digest::of(&line[..line.len() - 1]);
        self.audit_prefix.update(&line);
        self.audit_len += line.len();
        self.audit_next += 1;
        self.last_audit = Some((rec.event, rec.detail));
        Ok(())
    }

    /// Closes `audit.log` as the next segment (`audit.NNNNNN.log`); the next record starts a new
    /// `audit.log` whose chain continues from the segment's last record.
    fn rotate_audit(&mut self) -> Result<(), StoreError> {
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
        self.audit_len = 0;
        self.audit_prefix = blake3::Hasher::new();
        Ok(())
    }

    /// Sets the size at which `audit.log` is closed as a segment (default
    /// [`AUDIT_SEGMENT_BYTES`]); small values let tests and tools rotate often.
    pub fn set_audit_segment_bytes(&mut self, bytes: usize) {
        self.audit_segment_bytes = bytes.max(1);
    }

    /// Walks the whole audit chain, every closed segment (oldest first) and then `audit.log`:
    /// each record canonical, indexed and chained to the one before, the first to the genesis.
    /// If the oldest segments were archived away, the walk starts at the oldest one present
    /// and says so.
    pub fn verify_audit(&self) -> Result<AuditChain, StoreError> {
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
        let mut prev = Some(Blake3Digest::of(&self.genesis_bytes));
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

    /// Commits `updates` (a signed update, or a bundle's chain) through the gate, all or
    /// nothing: updates already committed are skipped; the rest must chain from the current
    /// state, the last judged with catch-up expiry (spec §4.7). A rejection writes one audit
    /// record and nothing else. A quorum-signed update conflicting with a committed one is
    /// kept as fork evidence.
    pub fn apply(
        &mut self,
        updates: &[SignedUpdate],
        now: u64,
        source: &str,
    ) -> Result<ApplyReport, StoreError> {
        if let Mode::Restricted(r) = &self.mode {
            return Err(StoreError::Restricted(r.clone()));
        }
        let from = self.state.epoch().get();
        let mut report = ApplyReport {
            from_epoch: from,
            to_epoch: from,
            ..ApplyReport::default()
        };
        let count = updates.len();
        let chain = match judge_chain(&*self, updates, now) {
            Ok(chain) => chain,
            Err(ChainRejection {
                position,
                update,
                rejection,
            }) => {
                let mut unrecorded = None;
                if let Rejection::Fork { .. } = rejection {
                    let su = &updates[position];
                    unrecorded = self
                        .keep_evidence(su, su.update.epoch_new.get(), &update)
                        .err();
                }
                return Err(self.reject(
                    now,
                    source,
                    (position, count, update),
                    rejection,
                    unrecorded,
                ));
            }
        };
        report.already = chain.already();
        if chain.updates().is_empty() {
            return Ok(report);
        }
        let (work, seen, accepted) = chain.into_parts();
        // Write: log lines (one write, one fsync), then snapshot, then watermark.
        let mut prev = self.log_head();
        let mut lines = Vec::new();
        let mut committed = Vec::with_capacity(accepted.len());
        for (signed, hash) in accepted {
            let entry = LogEntry {
                kind: LogEntryKind,
                index: signed.update.epoch_new,
                prev,
                signed_update: signed,
            };
            let line = canonical_line(&entry);
            let line_hash = Blake3Digest::of(&line[..line.len() - 1]);
            lines.extend_from_slice(&line);
            prev = line_hash;
            committed.push(Committed {
                signed: entry.signed_update,
                hash,
                line_hash,
            });
        }
        let path = self.dir.join(LOG);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        fault::point("before_log_write");
        f.write_all(&lines).map_err(io_err(&path))?;
        fault::point("after_log_write");
        f.sync_all().map_err(io_err(&path))?;
        fault::point("after_log_fsync");
        self.state = work;
        self.seen = seen;
        self.verified_len += lines.len() as u64;
        self.log_prefix.update(&lines);
        for c in committed {
            report.committed.push(c.hash);
            self.history.push(c);
        }
        report.to_epoch = self.state.epoch().get();
        let unfinished = |step, then, e: StoreError| StoreError::CommittedUnfinished {
            from: report.from_epoch,
            to: report.to_epoch,
            step,
            error: e.to_string(),
            then,
        };
        self.write_snapshot_and_watermark().map_err(|e| {
            unfinished(
                "writing the snapshot and watermark",
                "the next open of the ledger finishes the commit from the log: fix the cause, then run rn member status",
                e,
            )
        })?;
        let hashes: Vec<String> = report.committed.iter().map(|h| h.short()).collect();
        self.audit(
            now,
            AuditEvent::Commit,
            Some(source),
            report.committed.last().copied(),
            None,
            format!(
                "epoch {} -> {}: {}",
                report.from_epoch,
                report.to_epoch,
                hashes.join(" ")
            ),
        )
        .map_err(|e| {
            unfinished(
                "writing its audit record",
                "the commit stands without that record: fix the cause (rn member log --verify checks the audit chain)",
                e,
            )
        })?;
        Ok(report)
    }

    /// Applies what a file carries: a bundle's genesis must be this ledger's, then the updates
    /// go through [`Store::apply`] and the policy documents they pin are stored. Returns the
    /// report and the documents stored.
    pub fn apply_carried(
        &mut self,
        carried: &Carried,
        now: u64,
        source: &str,
    ) -> Result<(ApplyReport, Vec<Sha256Digest>), StoreError> {
        if let Some(found) = carried.genesis_root
            && found != self.genesis_root()
        {
            return Err(StoreError::Genesis(Rejection::PinMismatch {
                pinned: self.genesis_root(),
                found,
            }));
        }
        let report = self.apply(&carried.updates, now, source)?;
        let stored = self.store_documents(&carried.documents)?;
        Ok((report, stored))
    }

    fn reject(
        &mut self,
        now: u64,
        source: &str,
        (i, count, update): (usize, usize, Sha256Digest),
        rejection: Rejection,
        unrecorded: Option<StoreError>,
    ) -> StoreError {
        let audited = self.audit(
            now,
            if matches!(rejection, Rejection::Fork { .. }) {
                AuditEvent::ForkEvidence
            } else {
                AuditEvent::Rejected
            },
            Some(source),
            Some(update),
            Some(rejection.name().into()),
            rejection.to_string(),
        );
        // The verdict is what the operator must see; what could not be recorded comes second.
        let mut lost = Vec::new();
        if let Some(e) = unrecorded {
            lost.push(format!("the fork evidence was not kept: {e}"));
        }
        if let Err(e) = audited {
            lost.push(format!("the rejection was not audited: {e}"));
        }
        StoreError::Rejected {
            position: i + 1,
            count,
            update,
            rejection: Box::new(rejection),
            unrecorded: (!lost.is_empty()).then(|| lost.join("; ")),
        }
    }

    /// The states the committed history goes through after `base`, one per committed update
    /// in turn (the history passed the gate when the store opened). `base` must be the state
    /// this ledger had at its epoch — the genesis state, or a state kept from before an
    /// apply; its root is checked against the history.
    pub fn states_after(
        &self,
        base: State,
    ) -> Result<impl Iterator<Item = Result<State, StoreError>> + '_, StoreError> {
        let epoch = base.epoch().get();
        let expected = match epoch {
            0 => self.genesis.root(),
            e => self
                .history
                .get(e as usize - 1)
                .map(|c| c.signed.update.new_root)
                .ok_or_else(|| StoreError::Unrecoverable(format!("no epoch {e} in this ledger")))?,
        };
        if base.root() != expected {
            return Err(StoreError::Unrecoverable(format!(
                "the state given for epoch {epoch} is not this ledger's"
            )));
        }
        let from = epoch;
        Ok(replay_verified(
            base,
            self.history.iter().skip(epoch as usize).map(|c| &c.signed),
        )
        .enumerate()
        .map(move |(k, r)| {
            r.map_err(|r| {
                StoreError::Unrecoverable(format!(
                    "the verified history no longer replays at epoch {}: {r}",
                    from + k as u64 + 1
                ))
            })
        }))
    }

    /// The state at `epoch` (at most the head), replayed from the genesis.
    fn state_at(&self, epoch: u64) -> Result<State, StoreError> {
        match epoch {
            0 => Ok(self.genesis.state().clone()),
            e => self
                .states_after(self.genesis.state().clone())?
                .nth(e as usize - 1)
                .unwrap_or_else(|| Ok(self.state.clone())),
        }
    }

    fn keep_evidence(
        &mut self,
        su: &SignedUpdate,
        epoch: u64,
        hash: &Sha256Digest,
    ) -> Result<(), StoreError> {
        fault::fail("evidence_write").map_err(io_err(&self.dir.join(EVIDENCE)))?;
        let dir = self.dir.join(EVIDENCE);
        if fs::symlink_metadata(&dir).is_err() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(&dir))?;
        }
        let name = format!("fork-epoch-{epoch}-{}.json", &hash.to_string()[7..19]);
        let path = dir.join(name);
        if !path.exists() {
            files::write_atomic(&path, &canonical_line(su), 0o600, false)?;
        }
        Ok(())
    }

    fn document_path(&self, hash: &Sha256Digest) -> PathBuf {
        self.dir
            .join(POLICY_DIR)
            .join(format!("sha256-{}.json", &hash.to_string()[7..]))
    }

    /// The held pinned document with this hash, if any (its hash re-checked; a file that is
    /// not a pinned document of that hash counts as not held). The store never reads the
    /// document's content: the policy layer does.
    pub fn pinned_document(&self, hash: &Sha256Digest) -> Result<Option<PinnedDoc>, StoreError> {
        let Some(bytes) = read_optional(&self.document_path(hash), caps::POLICY)? else {
            return Ok(None);
        };
        Ok(PinnedDoc::from_bytes(&bytes)
            .ok()
            .filter(|d| d.hash() == *hash))
    }

    /// Hashes of the documents pinned by the committed updates after `since`, or by the
    /// current state; sorted, each once.
    fn pinned_since(&self, since: u64) -> Vec<Sha256Digest> {
        let mut hashes: Vec<Sha256Digest> = self
            .history
            .iter()
            .skip(since as usize)
            .flat_map(|c| c.signed.update.ops.iter())
            .filter_map(|op| match op {
                super::update::Op::SetPolicy { policy } => *policy,
                _ => None,
            })
            .chain(self.state.policy().copied())
            .collect();
        hashes.sort();
        hashes.dedup();
        hashes
    }

    /// Stores the documents among `docs` that the ledger pins now or pinned in its history
    /// (others are ignored). Returns the hashes stored. Callers check what a document says
    /// before handing it here (the policy layer reads it; see `policy::read_carried`).
    pub fn store_documents(&mut self, docs: &[PinnedDoc]) -> Result<Vec<Sha256Digest>, StoreError> {
        let pinned = self.pinned_since(0);
        let mut stored = Vec::new();
        for doc in docs {
            let hash = doc.hash();
            if !pinned.contains(&hash) || self.pinned_document(&hash)?.is_some() {
                continue;
            }
            let dir = self.dir.join(POLICY_DIR);
            if fs::symlink_metadata(&dir).is_err() {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io_err(&dir))?;
            }
            let mut line = doc.bytes().to_vec();
            line.push(b'\n');
            files::write_atomic(&self.document_path(&hash), &line, 0o600, true)?;
            stored.push(hash);
        }
        Ok(stored)
    }

    /// Held documents pinned by the updates after `since` or by the current state.
    fn documents_since(&self, since: u64) -> Vec<PinnedDoc> {
        self.pinned_since(since)
            .iter()
            .filter_map(|h| self.pinned_document(h).ok().flatten())
            .collect()
    }

    /// Fork evidence kept in `evidence/`.
    pub fn fork_evidence(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir.join(EVIDENCE))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The explicit, audited way out of a restricted state the operator has investigated:
    /// accepts the log as it verifies from the genesis now (truncating a torn tail) and
    /// rewrites snapshot and watermark at its head. Refused when the log itself does not
    /// verify: that needs a backup or a fresh bootstrap plus an export from a healthy node.
    pub fn recover(&mut self, now: u64) -> Result<Restriction, StoreError> {
        let reason = match &self.mode {
            Mode::Trusted => {
                return Err(StoreError::Unrecoverable(
                    "the ledger is not restricted; nothing to recover".into(),
                ));
            }
            Mode::Restricted(r @ Restriction::LogTampered { .. }) => {
                return Err(StoreError::Unrecoverable(format!(
                    "{r}; the log itself does not verify from the genesis. Restore the state directory from a backup, or bootstrap a fresh one and apply an export from a healthy node"
                )));
            }
            Mode::Restricted(r) => r.clone(),
        };
        // Drop a torn tail, then move the watermark and snapshot to the verified head.
        self.truncate_log(self.verified_len)?;
        self.write_snapshot_and_watermark()?;
        self.mode = Mode::Trusted;
        self.audit(
            now,
            AuditEvent::Recovered,
            None,
            None,
            Some(reason.name().into()),
            format!(
                "operator accepted the current log at epoch {} (root {}) after: {reason}",
                self.state.epoch(),
                self.state.root()
            ),
        )?;
        Ok(reason)
    }

    /// A bundle of the committed updates after `since` (and the genesis when asked).
    pub fn export(&self, since: u64, with_genesis: bool) -> Bundle {
        Bundle {
            kind: BundleKind,
            genesis: with_genesis.then(|| self.genesis.signed().clone()),
            updates: self
                .history
                .iter()
                .skip(since as usize)
                .map(|c| c.signed.clone())
                .collect(),
            policies: self.documents_since(since),
        }
    }

    /// The current state (in restricted mode: the last state that verified — for display).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Trusted or restricted.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The genesis root (the network's trust anchor).
    pub fn genesis_root(&self) -> Sha256Digest {
        self.genesis.root()
    }

    /// The verified genesis.
    pub fn genesis(&self) -> &VerifiedGenesis {
        &self.genesis
    }

    /// Committed updates, epoch 1 first.
    pub fn history(&self) -> &[Committed] {
        &self.history
    }

    /// The audit chain as found on open.
    pub fn audit_status(&self) -> &AuditStatus {
        &self.audit_status
    }

    /// The audit records of every segment, oldest first (for `rn member log --audit`).
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
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

    /// What opening repaired (an unfinished commit, a torn tail, a stale snapshot).
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The update ids committed so far.
    pub fn seen(&self) -> &HashSet<UpdateId> {
        &self.seen
    }
}

impl Ledger for Store {
    fn genesis_state(&self) -> &State {
        self.genesis.state()
    }

    fn head(&self) -> &State {
        &self.state
    }

    fn seen(&self) -> &HashSet<UpdateId> {
        &self.seen
    }

    fn committed(&self, epoch: u64) -> Option<(&SignedUpdate, Sha256Digest)> {
        let c = self
            .history
            .get(usize::try_from(epoch).ok()?.checked_sub(1)?)?;
        Some((&c.signed, c.hash))
    }
}
