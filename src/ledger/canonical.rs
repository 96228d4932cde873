//! Canonical encoding (RFC 8785 JCS) and strict decoding (spec §4.1).
//!
//! Every byte string that is hashed or signed comes from [`to_jcs`]. Every document that comes
//! from outside goes through [`decode`]: size cap first, then the `kind` check, then a typed
//! parse that rejects unknown fields, duplicate keys, wrong types and out-of-range integers,
//! then the shape check: the typed value, encoded again, must hold every value of the input
//! exactly as written. That refuses what serde's derived decoders would otherwise take and
//! silently normalise — an object written as an array of its fields, a unit variant written
//! as `{"name":null}` — so that what rn accepts is what `jq` or any other reader sees.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::DecodeError;

/// RFC 8785 canonical bytes of a ledger value.
pub fn to_jcs<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_jcs::to_vec(value)
        .expect("ledger values hold only strings, integers, booleans, null, arrays and objects")
}

/// Size caps checked before parsing (spec §4.1).
pub mod caps {
    /// Updates, signed updates and proposals.
    pub const UPDATE: usize = 8 << 20;
    /// A whole ledger log, or a bundle.
    pub const LOG: usize = 256 << 20;
    /// A policy document.
    pub const POLICY: usize = 1 << 20;
}

/// A top-level document with a fixed `kind` and a size cap.
pub trait Document: Serialize + DeserializeOwned {
    /// The `kind` string, e.g. `rn.update.v1`.
    const KIND: &'static str;
    /// The size cap in bytes.
    const CAP: usize;
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

/// Reads only the `kind` of a JSON object (the rest must still be valid JSON).
pub fn peek_kind(bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Malformed {
            what: "document",
            detail: "a document is a JSON object, written {...}".into(),
        });
    }
    let peek: Peek<'_> = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what: "document",
        detail: format!("no readable \"kind\": {e}"),
    })?;
    Ok(peek.kind.into_owned())
}

/// Strictly decodes one document of kind `T::KIND` from `bytes`.
pub fn decode<T: Document>(bytes: &[u8]) -> Result<T, DecodeError> {
    let typed = decode_typed::<T>(bytes)?;
    check_shape(T::KIND, bytes, &typed)?;
    Ok(typed)
}

/// Decodes a document that must be exactly canonical — a log line: its bytes must equal
/// `JCS` of what they decode to, which settles the shape as well, so the input is parsed once.
pub fn decode_canonical<T: Document>(bytes: &[u8]) -> Result<T, DecodeError> {
    let typed = decode_typed::<T>(bytes)?;
    if to_jcs(&typed) != bytes {
        return Err(DecodeError::Malformed {
            what: T::KIND,
            detail: "not in canonical form".into(),
        });
    }
    Ok(typed)
}

/// Size cap, kind and the typed parse of [`decode`], without the shape check.
fn decode_typed<T: Document>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > T::CAP {
        return Err(DecodeError::Oversize {
            what: T::KIND,
            size: bytes.len(),
            cap: T::CAP,
        });
    }
    let kind = peek_kind(bytes)?;
    if kind != T::KIND {
        return Err(DecodeError::UnknownKind {
            expected: T::KIND,
            found: kind,
        });
    }
    parse_typed(T::KIND, bytes)
}

/// Strictly decodes a value whose kind was already checked (or that has none).
pub fn decode_value<T: DeserializeOwned + Serialize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let typed = parse_typed(what, bytes)?;
    check_shape(what, bytes, &typed)?;
    Ok(typed)
}

/// The typed parse: unknown fields, duplicate keys, wrong types and values are errors.
fn parse_typed<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = e.to_string();
        match detail.strip_prefix(KIND_ERROR_PREFIX) {
            Some(rest) => DecodeError::UnknownKind {
                expected: what,
                found: rest.to_owned(),
            },
            None => DecodeError::Malformed { what, detail },
        }
    })
}

