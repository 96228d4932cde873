//! `rn member bootstrap | apply | status | log | export | recover`: the commands run on a node
//! or workstation that keeps a ledger (a state directory), usually over SSH.

use std::path::PathBuf;

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};
use serde_json::json;

use crate::cli::output::{describe_op, now, op_counts, utc};
use crate::cli::{Exit, usage};
use crate::files;
use crate::ledger::State;
use crate::ledger::canonical::{caps, to_jcs};
use crate::ledger::model::{ApproverStatus, NodeStatus};
use crate::ledger::store::{Mode, Store};
use crate::ledger::types::Sha256Digest;

/// Where ledgers live unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rn";

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

/// The state directory a command uses when `--state-dir` is not given: the node
/// configuration's (`$RN_CONFIG`, else /etc/rn/node.json, when it exists), else /var/lib/rn.
pub fn state_dir(given: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    match crate::cli::node::local_config()? {
        Some(config) => Ok(config.state_dir),
        None => Ok(default_state_dir()),
    }
}

/// Create a ledger (state directory) from a fully signed genesis whose root equals the pin.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "bootstrap")]
pub struct Bootstrap {
    /// the signed genesis
    #[argh(option)]
    genesis: PathBuf,
    /// the genesis root, obtained out of band (sha256:...)
    #[argh(option)]
    pin: Sha256Digest,
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print the result as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Bootstrap {
    pub fn run(self) -> anyhow::Result<Exit> {
        let bytes = files::read_capped(&self.genesis, caps::UPDATE)?;
        let dir = state_dir(self.state_dir.as_deref())?;
        let store = Store::bootstrap(&dir, &bytes, &self.pin, now())?;
        let s = store.state();
        if self.json {
            let v = json!({
                "state_dir": dir, "network_id": s.network_id().as_str(),
                "genesis_root": store.genesis_root().to_string(),
                "approvers": s.approvers().len(), "threshold": s.threshold().get(),
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!(
            "bootstrapped {}: network {}, genesis root {}, {} approvers, threshold {}",
            dir.display(),
            s.network_id(),
            store.genesis_root(),
            s.approvers().len(),
            s.threshold()
        );
        Ok(Exit::Ok)
    }
}

/// Commit a proposal, signed update or bundle through the gate ("-" reads standard input):
/// `rn member export | ssh host rn member apply -`.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "apply")]
pub struct Apply {
    /// the file to apply, or "-"
    #[argh(positional)]
    file: PathBuf,
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print the result as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Apply {
    pub fn run(self) -> anyhow::Result<Exit> {
        let bytes = files::read_capped(&self.file, caps::LOG)?;
        let carried = crate::policy::read_carried(&bytes)
            .with_context(|| format!("reading {}", self.file.display()))?;
        let now = now();
        let mut store = Store::open(&state_dir(self.state_dir.as_deref())?, None, now)?;
        let before = store.state().clone();
        let source = self.file.display().to_string();
        let (report, stored) = store.apply_carried(&carried, now, &source)?;
        if self.json {
            let v = json!({
                "ok": true,
                "from_epoch": report.from_epoch,
                "to_epoch": report.to_epoch,
                "already_applied": report.already,
                "committed": report.committed.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                "root": store.state().root().to_string(),
                "policies_stored": stored.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        for h in &stored {
            crate::outln!("stored policy document {h}");
        }
        if report.committed.is_empty() {
            crate::outln!(
                "already applied: {} update(s), ledger at epoch {} (root {})",
                report.already,
                report.to_epoch,
                store.state().root()
            );
            return Ok(Exit::Ok);
        }
        crate::outln!(
            "applied {} update(s): epoch {} -> {}, root {}{}",
            report.committed.len(),
            report.from_epoch,
            report.to_epoch,
            store.state().root(),
            if report.already > 0 {
                format!(" ({} already applied)", report.already)
            } else {
                String::new()
            }
        );
        let mut state = before.clone();
        let mut after = store.states_after(before)?;
        for c in &store.history()[report.from_epoch as usize..] {
            for op in &c.signed.update.ops {
                crate::outln!(
                    "  epoch {}: {}",
                    c.signed.update.epoch_new,
                    describe_op(op, Some(&state))
                );
            }
            if let Some(next) = after.next() {
                state = next?;
            }
        }
        Ok(Exit::Ok)
    }
}

/// Show the ledger: network, epoch, root, approvers, nodes, mode (trusted or restricted with
/// the reason), fork evidence. Works on a restricted ledger. --node, --tag and --status list
/// only the nodes that match all of them.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "status")]
pub struct Status {
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print as JSON
    #[argh(switch)]
    pub(crate) json: bool,
    /// list only this node
    #[argh(option)]
    node: Option<crate::ledger::types::Id>,
    /// list only nodes with this tag (tag:NAME)
    #[argh(option)]
    tag: Option<crate::ledger::types::Tag>,
    /// list only nodes in this status: active, revoked or quarantined
    #[argh(option)]
    status: Option<String>,
}

impl Status {
    /// Does node `n` pass the --node, --tag and --status filters?
    fn wants(&self, n: &crate::ledger::model::Node) -> bool {
        self.node.as_ref().is_none_or(|id| n.id == *id)
            && self.tag.as_ref().is_none_or(|t| n.tags.contains(t))
            && self
                .status
                .as_deref()
                .is_none_or(|st| node_status(n.status) == st)
    }

    fn filtered(&self) -> bool {
        self.node.is_some() || self.tag.is_some() || self.status.is_some()
    }
}

fn policy_text(store: &Store) -> anyhow::Result<String> {
    Ok(match crate::policy::PinnedPolicy::load(store)?.view() {
        crate::policy::PolicyView::None => "none pinned (default deny: nothing is allowed)".into(),
        crate::policy::PolicyView::Held(p) => {
            format!("{} ({} rules, held)", p.hash(), p.rules.len())
        }
        crate::policy::PolicyView::Missing(h) => {
            format!(
                "{h} NOT HELD: everything is denied until the document is applied (rn member apply a bundle or proposal carrying it)"
            )
        }
    })
}

fn mode_text(mode: &Mode) -> String {
    match mode {
        Mode::Trusted => "trusted".into(),
        Mode::Restricted(r) => format!("restricted: {r}"),
    }
}

pub(super) fn node_status(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Active => "active",
        NodeStatus::Revoked => "revoked",
        NodeStatus::Quarantined => "quarantined",
    }
}

fn state_json(s: &State, wants: impl Fn(&crate::ledger::model::Node) -> bool) -> serde_json::Value {
    json!({
        "network_id": s.network_id().to_string(),
        "epoch": s.epoch().get(),
        "root": s.root().to_string(),
        "threshold": s.threshold().get(),
        "policy": s.policy().map(|p| p.to_string()),
        "approvers": s.approvers().map(|a| json!({
            "id": a.id.to_string(), "role": a.role.to_string(),
            "status": if a.status == ApproverStatus::Active { "active" } else { "revoked" },
            "pubkey": a.pubkey.to_string(),
        })).collect::<Vec<_>>(),
        "nodes": s.nodes().filter(|n| wants(n)).map(|n| json!({
            "id": n.id.to_string(), "status": node_status(n.status), "owner": n.owner.to_string(),
            "pubkey": n.pubkey.to_string(),
            "addresses": n.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "tags": n.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "routes": n.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "exit": n.exit,
        })).collect::<Vec<_>>(),
    })
}

impl Status {
    pub fn run(self) -> anyhow::Result<Exit> {
        if let Some(st) = &self.status
            && !["active", "revoked", "quarantined"].contains(&st.as_str())
        {
            return Err(usage(format!(
                "--status {st:?}: a node status is active, revoked or quarantined"
            )));
        }
        let store = Store::open(&state_dir(self.state_dir.as_deref())?, None, now())?;
        let s = store.state();
        if let Some(id) = &self.node
            && s.node(id).is_none()
        {
            return Err(crate::cli::CliError::Data(format!(
                "--node {id}: no such node in network {} at epoch {}",
                s.network_id(),
                s.epoch()
            ))
            .into());
        }
        let forks: Vec<String> = store
            .fork_evidence()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let audit = store.audit_status();
        if self.json {
            let mut v = state_json(s, |n| self.wants(n));
            v["mode"] = json!(match store.mode() {
                Mode::Trusted => "trusted",
                Mode::Restricted(_) => "restricted",
            });
            v["reason"] = match store.mode() {
                Mode::Trusted => serde_json::Value::Null,
                Mode::Restricted(r) => json!({"name": r.name(), "message": r.to_string()}),
            };
            v["genesis_root"] = json!(store.genesis_root().to_string());
            v["fork_evidence"] = json!(forks);
            v["audit"] = json!({"records": audit.records, "broken": audit.broken});
            v["repaired"] = json!(
                store
                    .repairs()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
            v["policy_held"] = json!(crate::policy::PinnedPolicy::load(&store)?.held().is_some());
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        let active = s.nodes().filter(|n| n.status == NodeStatus::Active).count();
        crate::outln!("network    {}", s.network_id());
        crate::outln!("mode       {}", mode_text(store.mode()));
        crate::outln!("epoch      {}", s.epoch());
        crate::outln!("root       {}", s.root());
        crate::outln!("genesis    {}", store.genesis_root());
        crate::outln!("policy     {}", policy_text(&store)?);
        crate::outln!(
            "approvers  {} ({} active), threshold {}",
            s.approvers().len(),
            s.active_approvers(),
            s.threshold()
        );
        for a in s.approvers() {
            crate::outln!(
                "  {:<16} {:<8} {}",
                a.id.as_str(),
                a.role.to_string(),
                if a.status == ApproverStatus::Active {
                    "active"
                } else {
                    "revoked"
                }
            );
        }
        let listed = s.nodes().filter(|n| self.wants(n)).count();
        crate::outln!(
            "nodes      {} ({active} active){}",
            s.nodes().len(),
            if self.filtered() {
                format!(", {listed} listed")
            } else {
                String::new()
            }
        );
        for n in s.nodes().filter(|n| self.wants(n)) {
            let addrs: Vec<String> = n.addresses.iter().map(|a| a.to_string()).collect();
            crate::outln!(
                "  {:<16} {:<11} {}",
                n.id.as_str(),
                node_status(n.status),
                addrs.join(" ")
            );
        }
        crate::outln!(
            "audit      {} records, {}",
            audit.records,
            audit.broken.as_deref().unwrap_or("chain intact")
        );
        if forks.is_empty() {
            crate::outln!("forks      none");
        } else {
            crate::outln!(
                "FORK EVIDENCE ({}): a quorum signed a conflicting history",
                forks.len()
            );
            for f in &forks {
                crate::outln!("  {f}");
            }
        }
        for r in store.repairs() {
            crate::outln!("repaired   {r}");
        }
        Ok(Exit::Ok)
    }
}

/// The history, one line per update; --verify re-checks both hash chains end to end.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "log")]
pub struct Log {
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print as JSON lines
    #[argh(switch)]
    pub(crate) json: bool,
    /// verify the ledger log and the audit log; exit 78 if either does not verify
    #[argh(switch)]
    verify: bool,
    /// show the audit log instead of the ledger history
    #[argh(switch)]
    audit: bool,
}

impl Log {
    pub fn run(self) -> anyhow::Result<Exit> {
        let store = Store::open(&state_dir(self.state_dir.as_deref())?, None, now())?;
        if self.verify {
            let audit = store.verify_audit()?;
            let ledger_ok = *store.mode() == Mode::Trusted;
            let v = json!({
                "ledger": {"ok": ledger_ok, "entries": store.history().len(), "epoch": store.state().epoch().get(),
                           "root": store.state().root().to_string(), "error": match store.mode() { Mode::Trusted => None, Mode::Restricted(r) => Some(r.to_string()) }},
                "audit": {"ok": audit.broken.is_none(), "records": audit.records, "segments": audit.segments + 1,
                          "starts_after": audit.starts_after, "error": audit.broken},
            });
            if self.json {
                crate::outln!("{v}");
            } else {
                match store.mode() {
                    Mode::Trusted => crate::outln!(
                        "ledger: genesis {} + {} entries verified (chain, canonical bytes, gate); epoch {}, root {}",
                        store.genesis_root(),
                        store.history().len(),
                        store.state().epoch(),
                        store.state().root()
                    ),
                    Mode::Restricted(r) => crate::outln!("ledger: DOES NOT VERIFY: {r}"),
                }
                let span = match (audit.segments, audit.starts_after) {
                    (0, _) => String::new(),
                    (s, None) => format!(" across {} files", s + 1),
                    (s, Some(k)) => format!(
                        " across {} files, from record {} (older segments archived: not linked to the genesis)",
                        s + 1,
                        k + 1
                    ),
                };
                match &audit.broken {
                    None => {
                        crate::outln!("audit:  {} records{span}, hash chain intact", audit.records)
                    }
                    Some(b) => crate::outln!(
                        "audit:  CHAIN BROKEN: {b} ({} records verified before it)",
                        audit.records
                    ),
                }
            }
            return Ok(if ledger_ok && audit.broken.is_none() {
                Exit::Ok
            } else {
                Exit::Rejected
            });
        }
        if self.audit {
            for r in store.audit_records()? {
                if self.json {
                    crate::outln!("{}", String::from_utf8_lossy(&to_jcs(&r)));
                } else {
                    crate::outln!(
                        "#{:<4} {}  epoch {:<5} {:<13} {}{}{}",
                        r.index,
                        utc(r.at.get()),
                        r.epoch,
                        r.event,
                        r.check
                            .as_deref()
                            .map(|c| format!("[{c}] "))
                            .unwrap_or_default(),
                        r.detail,
                        r.source
                            .as_deref()
                            .map(|s| format!(" (from {s})"))
                            .unwrap_or_default()
                    );
                }
            }
            return Ok(Exit::Ok);
        }
        let mut state = store.genesis().state().clone();
        let mut after = store.states_after(state.clone())?;
        for c in store.history() {
            let u = &c.signed.update;
            let signers: Vec<String> = c
                .signed
                .signatures
                .iter()
                .filter(|s| !s.new_key)
                .map(|s| s.approver.to_string())
                .collect();
            let described: Vec<String> = u
                .ops
                .iter()
                .map(|op| describe_op(op, Some(&state)))
                .collect();
            if self.json {
                crate::outln!(
                    "{}",
                    json!({"epoch": u.epoch_new.get(), "created_at": u.created_at.get(), "update": c.hash.to_string(),
                           "reason": u.reason.as_str(), "signers": signers, "ops": u.ops,
                           "described": described, "root": u.new_root.to_string()})
                );
            } else {
                let reason = if u.reason.as_str().is_empty() {
                    String::new()
                } else {
                    format!("  ({})", u.reason)
                };
                let head = format!(
                    "epoch {:<5} {}  signed by {}",
                    u.epoch_new,
                    utc(u.created_at.get()),
                    signers.join(", ")
                );
                // One op stays on its line; more get a line each under a count.
                match described.as_slice() {
                    [one] => crate::outln!("{head}  {one}{reason}"),
                    many => {
                        crate::outln!("{head}  {}{reason}", op_counts(&u.ops));
                        for d in many {
                            crate::outln!("    {d}");
                        }
                    }
                }
            }
            if let Some(next) = after.next() {
                state = next?;
            }
        }
        Ok(Exit::Ok)
    }
}

/// Write a bundle of committed updates for a lagging node or a signer's laptop.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "export")]
pub struct Export {
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// only updates after this epoch (default 0: all)
    #[argh(option, default = "0")]
    since: u64,
    /// include the signed genesis
    #[argh(switch)]
    with_genesis: bool,
    /// output file (default "-": standard output)
    #[argh(option, short = 'o', default = "PathBuf::from(\"-\")")]
    output: PathBuf,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
}

impl Export {
    pub fn run(self) -> anyhow::Result<Exit> {
        let store = Store::open_trusted(&state_dir(self.state_dir.as_deref())?, None, now())?;
        let bundle = store.export(self.since, self.with_genesis);
        let mut bytes = to_jcs(&bundle);
        bytes.push(b'\n');
        files::write_atomic(&self.output, &bytes, 0o644, self.force)?;
        if self.output.as_os_str() != "-" {
            crate::errln!(
                "exported {} update(s) after epoch {} to {}",
                bundle.updates.len(),
                self.since,
                self.output.display()
            );
        }
        Ok(Exit::Ok)
    }
}

/// The audited way out of a restricted ledger an operator has investigated (for instance a
/// lost watermark): accepts the log as it verifies from the genesis now.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "recover")]
pub struct Recover {
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// required: you investigated the reason and accept the current log
    #[argh(switch)]
    danger_accept_current: bool,
    /// print the result as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Recover {
    pub fn run(self) -> anyhow::Result<Exit> {
        if !self.danger_accept_current {
            return Err(usage(
                "recover rewrites the watermark to the current log; read the reason in `rn member status`, then pass --danger-accept-current",
            ));
        }
        let mut store = Store::open(&state_dir(self.state_dir.as_deref())?, None, now())?;
        let reason = store.recover(now())?;
        if self.json {
            let v = json!({
                "recovered_from": reason.to_string(), "epoch": store.state().epoch().get(),
                "root": store.state().root().to_string(),
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!(
            "recovered from \"{reason}\": trusted again at epoch {} (root {}); the recovery is in the audit log",
            store.state().epoch(),
            store.state().root()
        );
        Ok(Exit::Ok)
    }
}

/// The state of a ledger directory and its held policy, for proposals (must be trusted).
pub fn trusted_base(dir: &std::path::Path) -> anyhow::Result<super::input::Base> {
    let store = Store::open_trusted(dir, None, now())?;
    let policies = crate::policy::PinnedPolicy::load(&store)?
        .held()
        .cloned()
        .into_iter()
        .collect();
    Ok(super::input::Base {
        state: store.state().clone(),
        policies,
    })
}
