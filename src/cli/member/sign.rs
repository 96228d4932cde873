//! `rn member sign`: offline signing of a genesis or a proposal. Needs no network, no daemon
//! and no ledger copy: the file carries the base state, and the gate recomputes both roots.

use std::collections::HashSet;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};

use super::input::{self, Doc};
use crate::agent::Agent;
use crate::cli::output::{
    describe_tally, describe_update, now, read_passphrase, show_duration, utc,
};
use crate::cli::{Exit, usage};
use crate::files;
use crate::journal::Journal;
use crate::keys::{ApproverSecret, fingerprint};
use crate::ledger::canonical::to_jcs;
use crate::ledger::gate::inspect_genesis;
use crate::ledger::model::ApproverStatus;
use crate::ledger::types::{ApproverKey, Id, Sig, Uint};
use crate::ledger::update::{Proposal, Signature, SignedGenesis, insert_signature};
use crate::ledger::{Freshness, State, Update, inspect};

/// Sign a genesis or a proposal with an approver key, offline: a key file (--key) or a key an
/// ssh-agent holds (--ssh-agent). Shows exactly what changes and asks "Sign? [y/N]" unless
/// --yes; refuses to sign a second, different update on the same base (the key's journal
/// remembers).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "sign")]
pub struct Sign {
    /// the genesis or proposal file ("-" for standard input)
    #[argh(positional)]
    file: PathBuf,
    /// the approver's OpenSSH Ed25519 private key (or --ssh-agent)
    #[argh(option)]
    key: Option<PathBuf>,
    /// sign with an Ed25519 key held by the ssh-agent at $SSH_AUTH_SOCK (the one that may sign
    /// this document, or --key-fingerprint)
    #[argh(switch)]
    ssh_agent: bool,
    /// with --ssh-agent: the agent key to use, as ssh-add -l prints it (SHA256:...)
    #[argh(option)]
    key_fingerprint: Option<String>,
    /// passphrase file for a protected key
    #[argh(option)]
    passphrase_file: Option<PathBuf>,
    /// sign without asking
    #[argh(switch)]
    yes: bool,
    /// write the signed file here instead of in place ("-" for standard output)
    #[argh(option, short = 'o')]
    output: Option<PathBuf>,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
    /// list every op of a long update here (otherwise the first 50 when not on a terminal;
    /// on a terminal all of them through $PAGER)
    #[argh(switch)]
    all: bool,
    /// also print the result as one JSON object on standard output (the summary and prompt
    /// stay on standard error)
    #[argh(switch)]
    pub(crate) json: bool,
}

/// How many ops a summary lists before it points to the rest (`--all`, `rn member show`).
const SHOWN: usize = 50;

