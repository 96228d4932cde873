//! `rn member show FILE`: any genesis, proposal, signed update or bundle in full, for a person
//! (every op in words) or a program (`--json`: every op in the update's own format). It shows;
//! it does not judge: `rn member verify` and `rn member apply` do.

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};
use serde_json::{Value, json};

use crate::cli::output::{describe_ops, now, op_counts, op_kind, signer_labels, utc, when};
use crate::cli::{Exit, usage};
use crate::files;
use crate::ledger::canonical::{self, caps};
use crate::ledger::carried::{Bundle, BundleKind};
use crate::ledger::reduce::reduce;
use crate::ledger::update::{Proposal, Signature, SignedGenesis, SignedUpdate, Update};
use crate::ledger::{Freshness, State, inspect};

/// Print a genesis, proposal, signed update or bundle in full: every op, every signature (it
/// does not verify them: rn member verify does).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "show")]
pub struct Show {
    /// the file ("-" for standard input)
    #[argh(positional)]
    file: PathBuf,
    /// print one JSON object: the ops in the update's own format, with counts by kind
    #[argh(switch)]
    pub(crate) json: bool,
}

fn counts_json(u: &Update) -> Value {
    let mut m = serde_json::Map::new();
    for op in &u.ops {
        let n = m.entry(op_kind(op)).or_insert(json!(0));
        *n = json!(n.as_u64().unwrap_or(0) + 1);
    }
    Value::Object(m)
}

fn update_json(u: &Update, sigs: &[Signature]) -> Value {
    json!({
        "update": u.hash().to_string(),
        "update_id": u.update_id.to_string(),
        "network_id": u.network_id.as_str(),
        "epoch_prev": u.epoch_prev.get(),
        "epoch_new": u.epoch_new.get(),
        "prev_root": u.prev_root.to_string(),
        "new_root": u.new_root.to_string(),
        "created_at": u.created_at.get(),
        "expires_at": u.expires_at.get(),
        "reason": u.reason.as_str(),
        "op_counts": counts_json(u),
        "ops": u.ops,
        "signatures": signer_labels(sigs),
    })
}

/// One update for a person: its header, its ops grouped and then each, its signers.
fn update_text(u: &Update, sigs: &[Signature], before: Option<&State>, now: u64) -> String {
    format!(
        "update    {} (id {})\nnetwork   {}\nepoch     {} -> {}\nprev root {}\nnew root  {}\ncreated   {}\nexpires   {}\nreason    {}\nops       {}\n{}signers   {}\n",
        u.hash().short(),
        u.update_id,
        u.network_id,
        u.epoch_prev,
        u.epoch_new,
        u.prev_root,
        u.new_root,
        when(u.created_at.get(), now),
        when(u.expires_at.get(), now),
        if u.reason.as_str().is_empty() {
            "(none given)"
        } else {
            u.reason.as_str()
        },
        op_counts(&u.ops),
        describe_ops(&u.ops, before, None, ""),
        match signer_labels(sigs).join(", ") {
            s if s.is_empty() => "none yet".to_owned(),
            s => s,
        }
    )
}

fn genesis_text(g: &SignedGenesis) -> String {
    let s = &g.genesis.state;
    let mut t = format!(
        "genesis   network {}, root {}, created {}\nthreshold {} of {} approvers\n",
        s.network_id(),
        s.root(),
        utc(g.genesis.created_at.get()),
        s.threshold(),
        s.approvers().len()
    );
    for a in s.approvers() {
        t.push_str(&format!(
            "  {:<16} {:<8} {}\n",
            a.id.as_str(),
            a.role.to_string(),
            crate::keys::fingerprint(&a.pubkey)
        ));
    }
    t.push_str(&format!(
        "signers   {}\n",
        match signer_labels(&g.signatures).join(", ") {
            s if s.is_empty() => "none yet".to_owned(),
            s => s,
        }
    ));
    t
}

