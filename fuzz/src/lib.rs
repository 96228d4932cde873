//! What every decoder target asserts: decoding never panics; whatever decodes re-encodes to
//! exactly the canonical form of the input — nothing dropped, defaulted, re-sorted or re-shaped
//! on the way (spec §1.4: an object written as an array, a name written as a map, a set out of
//! order, an explicit default are all refused) — and that encoding decodes again to the same
//! bytes.

use rn::ledger::canonical::{Document, decode, to_jcs};
use serde_json::Value;

/// Decodes `data` as a `T`; if it decodes, checks it against its input and the round trip.
pub fn round_trip<T: Document>(data: &[u8]) {
    let Ok(first) = decode::<T>(data) else {
        return;
    };
    let encoded = to_jcs(&first);
    let raw: Value = serde_json::from_slice(data).expect("a document that decodes is JSON");
    assert_eq!(
        encoded,
        to_jcs(&raw),
        "{}: decoding changed the document",
        T::KIND
    );
    let second = decode::<T>(&encoded)
        .unwrap_or_else(|e| panic!("{}: its own encoding does not decode: {e}", T::KIND));
    assert_eq!(
        encoded,
        to_jcs(&second),
        "{}: the encoding is not stable",
        T::KIND
    );
}
