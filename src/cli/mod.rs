//! The command line: one file per command group, one struct per subcommand with
//! `fn run(self)`. Commands parse, call the ledger and print; they never decide trust.

pub mod exit;
pub mod key;
pub mod member;
pub mod node;
pub mod output;
pub mod policy;

use argh::FromArgs;

/// Exit codes (DESIGN §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The operator declined (e.g. answered "n" at `Sign? [y/N]`), or `rn policy check`
    /// answered "deny".
    Declined = 1,
    /// Bad command line.
    Usage = 64,
    /// Malformed input.
    DataErr = 65,
    /// Missing input.
    NoInput = 66,
    /// Internal error.
    Software = 70,
    /// I/O error.
    IoErr = 74,
    /// Temporary failure (lock busy): retry.
    TempFail = 75,
    /// Permissions.
    NoPerm = 77,
    /// Rejected by the trust gate: do not retry.
    Rejected = 78,
}

/// An error the CLI itself raises, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad command line or an option value that cannot work.
    #[error("{0}")]
    Usage(String),
    /// Input that parses but cannot be used (e.g. two files carrying different updates).
    #[error("{0}")]
    Data(String),
    /// `--help` of a nested parser: printed to standard output, exit 0.
    #[error("{0}")]
    Help(String),
}

impl CliError {
    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Data(_) => Exit::DataErr,
            CliError::Help(_) => Exit::Ok,
        }
    }
}

/// Shorthand for a usage error.
pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    CliError::Usage(msg.into()).into()
}

/// rn governs a WireGuard mesh through a quorum-signed membership ledger.
#[derive(FromArgs)]
pub struct Rn {
    #[argh(subcommand)]
    command: Top,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Top {
    Key(key::KeyCmd),
    Member(member::MemberCmd),
    Policy(policy::PolicyCmd),
    Node(node::NodeCmd),
}

/// Parses the command line (`args[0]` is the program name). A positional "-" (standard input,
/// as in `rn member export | rn member apply -`) reaches the commands as `/dev/stdin`, because
/// the parser takes every argument starting with '-' for an option; a "-" that is the value of
/// an option (`-o -`) stays as it is. Which options take a value is asked of the parser.
pub fn parse(args: &[String]) -> Result<Rn, argh::EarlyExit> {
    let mut strs: Vec<&str> = Vec::with_capacity(args.len());
    for a in args.iter().skip(1) {
        let is_value = strs.last().is_some_and(|prev| prev.starts_with('-'))
            && option_lacks_value::<Rn>("rn", &strs);
        if a == "-" && !is_value {
            strs.push(crate::files::STDIN);
        } else {
            strs.push(a);
        }
    }
    Rn::from_args(&["rn"], &strs)
}

/// Does the parser of `T`, given `args`, find the last option waiting for its value?
fn option_lacks_value<T: FromArgs>(cmd: &str, args: &[&str]) -> bool {
    T::from_args(&[cmd], args)
        .err()
        .is_some_and(|e| e.output.starts_with("No value provided for option"))
}

/// Is `token` an option of `T` (`cmd`'s parser), and does it take a value? `None` for a token
/// the parser does not know as one of its options (help included).
pub(crate) fn option_of<T: FromArgs>(cmd: &str, token: &str) -> Option<bool> {
    if !token.starts_with('-') || token == "-" {
        return None;
    }
    match T::from_args(&[cmd], &[token]) {
        Ok(_) => Some(false),
        Err(e) if e.status.is_ok() || e.output.starts_with("Unrecognized argument") => None,
        Err(e) => Some(e.output.starts_with("No value provided for option")),
    }
}

impl Rn {
    /// Did the command line ask for JSON output (errors are then one JSON object too)?
    pub fn json(&self) -> bool {
        match &self.command {
            Top::Member(c) => c.json(),
            Top::Policy(c) => c.json(),
            Top::Node(c) => c.json(),
            Top::Key(_) => false,
        }
    }

    /// Runs the command.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.command {
            Top::Key(c) => c.run(),
            Top::Member(c) => c.run(),
            Top::Policy(c) => c.run(),
            Top::Node(c) => c.run(),
        }
    }
}
