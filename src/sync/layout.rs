//! The static layout of a ledger under a base URL or directory (spec §5a):
//!
//! ```text
//! rn/v1/head                 rn.head.v1: network, epoch, root, log head (a hint)
//! rn/v1/genesis              the signed genesis, canonical
//! rn/v1/log/<epoch>          the signed update that produced <epoch>, canonical
//! rn/v1/policy/<hex sha256>  a pinned document, canonical
//! ```
//!
//! [`publish`] writes it from a verified store: append-only, so a mirror directory only ever
//! gains epochs, and one that holds another history is refused rather than overwritten.
//! [`Snapshot`] holds the same files in memory for an agent to serve; [`Endpoints`] is the
//! `rn/v1/endpoints` answer agents add to it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::files::{self, FileError};
use crate::ledger::canonical::{caps, decode, to_jcs};
use crate::ledger::carried::{Head, HeadKind};
use crate::ledger::store::Store;
use crate::ledger::types::{Blake3Digest, Id, Sha256Digest, TransportKey};

/// The layout's top directory under a base.
pub const ROOT: &str = "rn/v1";

/// `rn/v1/head`.
pub fn head_path() -> String {
    format!("{ROOT}/head")
}

/// `rn/v1/genesis`.
pub fn genesis_path() -> String {
    format!("{ROOT}/genesis")
}

/// `rn/v1/log/<epoch>`.
pub fn log_path(epoch: u64) -> String {
    format!("{ROOT}/log/{epoch}")
}

/// `rn/v1/policy/<64 hex>`.
pub fn policy_path(hash: &Sha256Digest) -> String {
    format!("{ROOT}/policy/{}", crate::text::hex(&hash.0))
}

/// `rn/v1/endpoints` (served by agents only).
pub fn endpoints_path() -> String {
    format!("{ROOT}/endpoints")
}

/// `rn/v1/notify` (POSTed to agents only).
pub fn notify_path() -> String {
    format!("{ROOT}/notify")
}

/// `rn.endpoints.v1`: the underlay endpoints an agent's WireGuard interface currently sees for
/// its peers with a recent handshake. A hint, never trusted: it can at worst delay a handshake.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// `rn.endpoints.v1`.
    pub kind: EndpointsKind,
    /// One entry per peer.
    pub peers: Vec<EndpointSeen>,
}

crate::ledger::canonical::kind_marker!(
    /// `rn.endpoints.v1`
    EndpointsKind = "rn.endpoints.v1"
);

impl crate::ledger::canonical::Document for Endpoints {
    const KIND: &'static str = EndpointsKind::KIND;
    const CAP: usize = ENDPOINTS_CAP;
}

/// The largest endpoints answer read: 10,000 peers at ~130 bytes.
pub const ENDPOINTS_CAP: usize = 2 * 1024 * 1024;

/// One peer's endpoint as seen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSeen {
    /// The peer's WireGuard key.
    pub pubkey: TransportKey,
    /// Where its packets come from.
    pub endpoint: SocketAddr,
    /// Unix time of its last handshake.
    pub seen_at: u64,
}

/// What [`publish`] did.
#[derive(Debug)]
pub struct Published {
    /// The epoch published.
    pub epoch: u64,
    /// Its root.
    pub root: Sha256Digest,
    /// Files written (new, or the head replaced).
    pub written: usize,
    /// Files already there with exactly these bytes.
    pub unchanged: usize,
}

/// Why a directory cannot take this ledger's layout.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file of the layout holds other bytes than this ledger's: another network or another
    /// history was published there.
    #[error(
        "{path} holds another {what} than this ledger's (another network or another history was published there); publish into an empty directory"
    )]
    Conflict {
        /// The file.
        path: PathBuf,
        /// What it is (`genesis`, `update`, `head`).
        what: &'static str,
    },
    /// The directory holds more epochs than this ledger.
    #[error(
        "{dir} holds epoch {theirs}, ahead of this ledger's epoch {ours}; catch this ledger up first (rn member apply), or publish into another directory"
    )]
    Ahead {
        /// The directory.
        dir: PathBuf,
        /// Its epoch.
        theirs: u64,
        /// This ledger's.
        ours: u64,
    },
    /// A file problem.
    #[error(transparent)]
    File(#[from] FileError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |error| {
        PublishError::File(FileError::Io {
            path: path.to_owned(),
            error,
        })
    }
}

/// The bytes of a layout file: canonical JSON and a newline.
fn line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = to_jcs(v);
    b.push(b'\n');
    b
}

/// The head of `store`'s verified ledger.
fn head_of(store: &Store) -> Head {
    let state = store.state();
    Head {
        kind: HeadKind,
        network_id: state.network_id().clone(),
        epoch: state.epoch(),
        root: state.root(),
        log_head: store.log_head(),
    }
}

