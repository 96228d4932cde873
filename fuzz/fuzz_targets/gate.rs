#![no_main]
//! Arbitrary signed updates through the acceptance gate, against the golden chain's states, in
//! every freshness mode. The gate must never panic, and whatever it accepts must be exactly
//! what it claims: the committed state has the update's `new_root` and the next epoch.
//!
//! A mutated update no longer matches its signatures, so each input is also tried re-signed by
//! the base state's approvers (the golden keys) with its `new_root` recomputed: mutated ops then
//! reach the reducer, the invariants and the root check, and can be accepted.

use std::collections::HashSet;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rn::keys::ApproverSecret;
use rn::ledger::canonical::decode;
use rn::ledger::gate::{Freshness, accept};
use rn::ledger::model::ApproverStatus;
use rn::ledger::reduce::reduce;
use rn::ledger::update::Signature;
use rn::ledger::{SignedUpdate, State};

macro_rules! golden_states {
    ($($n:literal),*) => {
        [$(include_bytes!(concat!("../../tests/vectors/golden/state-", $n, ".json")).as_slice()),*]
    };
}

static STATES: LazyLock<Vec<State>> = LazyLock::new(|| {
    golden_states!("00", "01", "02", "03", "04", "05", "06", "07")
        .iter()
        .map(|b| serde_json::from_slice(b).expect("golden state"))
        .collect()
});

/// Every golden approver key (`tests/vectors/golden/keys.json`).
static KEYS: LazyLock<Vec<ApproverSecret>> = LazyLock::new(|| {
    let keys: serde_json::Value =
        serde_json::from_slice(include_bytes!("../../tests/vectors/golden/keys.json"))
            .expect("golden keys");
    keys["approvers"]
        .as_object()
        .expect("approvers")
        .values()
        .map(|a| {
            let hex = a["seed_hex"].as_str().expect("seed_hex");
            let mut seed = [0u8; 32];
            for (i, b) in seed.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex seed");
            }
            ApproverSecret::from_seed(&seed)
        })
        .collect()
});

/// Update n of the golden chain is created at 1764230000 + n·100 s and valid for an hour: this
/// instant lies inside every one, so mutated copies of the seeds get past the clock checks.
const NOW: u64 = 1_764_232_000;

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = decode::<SignedUpdate>(data) else {
        return;
    };
    let epoch = usize::try_from(signed.update.epoch_prev.get()).unwrap_or(usize::MAX);
    let base = &STATES[epoch.min(STATES.len() - 1)];
    judge(base, &signed);
    judge(base, &resigned(base, &signed));
});

/// `signed`'s update with its `new_root` recomputed (when the reducer takes it), signed by
/// every active approver of `base` whose golden key is known, in approver order.
fn resigned(base: &State, signed: &SignedUpdate) -> SignedUpdate {
    let mut update = signed.update.clone();
    if let Ok(t) = reduce(base, &update) {
        update.new_root = t.root();
    }
    let message = update.message();
    let signatures = base
        .approvers()
        .filter(|a| a.status == ApproverStatus::Active)
        .filter_map(|a| {
            let key = KEYS.iter().find(|k| k.public() == a.pubkey)?;
            Some(Signature {
                approver: a.id.clone(),
                sig: key.sign(&message),
                new_key: false,
            })
        })
        .collect();
    SignedUpdate {
        kind: signed.kind,
        update,
        signatures,
    }
}

/// The gate in every freshness mode; an accepted update must commit to its claimed root.
fn judge(base: &State, signed: &SignedUpdate) {
    let seen = HashSet::new();
    for freshness in [
        Freshness::Lone,
        Freshness::ChainInner,
        Freshness::ChainLast,
        Freshness::History,
    ] {
        if let Ok(verified) = accept(base, &seen, signed, NOW, freshness) {
            let mut state = base.clone();
            let new_root = verified.new_root();
            verified.commit_to(&mut state);
            assert_eq!(
                state.root(),
                new_root,
                "accepted, but the state has another root"
            );
            assert_eq!(state.root(), signed.update.new_root);
            assert_eq!(state.epoch().get(), base.epoch().get() + 1);
        }
    }
}
