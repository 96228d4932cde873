//! What every decoder target asserts: decoding never panics; whatever decodes re-encodes to
//! exactly the canonical form of the input — nothing dropped, defaulted or changed on the way,
//! except that sets come out in their canonical order (records by id; tags, addresses and
//! routes sorted), as DESIGN §4.2 defines them — and that encoding decodes again to the same
//! bytes.

use rn::ledger::canonical::{Document, decode, to_jcs};
use serde_json::Value;

/// Decodes `data` as a `T`; if it decodes, checks it against its input and the round trip.
pub fn round_trip<T: Document>(data: &[u8]) {
    let Ok(first) = decode::<T>(data) else {
        return;
    };
    let encoded = to_jcs(&first);
    let mut raw: Value = serde_json::from_slice(data).expect("a document that decodes is JSON");
    set_order(&mut raw);
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

/// Puts every set of the ledger's documents in canonical order: `approvers` and `nodes` by
/// `id`, `tags`, `addresses` and `routes` bytewise.
pub fn set_order(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                set_order(value);
                let Value::Array(items) = value else { continue };
                match key.as_str() {
                    "approvers" | "nodes" => items.sort_by(|a, b| {
                        let id = |x: &Value| x.get("id").and_then(Value::as_str).map(str::to_owned);
                        id(a).cmp(&id(b))
                    }),
                    "tags" | "addresses" | "routes" => items.sort_by(|a, b| {
                        a.as_str()
                            .unwrap_or_default()
                            .cmp(b.as_str().unwrap_or_default())
                    }),
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(set_order),
        _ => {}
    }
}
