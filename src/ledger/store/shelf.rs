//! The pinned documents a state directory holds (`policy/sha256-<hex>.json`, spec §15.6), kept
//! by hash and never read here: the policy layer reads them.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{POLICY_DIR, StoreError, io_err, read_optional};
use crate::files;
use crate::ledger::canonical::caps;
use crate::ledger::carried::PinnedDoc;
use crate::ledger::types::Sha256Digest;

/// The `policy/` directory of a state directory.
pub(super) struct Shelf {
    dir: PathBuf,
}

impl Shelf {
    /// The shelf of state directory `dir`.
    pub(super) fn new(dir: &Path) -> Shelf {
        Shelf {
            dir: dir.join(POLICY_DIR),
        }
    }

    fn path(&self, hash: &Sha256Digest) -> PathBuf {
        self.dir
            .join(format!("sha256-{}.json", &hash.to_string()[7..]))
    }

    /// The held document with this hash, if any (its hash re-checked; a file that is not a
    /// pinned document of that hash counts as not held).
    pub(super) fn get(&self, hash: &Sha256Digest) -> Result<Option<PinnedDoc>, StoreError> {
        let Some(bytes) = read_optional(&self.path(hash), caps::POLICY)? else {
            return Ok(None);
        };
        Ok(PinnedDoc::from_bytes(&bytes)
            .ok()
            .filter(|d| d.hash() == *hash))
    }

    /// Keeps the documents among `docs` whose hash is in `pinned` and that are not held yet.
    /// Returns the hashes stored.
    pub(super) fn put(
        &self,
        docs: &[PinnedDoc],
        pinned: &[Sha256Digest],
    ) -> Result<Vec<Sha256Digest>, StoreError> {
        let mut stored = Vec::new();
        for doc in docs {
            let hash = doc.hash();
            if !pinned.contains(&hash) || self.get(&hash)?.is_some() {
                continue;
            }
            if fs::symlink_metadata(&self.dir).is_err() {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(io_err(&self.dir))?;
            }
            let mut line = doc.bytes().to_vec();
            line.push(b'\n');
            files::write_atomic(&self.path(&hash), &line, 0o600, true)?;
            stored.push(hash);
        }
        Ok(stored)
    }
}
