//! `rn member …`: founding a network, proposing, signing, combining and verifying changes.

mod combine;
mod init;
pub mod input;
pub mod ledger;
mod propose;
mod prove;
mod publish;
pub mod push;
mod show;
mod sign;
mod verify;

use argh::{ArgsInfo, FromArgs};

use super::Exit;
pub(crate) use propose::lift_common as lift_propose_options;

/// The membership ledger: genesis, proposals, signatures, verification.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "member")]
pub struct MemberCmd {
    #[argh(subcommand)]
    sub: MemberSub,
}

#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; propose's options are many"
)]
enum MemberSub {
    Init(init::Init),
    Propose(propose::Propose),
    Sign(sign::Sign),
    Combine(combine::Combine),
    Verify(verify::Verify),
    Show(show::Show),
    Bootstrap(ledger::Bootstrap),
    Apply(ledger::Apply),
    Status(ledger::Status),
    Log(ledger::Log),
    Export(ledger::Export),
    Publish(publish::Publish),
    Push(push::Push),
    Recover(ledger::Recover),
    Prove(prove::Prove),
    VerifyProof(prove::VerifyProof),
}

impl MemberCmd {
    /// Did the command line ask for JSON output?
    pub fn json(&self) -> bool {
        match &self.sub {
            MemberSub::Verify(c) => c.json,
            MemberSub::Apply(c) => c.json,
            MemberSub::Status(c) => c.json,
            MemberSub::Log(c) => c.json,
            MemberSub::Publish(c) => c.json,
            MemberSub::Push(c) => c.json,
            MemberSub::Propose(c) => c.json,
            MemberSub::Show(c) => c.json,
            MemberSub::Init(c) => c.json,
            MemberSub::Sign(c) => c.json,
            MemberSub::Combine(c) => c.json,
            MemberSub::Bootstrap(c) => c.json,
            MemberSub::Recover(c) => c.json,
            MemberSub::Prove(c) => c.json,
            MemberSub::VerifyProof(c) => c.json,
            MemberSub::Export(_) => false,
        }
    }

    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.sub {
            MemberSub::Init(c) => c.run(),
            MemberSub::Propose(c) => c.run(),
            MemberSub::Sign(c) => c.run(),
            MemberSub::Combine(c) => c.run(),
            MemberSub::Verify(c) => c.run(),
            MemberSub::Show(c) => c.run(),
            MemberSub::Bootstrap(c) => c.run(),
            MemberSub::Apply(c) => c.run(),
            MemberSub::Status(c) => c.run(),
            MemberSub::Log(c) => c.run(),
            MemberSub::Export(c) => c.run(),
            MemberSub::Publish(c) => c.run(),
            MemberSub::Push(c) => c.run(),
            MemberSub::Recover(c) => c.run(),
            MemberSub::Prove(c) => c.run(),
            MemberSub::VerifyProof(c) => c.run(),
        }
    }
}
