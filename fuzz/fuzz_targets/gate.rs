#![no_main]
//! Arbitrary signed updates through the acceptance gate, against the golden chain's states, in
//! every freshness mode. The gate must never panic, and whatever it accepts must be exactly
//! what it claims: the committed state has the update's `new_root` and the next epoch.

use std::collections::HashSet;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rn::ledger::canonical::decode;
use rn::ledger::gate::{Freshness, accept};
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

/// Update n of the golden chain is created at 1764230000 + n·100 s and valid for an hour: this
/// instant lies inside every one, so mutated copies of the seeds get past the clock checks.
const NOW: u64 = 1_764_232_000;

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = decode::<SignedUpdate>(data) else {
        return;
    };
    let epoch = usize::try_from(signed.update.epoch_prev.get()).unwrap_or(usize::MAX);
    let base = &STATES[epoch.min(STATES.len() - 1)];
    let seen = HashSet::new();
    for freshness in [
        Freshness::Lone,
        Freshness::ChainInner,
        Freshness::ChainLast,
        Freshness::History,
    ] {
        if let Ok(verified) = accept(base, &seen, &signed, NOW, freshness) {
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
});
