//! The documentation as tests: every ```console block of README.md and docs/ runs against the
//! real binary, and its output must match what the block shows.
//!
//! The rules a document follows (docs/gates.md, "Documentation as tests"):
//!
//! - In a ```console block, a line starting with `$ ` is a command (a trailing `\` continues
//!   it on the next line); the lines after it, up to the next command, are its output —
//!   standard output and standard error as they interleave. A command that exits non-zero
//!   shows `(exit N)` as its last output line.
//! - Commands run with bash, in one working directory per document, in document order, with
//!   `rn` on the PATH and HOME in that directory. A `<!-- doc-test: WHY` comment (WHY on that
//!   one line) holds a script, up to `-->`, that sets the scene without being shown; it runs
//!   with `set -e` in the same shell, so what it defines stays defined.
//! - Keys, digests, fingerprints, signatures, ids, times and spans of time differ on every
//!   run: both sides are compared with those replaced by placeholders. `…` in an output line
//!   matches any text; a line that is only `…` matches any number of lines.
//! - `<!-- doc-test: file NAME -->` right before a fenced block writes that block, as shown, to
//!   NAME: the file the commands after it use is the one the reader sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use regex::Regex;

/// One command of a console block and the output the document shows for it.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
    shown: bool,
}

/// What a document asks for: its steps in order.
#[derive(Debug, Default)]
struct Doc {
    steps: Vec<Step>,
    blocks: usize,
}

fn parse(text: &str) -> Doc {
    let mut doc = Doc::default();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(name) = trimmed
            .strip_prefix("<!-- doc-test: file ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            // The next fenced block is a file the document's commands use: written as shown.
            let mut body = Vec::new();
            let mut inside = false;
            for (_, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    if inside {
                        break;
                    }
                    inside = true;
                } else if inside {
                    body.push(l);
                }
            }
            doc.steps.push(Step {
                line: n + 1,
                command: format!(
                    "cat >'{name}' <<'RN_DOC_EOF'\n{}\nRN_DOC_EOF",
                    body.join("\n")
                ),
                expected: Vec::new(),
                shown: false,
            });
        } else if trimmed.starts_with("<!-- doc-test") {
            // Hidden setup: the lines until `-->` are one script, run in the document's shell
            // (so what it sets stays set); it must succeed.
            let mut script = Vec::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "-->" {
                    break;
                }
                script.push(l.to_owned());
            }
            // errexit: a failing line ends the shell, and the document with it.
            doc.steps.push(Step {
                line: n + 1,
                command: format!("set -e\n{}\nset +e", script.join("\n")),
                expected: Vec::new(),
                shown: false,
            });
        } else if trimmed == "```console" {
            doc.blocks += 1;
            let indent = line.len() - line.trim_start().len();
            let mut current: Option<Step> = None;
            for (m, l) in lines.by_ref() {
                let l = l.get(indent..).unwrap_or(l.trim_start());
                if l.trim_start().starts_with("```") {
                    break;
                }
                if let Some(cmd) = l.strip_prefix("$ ") {
                    doc.steps.extend(current.take());
                    current = Some(Step {
                        line: m + 1,
                        command: cmd.to_owned(),
                        expected: Vec::new(),
                        shown: true,
                    });
                } else if let Some(step) = current.as_mut() {
                    if step.expected.is_empty() && step.command.ends_with('\\') {
                        step.command.pop();
                        step.command.push_str(l.trim_start());
                        step.command.push(' ');
                    } else {
                        step.expected.push(l.to_owned());
                    }
                }
            }
            doc.steps.extend(current);
        }
    }
    for s in &mut doc.steps {
        s.command = s.command.trim_end().to_owned();
    }
    doc
}

/// The values that differ between runs, as placeholders.
struct Normalizer {
    rules: Vec<(Regex, &'static str)>,
}

impl Normalizer {
    fn new() -> Self {
        let rule = |re: &str, to: &'static str| (Regex::new(re).expect("a valid pattern"), to);
        Normalizer {
            rules: vec![
                rule(r"sha256:[0-9a-f]{64}", "sha256:<digest>"),
                // A digest a document cuts short: `sha256:5752a31a…`.
                rule(r"sha256:[0-9a-f]{4,63}…", "sha256:<digest>"),
                rule(r"sha256:[0-9a-f]{12}", "sha256:<short>"),
                rule(r"SHA256:[A-Za-z0-9+/]{43}", "SHA256:<fingerprint>"),
                rule(r"[A-Za-z0-9+/]{86}==", "<signature>"),
                rule(r"[A-Za-z0-9+/]{43}=", "<key>"),
                rule(r"\b[0-9a-f]{64}\b", "<hex>"),
                rule(r"\b[0-9a-f]{32}\b", "<id>"),
                rule(r"\b[0-9a-f]{12}\b", "<commit>"),
                rule(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "<time>"),
                rule(r"\b1[7-9]\d{8}\b", "<unix>"),
                rule(r"\((in )?\d+[dhms]( \d+[dhms])?( ago)?\)", "(<span>)"),
                rule(r"\(now\)", "(<span>)"),
                rule(r"\btime \d+ms\b", "time <ms>"),
                rule(r"\bin \d+[dhms]( \d+[dhms])?\b", "in <span>"),
                rule(r"\b\d+[dhms]( \d+[dhms])? ago\b", "<span> ago"),
            ],
        }
    }