/// The shape check: `typed`, encoded again, holds every value of the input exactly as written.
fn check_shape<T: Serialize>(
    what: &'static str,
    bytes: &[u8],
    typed: &T,
) -> Result<(), DecodeError> {
    let input: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what,
        detail: e.to_string(),
    })?;
    let normal = serde_json::to_value(typed).map_err(|e| DecodeError::Malformed {
        what,
        detail: e.to_string(),
    })?;
    let mut path = String::new();
    if !same_shape(&input, &normal, &mut path) {
        return Err(DecodeError::Malformed {
            what,
            detail: format!(
                "{} is not written in its normal JSON shape (an object as an object, a name as a string)",
                if path.is_empty() {
                    "the document"
                } else {
                    path.as_str()
                }
            ),
        });
    }
    Ok(())
}

/// Does `input` hold every value exactly as `normal` (the typed value encoded again) does?
/// An object may omit a member that `normal` holds only where the type has a default; every
/// member it has must match. On a mismatch `path` names where (`.ops[0]`).
fn same_shape(input: &Value, normal: &Value, path: &mut String) -> bool {
    match (input, normal) {
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            let ok = b.get(k).is_some_and(|w| same_shape(v, w, path));
            if ok {
                path.truncate(len);
            }
            ok
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).enumerate().all(|(i, (v, w))| {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let ok = same_shape(v, w, path);
                    if ok {
                        path.truncate(len);
                    }
                    ok
                })
        }
        _ => input == normal,
    }
}

const KIND_ERROR_PREFIX: &str = "unknown kind ";

/// Declares a zero-sized marker for a `kind` string: it serialises as the string and refuses
/// any other value when deserialised.
macro_rules! kind_marker {
    ($(#[$m:meta])* $name:ident = $kind:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            /// The kind string.
            #[allow(dead_code)]
            pub const KIND: &'static str = $kind;
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($kind)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::ledger::canonical::expect_kind(d, $kind).map(|()| $name)
            }
        }
    };
}
pub(crate) use kind_marker;

#[doc(hidden)]
pub fn expect_kind<'de, D: Deserializer<'de>>(d: D, kind: &'static str) -> Result<(), D::Error> {
    let found = Cow::<'de, str>::deserialize(d)?;
    if found != kind {
        return Err(serde::de::Error::custom(format_args!(
            "{KIND_ERROR_PREFIX}{found:?} (expected {kind:?})"
        )));
    }
    Ok(())
}

/// `deserialize_with` for an `Option` field that must be present (it may be `null`).
pub fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// `deserialize_with` for an optional field that, when present, must not be `null`.
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    kind_marker!(TestKind = "rn.test.v1");

    #[derive(Serialize, Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        kind: TestKind,
        a: u32,
    }

    impl Document for Doc {
        const KIND: &'static str = "rn.test.v1";
        const CAP: usize = 64;
    }

    #[test]
    fn jcs_sorts_keys_and_strips_space() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": 1, "a": [true, null] }"#).unwrap();
        assert_eq!(to_jcs(&v), br#"{"a":[true,null],"b":1}"#);
    }

    #[test]
    fn strict_decoding() {
        assert!(decode::<Doc>(br#"{"kind":"rn.test.v1","a":1}"#).is_ok());
        let cases: [(&[u8], &str); 5] = [
            (br#"{"kind":"rn.test.v2","a":1}"#, "UnknownKind"),
            (br#"{"kind":"rn.test.v1","a":1,"b":2}"#, "Malformed"),
            (br#"{"kind":"rn.test.v1","a":1,"a":2}"#, "Malformed"),
            (br#"{"kind":"rn.test.v1","a":"1"}"#, "Malformed"),
            (&[b' '; 65], "Oversize"),
        ];
        for (input, want) in cases {
            let err = decode::<Doc>(input).unwrap_err();
            assert_eq!(err.name(), want, "{}", String::from_utf8_lossy(input));
        }
    }
}
