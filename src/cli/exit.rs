//! The one table from what happened to the exit code (DESIGN §6): errors, a standard output
//! that stopped taking writes, a stop that overran its deadline. Nothing else in rn chooses an
//! exit code or ends the process.

use std::sync::OnceLock;

use super::{CliError, Exit};
use crate::files::FileError;
use crate::journal::JournalError;
use crate::keys::KeyError;
use crate::ledger::store::StoreError;
use crate::ledger::{DecodeError, Rejection};

/// What each exit code means, as `rn man` lists it (DESIGN §6).
pub const TABLE: &[(u8, &str)] = &[
    (
        Exit::Ok as u8,
        "success (also: rn member verify of an update the ledger already holds)",
    ),
    (
        Exit::Declined as u8,
        "declined: the operator answered no, or rn policy check answered deny",
    ),
    (Exit::Usage as u8, "bad command line"),
    (Exit::DataErr as u8, "malformed input"),
    (
        Exit::NoInput as u8,
        "missing input: a file, the state directory or the node configuration",
    ),
    (Exit::Software as u8, "internal error"),
    (Exit::IoErr as u8, "I/O error"),
    (
        Exit::TempFail as u8,
        "temporary failure (a lock is busy, a host unreachable): retry",
    ),
    (Exit::NoPerm as u8, "permission denied"),
    (
        Exit::Rejected as u8,
        "rejected by the trust gate, or the ledger is restricted: do not retry",
    ),
];

/// The one table from errors to exit codes (DESIGN §6). The first error in the chain with a
/// known type decides.
pub fn code(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return e.exit();
        }
        if cause.is::<Rejection>() || cause.is::<crate::ledger::proof::ProofError>() {
            return Exit::Rejected;
        }
        if let Some(e) = cause.downcast_ref::<crate::sync::layout::PublishError>() {
            return match e {
                crate::sync::layout::PublishError::File(f) => file_exit(f),
                // The directory holds something else: not this command's to overwrite.
                _ => Exit::DataErr,
            };
        }
        if let Some(e) = cause.downcast_ref::<super::member::push::PushFailed>() {
            // A host that refused the ledger will refuse it again; one that was unreachable
            // or slow may take it on a retry.
            return if e.rejected > 0 {
                Exit::Rejected
            } else {
                Exit::TempFail
            };
        }
        if cause.is::<DecodeError>() {
            return Exit::DataErr;
        }
        if let Some(e) = cause.downcast_ref::<FileError>() {
            return file_exit(e);
        }
        if cause.is::<crate::policy::PolicyError>() {
            return Exit::DataErr;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::NotBootstrapped { .. } => Exit::NoInput,
                StoreError::AlreadyBootstrapped { .. } => Exit::Usage,
                StoreError::Busy { .. } => Exit::TempFail,
                StoreError::File(f) => file_exit(f),
                StoreError::Decode { .. } => Exit::DataErr,
                StoreError::Genesis(_)
                | StoreError::ForeignGenesis(_)
                | StoreError::Restricted(_)
                | StoreError::Rejected { .. }
                | StoreError::Unrecoverable(_) => Exit::Rejected,
                StoreError::Io { .. } | StoreError::CommittedUnfinished { .. } => Exit::IoErr,
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::agent::AgentError>() {
            return match e {
                crate::agent::AgentError::NoSocket => Exit::Usage,
                crate::agent::AgentError::Io { .. } => Exit::IoErr,
                crate::agent::AgentError::Protocol { .. } => Exit::DataErr,
                crate::agent::AgentError::Refused { .. } => Exit::NoPerm,
            };
        }
        if let Some(e) = cause.downcast_ref::<JournalError>() {
            return match e {
                JournalError::Equivocation { .. } => Exit::Rejected,
                JournalError::Corrupt { .. } => Exit::DataErr,
                JournalError::NoHome => Exit::Usage,
                JournalError::Busy { .. } => Exit::TempFail,
                JournalError::File(f) => file_exit(f),
            };
        }
        if let Some(e) = cause.downcast_ref::<KeyError>() {
            return match e {
                KeyError::File(f) => file_exit(f),
                KeyError::Format { .. } => Exit::DataErr,
                KeyError::NeedPassphrase { .. } => Exit::Usage,
                KeyError::WrongPassphrase { .. } => Exit::NoPerm,
                KeyError::Rng(_) => Exit::Software,
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::node::config::ConfigError>() {
            return match e {
                crate::node::config::ConfigError::File(f) => file_exit(f),
                crate::node::config::ConfigError::Invalid { .. } => Exit::DataErr,
            };
        }
        if cause.is::<crate::node::agent::InterfaceBusy>() {
            return Exit::TempFail;
        }
        if cause.is::<std::io::Error>() {
            return Exit::IoErr;
        }
    }
    Exit::Software
}

fn file_exit(e: &FileError) -> Exit {
    match e {
        FileError::Missing { .. } | FileError::NoDir { .. } => Exit::NoInput,
        FileError::Unsafe { .. } => Exit::NoPerm,
        FileError::Exists { .. } | FileError::NotRegular { .. } => Exit::Usage,
        FileError::TooLarge { .. } => Exit::DataErr,
        FileError::Io { .. } => Exit::IoErr,
    }
}

/// The first write to standard output that failed, if any (see [`stdout_failed`]).
static STDOUT_FAILURE: OnceLock<std::io::ErrorKind> = OnceLock::new();

/// Records a failed write to standard output (`outln!`): the command runs on with its output
/// dropped, and [`finish`] decides the exit code. A reader that stopped early
/// (`rn member log | head`) is not an error.
pub fn stdout_failed(e: &std::io::Error) {
    if STDOUT_FAILURE.set(e.kind()).is_ok() && e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("rn: error: writing standard output: {e}");
    }
}

/// Has a write to standard output failed? Output after that is dropped.
pub fn stdout_closed() -> bool {
    STDOUT_FAILURE.get().is_some()
}

/// The exit code of a command that returned `code`, given how its standard output fared: a
/// closed pipe ends it quietly with 0 (the reader chose to stop), any other write failure is
/// an I/O error.
pub fn finish(code: Exit) -> Exit {
    match STDOUT_FAILURE.get() {
        None => code,
        Some(std::io::ErrorKind::BrokenPipe) => Exit::Ok,
        Some(_) => Exit::IoErr,
    }
}

/// Ends the process of an agent whose stop overran its deadline (a backend that hangs while
/// tearing down must not keep the interface name): an internal failure.
pub fn stop_overdue() -> ! {
    std::process::exit(Exit::Software as i32)
}
