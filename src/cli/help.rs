//! `rn --version`, `rn completions SHELL` and `rn man`: all three read the parser's own
//! metadata (`argh::ArgsInfo`), so they cannot drift from what the parser accepts.

use std::fmt::Write as _;

use argh::{ArgsInfo, FromArgs};
use argh_complete::Generator as _;
use argh_shared::{CommandInfoWithArgs, FlagInfoKind, Optionality};

use super::{Exit, Rn};

/// The version line: the crate version and the commit the binary was built from ("unknown"
/// when it was built outside a git checkout).
pub fn version() -> String {
    format!(
        "rn {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        env!("RN_BUILD_COMMIT")
    )
}

/// Options the parser can only take as repeatable (a list) but that a command requires at
/// least once; its usage line shows them as required. The command checks the count itself.
const REQUIRED_LISTS: &[(&str, &str)] = &[("rn member init", "--approver")];

/// A help text as the parser wrote it, with [`REQUIRED_LISTS`] shown as required
/// (`--approver <ID:ROLE:PUBKEY>...`, not `[--approver <ID:ROLE:PUBKEY...>]`).
pub fn fix_usage(help: &str) -> String {
    let mut text = help.to_owned();
    for (cmd, flag) in REQUIRED_LISTS {
        if !text.starts_with(&format!("Usage: {cmd} ")) {
            continue;
        }
        let open = format!("[{flag} <");
        if let Some(start) = text.find(&open)
            && let Some(len) = text[start..].find("...>]")
        {
            let arg = &text[start + open.len()..start + len];
            let shown = format!("{flag} <{arg}>...");
            text.replace_range(start..start + len + "...>]".len(), &shown);
        }
    }
    text
}

/// A shell `rn completions` writes a script for.
#[derive(Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl argh::FromArgValue for Shell {
    fn from_arg_value(value: &str) -> Result<Self, String> {
        match value {
            "bash" => Ok(Shell::Bash),
            "zsh" => Ok(Shell::Zsh),
            "fish" => Ok(Shell::Fish),
            other => Err(format!(
                "{other:?} is not a shell rn completes: bash, zsh or fish"
            )),
        }
    }
}

/// Print a completion script for bash, zsh or fish (e.g. `rn completions bash >
/// /etc/bash_completion.d/rn`).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "completions")]
pub struct Completions {
    /// bash, zsh or fish
    #[argh(positional)]
    shell: Shell,
}

impl Completions {
    pub fn run(self) -> anyhow::Result<Exit> {
        let info = Rn::get_args_info();
        let script = match self.shell {
            Shell::Bash => argh_complete::bash::Bash::generate("rn", &info),
            Shell::Zsh => argh_complete::zsh::Zsh::generate("rn", &info),
            Shell::Fish => argh_complete::fish::Fish::generate("rn", &info),
        };
        crate::out!("{script}");
        Ok(Exit::Ok)
    }
}

/// Print rn's manual page in roff (e.g. `rn man | man -l -`; `make man` writes
/// target/man/rn.1).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "man")]
pub struct Man {}

impl Man {
    pub fn run(self) -> anyhow::Result<Exit> {
        crate::out!("{}", man_page(&Rn::get_args_info()));
        Ok(Exit::Ok)
    }
}

/// Escapes text for roff: backslashes and hyphens, and a line that would start with a
/// control character.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One command's usage line, as the parser's help prints it.
fn usage_line(path: &str, cmd: &CommandInfoWithArgs<'_>) -> String {
    let mut line = path.to_owned();
    for f in cmd.flags.iter().filter(|f| !f.hidden && f.long != "--help") {
        let name = match f.short {
            Some(c) => format!("-{c}"),
            None => f.long.to_owned(),
        };
        let mut item = match f.kind {
            FlagInfoKind::Switch => name,
            FlagInfoKind::Option { arg_name } => format!("{name} <{arg_name}>"),
        };
        if matches!(f.optionality, Optionality::Repeating) {
            item.push_str("...");
        }
        let listed = REQUIRED_LISTS.contains(&(path, f.long));
        match f.optionality {
            Optionality::Required => write!(line, " {item}"),
            _ if listed => write!(line, " {item}"),
            _ => write!(line, " [{item}]"),
        }
        .expect("writing to a String");
    }
    for p in cmd.positionals.iter().filter(|p| !p.hidden) {
        match p.optionality {
            Optionality::Required => write!(line, " <{}>", p.name),
            Optionality::Repeating | Optionality::Greedy => write!(line, " [<{}>...]", p.name),
            Optionality::Optional => write!(line, " [<{}>]", p.name),
        }
        .expect("writing to a String");
    }
    if !cmd.commands.is_empty() {
        line.push_str(" <command> [<args>]");
    }
    line
}

