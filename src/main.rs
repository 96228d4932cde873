//! `rn`: parses arguments, dispatches, and maps every error to its exit code (one table).

use std::process::ExitCode;

use rn::cli::{self, Exit};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let code = match cli::parse(&args) {
        Ok(command) => match command.run() {
            Ok(code) => code,
            Err(err) => {
                if let Some(cli::CliError::Help(text)) = err.downcast_ref() {
                    rn::outln!("{text}");
                    return ExitCode::SUCCESS;
                }
                let code = exit_code(&err);
                cli::output::report_error(&err, code, json);
                code
            }
        },
        Err(early) => {
            if early.status.is_ok() {
                rn::outln!("{}", early.output);
                Exit::Ok
            } else {
                eprintln!(
                    "rn: usage: {}\nRun rn --help for more information.",
                    rn::cli::output::escape_untrusted(early.output.trim(), true)
                );
                Exit::Usage
            }
        }
    };
    ExitCode::from(code as u8)
}

/// The one table from errors to exit codes (DESIGN §6). The first error in the chain with a
/// known type decides.
fn exit_code(err: &anyhow::Error) -> Exit {
    use rn::files::FileError;
    use rn::journal::JournalError;
    use rn::keys::KeyError;
    use rn::ledger::store::StoreError;
    use rn::ledger::{DecodeError, Rejection};
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<cli::CliError>() {
            return e.exit();
        }
        if cause.is::<Rejection>() {
            return Exit::Rejected;
        }
        if cause.is::<DecodeError>() {
            return Exit::DataErr;
        }
        if let Some(e) = cause.downcast_ref::<FileError>() {
            return file_exit(e);
        }
        if cause.is::<rn::policy::PolicyError>() {
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
                | StoreError::Restricted(_)
                | StoreError::Rejected { .. }
                | StoreError::Unrecoverable(_) => Exit::Rejected,
                StoreError::Io { .. } | StoreError::CommittedUnfinished { .. } => Exit::IoErr,
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
        if let Some(e) = cause.downcast_ref::<rn::node::config::ConfigError>() {
            return match e {
                rn::node::config::ConfigError::File(f) => file_exit(f),
                rn::node::config::ConfigError::Invalid { .. } => Exit::DataErr,
            };
        }
        if cause.is::<rn::node::agent::InterfaceBusy>() {
            return Exit::TempFail;
        }
        if cause.is::<std::io::Error>() {
            return Exit::IoErr;
        }
    }
    Exit::Software
}

fn file_exit(e: &rn::files::FileError) -> Exit {
    use rn::files::FileError;
    match e {
        FileError::Missing { .. } => Exit::NoInput,
        FileError::Unsafe { .. } => Exit::NoPerm,
        FileError::Exists { .. } | FileError::NotRegular { .. } => Exit::Usage,
        FileError::TooLarge { .. } => Exit::DataErr,
        FileError::Io { .. } => Exit::IoErr,
    }
}