    fn apply(&self, line: &str) -> String {
        let mut s = line.trim_end().to_owned();
        for (re, to) in &self.rules {
            s = re.replace_all(&s, *to).into_owned();
        }
        s
    }
}

/// One expected output line: `…` alone (any number of lines), or a line with `…` as any text.
enum Pattern {
    AnyLines,
    Exact(String),
    Wild(Regex),
}

impl Pattern {
    fn new(line: &str) -> Pattern {
        if line.trim() == "…" {
            Pattern::AnyLines
        } else if line.contains('…') {
            let re = line
                .split('…')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(".*");
            Pattern::Wild(Regex::new(&format!("^{re}$")).expect("an escaped pattern"))
        } else {
            Pattern::Exact(line.to_owned())
        }
    }
}

fn patterns(expected: &[String]) -> Vec<Pattern> {
    expected.iter().map(|l| Pattern::new(l)).collect()
}

/// Does `actual` match `expected` (`…` within a line: any text; a line of `…`: any lines)?
fn matches(expected: &[Pattern], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((Pattern::AnyLines, rest)) => (0..=actual.len()).any(|k| matches(rest, &actual[k..])),
        Some((p, rest)) => match actual.split_first() {
            Some((a, more)) => {
                let hit = match p {
                    Pattern::Exact(e) => e == a,
                    Pattern::Wild(re) => re.is_match(a),
                    Pattern::AnyLines => true,
                };
                hit && matches(rest, more)
            }
            None => false,
        },
    }
}

/// One bash for a whole document: variables, `cd` and functions carry from step to step.
struct Shell {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    capture: PathBuf,
}