fn genesis_json(g: &SignedGenesis) -> Value {
    let s = &g.genesis.state;
    json!({
        "network_id": s.network_id().as_str(),
        "root": s.root().to_string(),
        "created_at": g.genesis.created_at.get(),
        "threshold": s.threshold().get(),
        "approvers": s.approvers().map(|a| json!({
            "id": a.id.as_str(), "role": a.role.to_string(), "pubkey": a.pubkey.to_string(),
            "fingerprint": crate::keys::fingerprint(&a.pubkey),
        })).collect::<Vec<_>>(),
        "signatures": signer_labels(&g.signatures),
    })
}

impl Show {
    pub fn run(self) -> anyhow::Result<Exit> {
        let bytes = files::read_capped(&self.file, caps::LOG)?;
        let kind = canonical::peek_kind(&bytes)?;
        let now = now();
        let (text, value) = match kind.as_str() {
            Proposal::KIND_STR => {
                let p: Proposal = canonical::decode(&bytes)?;
                let base = &p.base_state;
                let mut text = update_text(&p.update, &p.signatures, Some(base), now);
                // The tally against the proposal's own base: what the signatures add up to.
                if let Ok(i) = inspect(
                    base,
                    &Default::default(),
                    &p.signed_update(),
                    now,
                    Freshness::Lone,
                ) {
                    text.push_str(&crate::cli::output::describe_tally(&i.tally));
                }
                let mut v = update_json(&p.update, &p.signatures);
                v["kind"] = json!(Proposal::KIND_STR);
                v["signatures_needed"] = json!(base.threshold().get());
                (text, v)
            }
            SignedUpdate::KIND_STR => {
                let s: SignedUpdate = canonical::decode(&bytes)?;
                let mut v = update_json(&s.update, &s.signatures);
                v["kind"] = json!(SignedUpdate::KIND_STR);
                (update_text(&s.update, &s.signatures, None, now), v)
            }
            BundleKind::KIND => {
                let b: Bundle = canonical::decode(&bytes)?;
                // With the genesis the bundle says what each op meets; without, "?".
                let mut state = b.genesis.as_ref().map(|g| g.genesis.state.clone());
                let mut text = format!(
                    "bundle    {} update{}{}\n",
                    b.updates.len(),
                    if b.updates.len() == 1 { "" } else { "s" },
                    b.genesis
                        .as_ref()
                        .map(|g| format!(", with the genesis of {}", g.genesis.state.network_id()))
                        .unwrap_or_default()
                );
                if let Some(g) = &b.genesis {
                    text.push_str(&genesis_text(g));
                }
                for s in &b.updates {
                    text.push('\n');
                    text.push_str(&update_text(&s.update, &s.signatures, state.as_ref(), now));
                    state =
                        state.and_then(|st| reduce(&st, &s.update).ok().map(|t| st.preview(&t)));
                }
                let v = json!({
                    "kind": BundleKind::KIND,
                    "genesis": b.genesis.as_ref().map(genesis_json),
                    "updates": b.updates.iter().map(|s| update_json(&s.update, &s.signatures)).collect::<Vec<_>>(),
                    "policies": b.policies.iter().map(|d| d.hash().to_string()).collect::<Vec<_>>(),
                });
                (text, v)
            }
            SignedGenesis::KIND_STR => {
                let g: SignedGenesis = canonical::decode(&bytes)?;
                let mut v = genesis_json(&g);
                v["kind"] = json!(SignedGenesis::KIND_STR);
                (genesis_text(&g), v)
            }
            other => {
                return Err(usage(format!(
                    "{}: {other} is not something rn member show prints (a genesis, proposal, signed update or bundle)",
                    self.file.display()
                )));
            }
        };
        if self.json {
            crate::outln!("{value}");
        } else {
            crate::out!("{text}");
        }
        Ok(Exit::Ok)
    }
}
