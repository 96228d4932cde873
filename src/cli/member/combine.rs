//! `rn member combine`: merges signatures collected on separate laptops.

use std::path::PathBuf;

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};

use super::input::{self, Doc};
use crate::cli::output::{describe_tally, signer_labels};
use crate::cli::{CliError, Exit, usage};
use crate::files;
use crate::ledger::canonical::to_jcs;
use crate::ledger::quorum;
use crate::ledger::update::{Proposal, Signature, SignedUpdate, SignedUpdateKind, Update};

/// Merge the signatures of several copies of the same proposal or signed update (the update
/// must be byte-identical in every file). The result is a proposal if any input is one.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "combine")]
pub struct Combine {
    /// the files to merge
    #[argh(positional)]
    files: Vec<PathBuf>,
    /// output file ("-" for standard output)
    #[argh(option, short = 'o')]
    output: PathBuf,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
    /// print {"file", "combined", "signatures", "quorum_met"} as one JSON object (needs -o FILE)
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Combine {
    pub fn run(self) -> anyhow::Result<Exit> {
        if self.files.is_empty() {
            return Err(usage("name the files to combine"));
        }
        if self.json && self.output.as_os_str() == "-" {
            return Err(usage(
                "--json prints the result on standard output: write the combined file to a file (-o FILE)",
            ));
        }
        let mut update: Option<(Update, Vec<u8>, PathBuf)> = None;
        let mut proposal: Option<Proposal> = None;
        let mut signatures: Vec<Signature> = Vec::new();
        for path in &self.files {
            let doc = input::read(path, &[Proposal::KIND_STR, SignedUpdate::KIND_STR])?;
            let (u, sigs) = match doc {
                Doc::Proposal(p) => {
                    let p = *p;
                    let out = (p.update.clone(), p.signatures.clone());
                    match &proposal {
                        Some(first) if first.base_state.root() != p.base_state.root() => {
                            return Err(CliError::Data(format!(
                                "{} carries another base state ({}) than the first proposal ({})",
                                path.display(),
                                p.base_state.root(),
                                first.base_state.root()
                            ))
                            .into());
                        }
                        Some(_) => {}
                        None => proposal = Some(p),
                    }
                    out
                }
                Doc::Signed(s) => (s.update, s.signatures),
                Doc::Genesis(_) | Doc::Snapshot(_) => unreachable_kind()?,
            };
            let message = u.message();
            match &update {
                Some((_, first, first_path)) if *first != message => {
                    return Err(CliError::Data(format!(
                        "{} carries update {}, but {} carries {}; only signatures over the identical update can be combined",
                        path.display(),
                        u.hash().short(),
                        first_path.display(),
                        Update::hash(&update.as_ref().map(|x| x.0.clone()).unwrap_or(u.clone())).short()
                    ))
                    .into());
                }
                Some(_) => {}
                None => update = Some((u, message, path.clone())),
            }
            for s in sigs {
                if let Some(existing) = signatures
                    .iter()
                    .find(|e| e.approver == s.approver && e.new_key == s.new_key)
                {
                    if existing.sig != s.sig {
                        return Err(CliError::Data(format!(
                            "two different signatures by {} ({}); keep the one that verifies",
                            s.approver,
                            path.display()
                        ))
                        .into());
                    }
                    continue;
                }
                crate::ledger::update::insert_signature(&mut signatures, s);
            }
        }
        let Some((update, message, _)) = update else {
            return Err(usage("nothing to combine"));
        };
        let signers = signer_labels(&signatures);
        let mut quorum_met = None;
        let mut bytes = match proposal {
            Some(mut p) => {
                // With a base at hand, refuse to pass on a signature that does not verify.
                let tally = quorum::tally(&p.base_state, &update, &message, &signatures)
                    .context("refusing to combine")?;
                crate::err!("{}", describe_tally(&tally));
                quorum_met = Some(tally.missing().is_empty());
                p.signatures = signatures;
                to_jcs(&p)
            }
            None => to_jcs(&SignedUpdate {
                kind: SignedUpdateKind,
                update,
                signatures,
            }),
        };
        bytes.push(b'\n');
        files::write_atomic(&self.output, &bytes, 0o644, self.force)?;
        if self.json {
            let v = serde_json::json!({
                "file": self.output,
                "combined": self.files.len(),
                "signatures": signers,
                "quorum_met": quorum_met,
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::errln!(
            "combined {} file(s) into {}",
            self.files.len(),
            self.output.display()
        );
        Ok(Exit::Ok)
    }
}

fn unreachable_kind() -> anyhow::Result<(Update, Vec<Signature>)> {
    Err(usage(
        "a genesis is signed in place by each approver in turn; it needs no combine",
    ))
}