fn confirm(yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    crate::err!("Sign? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// What signs: a key loaded from its file, or one an ssh-agent holds.
enum Signer {
    File { key: ApproverSecret, path: PathBuf },
    Agent { agent: Agent, key: ApproverKey },
}

impl Signer {
    fn public(&self) -> ApproverKey {
        match self {
            Signer::File { key, .. } => key.public(),
            Signer::Agent { key, .. } => *key,
        }
    }

    fn sign(&mut self, message: &[u8]) -> anyhow::Result<Sig> {
        self.can_sign(message)?;
        match self {
            Signer::File { key, .. } => Ok(key.sign(message)),
            Signer::Agent { agent, key } => Ok(agent.sign(key, message)?),
        }
    }

    /// Refuses, before anything is recorded, a message too long for an ssh-agent to sign.
    fn can_sign(&self, message: &[u8]) -> anyhow::Result<()> {
        match self {
            Signer::Agent { .. } if message.len() > crate::agent::MESSAGE_CAP => {
                Err(crate::cli::CliError::Data(format!(
                    "this document is {} bytes to sign; an ssh-agent signs at most {} (OpenSSH's \
                     256 KiB request limit): sign it with the key file (--key FILE), or split \
                     the proposal into smaller ones",
                    message.len(),
                    crate::agent::MESSAGE_CAP
                ))
                .into())
            }
            _ => Ok(()),
        }
    }

    /// The key file, whose old-style journal beside it still counts.
    fn key_file(&self) -> Option<&Path> {
        match self {
            Signer::File { path, .. } => Some(path),
            Signer::Agent { .. } => None,
        }
    }
}

/// Who `key` signs as: a genesis's listed approver, or — for an update on `base` — an active
/// approver of the base, or the new key an op of `update` introduces (then `new_key`). The
/// one place that names the signer; the gate then checks the signature like any other.
fn signs_as(
    base: &State,
    update: Option<&Update>,
    key: &ApproverKey,
) -> anyhow::Result<(Id, bool)> {
    let Some(u) = update else {
        return base
            .approvers()
            .find(|a| a.pubkey == *key)
            .map(|a| (a.id.clone(), false))
            .ok_or_else(|| {
                usage(format!(
                    "key {} is not an approver listed in this genesis",
                    fingerprint(key)
                ))
            });
    };
    if let Some(a) = base.approvers().find(|a| a.pubkey == *key) {
        if a.status != ApproverStatus::Active {
            return Err(usage(format!(
                "approver {} is revoked; its signature would reject the update",
                a.id
            )));
        }
        return Ok((a.id.clone(), false));
    }
    u.ops
        .iter()
        .filter_map(crate::ledger::Op::new_approver_key)
        .find(|(_, k)| *k == key)
        .map(|(id, _)| (id.clone(), true))
        .ok_or_else(|| {
            usage(format!(
                "key {} is not an active approver of network {} and no op in this update introduces it",
                fingerprint(key),
                u.network_id
            ))
        })
}

/// [`signs_as`] for a document as read.
fn doc_signs_as(doc: &Doc, key: &ApproverKey) -> anyhow::Result<(Id, bool)> {
    match doc {
        Doc::Genesis(g) => signs_as(&g.genesis.state, None, key),
        Doc::Proposal(p) => signs_as(&p.base_state, Some(&p.update), key),
        Doc::Signed(_) | Doc::Snapshot(_) => Err(usage("only a genesis or a proposal is signed")),
    }
}

impl Sign {
    /// The agent key to sign with: the one `--key-fingerprint` names, else the one key the
    /// agent holds that may sign this document.
    fn agent_signer(&self, doc: &Doc) -> anyhow::Result<Signer> {
        let mut agent = Agent::connect()?;
        let held = agent.identities()?;
        let listed = || {
            if held.is_empty() {
                "it holds no Ed25519 key (ssh-add KEY adds one)".to_owned()
            } else {
                format!(
                    "it holds {}",
                    held.iter()
                        .map(|i| format!("{} ({})", fingerprint(&i.key), i.comment))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        let key = if let Some(fp) = &self.key_fingerprint {
            held.iter()
                .find(|i| fingerprint(&i.key) == *fp)
                .map(|i| i.key)
                .ok_or_else(|| {
                    usage(format!(
                        "--key-fingerprint {fp}: the ssh-agent holds no such Ed25519 key; {}",
                        listed()
                    ))
                })?
        } else {
            let fits: Vec<&crate::agent::Identity> = held
                .iter()
                .filter(|i| doc_signs_as(doc, &i.key).is_ok())
                .collect();
            match fits.as_slice() {
                [one] => one.key,
                [] => {
                    return Err(usage(format!(
                        "the ssh-agent holds no key that may sign this document; {}",
                        listed()
                    )));
                }
                several => {
                    return Err(usage(format!(
                        "the ssh-agent holds {} keys that may sign this document ({}); choose one with --key-fingerprint",
                        several.len(),
                        several
                            .iter()
                            .map(|i| fingerprint(&i.key))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        };
        Ok(Signer::Agent { agent, key })
    }

    pub fn run(self) -> anyhow::Result<Exit> {
        match (&self.key, self.ssh_agent) {
            (Some(_), true) => return Err(usage("give --key FILE or --ssh-agent, not both")),
            (None, false) => {
                return Err(usage(
                    "name the key: --key FILE, or --ssh-agent for a key an ssh-agent holds",
                ));
            }
            _ => {}
        }
        if self.key_fingerprint.is_some() && !self.ssh_agent {
            return Err(usage(
                "--key-fingerprint chooses among the ssh-agent's keys: add --ssh-agent",
            ));
        }
        if self.json && self.destination()?.0 == Path::new("-") {
            return Err(usage(
                "--json prints the result on standard output, where the signed document would go: give -o FILE",
            ));
        }
        if self.ssh_agent && self.passphrase_file.is_some() {
            return Err(usage(
                "--passphrase-file is for a key file; an ssh-agent's keys are unlocked in the agent",
            ));
        }
        let doc = input::read(&self.file, &[SignedGenesis::KIND_STR, Proposal::KIND_STR])?;
        let mut signer = match &self.key {
            Some(path) => {
                let pass = self
                    .passphrase_file
                    .as_deref()
                    .map(read_passphrase)
                    .transpose()?;
                let key = ApproverSecret::load(path, pass.as_ref().map(|p| p.as_slice()))
                    .with_context(|| format!("loading key {}", path.display()))?;
                Signer::File {
                    key,
                    path: path.clone(),
                }
            }
            None => self.agent_signer(&doc)?,
        };
        match doc {
            Doc::Genesis(g) => self.sign_genesis(*g, &mut signer),
            Doc::Proposal(p) => self.sign_proposal(*p, &mut signer),
            Doc::Signed(_) | Doc::Snapshot(_) => Err(usage(
                "a signed update carries no base state to show; sign the proposal instead",
            )),
        }
    }

    /// With `--json`: what this run did, as one object on standard output.
    fn result(&self, id: &Id, new_key: bool, signed: bool, complete: bool, others: &[Id]) {
        if !self.json {
            return;
        }
        let v = serde_json::json!({
            "signed_as": id.as_str(),
            "new_key": new_key,
            "signed": signed,
            "file": self.destination().map(|(p, _)| p.to_owned()).ok(),
            "complete": complete,
            "may_still_sign": others.iter().map(Id::as_str).collect::<Vec<_>>(),
        });
        crate::outln!("{v}");
    }

    fn destination(&self) -> anyhow::Result<(&Path, bool)> {
        match &self.output {
            Some(out) => Ok((out.as_path(), self.force)),
            None if files::is_stdin(&self.file) => Ok((Path::new("-"), true)),
            None => Ok((self.file.as_path(), true)),
        }
    }

    fn write<T: serde::Serialize>(&self, doc: &T) -> anyhow::Result<()> {
        let (path, overwrite) = self.destination()?;
        let mut bytes = to_jcs(doc);
        bytes.push(b'\n');
        files::write_atomic(path, &bytes, 0o644, overwrite)?;
        Ok(())
    }

    fn sign_genesis(&self, mut g: SignedGenesis, key: &mut Signer) -> anyhow::Result<Exit> {
        let missing = inspect_genesis(&g)?.missing;
        let state = &g.genesis.state;
        let (id, _) = signs_as(state, None, &key.public())?;
        let mut text = format!(
            "GENESIS of network {}\nroot      {} (every node pins this)\ncreated   {}\nthreshold {} of {} approvers\noverlay   v4 {}, v6 {}\nmax ttl   {}, clock skew {}\napprovers:\n",
            state.network_id(),
            state.root(),
            utc(g.genesis.created_at.get()),
            state.threshold(),
            state.approvers().len(),
            state
                .params()
                .overlay_v4
                .map_or("none".into(), |c| c.to_string()),
            state
                .params()
                .overlay_v6
                .map_or("none".into(), |c| c.to_string()),
            show_duration(state.params().max_update_ttl_secs.get()),
            show_duration(state.params().clock_skew_secs.get()),
        );
        for a in state.approvers() {
            text.push_str(&format!(
                "  {:<16} {:<8} {}{}\n",
                a.id.as_str(),
                a.role.to_string(),
                fingerprint(&a.pubkey),
                if a.id == id { "  <- this key" } else { "" }
            ));
        }
        text.push_str(&format!(
            "signed    by {} of {}; missing: {}\n",
            state.approvers().len() - missing.len(),
            state.approvers().len(),
            if missing.is_empty() {
                "none".into()
            } else {
                missing
                    .iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        crate::err!("{text}");
        if !missing.contains(&id) {
            crate::errln!("{id} has already signed this genesis");
            if self.output.is_some() {
                self.write(&g)?;
            }
            self.result(&id, false, false, missing.is_empty(), &missing);
            return Ok(Exit::Ok);
        }
        if !confirm(self.yes)? {
            crate::errln!("not signed");
            return Ok(Exit::Declined);
        }
        let sig = key.sign(&g.genesis.message())?;
        insert_signature(
            &mut g.signatures,
            Signature {
                approver: id.clone(),
                sig,
                new_key: false,
            },
        );
        // The gate's genesis check sees the new signature before anything is written.
        let left = inspect_genesis(&g)
            .context("the new signature does not verify")?
            .missing;
        self.write(&g)?;
        self.result(&id, false, true, left.is_empty(), &left);
        if left.is_empty() {
            crate::errln!(
                "signed as {id}; the genesis is complete (all {} approvers)",
                state.approvers().len()
            );
        } else {
            crate::errln!(
                "signed as {id}; still to sign: {}",
                left.iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Exit::Ok)
    }

    fn sign_proposal(&self, mut p: Proposal, key: &mut Signer) -> anyhow::Result<Exit> {
        let now = now();
        let seen = HashSet::new();
        let signed = p.signed_update();
        // Every check the gate makes except the quorum: base root, epochs, time, every
        // signature so far, every op, the new root.
        let inspection = inspect(&p.base_state, &seen, &signed, now, Freshness::Lone)
            .context("refusing to sign")?;
        let base = &p.base_state;
        let u = &p.update;
        let (id, new_key) = signs_as(base, Some(u), &key.public())?;
        p.check_policies().map_err(crate::cli::CliError::Data)?;
        let summary = |limit| {
            describe_update(
                u,
                base,
                &inspection.tally,
                now,
                limit,
                "rn member sign --all, or rn member show FILE, lists every op",
            )
        };
        if self.all || u.ops.len() <= SHOWN {
            crate::err!("{}", summary(None));
        } else if !self.yes && crate::cli::output::interactive() {
            crate::cli::output::page(&summary(None))?;
        } else {
            crate::err!("{}", summary(Some(SHOWN)));
        }
        for op in &u.ops {
            if let crate::ledger::Op::SetPolicy { policy } = op {
                let find = |h: Option<&crate::ledger::types::Sha256Digest>| {
                    h.and_then(|h| p.policies.iter().find(|d| d.hash() == *h))
                        .and_then(|d| crate::policy::Policy::from_pinned(d).ok())
                };
                let old = find(base.policy());
                if base.policy().is_some() && old.is_none() {
                    crate::errln!(
                        "policy change (the current policy document is not in the proposal: showing the new rules in full):"
                    );
                } else {
                    crate::errln!("policy change, rule by rule:");
                }
                for line in crate::policy::model::diff(old.as_ref(), find(policy.as_ref()).as_ref())
                {
                    crate::errln!("    {line}");
                }
            }
        }
        if new_key {
            crate::errln!("this key signs as the NEW key of approver {id} (proof of possession)");
        }
        if p.signatures
            .iter()
            .any(|s| s.approver == id && s.new_key == new_key)
        {
            crate::errln!("{id} has already signed this update");
            if self.output.is_some() {
                self.write(&p)?;
            }
            let t = &inspection.tally;
            self.result(
                &id,
                new_key,
                false,
                t.missing().is_empty(),
                &t.can_still_sign,
            );
            return Ok(Exit::Ok);
        }
        key.can_sign(&u.message())?;
        let mut journal = Journal::open(key.key_file(), &key.public())?;
        let hash = u.hash();
        journal.check(&u.network_id, &u.prev_root, &hash)?;
        if !confirm(self.yes)? {
            crate::errln!("not signed");
            return Ok(Exit::Declined);
        }
        // Journal first: a signature never leaves without its record.
        let at = Uint::new(now).map_err(|e| usage(e.to_string()))?;
        journal.record(&u.network_id, u.epoch_new, &u.prev_root, &hash, at)?;
        let sig = key.sign(&u.message())?;
        insert_signature(
            &mut p.signatures,
            Signature {
                approver: id.clone(),
                sig,
                new_key,
            },
        );
        let after = inspect(
            &p.base_state,
            &seen,
            &p.signed_update(),
            now,
            Freshness::Lone,
        )
        .context("the new signature does not verify")?;
        self.write(&p)?;
        crate::errln!("signed as {id}{}", if new_key { " (new key)" } else { "" });
        crate::err!("{}", describe_tally(&after.tally));
        let t = &after.tally;
        self.result(
            &id,
            new_key,
            true,
            t.missing().is_empty(),
            &t.can_still_sign,
        );
        Ok(Exit::Ok)
    }
}