impl Shell {
    fn start(dir: &Path, capture: PathBuf, path: &str) -> Shell {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new("bash")
            // Its own process group: whatever a document starts in the background goes with it.
            .process_group(0)
            .arg("--norc")
            .arg("--noprofile")
            .current_dir(dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        Shell {
            child,
            input,
            output,
            capture,
        }
    }

    /// Runs `command` (its standard input empty) and returns what it printed, standard output
    /// and standard error interleaved, and its exit status.
    fn run(&mut self, command: &str) -> (String, i32) {
        use std::io::{BufRead as _, Write as _};
        writeln!(
            self.input,
            "{{\n{command}\n}} </dev/null >'{}' 2>&1; echo \"__rn_doc_step__ $?\"",
            self.capture.display()
        )
        .unwrap();
        self.input.flush().unwrap();
        let mut line = String::new();
        let code = loop {
            line.clear();
            if self.output.read_line(&mut line).unwrap() == 0 {
                break -1;
            }
            if let Some(code) = line.trim().strip_prefix("__rn_doc_step__ ") {
                break code.parse().unwrap_or(-1);
            }
        };
        let text = fs::read_to_string(&self.capture).unwrap_or_default();
        (text, code)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// Runs a document's steps in `dir`; the error lists every step whose output differs.
fn run(doc: &Doc, dir: &Path, name: &str) -> Result<usize, String> {
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rn"), bin.join("rn")).unwrap();
    let norm = Normalizer::new();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Shell::start(dir, scratch.path().join("out"), &path);
    let shown_dir = dir.display().to_string();
    let mut failures = Vec::new();
    let mut checked = 0;
    for step in &doc.steps {
        let (text, code) = shell.run(&step.command);
        let text = text.replace(&shown_dir, "/tmp/rn-demo");
        let mut actual: Vec<String> = text.lines().map(|l| norm.apply(l)).collect();
        if code != 0 {
            actual.push(format!("(exit {code})"));
        }
        if !step.shown {
            if code != 0 {
                failures.push(format!(
                    "{name}:{}: setup failed:\n{}\n---\n{}",
                    step.line,
                    step.command,
                    actual.join("\n")
                ));
                break;
            }
            continue;
        }
        checked += 1;
        let expected: Vec<String> = step.expected.iter().map(|l| norm.apply(l)).collect();
        if !matches(&patterns(&expected), &actual) {
            failures.push(format!(
                "{name}:{}: `{}`\n--- the document shows\n{}\n--- rn printed\n{}",
                step.line,
                step.command,
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    if failures.is_empty() {
        Ok(checked)
    } else {
        Err(failures.join("\n\n"))
    }
}

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_console_block_runs_as_shown() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut blocks, mut commands, mut failures) = (0, 0, Vec::new());
    for path in documents() {
        let doc = parse(&fs::read_to_string(&path).unwrap());
        if doc.blocks == 0 {
            continue;
        }
        let name = path.strip_prefix(base).unwrap().display().to_string();
        // RN_DOC=NAME narrows a run to the documents whose path contains NAME.
        if std::env::var("RN_DOC").is_ok_and(|only| !name.contains(&only)) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        match run(&doc, dir.path(), &name) {
            Ok(n) => {
                eprintln!("{name}: {} console blocks, {n} commands match", doc.blocks);
                blocks += doc.blocks;
                commands += n;
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!("docs as tests: {blocks} console blocks, {commands} commands checked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(blocks > 0, "no console block found");
}

/// The runner fails on a doc line that does not match, and passes the same doc fixed.
#[test]
fn a_broken_doc_line_fails() {
    let good = "intro\n\n```console\n$ rn key gen-node --out n.key\nXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX=\n$ rn --version\nrn 0.1.0 (commit 0123456789ab)\n$ rn member status --state-dir nowhere\nrn: error: …\n(exit 66)\n```\n";
    let doc = parse(good);
    assert_eq!((doc.blocks, doc.steps.len()), (1, 3));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(&doc, dir.path(), "good.md"), Ok(3));
    let broken = good.replace("(exit 66)", "(exit 65)");
    let dir = tempfile::tempdir().unwrap();
    let err = run(&parse(&broken), dir.path(), "broken.md").unwrap_err();
    assert!(err.contains("broken.md:8"), "{err}");
}

#[test]
fn placeholders_and_wildcards() {
    let n = Normalizer::new();
    assert_eq!(
        stand_in("if rnfdb (x) rnfdbx", "rnfdb", "rn0"),
        "if rn0 (x) rnfdbx"
    );
    assert_eq!(
        stand_in(
            "bootstrapped db/state: key Xdb/state=",
            "db/state",
            "/var/lib/rn"
        ),
        "bootstrapped /var/lib/rn: key Xdb/state="
    );
    assert_eq!(
        n.apply("expires   2026-11-27 15:06:52 UTC (in 59m 58s) root sha256:4eb43b64560e3cb9b5647d264875b541f2e19259db591ff769ae1b03b812a6a7"),
        "expires   <time> (<span>) root sha256:<digest>"
    );
    let lines = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();
    let m = |e: &str, a: &str| matches(&patterns(&lines(e)), &lines(a));
    assert!(m("a\n…\nd", "a\nb\nc\nd"));
    assert!(m("a …z", "a xyz"));
    assert!(!m("a\nd", "a\nb\nd"));
}

/// The ```text blocks of a document: the line each starts on and its lines, as placeholders.
fn text_blocks(text: &str, norm: &Normalizer) -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim() == "```text" {
            let indent = line.len() - line.trim_start().len();
            let body = lines
                .by_ref()
                .map(|(_, l)| l.get(indent..).unwrap_or(l.trim_start()))
                .take_while(|l| !l.trim_start().starts_with("```"))
                // A command the block names stands for whatever the drill typed there.
                .map(|l| {
                    if l.starts_with("$ ") {
                        "…".to_owned()
                    } else {
                        norm.apply(l)
                    }
                })
                .collect();
            blocks.push((n + 1, body));
        }
    }
    blocks
}

/// Runs each runbook's drill (`ci/drill.sh`, which performs the runbook's steps for real on a
/// throw-away network) and checks every ```text block of the runbook, what an operator is told
/// to expect, against the drill's transcript: the block's lines, in order, as rn printed them.
/// Returns how many blocks matched; the error names every block that did not.
fn runbooks_match_their_drills(scenarios: &[String]) -> Result<usize, String> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let norm = Normalizer::new();
    let artifacts = tempfile::tempdir().unwrap();
    let (mut checked, mut failures) = (0, Vec::new());
    for scenario in scenarios {
        let out = Command::new("bash")
            .arg(base.join("ci/drill.sh"))
            .arg(scenario)
            .arg(env!("CARGO_BIN_EXE_rn"))
            .env("ARTIFACTS", artifacts.path())
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "drill {scenario} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let log = artifacts.path().join(format!("drills/{scenario}.log"));
        let transcript = fs::read_to_string(&log).unwrap();
        // Names the drill had to give otherwise (`# stand-in: rnfdb for rn0`: one interface
        // name per namespace) read as the runbook's.
        let mut standins: Vec<(&str, &str)> = transcript
            .lines()
            .filter_map(|l| l.strip_prefix("# stand-in: ")?.split_once(" for "))
            .collect();
        standins.sort_by_key(|(actual, _)| std::cmp::Reverse(actual.len()));
        // What rn printed: the transcript without its headers, the commands as typed and the
        // drill's own checks.
        let printed: Vec<String> = transcript
            .lines()
            .filter(|l| !(l.starts_with("# ") || l.starts_with("## ") || l.starts_with("$ ")))
            .filter(|l| !l.starts_with("  ok: "))
            .map(|l| {
                let l = standins.iter().fold(l.to_owned(), |l, (actual, shown)| {
                    stand_in(&l, actual, shown)
                });
                norm.apply(&l)
            })
            .collect();
        let runbook = format!("docs/operations/incidents/{scenario}.md");
        let text = fs::read_to_string(base.join(&runbook)).unwrap();
        let blocks = text_blocks(&text, &norm);
        if blocks.is_empty() {
            failures.push(format!("{runbook}: no ```text block of expected output"));
        }
        // Blocks in document order, each after where the one before it matched: the drill
        // follows the runbook step by step.
        let mut from = 0;
        for (line, block) in blocks {
            let literal = patterns(&block)
                .iter()
                .filter(|p| !matches!(p, Pattern::AnyLines))
                .count();
            if literal == 0 {
                failures.push(format!(
                    "{runbook}:{line}: a ```text block with no line to compare: show the output, or make it a plain ``` block"
                ));
                continue;
            }
            // Where the block's first `head` lines start, at or after `from`.
            let found = |head: usize| {
                let mut wanted = patterns(&block[..head]);
                wanted.push(Pattern::AnyLines);
                (from..printed.len()).find(|&k| matches(&wanted, &printed[k..]))
            };
            if let Some(k) = found(block.len()) {
                checked += 1;
                // The match spans at least its literal lines.
                from = k + literal;
                continue;
            }
            // The longest head found: the line after it is the one to look at.
            let head = (0..block.len())
                .rev()
                .find(|&h| found(h).is_some())
                .unwrap_or(0);
            failures.push(format!(
                "{runbook}:{}: not what the drill printed after line {from} of its output ({}); the block's lines {}..{} are:\n{}\n>>> {}",
                line + 1 + head,
                log.display(),
                line + 1,
                line + head,
                block[..head].join("\n"),
                block[head]
            ));
        }
    }
    if failures.is_empty() {
        Ok(checked)
    } else {
        // Keep the transcripts for a look at what rn printed.
        let kept = artifacts.keep();
        Err(format!(
            "{}\n(transcripts kept in {})",
            failures.join("\n\n"),
            kept.display()
        ))
    }
}

/// `line` with every `actual` that stands alone — not inside a key or a longer name — read as
/// `shown`.
fn stand_in(line: &str, actual: &str, shown: &str) -> String {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_');
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(actual) {
        let (before, after) = (&rest[..i], &rest[i + actual.len()..]);
        let alone = !before.ends_with(part_of_name) && !after.starts_with(part_of_name);
        out.push_str(before);
        out.push_str(if alone { shown } else { actual });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The runbooks of docs/operations/incidents/, by name, but for those `except` names.
fn runbooks(except: &[&str]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations/incidents");
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .filter(|name| name != "README" && !except.contains(&name.as_str()))
        .collect();
    out.sort();
    out
}

/// One drill run at a time: the drills of the two tests below would slow each other's timed
/// checks.
static DRILLS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn runbook_outputs_are_what_the_drills_print() {
    let _one = DRILLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = runbooks(&ROOT_DRILLS);
    assert!(names.len() >= 8, "runbooks found: {names:?}");
    let n = runbooks_match_their_drills(&names).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("runbooks: {} drills, {n} output blocks match", names.len());
}

/// The drills whose nodes run in network namespaces.
const ROOT_DRILLS: [&str; 2] = ["fleet-revocation", "node-key-rotation"];

#[test]
#[ignore = "needs root: the fleet-revocation and node-key-rotation drills run their nodes in network namespaces"]
fn root_runbook_outputs_are_what_their_drills_print() {
    let _one = DRILLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = ROOT_DRILLS.map(str::to_owned);
    let n = runbooks_match_their_drills(&names).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("runbooks: {} drills, {n} output blocks match", names.len());
}
