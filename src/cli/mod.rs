//! The command line: one file per command group, one struct per subcommand with
//! `fn run(self)`. Commands parse, call the ledger and print; they never decide trust.

pub mod exit;
pub mod help;
pub mod key;
pub mod member;
pub mod node;
pub mod output;
pub mod policy;

use argh::{ArgsInfo, FromArgs};

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
#[derive(FromArgs, ArgsInfo)]
pub struct Rn {
    /// print rn's version and the commit it was built from
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Top>,
}

#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
enum Top {
    Key(key::KeyCmd),
    Member(member::MemberCmd),
    Policy(policy::PolicyCmd),
    Node(node::NodeCmd),
    Completions(help::Completions),
    Man(help::Man),
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
    // `rn member propose OP … -o FILE`: the common options written after the op move before it.
    if let ["member", "propose", rest @ ..] = strs.as_slice() {
        let lifted = member::lift_propose_options(rest).map_err(|output| argh::EarlyExit {
            output,
            status: Err(()),
        })?;
        let mut all = vec!["member", "propose"];
        all.extend(lifted.iter().map(String::as_str));
        return Rn::from_args(&["rn"], &all);
    }
    Rn::from_args(&["rn"], &strs)
}

/// The command a command line names, as far as the parser knows its words (`rn member propose`
/// for `rn member propose add-node --id x`): where a usage error points for `--help`.
pub fn command_path(args: &[String]) -> String {
    let info = Rn::get_args_info();
    let mut path = String::from("rn");
    let mut cmd = &info;
    for a in args.iter().skip(1).filter(|a| !a.starts_with('-')) {
        match cmd.commands.iter().find(|c| c.name == a.as_str()) {
            Some(sub) => {
                path.push(' ');
                path.push_str(sub.name);
                cmd = &sub.command;
            }
            None => break,
        }
    }
    path
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
            Some(Top::Member(c)) => c.json(),
            Some(Top::Policy(c)) => c.json(),
            Some(Top::Node(c)) => c.json(),
            Some(Top::Key(c)) => c.json(),
            Some(Top::Completions(_) | Top::Man(_)) | None => false,
        }
    }

    /// Runs the command.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.command {
            _ if self.version => {
                crate::outln!("{}", help::version());
                Ok(Exit::Ok)
            }
            Some(Top::Key(c)) => c.run(),
            Some(Top::Member(c)) => c.run(),
            Some(Top::Policy(c)) => c.run(),
            Some(Top::Node(c)) => c.run(),
            Some(Top::Completions(c)) => c.run(),
            Some(Top::Man(c)) => c.run(),
            None => Err(usage(
                "name a command: key, member, policy, node, completions or man (rn --help describes them)",
            )),
        }
    }
}
