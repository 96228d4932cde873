//! `rn`: parses arguments, dispatches, and leaves the exit code to the one table
//! (`rn::cli::exit`).

use std::process::ExitCode;

use rn::cli::{self, Exit};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let code = match cli::parse(&args) {
        Ok(command) => {
            let json = command.json();
            match command.run() {
                Ok(code) => code,
                Err(err) => match err.downcast_ref() {
                    Some(cli::CliError::Help(text)) => {
                        rn::outln!("{text}");
                        Exit::Ok
                    }
                    _ => {
                        let code = cli::exit::code(&err);
                        cli::output::report_error(&err, code, json);
                        code
                    }
                },
            }
        }
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
    ExitCode::from(cli::exit::finish(code) as u8)
}
