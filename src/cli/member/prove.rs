//! `rn member prove | verify-proof`: a node's record with its audit path to the state root,
//! and the check of such a proof against a root the checker trusts (spec §4.1).

use std::path::PathBuf;

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};
use serde_json::json;

use super::ledger::state_dir;
use crate::cli::Exit;
use crate::cli::output::now;
use crate::files;
use crate::ledger::canonical::{caps, decode, to_jcs};
use crate::ledger::proof::NodeProof;
use crate::ledger::store::Store;
use crate::ledger::types::{Id, Sha256Digest};

/// Write an inclusion proof: a node's record, its audit path in the node tree and the state
/// header, which anyone holding the state root can check (rn member verify-proof).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "prove")]
pub struct Prove {
    /// the node to prove (required)
    #[argh(option)]
    node: Id,
    /// the state directory (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// output file (default "-": standard output)
    #[argh(option, short = 'o', default = "PathBuf::from(\"-\")")]
    output: PathBuf,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
    /// with -o, print the summary as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Prove {
    pub fn run(self) -> anyhow::Result<Exit> {
        let store = Store::open_trusted(&state_dir(self.state_dir.as_deref())?, None, now())?;
        let s = store.state();
        let proof = NodeProof::of(s, &self.node).ok_or_else(|| {
            crate::cli::CliError::Data(format!(
                "--node {}: no such node in network {} at epoch {} (rn member status lists them)",
                self.node,
                s.network_id(),
                s.epoch()
            ))
        })?;
        let mut bytes = to_jcs(&proof);
        bytes.push(b'\n');
        files::write_atomic(&self.output, &bytes, 0o644, self.force)?;
        if self.output.as_os_str() == "-" {
            return Ok(Exit::Ok);
        }
        if self.json {
            crate::outln!("{}", summary_json(&proof, Some(&self.output)));
        } else {
            crate::outln!("wrote {}: {}", self.output.display(), summary(&proof));
        }
        Ok(Exit::Ok)
    }
}

/// Check an inclusion proof against a state root you trust (from rn member status on a
/// trusted node, or a signed update's new_root).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "verify-proof")]
pub struct VerifyProof {
    /// the proof file ("-" for standard input)
    #[argh(positional)]
    file: PathBuf,
    /// the state root the proof must lead to (sha256:..., required)
    #[argh(option)]
    root: Sha256Digest,
    /// print the result as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl VerifyProof {
    pub fn run(self) -> anyhow::Result<Exit> {
        let bytes = files::read_capped(&self.file, caps::UPDATE)?;
        let proof: NodeProof = decode(&bytes)?;
        proof.verify(&self.root).with_context(|| {
            format!(
                "{} does not verify (it proves nothing about {})",
                self.file.display(),
                self.root
            )
        })?;
        if self.json {
            let mut v = summary_json(&proof, None);
            v["verified"] = json!(true);
            crate::outln!("{v}");
        } else {
            crate::outln!("verified: {}", summary(&proof));
        }
        Ok(Exit::Ok)
    }
}

fn summary(p: &NodeProof) -> String {
    format!(
        "node {} ({}) is record {} of {} in network {} at epoch {}, state root {} ({} path hash{})",
        p.node.id,
        super::ledger::node_status(p.node.status),
        p.index.get() + 1,
        p.header.nodes.count,
        p.header.network_id,
        p.header.epoch,
        p.root,
        p.path.len(),
        if p.path.len() == 1 { "" } else { "es" }
    )
}

fn summary_json(p: &NodeProof, file: Option<&std::path::Path>) -> serde_json::Value {
    let mut v = json!({
        "node": p.node.id.as_str(),
        "status": super::ledger::node_status(p.node.status),
        "index": p.index.get(),
        "count": p.header.nodes.count,
        "network_id": p.header.network_id.as_str(),
        "epoch": p.header.epoch.get(),
        "root": p.root.to_string(),
        "path_length": p.path.len(),
    });
    if let Some(f) = file {
        v["file"] = json!(f.display().to_string());
    }
    v
}
