//! `rn member publish DIR`: the ledger's static layout (spec §5a) for a web server or object
//! store to serve as a mirror.

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};
use serde_json::json;

use crate::cli::Exit;
use crate::cli::output::now;
use crate::ledger::store::Store;
use crate::sync::layout;

/// Write the ledger's layout (rn/v1/head, genesis, log/EPOCH, policy/HASH) into DIR for any web
/// server or object store to serve as a mirror; run again after each change.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "publish")]
pub struct Publish {
    /// the directory to write into (created if missing)
    #[argh(positional)]
    dir: PathBuf,
    /// the ledger to publish (default: the node configuration's, else /var/lib/rn)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// print the result as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Publish {
    pub fn run(self) -> anyhow::Result<Exit> {
        let store = Store::open_trusted(
            &crate::cli::member::ledger::state_dir(self.state_dir.as_deref())?,
            None,
            now(),
        )?;
        let p = layout::publish(&store, &self.dir)?;
        if self.json {
            crate::outln!(
                "{}",
                json!({"epoch": p.epoch, "root": p.root.to_string(), "written": p.written, "unchanged": p.unchanged})
            );
        } else {
            crate::outln!(
                "published epoch {} (root {}) into {}: {} file(s) written, {} unchanged",
                p.epoch,
                p.root,
                self.dir.display(),
                p.written,
                p.unchanged
            );
        }
        Ok(Exit::Ok)
    }
}
