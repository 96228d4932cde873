#![no_main]
//! Policy documents: strict parsing and every rule check never panic; a document that parses
//! re-encodes to exactly its input's canonical form, which parses to the same document and hash.

use libfuzzer_sys::fuzz_target;
use rn::ledger::canonical::to_jcs;
use rn::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok((first, _warnings)) = Policy::parse(data) else {
        return;
    };
    let encoded = to_jcs(&first);
    let raw: serde_json::Value = serde_json::from_slice(data).expect("a parsed policy is JSON");
    assert_eq!(encoded, to_jcs(&raw), "parsing changed the policy document");
    let (second, _) = Policy::parse(&encoded)
        .unwrap_or_else(|e| panic!("a parsed policy's own encoding does not parse: {e}"));
    assert_eq!(
        encoded,
        to_jcs(&second),
        "the policy encoding is not stable"
    );
    assert_eq!(first.hash(), second.hash());
});
