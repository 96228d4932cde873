//! `rn policy validate | check | show`: the policy engine from the command line.

use std::path::PathBuf;

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};
use serde_json::json;

use super::output::now;
use super::{Exit, usage};
use crate::files;
use crate::ledger::canonical::caps;
use crate::ledger::store::Store;
use crate::ledger::types::Id;
use crate::policy::compile::ForwardTo;
use crate::policy::{
    Decision, PinnedPolicy, Policy, PolicyView, Proto, Query, Target, Via, compile, evaluate,
};

/// Default-deny rules over ledger identities.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "policy")]
pub struct PolicyCmd {
    #[argh(subcommand)]
    sub: PolicySub,
}

#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
enum PolicySub {
    Validate(Validate),
    Check(Check),
    Show(Show),
}

impl PolicyCmd {
    /// Did the command line ask for JSON output?
    pub fn json(&self) -> bool {
        match &self.sub {
            PolicySub::Check(c) => c.json,
            PolicySub::Show(c) => c.json,
            PolicySub::Validate(c) => c.json,
        }
    }

    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.sub {
            PolicySub::Validate(c) => c.run(),
            PolicySub::Check(c) => c.run(),
            PolicySub::Show(c) => c.run(),
        }
    }
}

/// A ledger opened for policy decisions: a restricted one grants nothing, so it is refused.
fn trusted(dir: &std::path::Path) -> anyhow::Result<Store> {
    Ok(Store::open_trusted(dir, None, now())?)
}

