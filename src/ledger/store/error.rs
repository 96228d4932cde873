//! What can go wrong with a state directory, each with what to do about it.

use std::io;
use std::path::PathBuf;

use super::{GENESIS, Restriction};
use crate::files::FileError;
use crate::ledger::error::{DecodeError, Rejection};
use crate::ledger::types::Sha256Digest;

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
    /// A bundle carries the genesis of another network (`rn member export --with-genesis`).
    #[error(
        "the bundle carries the genesis of another network, not this ledger's: {0}; nothing was applied"
    )]
    ForeignGenesis(Rejection),
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
            StoreError::Genesis(rejection) | StoreError::ForeignGenesis(rejection) => {
                Some(rejection)
            }
            _ => None,
        }
    }
}