/// Writes one command's section and recurses into its subcommands.
fn man_command(out: &mut String, path: &str, cmd: &CommandInfoWithArgs<'_>) {
    if cmd.commands.is_empty() {
        let _ = write!(
            out,
            ".SS \"{}\"\n.B {}\n.br\n{}\n",
            roff(path),
            roff(&usage_line(path, cmd)),
            roff(cmd.description)
        );
        for f in cmd.flags.iter().filter(|f| !f.hidden && f.long != "--help") {
            let name = match (f.short, &f.kind) {
                (Some(c), FlagInfoKind::Option { arg_name }) => {
                    format!("-{c}, {} <{arg_name}>", f.long)
                }
                (Some(c), FlagInfoKind::Switch) => format!("-{c}, {}", f.long),
                (None, FlagInfoKind::Option { arg_name }) => format!("{} <{arg_name}>", f.long),
                (None, FlagInfoKind::Switch) => f.long.to_owned(),
            };
            let required = if matches!(f.optionality, Optionality::Required)
                || REQUIRED_LISTS.contains(&(path, f.long))
            {
                " (required)"
            } else {
                ""
            };
            let _ = write!(
                out,
                ".TP\n.B {}\n{}{}\n",
                roff(&name),
                roff(f.description),
                required
            );
        }
        for p in cmd.positionals.iter().filter(|p| !p.hidden) {
            let _ = write!(out, ".TP\n.I {}\n{}\n", roff(p.name), roff(p.description));
        }
    }
    for sub in &cmd.commands {
        man_command(out, &format!("{path} {}", sub.name), &sub.command);
    }
}

/// The whole manual page.
pub fn man_page(info: &CommandInfoWithArgs<'_>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        ".TH RN 1 \"\" \"{}\" \"rn manual\"\n.SH NAME\nrn \\- {}\n.SH SYNOPSIS\n.B {}\n.SH DESCRIPTION\n{}\n",
        roff(&version()),
        roff(info.description),
        roff(&usage_line("rn", info)),
        roff(
            "Every change to the network's membership is an update signed by a quorum of \
             approvers; every node verifies each update itself and drives its WireGuard \
             interface and firewall from the result. Each command below prints its own help \
             with --help."
        ),
    );
    out.push_str(".SH COMMANDS\n");
    man_command(&mut out, "rn", info);
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in super::exit::TABLE {
        let _ = write!(out, ".TP\n.B {code}\n{}\n", roff(meaning));
    }
    out.push_str(
        ".SH FILES\n.TP\n.I /etc/rn/node.json\nthe node configuration (rn node init)\n\
         .TP\n.I /var/lib/rn\nthe default state directory: the ledger, its audit log and the \
         node key\n.SH \"SEE ALSO\"\n.BR wg (8),\n.BR nft (8)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command the parser knows reaches the manual page and the completion scripts.
    #[test]
    fn man_page_and_completions_cover_every_command() {
        let info = Rn::get_args_info();
        let page = man_page(&info);
        let bash = argh_complete::bash::Bash::generate("rn", &info);
        let mut paths = Vec::new();
        fn walk(path: String, cmd: &CommandInfoWithArgs<'_>, paths: &mut Vec<String>) {
            if cmd.commands.is_empty() {
                paths.push(path.clone());
            }
            for sub in &cmd.commands {
                walk(format!("{path} {}", sub.name), &sub.command, paths);
            }
        }
        walk("rn".to_owned(), &info, &mut paths);
        assert!(paths.len() > 30, "{paths:?}");
        for path in &paths {
            assert!(
                page.contains(&format!(".SS \"{}\"", roff(path))),
                "{path} not in man page"
            );
            let last = path.rsplit(' ').next().expect("a word");
            assert!(bash.contains(last), "{last} not in the bash completions");
        }
        assert!(page.contains(".B 78\n"), "exit status table missing");
    }

    /// Every command that prints data takes --json; the exceptions print something else.
    #[test]
    fn every_data_command_takes_json() {
        // export writes the bundle itself (JSON already); completions and man print a script
        // and a page; node run logs (its --once prints the status as JSON).
        const NOT_DATA: &[&str] = &[
            "rn member export",
            "rn completions",
            "rn man",
            "rn node run",
        ];
        let info = Rn::get_args_info();
        let mut missing = Vec::new();
        fn walk<'a>(path: String, cmd: &CommandInfoWithArgs<'a>, out: &mut Vec<(String, bool)>) {
            if cmd.commands.is_empty() {
                out.push((path.clone(), cmd.flags.iter().any(|f| f.long == "--json")));
            }
            for sub in &cmd.commands {
                walk(format!("{path} {}", sub.name), &sub.command, out);
            }
        }
        let mut all = Vec::new();
        walk("rn".to_owned(), &info, &mut all);
        for (path, json) in &all {
            // The ops of `rn member propose` are parsed after its own --json.
            let op = path.starts_with("rn member propose ");
            if !json && !op && !NOT_DATA.contains(&path.as_str()) {
                missing.push(path.clone());
            }
        }
        assert!(missing.is_empty(), "no --json: {missing:?}");
    }

    #[test]
    fn required_lists_show_as_required() {
        let help = "Usage: rn member init --network-id <network-id> [--approver <ID:ROLE:PUBKEY...>] -o <output>\n";
        assert_eq!(
            fix_usage(help),
            "Usage: rn member init --network-id <network-id> --approver <ID:ROLE:PUBKEY>... -o <output>\n"
        );
        assert_eq!(
            fix_usage("Usage: rn member log [--approver <a...>]"),
            "Usage: rn member log [--approver <a...>]"
        );
    }

    #[test]
    fn roff_escapes_control_lines_and_hyphens() {
        assert_eq!(roff(".x -y\\z"), "\\&.x \\-y\\ez");
    }
}