/// Check a policy document: syntax, rule consistency, and (with a ledger) that every
/// selector names something the ledger has.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "validate")]
struct Validate {
    /// the policy document
    #[argh(positional)]
    file: PathBuf,
    /// also check selectors against this ledger
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print {"rules", "hash", "checked_against_ledger", "warnings"} as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Validate {
    fn run(self) -> anyhow::Result<Exit> {
        let bytes = files::read_capped(&self.file, caps::POLICY)?;
        let shown = self.file.display();
        let (doc, warnings) = Policy::parse(&bytes).with_context(|| format!("{shown}"))?;
        for w in &warnings {
            crate::errln!("warning: {shown}: {w}");
        }
        if let Some(dir) = &self.state_dir {
            let store = trusted(dir)?;
            doc.validate(store.state())
                .with_context(|| format!("{shown} against the ledger in {}", dir.display()))?;
        }
        if self.json {
            let v = serde_json::json!({
                "rules": doc.rules.len(),
                "hash": doc.hash().to_string(),
                "checked_against_ledger": self.state_dir.is_some(),
                "warnings": warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!(
            "valid: {} rules, {}{}",
            doc.rules.len(),
            doc.hash(),
            if self.state_dir.is_some() {
                ", every selector matches the ledger"
            } else {
                ""
            }
        );
        Ok(Exit::Ok)
    }
}

/// Decide one flow: exit 0 and the allowing rule, or exit 1 and the reason it is denied.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "check")]
struct Check {
    /// the sending node
    #[argh(option)]
    from: Id,
    /// a node id, a prefix (with --via router) or "internet" (with --via exit)
    #[argh(option)]
    to: String,
    /// tcp, udp, icmp or any
    #[argh(option)]
    proto: Proto,
    /// destination port (tcp/udp)
    #[argh(option)]
    port: Option<u16>,
    /// exit or router
    #[argh(option)]
    via: Option<Via>,
    /// the ledger (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Check {
    fn target(&self) -> anyhow::Result<Target> {
        match (self.via, self.to.as_str()) {
            (Some(Via::Exit), "internet") => Ok(Target::Internet),
            (Some(Via::Exit), other) => {
                Err(usage(format!("--via exit goes to internet, not {other:?}")))
            }
            (_, "internet") => Err(usage("--to internet needs --via exit")),
            (Some(Via::Router), p) => {
                let c = if p.contains('/') {
                    p.to_owned()
                } else if p.contains(':') {
                    format!("{p}/128")
                } else {
                    format!("{p}/32")
                };
                c.parse()
                    .map(Target::Prefix)
                    .map_err(|e| usage(format!("--to {p}: {e}")))
            }
            (None, p) if p.contains('/') || p.parse::<std::net::IpAddr>().is_ok() => {
                Err(usage(format!("--to {p} is an address: add --via router")))
            }
            (None, id) => id
                .parse()
                .map(Target::Node)
                .map_err(|e| usage(format!("--to {id}: {e}"))),
        }
    }

    fn run(self) -> anyhow::Result<Exit> {
        let target = self.target()?;
        if self.port.is_some() && !matches!(self.proto, Proto::Tcp | Proto::Udp) {
            return Err(usage("--port goes with --proto tcp or udp"));
        }
        let store = trusted(&crate::cli::member::ledger::state_dir(
            self.state_dir.as_deref(),
        )?)?;
        let pinned = PinnedPolicy::load(&store)?;
        let view = pinned.view();
        let q = Query {
            from: self.from.clone(),
            to: target.clone(),
            proto: self.proto,
            port: self.port,
        };
        let decision = evaluate(view, store.state(), &q);
        let flow = format!(
            "{} -> {} {}{}",
            self.from,
            target,
            self.proto,
            self.port.map(|p| format!("/{p}")).unwrap_or_default()
        );
        let rule_text = |i: usize| match view {
            PolicyView::Held(p) => p.rules[i].text(),
            _ => String::new(),
        };
        match &decision {
            Decision::Allow { rule } => {
                if self.json {
                    crate::outln!(
                        "{}",
                        json!({"decision": "allow", "rule": rule, "rule_text": rule_text(*rule), "flow": flow})
                    );
                } else {
                    crate::outln!("allow {flow}: rule {rule} {}", rule_text(*rule));
                }
                Ok(Exit::Ok)
            }
            Decision::Deny(reason) => {
                if self.json {
                    crate::outln!(
                        "{}",
                        json!({"decision": "deny", "reason": reason.name(), "message": reason.to_string(), "flow": flow})
                    );
                } else {
                    crate::outln!("deny {flow}: {reason}");
                }
                Ok(Exit::Declined)
            }
        }
    }
}

/// The compiled intents of one node: peers with their allowed prefixes, inbound and forward
/// rules, routes and exit in use.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "show")]
struct Show {
    /// the node
    #[argh(option)]
    node: Id,
    /// the exit node this node would choose
    #[argh(option)]
    exit: Option<Id>,
    /// the ledger (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    if v.is_empty() {
        "all".into()
    } else {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Show {
    fn run(self) -> anyhow::Result<Exit> {
        let store = trusted(&crate::cli::member::ledger::state_dir(
            self.state_dir.as_deref(),
        )?)?;
        let intents = compile(
            PinnedPolicy::load(&store)?.view(),
            store.state(),
            &self.node,
            self.exit.as_ref(),
        );
        if self.json {
            crate::outln!("{}", serde_json::to_string(&intents)?);
            return Ok(Exit::Ok);
        }
        crate::outln!("node {} — {} peers", self.node, intents.peers.len());
        for n in &intents.notes {
            crate::outln!("  note: {n}");
        }
        for p in &intents.peers {
            let allowed: Vec<String> = p.allowed.iter().map(|c| c.to_string()).collect();
            crate::outln!(
                "  peer {:<16} {}  allowed {}",
                p.id.as_str(),
                p.pubkey,
                allowed.join(" ")
            );
        }
        for r in &intents.inbound {
            crate::outln!(
                "  inbound  rule {:<3} {} ports {} from {} addresses",
                r.rule,
                r.proto,
                list(&r.ports),
                r.from.len()
            );
        }
        for f in &intents.forward {
            let to = match &f.to {
                ForwardTo::Internet => "internet".to_owned(),
                ForwardTo::Prefixes(p) => list(p),
            };
            crate::outln!(
                "  forward  rule {:<3} {} ports {} from {} addresses to {to}",
                f.rule,
                f.proto,
                list(&f.ports),
                f.from.len()
            );
        }
        for (prefix, router, rule) in &intents.routes_used {
            crate::outln!("  route    {prefix} via {router} (rule {rule})");
        }
        if let Some(e) = &intents.exit {
            crate::outln!("  exit     {} (rule {})", e.node, e.rule);
        }
        Ok(Exit::Ok)
    }
}
