//! Log replay (spec §15.3): every line of `ledger.log` decoded, checked canonical, hashed and
//! its signatures checked on worker threads, ahead of the one thread that chains the lines and
//! runs each through the gate in order.

use crate::ledger::canonical::decode_canonical;
use crate::ledger::error::DecodeError;
use crate::ledger::log::LogEntry;
use crate::ledger::model::State;
use crate::ledger::quorum;
use crate::ledger::types::Blake3Digest;

/// Every key each approver id has had, as far as a reader of the log has seen: the
/// candidates a worker tries when pre-verifying signatures.
#[derive(Clone)]
pub(super) struct ApproverKeys(
    std::collections::HashMap<crate::ledger::types::Id, Vec<crate::ledger::types::ApproverKey>>,
);

impl ApproverKeys {
    pub(super) fn from_state(s: &State) -> Self {
        ApproverKeys(
            s.approvers()
                .map(|a| (a.id.clone(), vec![a.pubkey]))
                .collect(),
        )
    }

    fn learn(&mut self, update: &crate::ledger::update::Update) {
        for (id, key) in update
            .ops
            .iter()
            .filter_map(crate::ledger::update::Op::new_approver_key)
        {
            let keys = self.0.entry(id.clone()).or_default();
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
    }
}

/// A log line decoded, checked canonical, hashed and its signatures pre-verified.
pub(super) struct Prepared {
    pub(super) entry: LogEntry,
    pub(super) line_hash: Blake3Digest,
    pub(super) pre: quorum::PreVerified,
}

impl Prepared {
    fn new(line: &[u8], keys: &mut ApproverKeys) -> Result<Prepared, String> {
        // Exactly canonical bytes: that settles the shape too, so each line is parsed once.
        let entry: LogEntry = decode_canonical(line).map_err(|e| match e {
            DecodeError::Malformed { detail, .. } if detail == "not in canonical form" => detail,
            e => e.to_string(),
        })?;
        let su = &entry.signed_update;
        keys.learn(&su.update);
        let new_keys: Vec<_> = su
            .update
            .ops
            .iter()
            .filter_map(crate::ledger::update::Op::new_approver_key)
            .collect();
        let message = line[update_range(line)?].to_vec();
        debug_assert_eq!(
            message,
            su.update.message(),
            "a canonical line holds JCS(update)"
        );
        let pre = quorum::PreVerified::compute_over(&su.update, message, &su.signatures, |s| {
            if s.new_key {
                new_keys
                    .iter()
                    .filter(|(id, _)| **id == s.approver)
                    .map(|(_, k)| **k)
                    .collect()
            } else {
                keys.0.get(&s.approver).cloned().unwrap_or_default()
            }
        });
        Ok(Prepared {
            line_hash: Blake3Digest::of(line),
            entry,
            pre,
        })
    }
}

/// Where the update sits in a log line. The line is canonical (checked before), and a member
/// of a canonical object is itself canonical, so these bytes are `JCS(update)` — the signed
/// message — without encoding the update again.
fn update_range(line: &[u8]) -> Result<std::ops::Range<usize>, String> {
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        #[serde(borrow)]
        signed_update: Signed<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Signed<'a> {
        #[serde(borrow)]
        update: &'a serde_json::value::RawValue,
    }
    let entry: Entry<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let raw = entry.signed_update.update.get().as_bytes();
    let start = raw.as_ptr() as usize - line.as_ptr() as usize;
    Ok(start..start + raw.len())
}

/// Prepares `lines` (`(offset, bytes)`) on worker threads and hands them to `take` in order,
/// each with its index; stops when `take` returns `false` (dropping the channels stops the
/// workers).
pub(super) fn prepare_in_order(
    lines: &[(usize, &[u8])],
    keys: &ApproverKeys,
    mut take: impl FnMut(usize, Result<Prepared, String>) -> bool,
) {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(lines.len().max(1));
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Prepared, String>>(64);
            receivers.push(rx);
            let mut keys = keys.clone();
            scope.spawn(move || {
                for (_, line) in lines.iter().skip(w).step_by(workers) {
                    if tx.send(Prepared::new(line, &mut keys)).is_err() {
                        break;
                    }
                }
            });
        }
        for i in 0..lines.len() {
            let prepared = receivers[i % workers]
                .recv()
                .unwrap_or_else(|_| Err("worker stopped".into()));
            if !take(i, prepared) {
                break;
            }
        }
    });
}
