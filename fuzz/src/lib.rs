//! What every decoder target asserts: decoding never panics, and whatever decodes re-encodes to
//! canonical bytes that decode again to the same canonical bytes.

use rn::ledger::canonical::{Document, decode, to_jcs};

/// Decodes `data` as a `T`; if it decodes, checks the parse → encode → parse round trip.
pub fn round_trip<T: Document>(data: &[u8]) {
    let Ok(first) = decode::<T>(data) else {
        return;
    };
    let encoded = to_jcs(&first);
    let second = decode::<T>(&encoded)
        .unwrap_or_else(|e| panic!("{}: its own encoding does not decode: {e}", T::KIND));
    assert_eq!(
        encoded,
        to_jcs(&second),
        "{}: the encoding is not stable",
        T::KIND
    );
}
