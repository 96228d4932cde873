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
//!
//! The store owns the verified state and history and is the one path that commits; its rooms:
//! `replay` (the log read back through the gate), `audit` (the audit chain, its head and
//! segments), `recovery` (restriction, repairs, watermark and snapshot judgement), `shelf`
//! (pinned documents by hash), `error`.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::canonical::{caps, decode, to_jcs};
use super::carried::{Bundle, BundleKind, Carried, PinnedDoc};
use super::error::{DecodeError, Rejection};
use super::gate::{
    ChainRejection, Freshness, Ledger, VerifiedGenesis, accept_with, judge_chain, judge_chain_from,
    replay_verified, verify_genesis,
};
use super::log::{AuditEvent, AuditRecord, LogEntry, LogEntryKind, Snapshot, Watermark};
use super::model::State;
use super::types::{Blake3Digest, Sha256Digest, UpdateId};
use super::update::{SignedGenesis, SignedUpdate};
use crate::fault;
use crate::files::{self, FileError};

mod audit;
mod error;
mod recovery;
mod replay;
mod shelf;

use audit::{AUDIT, AuditLog};
pub use audit::{AUDIT_SEGMENT_BYTES, AuditChain, AuditStatus};
pub use error::StoreError;
pub use recovery::{Mode, Repair, Restriction, mirror_path};
use recovery::{judge_watermark, write_head_files};
use replay::{ApproverKeys, Prepared, prepare_in_order};
use shelf::Shelf;

const PIN: &str = "genesis.pin";
const GENESIS: &str = "genesis.json";
const LOG: &str = "ledger.log";
const SNAPSHOT: &str = "ledger.snapshot";
const WATERMARK: &str = "ledger.watermark";
const LOCK: &str = "lock";
const EVIDENCE: &str = "evidence";
const POLICY_DIR: &str = "policy";

/// How long `open` waits for another rn process to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

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
    audit: AuditLog,
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
    audit: AuditLog,
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
        AuditLog::remove_all(dir)?;
        let mut store = Store::at_genesis(
            dir,
            lock,
            verified,
            canonical[..canonical.len() - 1].to_vec(),
        );
        write_head_files(&store.dir, &store.state, store.log_head())?;
        store.audit.append(
            now,
            store.state.epoch(),
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
        store
            .audit
            .load(&store.genesis_bytes, cache.as_mut().map(|c| &mut c.audit))?;
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
            audit: self.audit,
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
            audit: AuditLog::new(dir, &genesis_bytes),
            genesis,
            genesis_bytes,
            mode: Mode::Trusted,
            history: Vec::new(),
            seen: HashSet::new(),
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
        let mut prev = self.log_head();
        let mut failure = None;
        prepare_in_order(&lines, &keys, |i, prepared| {
            match prepared.and_then(|p| self.verify_line(p, &prev, now)) {
                Ok(c) => {
                    prev = c.line_hash;
                    self.seen.insert(c.signed.update.update_id);
                    self.history.push(c);
                    true
                }
                Err(detail) => {
                    failure = Some((first_line + i + 1, lines[i].0, detail));
                    false
                }
            }
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

    /// The root and log line hash at `epoch` (at most the head).
    fn root_and_head_at(&self, epoch: u64) -> (Sha256Digest, Blake3Digest) {
        match epoch {
            0 => (self.genesis.root(), Blake3Digest::of(&self.genesis_bytes)),
            e if e == self.state.epoch().get() => (self.state.root(), self.log_head()),
            e => {
                let c = &self.history[e as usize - 1];
                (c.signed.update.new_root, c.line_hash)
            }
        }
    }

    /// BLAKE3 of the last log line (of the signed genesis' canonical bytes at epoch 0).
    pub fn log_head(&self) -> Blake3Digest {
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
            Some(b) => judge_watermark(b, WATERMARK, &self.state, |e| self.root_and_head_at(e)),
        };
        if restriction.is_none()
            && let Some(b) = &mirror
        {
            restriction = judge_watermark(b, "the watermark mirror", &self.state, |e| {
                self.root_and_head_at(e)
            });
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
            write_head_files(&self.dir, &self.state, self.log_head())?;
        }
        for r in self.repairs.clone() {
            self.audit.append(
                now,
                self.state.epoch(),
                AuditEvent::Repaired,
                None,
                None,
                None,
                r.to_string(),
            )?;
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
        self.audit.append(
            now,
            self.state.epoch(),
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
        write_head_files(&self.dir, &self.state, self.log_head()).map_err(|e| {
            unfinished(
                "writing the snapshot and watermark",
                "the next open of the ledger finishes the commit from the log: fix the cause, then run rn member status",
                e,
            )
        })?;
        let hashes: Vec<String> = report.committed.iter().map(|h| h.short()).collect();
        self.audit.append(now, self.state.epoch(),
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
            return Err(StoreError::ForeignGenesis(Rejection::PinMismatch {
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
        let audited = self.audit.append(
            now,
            self.state.epoch(),
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

    /// The held pinned document with this hash, if any (its hash re-checked; a file that is
    /// not a pinned document of that hash counts as not held). The store never reads the
    /// document's content: the policy layer does.
    pub fn pinned_document(&self, hash: &Sha256Digest) -> Result<Option<PinnedDoc>, StoreError> {
        Shelf::new(&self.dir).get(hash)
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
        Shelf::new(&self.dir).put(docs, &self.pinned_since(0))
    }

    /// Held documents pinned by the updates after `since` or by the current state.
    pub fn documents_since(&self, since: u64) -> Vec<PinnedDoc> {
        let shelf = Shelf::new(&self.dir);
        self.pinned_since(since)
            .iter()
            .filter_map(|h| shelf.get(h).ok().flatten())
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
        write_head_files(&self.dir, &self.state, self.log_head())?;
        self.mode = Mode::Trusted;
        self.audit.append(
            now,
            self.state.epoch(),
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
        self.audit.status()
    }

    /// The audit records of every segment, oldest first (for `rn member log --audit`).
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit.records()
    }

    /// Walks the whole audit chain, every closed segment (oldest first) and then `audit.log`:
    /// each record canonical, indexed and chained to the one before, the first to the genesis.
    /// If the oldest segments were archived away, the walk starts at the oldest one present
    /// and says so.
    pub fn verify_audit(&self) -> Result<AuditChain, StoreError> {
        self.audit.verify(&self.genesis_bytes)
    }

    /// Sets the size at which `audit.log` is closed as a segment (default
    /// [`AUDIT_SEGMENT_BYTES`]); small values let tests and tools rotate often.
    pub fn set_audit_segment_bytes(&mut self, bytes: usize) {
        self.audit.set_segment_bytes(bytes);
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
