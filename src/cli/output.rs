//! Output helpers: error reports, human descriptions of ops and updates, durations, clock.

use std::path::Path;

use zeroize::Zeroizing;

use super::{Exit, usage};
pub use crate::clock::{now, show_span, utc, when};
use crate::files;
use crate::keys::fingerprint;
use crate::ledger::model::{NodeStatus, Params, Set, State};
use crate::ledger::quorum::Tally;
use crate::ledger::store::StoreError;
use crate::ledger::types::Cidr;
use crate::ledger::{DecodeError, Op, Rejection, Update};
pub use crate::text::escape_untrusted;

/// `println!` for command output: once a write to standard output fails, the rest of the
/// output is dropped and the exit table decides the code ([`crate::cli::exit::finish`]: a
/// reader that stopped early, `rn member log | head`, is status 0; any other write failure is
/// an I/O error, 74). What it prints passes through [`escape_untrusted`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let text = $crate::text::escape_untrusted(&text, true);
        if !$crate::cli::exit::stdout_closed()
            && let Err(e) = writeln!(std::io::stdout(), "{text}")
        {
            $crate::cli::exit::stdout_failed(&e);
        }
    }};
}

/// `print!` for command output, with [`outln!`]'s handling of a closed standard output.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let text = $crate::text::escape_untrusted(&text, true);
        if !$crate::cli::exit::stdout_closed()
            && let Err(e) = write!(std::io::stdout(), "{text}")
        {
            $crate::cli::exit::stdout_failed(&e);
        }
    }};
}

/// `eprintln!` for what a human reads on standard error (summaries, prompts, warnings): it
/// passes through [`escape_untrusted`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        eprintln!("{}", $crate::text::escape_untrusted(&text, true));
    }};
}

/// `eprint!` with [`errln!`]'s escaping.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        eprint!("{}", $crate::text::escape_untrusted(&text, true));
    }};
}

/// Prints one error line to stderr (`--json`: one JSON object).
pub fn report_error(err: &anyhow::Error, code: Exit, json: bool) {
    let message = escape_untrusted(&format!("{err:#}"), false).into_owned();
    // A verdict whose audit record could not be written: the verdict first, the failure second.
    let unrecorded = err
        .chain()
        .find_map(|c| match c.downcast_ref::<StoreError>() {
            Some(StoreError::Rejected {
                unrecorded: Some(u),
                ..
            }) => Some(escape_untrusted(u, false).into_owned()),
            _ => None,
        });
    if json {
        let name = error_name(err);
        let mut v = serde_json::json!({"error": name, "message": message, "exit": code as u8});
        if let Some(u) = unrecorded {
            v["unrecorded"] = serde_json::Value::String(u);
        }
        eprintln!("{v}");
    } else {
        eprintln!("rn: error: {message}");
        if let Some(u) = unrecorded {
            eprintln!("rn: error: and {u}");
        }
    }
}

/// The stable name `--json` gives an error: a decode error's or rejection's name (an input over
/// its size cap is `Oversize` on every path), a restricted ledger's reason, or `Error`.
pub fn error_name(err: &anyhow::Error) -> &'static str {
    err.chain()
        .find_map(|c| {
            c.downcast_ref::<Rejection>()
                .map(Rejection::name)
                .or_else(|| c.downcast_ref::<DecodeError>().map(DecodeError::name))
                .or_else(|| match c.downcast_ref::<files::FileError>() {
                    Some(files::FileError::TooLarge { .. }) => Some("Oversize"),
                    _ => None,
                })
                .or_else(|| {
                    c.downcast_ref::<StoreError>().and_then(|e| match e {
                        StoreError::Restricted(r) => Some(r.name()),
                        StoreError::Decode { error, .. } => Some(error.name()),
                        StoreError::File(files::FileError::TooLarge { .. }) => Some("Oversize"),
                        StoreError::CommittedUnfinished { .. } => Some("CommittedUnfinished"),
                        other => other.rejection().map(Rejection::name),
                    })
                })
        })
        .unwrap_or("Error")
}

