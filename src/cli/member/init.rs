//! `rn member init`: an unsigned genesis for a new network.

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use crate::cli::output::{now, parse_duration};
use crate::cli::{Exit, usage};
use crate::files;
use crate::ledger::State;
use crate::ledger::canonical::to_jcs;
use crate::ledger::model::{Approver, ApproverStatus, Params, Role};
use crate::ledger::types::{ApproverKey, Cidr, Id, Uint};
use crate::ledger::update::{Genesis, GenesisKind, SignedGenesis, SignedGenesisKind};

/// Write the genesis of a new network (unsigned: every approver then signs it with
/// `rn member sign`). Prints the genesis root that every node pins.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "init")]
pub struct Init {
    /// network id (a lowercase DNS label)
    #[argh(option)]
    network_id: Id,
    /// required, once per approver: ID:ROLE:PUBKEY (role owner or guardian; base64 Ed25519
    /// key from `rn key pub`)
    #[argh(option, arg_name = "ID:ROLE:PUBKEY")]
    approver: Vec<String>,
    /// signatures needed for each change
    #[argh(option)]
    threshold: u64,
    /// IPv4 overlay range (default 100.96.0.0/16)
    #[argh(option)]
    overlay_v4: Option<Cidr>,
    /// IPv6 overlay range (default none)
    #[argh(option)]
    overlay_v6: Option<Cidr>,
    /// longest validity of an update (default 7d)
    #[argh(option, default = "String::from(\"7d\")")]
    max_update_ttl: String,
    /// tolerated clock skew (default 90s)
    #[argh(option, default = "String::from(\"90s\")")]
    clock_skew: String,
    /// output file ("-" for standard output)
    #[argh(option, short = 'o')]
    output: PathBuf,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
    /// print {"network_id", "root", "file"} as one JSON object (needs -o FILE)
    #[argh(switch)]
    pub(crate) json: bool,
}

fn parse_approver(spec: &str) -> anyhow::Result<Approver> {
    let mut parts = spec.splitn(3, ':');
    let (Some(id), Some(role), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage(format!(
            "--approver {spec:?}: expected ID:ROLE:PUBKEY, e.g. alice:owner:<base64 key>"
        )));
    };
    let bad = |e: String| usage(format!("--approver {spec:?}: {e}"));
    Ok(Approver {
        id: id
            .parse()
            .map_err(|e: crate::ledger::types::ValueError| bad(e.to_string()))?,
        role: role.parse::<Role>().map_err(bad)?,
        pubkey: key.parse::<ApproverKey>().map_err(|e| bad(e.to_string()))?,
        status: ApproverStatus::Active,
        previous_keys: Default::default(),
    })
}

impl Init {
    pub fn run(self) -> anyhow::Result<Exit> {
        if self.json && self.output == std::path::Path::new("-") {
            return Err(usage(
                "--json prints the result on standard output: write the genesis to a file (-o FILE)",
            ));
        }
        if self.approver.is_empty() {
            return Err(usage("at least one --approver ID:ROLE:PUBKEY is required"));
        }
        let approvers = self
            .approver
            .iter()
            .map(|s| parse_approver(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let secs = |s: &str, flag: &str| -> anyhow::Result<Uint> {
            let v = parse_duration(s).map_err(|e| usage(format!("--{flag}: {e}")))?;
            Uint::new(v).map_err(|e| usage(format!("--{flag}: {e}")))
        };
        let overlay_v4 = match self.overlay_v4 {
            Some(c) => Some(c),
            None => Some("100.96.0.0/16".parse().map_err(|e| usage(format!("{e}")))?),
        };
        let params = Params {
            overlay_v4,
            overlay_v6: self.overlay_v6,
            max_update_ttl_secs: secs(&self.max_update_ttl, "max-update-ttl")?,
            clock_skew_secs: secs(&self.clock_skew, "clock-skew")?,
        };
        let threshold =
            Uint::new(self.threshold).map_err(|e| usage(format!("--threshold: {e}")))?;
        let owners: Vec<String> = approvers
            .iter()
            .filter(|a| a.role == Role::Owner)
            .map(|a| a.id.to_string())
            .collect();
        let state = State::new(
            self.network_id.clone(),
            Uint::ZERO,
            params,
            threshold,
            approvers,
            Vec::new(),
            None,
        )
        .map_err(|e| usage(format!("invalid genesis: {e}")))?;
        let created_at = Uint::new(now()).map_err(|e| usage(e.to_string()))?;
        let root = state.root();
        let signed = SignedGenesis {
            kind: SignedGenesisKind,
            genesis: Genesis {
                kind: GenesisKind,
                state,
                created_at,
            },
            signatures: Vec::new(),
        };
        let mut bytes = to_jcs(&signed);
        bytes.push(b'\n');
        files::write_atomic(&self.output, &bytes, 0o644, self.force)?;
        if owners.len() == 1 {
            crate::errln!(
                "warning: {} is the only owner; if that key is lost, no update touching approvers, threshold, params or policy can ever be signed. Consider a second owner.",
                owners[0]
            );
        }
        if self.json {
            let v = serde_json::json!({
                "network_id": self.network_id.as_str(),
                "root": root.to_string(),
                "file": self.output,
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::errln!(
            "genesis for network {} written to {}; every approver must sign it (rn member sign). Pin its root on every node:",
            self.network_id,
            self.output.display()
        );
        if self.output == std::path::Path::new("-") {
            crate::errln!("{root}");
        } else {
            crate::outln!("{root}");
        }
        Ok(Exit::Ok)
    }
}
