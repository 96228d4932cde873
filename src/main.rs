//! `rn`: parses arguments, dispatches, and leaves the exit code to the one table
//! (`rn::cli::exit`).

use std::process::ExitCode;

use rn::cli::{self, Exit};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Errors are JSON whenever --json is on the command line, even one the parser refused.
    let json_asked = args.iter().skip(1).any(|a| a == "--json");
    let code = match cli::parse(&args) {
        Ok(command) => {
            let json = command.json() || json_asked;
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
                        if code == Exit::Usage && !json {
                            eprintln!("Run {} --help for usage.", cli::command_path(&args));
                        }
                        code
                    }
                },
            }
        }
        Err(early) => {
            if early.status.is_ok() {
                rn::outln!("{}", cli::help::fix_usage(&early.output));
                Exit::Ok
            } else {
                let message = rn::cli::output::escape_untrusted(early.output.trim(), true);
                if json_asked {
                    let v = serde_json::json!({
                        "error": "Usage",
                        "message": message,
                        "exit": Exit::Usage as u8,
                    });
                    eprintln!("{v}");
                } else {
                    eprintln!(
                        "rn: usage: {message}\nRun {} --help for usage.",
                        cli::command_path(&args)
                    );
                }
                Exit::Usage
            }
        }
    };
    ExitCode::from(cli::exit::finish(code) as u8)
}
