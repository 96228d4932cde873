//! `rn member verify`: a full dry run of the gate, saying exactly what is missing.

use std::collections::HashSet;
use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use super::input::{self, Doc};
use crate::cli::output::{describe_tally, now, signer_labels};
use crate::cli::{Exit, usage};
use crate::ledger::gate::judge_chain;
use crate::ledger::update::{Proposal, SignedUpdate};
use crate::ledger::{Freshness, accept, inspect};

/// Dry-run the acceptance gate on a proposal or signed update against its base (the
/// proposal's own base_state, --base, or a ledger: --state-dir, or this host's for a signed
/// update). Exit 0 if it would be accepted now or the ledger already holds it, 78 if not.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "verify")]
pub struct Verify {
    /// the proposal or signed update ("-" for standard input)
    #[argh(positional)]
    file: PathBuf,
    /// the state it builds on: a signed genesis or a proposal (default: the proposal's own
    /// base_state)
    #[argh(option)]
    base: Option<PathBuf>,
    /// judge it against this ledger's current state instead (a signed update without --base:
    /// default the node configuration's ledger, else /var/lib/rn, when it exists)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print the result as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Verify {
    pub fn run(self) -> anyhow::Result<Exit> {
        let now = now();
        let doc = input::read(&self.file, &[Proposal::KIND_STR, SignedUpdate::KIND_STR])?;
        let (signed, own_base) = match doc {
            Doc::Proposal(p) => (p.signed_update(), Some(p.base_state)),
            Doc::Signed(s) => (*s, None),
            Doc::Genesis(_) | Doc::Snapshot(_) => {
                return Err(usage("verify takes a proposal or a signed update"));
            }
        };
        let mut seen = HashSet::new();
        // Against a ledger, the store's own chain judgement decides (as `apply` would): an update
        // it already committed, one that conflicts with a committed epoch (a fork), or the gate.
        let mut ledger_rejection = None;
        // Only the proposal's own base_state is taken on the proposer's word.
        let mut base_unverified = false;
        let local = match (&self.base, &self.state_dir, &own_base) {
            (None, None, None) => Some(super::ledger::state_dir(None)?).filter(|d| d.is_dir()),
            (_, dir, _) => dir.clone(),
        };
        let u = &signed.update;
        let base = match (&self.base, local, own_base) {
            (Some(_), Some(_), _) => return Err(usage("give --base or --state-dir, not both")),
            (Some(path), None, _) => input::base_state(path, now)?,
            (None, Some(dir), _) => {
                let store = crate::ledger::store::Store::open_trusted(&dir, None, now)?;
                let hash = u.hash();
                let judged = judge_chain(&store, std::slice::from_ref(&signed), now);
                if judged.as_ref().is_ok_and(|c| c.already() == 1) {
                    let epoch = u.epoch_new;
                    if self.json {
                        let v = serde_json::json!({
                            "ok": true,
                            "already_applied": true,
                            "epoch": epoch.get(),
                            "new_root": u.new_root.to_string(),
                            "state_dir": dir,
                        });
                        crate::outln!("{v}");
                    } else {
                        crate::outln!(
                            "already applied: {} holds update {} as epoch {epoch} (now at epoch {})",
                            dir.display(),
                            hash.short(),
                            store.state().epoch()
                        );
                    }
                    return Ok(Exit::Ok);
                }
                ledger_rejection = judged.err().map(|r| r.rejection);
                seen = store.seen().clone();
                store.state().clone()
            }
            (None, None, Some(b)) => {
                base_unverified = true;
                b
            }
            (None, None, None) => {
                return Err(usage(
                    "a signed update carries no base state: pass --base (the genesis or proposal it builds on) or --state-dir (a ledger)",
                ));
            }
        };
        // What `rn member apply` would do with this file alone: a chain of one.
        let verdict = match ledger_rejection {
            Some(r) => Err(r),
            None => accept(&base, &seen, &signed, now, Freshness::ChainLast),
        };
        let tally = inspect(&base, &seen, &signed, now, Freshness::ChainLast)
            .ok()
            .map(|i| i.tally);
        let missing = tally.as_ref().map(|t| t.missing()).unwrap_or_default();
        let signers = signer_labels(&signed.signatures);
        if self.json {
            let v = serde_json::json!({
                "ok": verdict.is_ok(),
                "error": verdict.as_ref().err().map(|e| serde_json::json!({"name": e.name(), "message": e.to_string()})),
                "prev_root": u.prev_root.to_string(),
                "new_root": u.new_root.to_string(),
                "epoch_new": u.epoch_new.get(),
                "signatures": signers,
                "threshold": base.threshold().get(),
                "missing": missing,
                "base": if base_unverified { "unverified: the proposal's own base_state" } else { "given" },
                "base_verified": !base_unverified,
                "already_applied": false,
            });
            crate::outln!("{v}");
        } else {
            match &verdict {
                Ok(v) => {
                    let what = format!(
                        "network {} epoch {} -> {}, new root {}, signed by {} ({} signatures, {} needed)",
                        u.network_id,
                        u.epoch_prev,
                        u.epoch_new,
                        v.new_root(),
                        v.signers()
                            .iter()
                            .map(|i| i.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        v.signers().len(),
                        base.threshold()
                    );
                    if base_unverified {
                        crate::outln!(
                            "accepted against an UNVERIFIED base: the proposal's own base_state (root {}), taken on the proposer's word; {what}; pass --state-dir or --base to judge it against a state you trust",
                            u.prev_root
                        );
                    } else {
                        crate::outln!("accepted: {what}");
                    }
                }
                Err(e) => {
                    crate::outln!("rejected ({}): {e}", e.name());
                    if let Some(t) = &tally {
                        crate::out!("{}", describe_tally(t));
                    }
                }
            }
        }
        Ok(if verdict.is_ok() {
            Exit::Ok
        } else {
            Exit::Rejected
        })
    }
}