/// The layout's files but the head, for `store`'s verified ledger from epoch `after` on
/// (`None`: all, the genesis included): (path, bytes, what).
fn files_of(store: &Store, after: Option<u64>) -> Vec<(String, Vec<u8>, &'static str)> {
    let mut files = Vec::new();
    if after.is_none() {
        files.push((genesis_path(), line(store.genesis().signed()), "genesis"));
    }
    let from = after.unwrap_or(0);
    for c in store
        .history()
        .iter()
        .filter(|c| c.signed.update.epoch_new.get() > from)
    {
        files.push((
            log_path(c.signed.update.epoch_new.get()),
            line(&c.signed),
            "update",
        ));
    }
    for doc in store.documents_since(from) {
        let mut bytes = doc.bytes().to_vec();
        bytes.push(b'\n');
        files.push((policy_path(&doc.hash()), bytes, "document"));
    }
    files
}

/// The layout of a verified ledger in memory, as an agent serves it: refreshed after each
/// commit by adding only what was appended (a ledger that is not a continuation of the one held
/// is taken whole).
#[derive(Debug, Default)]
pub struct Snapshot {
    network: Option<Id>,
    epoch: u64,
    log_head: Option<Blake3Digest>,
    head: Option<Head>,
    files: HashMap<String, Vec<u8>>,
}

impl Snapshot {
    /// Brings the snapshot to `store`'s verified ledger.
    pub fn refresh(&mut self, store: &Store) {
        let head = head_of(store);
        if self.log_head == Some(head.log_head) {
            return;
        }
        // A continuation: same network, and the line held last is still at its epoch.
        let continues = self.network.as_ref() == Some(&head.network_id)
            && self.epoch < head.epoch.get()
            && (self.epoch == 0
                || store.history().iter().any(|c| {
                    c.signed.update.epoch_new.get() == self.epoch
                        && Some(c.line_hash) == self.log_head
                }));
        let after = if continues && self.head.is_some() {
            Some(self.epoch)
        } else {
            self.files.clear();
            None
        };
        for (rel, bytes, _) in files_of(store, after) {
            self.files.insert(rel, bytes);
        }
        self.files.insert(head_path(), line(&head));
        self.network = Some(head.network_id.clone());
        self.epoch = head.epoch.get();
        self.log_head = Some(head.log_head);
        self.head = Some(head);
    }

    /// The file at `rel` (`rn/v1/…`), if held.
    pub fn get(&self, rel: &str) -> Option<&[u8]> {
        self.files.get(rel).map(Vec::as_slice)
    }

    /// The head held, once refreshed.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }
}

/// Writes (or completes) the layout of `store`'s verified ledger under `dir`: the genesis, one
/// file per committed update, the pinned documents held, and last the head. Files already there
/// with the same bytes are kept; a genesis or update with other bytes, a head of another
/// network, or more epochs than this ledger has are refused before anything is written.
pub fn publish(store: &Store, dir: &Path) -> Result<Published, PublishError> {
    let head = head_of(store);
    let ours = head.epoch.get();
    let files = files_of(store, None);
    // Judge what is there before writing anything: the files this ledger would write first.
    let mut todo = Vec::new();
    let mut unchanged = 0;
    for (rel, bytes, what) in files {
        let path = dir.join(&rel);
        match read_if_present(&path)? {
            Some(there) if there == bytes => unchanged += 1,
            Some(_) => return Err(PublishError::Conflict { path, what }),
            None => todo.push((path, bytes)),
        }
    }
    // A head of another network, or more epochs than this ledger has.
    let existing_head = dir.join(head_path());
    if let Some(bytes) = read_if_present(&existing_head)? {
        match decode::<Head>(&bytes) {
            Ok(h) if h.network_id != head.network_id => {
                return Err(PublishError::Conflict {
                    path: existing_head,
                    what: "network",
                });
            }
            Ok(h) if h.epoch > head.epoch => {
                return Err(PublishError::Ahead {
                    dir: dir.to_owned(),
                    theirs: h.epoch.get(),
                    ours,
                });
            }
            _ => {}
        }
    }
    if dir.join(log_path(ours + 1)).exists() {
        return Err(PublishError::Ahead {
            dir: dir.to_owned(),
            theirs: ours + 1,
            ours,
        });
    }
    for sub in ["log", "policy"] {
        let d = dir.join(ROOT).join(sub);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&d)
            .map_err(io_error(&d))?;
    }
    let mut written = 0;
    for (path, bytes) in todo {
        files::write_atomic(&path, &bytes, 0o644, false)?;
        written += 1;
    }
    // The head last: a reader that sees it finds everything it names.
    let head_bytes = line(&head);
    if read_if_present(&existing_head)?.as_deref() == Some(&head_bytes[..]) {
        unchanged += 1;
    } else {
        files::write_atomic(&existing_head, &head_bytes, 0o644, true)?;
        written += 1;
    }
    Ok(Published {
        epoch: ours,
        root: head.root,
        written,
        unchanged,
    })
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, PublishError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
        Ok(_) => Ok(Some(files::read_capped(path, caps::UPDATE)?)),
    }
}
