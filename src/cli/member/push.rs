//! `rn member push --hosts FILE`: the operator's ledger to every host over SSH, as
//! `rn member apply -` there, in parallel, with one result per host.
//!
//! The system's OpenSSH client does the transport, with the operator's configuration and keys
//! (`--ssh-config` adds `-F`). Each host gets the same bundle — every committed update and the
//! genesis, so a host of another network refuses it whole — and its own deadline: one slow or
//! dead host never holds up the rest.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argh::{ArgsInfo, FromArgs};
use serde_json::{Value, json};

use super::ledger::DEFAULT_STATE_DIR;
use crate::cli::output::now;
use crate::cli::{Exit, usage};
use crate::files;
use crate::ledger::canonical::to_jcs;
use crate::ledger::store::Store;

/// Push the ledger to every host in FILE over SSH (`rn member apply -` on each), in parallel;
/// prints one line per host and fails if any host did not take it.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "push")]
pub struct Push {
    /// the hosts, one per line: HOST [STATE_DIR] ("#" starts a comment; the state directory
    /// defaults to /var/lib/rn)
    #[argh(option)]
    hosts: PathBuf,
    /// the ledger to push (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// hosts contacted at once (default 8)
    #[argh(option, default = "8")]
    parallel: usize,
    /// seconds allowed per host, connection included (default 60)
    #[argh(option, default = "60")]
    timeout: u64,
    /// an OpenSSH client configuration file (passed to ssh as -F)
    #[argh(option)]
    ssh_config: Option<PathBuf>,
    /// the rn command on the hosts (default rn)
    #[argh(option, default = "String::from(\"rn\")")]
    remote_rn: String,
    /// print the result as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

/// Some hosts did not take the push.
#[derive(Debug, thiserror::Error)]
#[error(
    "{failed} of {total} host(s) did not take the push{}; the others are updated — fix the cause and push again",
    if *.rejected > 0 { format!(" ({} refused it)", .rejected) } else { String::new() }
)]
pub struct PushFailed {
    /// Hosts that failed, for any reason.
    pub failed: usize,
    /// Hosts whose ledger refused the bundle (the gate, a restricted ledger, another network).
    pub rejected: usize,
    /// Hosts in the file.
    pub total: usize,
}

/// One line of the hosts file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Host {
    destination: String,
    state_dir: String,
}

/// What one host did with the push.
#[derive(Debug)]
enum Outcome {
    /// `rn member apply` succeeded there.
    Applied {
        from: u64,
        to: u64,
        committed: usize,
    },
    /// It did not: how (`unreachable`, `timeout`, `rejected`, `error`), the remote error's
    /// name when it gave one, and the message.
    Failed {
        how: &'static str,
        error: Option<String>,
        message: String,
    },
}

/// Characters a destination, state directory or remote command may hold: they reach a remote
/// shell, so nothing there may be interpreted.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-@:+=,".contains(&b))
}

/// Reads the hosts file: `HOST [STATE_DIR]` per line; blank lines and `#` comments skipped.
fn read_hosts(bytes: &[u8], shown: &str) -> anyhow::Result<Vec<Host>> {
    let text = std::str::from_utf8(bytes).map_err(|_| usage(format!("{shown}: not UTF-8 text")))?;
    let mut hosts: Vec<Host> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{shown} line {}", i + 1);
        let mut words = line.split_whitespace();
        let destination = words.next().unwrap_or_default().to_owned();
        let state_dir = words.next().unwrap_or(DEFAULT_STATE_DIR).to_owned();
        if words.next().is_some() {
            return Err(usage(format!(
                "{}: expected HOST [STATE_DIR], found more words",
                at()
            )));
        }
        if destination.starts_with('-') || !plain(&destination) {
            return Err(usage(format!(
                "{}: {destination:?} is not a host name (letters, digits and . _ - @ : only, not starting with -)",
                at()
            )));
        }
        if !state_dir.starts_with('/') || !plain(&state_dir) {
            return Err(usage(format!(
                "{}: the state directory {state_dir:?} must be an absolute path of letters, digits and / . _ -",
                at()
            )));
        }
        let host = Host {
            destination,
            state_dir,
        };
        if hosts.contains(&host) {
            return Err(usage(format!(
                "{}: {} is listed twice",
                at(),
                host.destination
            )));
        }
        hosts.push(host);
    }
    if hosts.is_empty() {
        return Err(usage(format!("{shown}: no hosts listed")));
    }
    Ok(hosts)
}

/// What a bounded child process left behind.
struct Finished {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    timed_out: bool,
}

