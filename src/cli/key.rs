//! `rn key …`: approver keys (OpenSSH Ed25519) and node keys (WireGuard).

use std::path::PathBuf;

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};
use zeroize::Zeroizing;

use super::Exit;
use super::output::read_passphrase;
use crate::files;
use crate::keys::{self, ApproverSecret, NodeSecret};

/// Approver and node keys.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "key")]
pub struct KeyCmd {
    #[argh(subcommand)]
    sub: KeySub,
}

#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
enum KeySub {
    Gen(Gen),
    Pub(Pub),
    GenNode(GenNode),
}

impl KeyCmd {
    /// Did the command line ask for JSON output?
    pub fn json(&self) -> bool {
        match &self.sub {
            KeySub::Gen(c) => c.json,
            KeySub::Pub(c) => c.json,
            KeySub::GenNode(c) => c.json,
        }
    }

    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.sub {
            KeySub::Gen(c) => c.run(),
            KeySub::Pub(c) => c.run(),
            KeySub::GenNode(c) => c.run(),
        }
    }
}

/// Generate an approver key: an OpenSSH Ed25519 private key (0600) plus PATH.pub; prints the
/// base64 public key for `rn member init --approver ID:ROLE:PUBKEY`.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "gen")]
struct Gen {
    /// where to write the private key
    #[argh(option)]
    out: PathBuf,
    /// encrypt the key with the passphrase in this file (first line)
    #[argh(option)]
    passphrase_file: Option<PathBuf>,
    /// comment stored in the key (default: rn-approver)
    #[argh(option, default = "String::from(\"rn-approver\")")]
    comment: String,
    /// replace existing files
    #[argh(switch)]
    force: bool,
    /// print {"pubkey","fingerprint","key","public_key_file"} as one JSON object
    #[argh(switch)]
    json: bool,
}

impl Gen {
    fn run(self) -> anyhow::Result<Exit> {
        let pass = self
            .passphrase_file
            .as_deref()
            .map(read_passphrase)
            .transpose()?;
        let pub_path = PathBuf::from(format!("{}.pub", self.out.display()));
        if !self.force {
            for p in [&self.out, &pub_path] {
                if p.exists() {
                    return Err(files::FileError::Exists { path: p.clone() }.into());
                }
            }
        }
        let secret = ApproverSecret::generate()?;
        let text = secret.to_openssh(&self.comment, pass.as_ref().map(|p| p.as_slice()))?;
        let public = secret.public();
        files::write_atomic(&self.out, text.as_bytes(), 0o600, self.force)?;
        let line = format!("{}\n", keys::openssh_public(&public, &self.comment));
        files::write_atomic(&pub_path, line.as_bytes(), 0o644, self.force)?;
        if self.json {
            let v = serde_json::json!({
                "pubkey": public.to_string(),
                "fingerprint": keys::fingerprint(&public),
                "key": self.out,
                "public_key_file": pub_path,
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!("{public}");
        crate::errln!(
            "approver key written to {} ({}), public key to {}",
            self.out.display(),
            keys::fingerprint(&public),
            pub_path.display()
        );
        Ok(Exit::Ok)
    }
}

/// Print the base64 Ed25519 public key of an approver key (private key or .pub file).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "pub")]
struct Pub {
    /// the key file
    #[argh(positional)]
    path: PathBuf,
    /// passphrase file, if the private key is protected
    #[argh(option)]
    passphrase_file: Option<PathBuf>,
    /// print the OpenSSH SHA256 fingerprint as well
    #[argh(switch)]
    fingerprint: bool,
    /// print {"pubkey","fingerprint"} as one JSON object
    #[argh(switch)]
    json: bool,
}

impl Pub {
    fn run(self) -> anyhow::Result<Exit> {
        let pass: Option<Zeroizing<Vec<u8>>> = self
            .passphrase_file
            .as_deref()
            .map(read_passphrase)
            .transpose()?;
        let key = keys::read_approver_public(&self.path, pass.as_ref().map(|p| p.as_slice()))
            .with_context(|| format!("reading {}", self.path.display()))?;
        if self.json {
            let v = serde_json::json!({
                "pubkey": key.to_string(),
                "fingerprint": keys::fingerprint(&key),
            });
            crate::outln!("{v}");
        } else if self.fingerprint {
            crate::outln!("{key} {}", keys::fingerprint(&key));
        } else {
            crate::outln!("{key}");
        }
        Ok(Exit::Ok)
    }
}

/// Generate a node's WireGuard private key (base64, 0600, as `wg genkey` writes it); prints
/// the public key.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "gen-node")]
struct GenNode {
    /// where to write the private key
    #[argh(option)]
    out: PathBuf,
    /// replace an existing file
    #[argh(switch)]
    force: bool,
    /// print {"pubkey","key"} as one JSON object
    #[argh(switch)]
    json: bool,
}

impl GenNode {
    fn run(self) -> anyhow::Result<Exit> {
        let secret = NodeSecret::generate()?;
        files::write_atomic(&self.out, secret.to_base64().as_bytes(), 0o600, self.force)?;
        if self.json {
            let v = serde_json::json!({"pubkey": secret.public().to_string(), "key": self.out});
            crate::outln!("{v}");
        } else {
            crate::outln!("{}", secret.public());
        }
        Ok(Exit::Ok)
    }
}
