//! `rn member …`: founding a network, proposing, signing, combining and verifying changes.

mod combine;
mod init;
pub mod input;
mod propose;
mod sign;
mod verify;

use argh::FromArgs;

use super::Exit;

/// The membership ledger: genesis, proposals, signatures, verification.
#[derive(FromArgs)]
#[argh(subcommand, name = "member")]
pub struct MemberCmd {
    #[argh(subcommand)]
    sub: MemberSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum MemberSub {
    Init(init::Init),
    Propose(propose::Propose),
    Sign(sign::Sign),
    Combine(combine::Combine),
    Verify(verify::Verify),
}

impl MemberCmd {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.sub {
            MemberSub::Init(c) => c.run(),
            MemberSub::Propose(c) => c.run(),
            MemberSub::Sign(c) => c.run(),
            MemberSub::Combine(c) => c.run(),
            MemberSub::Verify(c) => c.run(),
        }
    }
}