/// Parses `90s`, `15m`, `1h`, `7d` (or bare seconds).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Writes a duration back in the largest exact unit.
pub fn show_duration(secs: u64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= n && secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// The kind of an op in words, as the grouped summary counts them.
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::AddNode { .. } => "add-node",
        Op::RemoveNode { .. } => "remove-node",
        Op::RevokeNode { .. } => "revoke-node",
        Op::QuarantineNode { .. } => "quarantine-node",
        Op::RestoreNode { .. } => "restore-node",
        Op::RotateNodeKey { .. } => "rotate-node-key",
        Op::SetNode { .. } => "set-node",
        Op::AddApprover { .. } => "add-approver",
        Op::RevokeApprover { .. } => "revoke-approver",
        Op::RotateApproverKey { .. } => "rotate-approver-key",
        Op::SetThreshold { .. } => "set-threshold",
        Op::SetPolicy { .. } => "set-policy",
        Op::SetParams { .. } => "set-params",
    }
}

/// "3 ops: 2 add-node, 1 revoke-node" — every kind with its count, revocations first, then in
/// order of first appearance.
pub fn op_counts(ops: &[Op]) -> String {
    let mut kinds: Vec<(&'static str, usize)> = Vec::new();
    for op in ops {
        let k = op_kind(op);
        match kinds.iter_mut().find(|(name, _)| *name == k) {
            Some((_, n)) => *n += 1,
            None => kinds.push((k, 1)),
        }
    }
    kinds.sort_by_key(|(k, _)| !k.starts_with("revoke"));
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!(
        "{} op{}: {}",
        ops.len(),
        if ops.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The ops as numbered lines, at most `limit` of them, then a line saying how to see the rest.
pub fn describe_ops(
    ops: &[Op],
    before: Option<&State>,
    limit: Option<usize>,
    rest_hint: &str,
) -> String {
    let mut s = String::new();
    let shown = limit.unwrap_or(usize::MAX);
    for (i, op) in ops.iter().enumerate().take(shown) {
        s.push_str(&format!("  {:>4}. {}\n", i + 1, describe_op(op, before)));
    }
    if ops.len() > shown {
        s.push_str(&format!(
            "  ... {} more op{} ({rest_hint})\n",
            ops.len() - shown,
            if ops.len() - shown == 1 { "" } else { "s" }
        ));
    }
    s
}

/// Is a person at this command: standard input and standard error both terminals?
pub fn interactive() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Shows `text` through `$PAGER` (default `less`), which reads it on its standard input and
/// draws on the terminal (standard error); when no pager can be started, the text goes to standard error.
pub fn page(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let pager = std::env::var("PAGER").unwrap_or_default();
    let words = shlex::split(&pager)
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| vec!["less".to_owned()]);
    let child = std::process::Command::new(&words[0])
        .args(&words[1..])
        .stdin(std::process::Stdio::piped())
        // The pager draws where the summary would have gone: standard error (standard output
        // may be a file, `rn member sign -o -`).
        .stdout(std::process::Stdio::from(
            std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?,
        ))
        .spawn();
    let Ok(mut child) = child else {
        crate::err!("{text}");
        return Ok(());
    };
    if let Some(mut input) = child.stdin.take() {
        // A pager quit before the end ("q") closes its input: not an error.
        let _ = input.write_all(escape_untrusted(text, true).as_bytes());
    }
    child.wait()?;
    Ok(())
}

/// Reads a passphrase from the first line of a file (which must be private, like a key).
pub fn read_passphrase(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    files::check_private(path, false)?;
    let raw = Zeroizing::new(files::read_capped(path, 4096)?);
    let line = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(usage(format!(
            "{}: the passphrase file is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

fn list<T: std::fmt::Display + Ord>(set: &Set<T>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn status_word(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Active => "active",
        NodeStatus::Revoked => "revoked",
        NodeStatus::Quarantined => "quarantined",
    }
}

fn overlay(c: &Option<Cidr>) -> String {
    c.map_or_else(|| "none".into(), |c| c.to_string())
}

fn params_diff(old: &Params, new: &Params) -> String {
    let mut parts = Vec::new();
    if old.overlay_v4 != new.overlay_v4 {
        parts.push(format!(
            "overlay_v4 {} -> {}",
            overlay(&old.overlay_v4),
            overlay(&new.overlay_v4)
        ));
    }
    if old.overlay_v6 != new.overlay_v6 {
        parts.push(format!(
            "overlay_v6 {} -> {}",
            overlay(&old.overlay_v6),
            overlay(&new.overlay_v6)
        ));
    }
    if old.max_update_ttl_secs != new.max_update_ttl_secs {
        parts.push(format!(
            "max update ttl {} -> {}",
            show_duration(old.max_update_ttl_secs.get()),
            show_duration(new.max_update_ttl_secs.get())
        ));
    }
    if old.clock_skew_secs != new.clock_skew_secs {
        parts.push(format!(
            "clock skew {} -> {}",
            show_duration(old.clock_skew_secs.get()),
            show_duration(new.clock_skew_secs.get())
        ));
    }
    parts.join(", ")
}

/// One op in words, with keys shown in full (node keys, as `wg pubkey` prints them) or as
/// OpenSSH fingerprints (approver keys, as `ssh-keygen -lf` prints them). `before` is the
/// state the op meets; without it (a signed update shown on its own), what the op replaces
/// reads "?".
pub fn describe_op(op: &Op, before: Option<&State>) -> String {
    let node = |id| before.and_then(|b| b.node(id));
    let node_key = |id| node(id).map_or_else(|| "?".to_owned(), |n| n.pubkey.to_string());
    match op {
        Op::AddNode { node } => format!(
            "add node {} owned by {}, key {}, addresses {}, tags {}, routes {}, exit {}",
            node.id,
            node.owner,
            node.pubkey,
            list(&node.addresses),
            list(&node.tags),
            list(&node.routes),
            if node.exit { "yes" } else { "no" }
        ),
        Op::RemoveNode { id } => format!("remove node {id} (key {})", node_key(id)),
        Op::RevokeNode { id } => format!("REVOKE node {id} (key {})", node_key(id)),
        Op::QuarantineNode { id } => format!("quarantine node {id} (key {})", node_key(id)),
        Op::RestoreNode { id } => format!(
            "restore node {id} to active (now {}, key {})",
            node(id).map_or("?", |n| status_word(n.status)),
            node_key(id)
        ),
        Op::RotateNodeKey { id, pubkey } => {
            format!("re-key node {id}: {} -> {pubkey}", node_key(id))
        }
        Op::SetNode {
            id,
            tags,
            addresses,
            routes,
            exit,
        } => {
            let old = node(id);
            let mut parts = Vec::new();
            if let Some(t) = tags {
                parts.push(format!(
                    "tags {} -> {}",
                    old.map_or("?".into(), |n| list(&n.tags)),
                    list(t)
                ));
            }
            if let Some(a) = addresses {
                parts.push(format!(
                    "addresses {} -> {}",
                    old.map_or("?".into(), |n| list(&n.addresses)),
                    list(a)
                ));
            }
            if let Some(r) = routes {
                parts.push(format!(
                    "routes {} -> {}",
                    old.map_or("?".into(), |n| list(&n.routes)),
                    list(r)
                ));
            }
            if let Some(e) = exit {
                parts.push(format!(
                    "exit {} -> {}",
                    old.map_or("?", |n| if n.exit { "yes" } else { "no" }),
                    if *e { "yes" } else { "no" }
                ));
            }
            format!("change node {id}: {}", parts.join("; "))
        }
        Op::AddApprover { approver } => format!(
            "add approver {} as {}, key {}",
            approver.id,
            approver.role,
            fingerprint(&approver.pubkey)
        ),
        Op::RevokeApprover { id } => format!(
            "REVOKE approver {id} (key {})",
            before
                .and_then(|b| b.approver(id))
                .map_or_else(|| "?".to_owned(), |a| fingerprint(&a.pubkey))
        ),
        Op::RotateApproverKey { id, pubkey } => match before.and_then(|b| b.approver(id)) {
            Some(a) => format!(
                "re-key approver {id}: {} -> {}; the old key is retired for good ({} retired key{} after this)",
                fingerprint(&a.pubkey),
                fingerprint(pubkey),
                a.previous_keys.len() + 1,
                if a.previous_keys.is_empty() { "" } else { "s" }
            ),
            None => format!("re-key approver {id}: ? -> {}", fingerprint(pubkey)),
        },
        Op::SetThreshold { threshold } => match before {
            Some(b) => format!(
                "threshold {} -> {threshold} (of {} active approvers now)",
                b.threshold(),
                b.active_approvers()
            ),
            None => format!("threshold ? -> {threshold}"),
        },
        Op::SetPolicy { policy } => format!(
            "pin policy {} (was {})",
            policy.map_or_else(|| "none".into(), |p| p.to_string()),
            before.map_or_else(
                || "?".into(),
                |b| b.policy().map_or_else(|| "none".into(), |p| p.to_string())
            )
        ),
        Op::SetParams { params } => match before {
            Some(b) => format!("params: {}", params_diff(b.params(), params)),
            None => format!(
                "params: overlay_v4 {}, overlay_v6 {}, max update ttl {}, clock skew {}",
                overlay(&params.overlay_v4),
                overlay(&params.overlay_v6),
                show_duration(params.max_update_ttl_secs.get()),
                show_duration(params.clock_skew_secs.get())
            ),
        },
    }
}

/// The human summary a signer sees: network, epochs, roots, the ops grouped by kind and then
/// each (at most `limit`; `rest_hint` says how to see the rest), expiry, signatures.
pub fn describe_update(
    u: &Update,
    before: &State,
    tally: &Tally,
    now: u64,
    limit: Option<usize>,
    rest_hint: &str,
) -> String {
    let mut s = String::new();
    let expires = u.expires_at.get();
    let expiry = if now <= expires {
        when(expires, now)
    } else {
        format!(
            "{} (EXPIRED {} ago)",
            utc(expires),
            show_span(now - expires)
        )
    };
    s.push_str(&format!(
        "network   {}\nepoch     {} -> {}\nprev root {}\nnew root  {}\nupdate    {} (id {})\ncreated   {}\nexpires   {expiry}\nreason    {}\nops       {}\n",
        u.network_id,
        u.epoch_prev,
        u.epoch_new,
        u.prev_root,
        u.new_root,
        u.hash().short(),
        u.update_id,
        when(u.created_at.get(), now),
        if u.reason.as_str().is_empty() { "(none given)" } else { u.reason.as_str() },
        op_counts(&u.ops)
    ));
    s.push_str(&describe_ops(&u.ops, Some(before), limit, rest_hint));
    s.push_str(&describe_tally(tally));
    s
}

/// Who signed, as every command shows it: the approver id, with " (new key)" for a proof of
/// possession.
pub fn signer_labels(signatures: &[crate::ledger::update::Signature]) -> Vec<String> {
    signatures
        .iter()
        .map(|s| {
            if s.new_key {
                format!("{} (new key)", s.approver)
            } else {
                s.approver.to_string()
            }
        })
        .collect()
}

/// "signed    1 signature, 2 needed (alice); still needed: …".
pub fn describe_tally(t: &Tally) -> String {
    let who = if t.counted.is_empty() {
        "none".to_owned()
    } else {
        t.counted
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let missing = t.missing();
    format!(
        "signed    {} signature{}, {} needed ({who}){}\n",
        t.counted.len(),
        if t.counted.len() == 1 { "" } else { "s" },
        t.threshold,
        if missing.is_empty() {
            "; quorum met".to_owned()
        } else {
            format!("; still needed: {}", missing.join("; "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(show_duration(604_800), "7d");
        assert_eq!(show_duration(90), "90s");
        assert_eq!(show_span(3599), "59m 59s");
        assert_eq!(show_span(3600), "1h");
        assert_eq!(show_span(604_799), "6d 23h");
        assert_eq!(show_span(0), "0s");
        assert_eq!(show_span(61), "1m 1s");
        assert_eq!(when(100, 40), "1970-01-01 00:01:40 UTC (in 1m)");
        assert_eq!(when(40, 100), "1970-01-01 00:00:40 UTC (1m ago)");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_764_230_000), "2025-11-27 07:53:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