/// Output kept of a remote command (an `apply` prints a few hundred bytes).
const OUTPUT_CAP: u64 = 1 << 20;

/// Runs `cmd` with `input` on its standard input, for at most `timeout`; killed after that.
fn run_bounded(mut cmd: Command, input: &[u8], timeout: Duration) -> std::io::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let start = Instant::now();
    let mut stdin = child.stdin.take();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&input);
        }
    });
    // Each stream is read on its own thread and handed over by channel: a process the command
    // left behind holding the pipe open (an ssh connection master) cannot hold up the push.
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(OUTPUT_CAP).read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The streams close when the process ends; a descendant still holding them gets a second.
    let grace = Instant::now() + Duration::from_secs(1);
    let left = || grace.saturating_duration_since(Instant::now());
    let stdout = out.recv_timeout(left()).unwrap_or_default();
    let stderr = err.recv_timeout(left()).unwrap_or_default();
    drop(writer);
    Ok(Finished {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        timed_out,
    })
}

impl Push {
    fn ssh(&self, host: &Host) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-o").arg("BatchMode=yes");
        cmd.arg("-o")
            .arg(format!("ConnectTimeout={}", self.timeout.clamp(1, 30)));
        if let Some(cfg) = &self.ssh_config {
            cmd.arg("-F").arg(cfg);
        }
        cmd.arg("--").arg(&host.destination).arg(format!(
            "{} member apply - --state-dir {} --json",
            self.remote_rn, host.state_dir
        ));
        cmd
    }

    fn push_one(&self, host: &Host, bundle: &[u8]) -> Outcome {
        let timeout = Duration::from_secs(self.timeout);
        let f = match run_bounded(self.ssh(host), bundle, timeout) {
            Ok(f) => f,
            Err(e) => {
                return Outcome::Failed {
                    how: "error",
                    error: None,
                    message: format!("cannot run ssh: {e}"),
                };
            }
        };
        let last_line = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        if f.timed_out {
            return Outcome::Failed {
                how: "timeout",
                error: None,
                message: format!("no answer within {} s", self.timeout),
            };
        }
        if f.code == Some(0)
            && let Ok(v) = serde_json::from_str::<Value>(&last_line(&f.stdout))
            && v["ok"] == true
        {
            return Outcome::Applied {
                from: v["from_epoch"].as_u64().unwrap_or(0),
                to: v["to_epoch"].as_u64().unwrap_or(0),
                committed: v["committed"].as_array().map_or(0, Vec::len),
            };
        }
        let stderr = last_line(&f.stderr);
        // The remote rn's error, as `--json` writes it.
        if let Ok(v) = serde_json::from_str::<Value>(&stderr)
            && let Some(name) = v["error"].as_str()
        {
            let rejected = v["exit"].as_u64() == Some(Exit::Rejected as u64);
            return Outcome::Failed {
                how: if rejected { "rejected" } else { "error" },
                error: Some(name.to_owned()),
                message: v["message"].as_str().unwrap_or_default().to_owned(),
            };
        }
        let code = f.code.map_or("a signal".to_owned(), |c| c.to_string());
        Outcome::Failed {
            // ssh itself exits 255 when it cannot connect or authenticate.
            how: if f.code == Some(255) {
                "unreachable"
            } else {
                "error"
            },
            error: None,
            message: if stderr.is_empty() {
                format!("exited {code}")
            } else {
                format!("{stderr} (exit {code})")
            },
        }
    }

    pub fn run(self) -> anyhow::Result<Exit> {
        if self.parallel == 0 {
            return Err(usage("--parallel must be at least 1"));
        }
        if self.timeout == 0 {
            return Err(usage("--timeout must be at least 1 second"));
        }
        if !plain(&self.remote_rn) {
            return Err(usage(
                "--remote-rn must be a command name or path of letters, digits and / . _ -",
            ));
        }
        let shown = self.hosts.display().to_string();
        let hosts = read_hosts(&files::read_capped(&self.hosts, 1 << 20)?, &shown)?;
        let store = Store::open_trusted(
            &crate::cli::member::ledger::state_dir(self.state_dir.as_deref())?,
            None,
            now(),
        )?;
        let mut bundle = to_jcs(&store.export(0, true));
        bundle.push(b'\n');
        let (epoch, root) = (store.state().epoch().get(), store.state().root());
        drop(store);

        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(hosts.iter().map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..self.parallel.min(hosts.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(host) = hosts.get(i) else { break };
                        let outcome = self.push_one(host, &bundle);
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(outcome);
                        }
                    }
                });
            }
        });
        let results: Vec<Outcome> = results
            .into_inner()
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::Failed {
                    how: "error",
                    error: None,
                    message: "not pushed".into(),
                })
            })
            .collect();
        let failed = results
            .iter()
            .filter(|o| matches!(o, Outcome::Failed { .. }))
            .count();
        let rejected = results
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Outcome::Failed {
                        how: "rejected",
                        ..
                    }
                )
            })
            .count();
        if self.json {
            let rows: Vec<Value> = hosts
                .iter()
                .zip(&results)
                .map(|(h, o)| match o {
                    Outcome::Applied {
                        from,
                        to,
                        committed,
                    } => json!({"host": h.destination, "state_dir": h.state_dir, "ok": true,
                        "from_epoch": from, "to_epoch": to, "committed": committed}),
                    Outcome::Failed {
                        how,
                        error,
                        message,
                    } => json!({"host": h.destination, "state_dir": h.state_dir, "ok": false,
                        "failure": how, "error": error, "message": message}),
                })
                .collect();
            crate::outln!(
                "{}",
                json!({"epoch": epoch, "root": root.to_string(), "hosts": rows, "failed": failed})
            );
        } else {
            let width = hosts
                .iter()
                .map(|h| h.destination.len())
                .max()
                .unwrap_or(4)
                .max(4);
            crate::outln!("{:<width$}  {:<13}  RESULT", "HOST", "EPOCH");
            for (h, o) in hosts.iter().zip(&results) {
                match o {
                    Outcome::Applied {
                        from,
                        to,
                        committed,
                    } => crate::outln!(
                        "{:<width$}  {:<13}  {}",
                        h.destination,
                        format!("{from} -> {to}"),
                        if *committed == 0 {
                            "already up to date".to_owned()
                        } else {
                            format!("applied {committed} update(s)")
                        }
                    ),
                    Outcome::Failed {
                        how,
                        error,
                        message,
                    } => crate::outln!(
                        "{:<width$}  {:<13}  FAILED ({how}{}): {message}",
                        h.destination,
                        "-",
                        error.as_ref().map(|e| format!(", {e}")).unwrap_or_default()
                    ),
                }
            }
            crate::outln!(
                "pushed epoch {epoch} (root {root}) to {} of {} host(s)",
                hosts.len() - failed,
                hosts.len()
            );
        }
        if failed > 0 {
            return Err(PushFailed {
                failed,
                rejected,
                total: hosts.len(),
            }
            .into());
        }
        Ok(Exit::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_bounded_in_time_whatever_it_leaves_behind() {
        let sh = |script: &str| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            c
        };
        // Reads its input and answers.
        let t = Instant::now();
        let f = run_bounded(sh("cat; echo done >&2"), b"bundle", Duration::from_secs(5)).unwrap();
        assert_eq!(
            (
                f.code,
                f.stdout.as_slice(),
                f.stderr.as_slice(),
                f.timed_out
            ),
            (Some(0), &b"bundle"[..], &b"done\n"[..], false)
        );
        // Never answers: cut off at the deadline.
        let f = run_bounded(sh("sleep 30"), b"", Duration::from_millis(300)).unwrap();
        assert!(f.timed_out && f.code.is_none());
        // Exits but leaves a process holding its output open: not waited for.
        let f = run_bounded(sh("sleep 30 & exit 3"), b"", Duration::from_secs(5)).unwrap();
        assert_eq!((f.code, f.timed_out), (Some(3), false));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn the_hosts_file_is_read_strictly() {
        let hosts = read_hosts(
            b"# fleet\nweb-1\n10.0.0.2 /srv/rn   # db\n\nops@db-2:22 /var/lib/rn\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            hosts
                .iter()
                .map(|h| (h.destination.as_str(), h.state_dir.as_str()))
                .collect::<Vec<_>>(),
            [
                ("web-1", "/var/lib/rn"),
                ("10.0.0.2", "/srv/rn"),
                ("ops@db-2:22", "/var/lib/rn")
            ]
        );
        for (bad, why) in [
            ("-oProxyCommand=x", "not a host name"),
            ("web;reboot", "not a host name"),
            ("web relative/dir", "absolute path"),
            ("web /srv/$(id)", "absolute path"),
            ("web /srv/rn extra", "more words"),
            ("web\nweb", "listed twice"),
            ("# nothing\n", "no hosts"),
        ] {
            let e = read_hosts(bad.as_bytes(), "f").unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
