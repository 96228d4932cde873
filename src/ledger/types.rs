//! Checked value types of the ledger (spec §4.1).
//!
//! Every string or number that arrives from outside becomes one of these types at the edge, and
//! nothing downstream re-checks it: a `NodeId` is a valid DNS label, an `ApproverKey` is a
//! canonical, non-weak Ed25519 point, a `Cidr` has no host bits set, and so on.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::VerifyingKey;
use ipnet::IpNet;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value failed its checked constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ValueError {
    /// The kind of value, e.g. "id" or "cidr".
    pub what: &'static str,
    /// What is wrong with it.
    pub detail: String,
}

fn bad(what: &'static str, detail: impl Into<String>) -> ValueError {
    ValueError {
        what,
        detail: detail.into(),
    }
}

/// Implements `Serialize` as a string (through `Display`, or through a cheaper function
/// producing the same text) and `Deserialize` through `FromStr`.
macro_rules! string_serde {
    ($t:ty) => {
        string_serde!($t, |v: &$t, s: S| s.collect_str(v));
    };
    ($t:ty, $ser:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let f = $ser;
                f(self, s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(D::Error::custom)
            }
        }
    };
}

/// Calls `f` with the padded base64 of `bytes` (at most 64 bytes), formatted on the stack.
fn with_b64<R>(bytes: &[u8], f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 88];
    let n = B64
        .encode_slice(bytes, &mut buf)
        .expect("88 bytes hold the base64 of 64");
    f(std::str::from_utf8(&buf[..n]).expect("base64 is ASCII"))
}

/// Calls `f` with `prefix` + lowercase hex of `bytes` (at most 32), formatted on the stack.
fn with_hex<R>(prefix: &str, bytes: &[u8], f: impl FnOnce(&str) -> R) -> R {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 80];
    buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
    let mut n = prefix.len();
    for b in bytes {
        buf[n] = DIGITS[usize::from(b >> 4)];
        buf[n + 1] = DIGITS[usize::from(b & 15)];
        n += 2;
    }
    f(std::str::from_utf8(&buf[..n]).expect("hex is ASCII"))
}

/// The largest integer every format accepts: 2^53 − 1 (spec §4.1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// An unsigned integer no larger than 2^53 − 1, so it survives RFC 8785's trip through IEEE
/// doubles unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uint(u64);

impl Uint {
    /// Zero.
    pub const ZERO: Uint = Uint(0);

    /// Checks the range.
    pub fn new(v: u64) -> Result<Self, ValueError> {
        if v > MAX_SAFE_INTEGER {
            return Err(bad(
                "integer",
                format!("{v} is above 2^53-1; JSON numbers must stay exact"),
            ));
        }
        Ok(Uint(v))
    }

    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// `self + 1`, or an error at the top of the range.
    pub fn next(self) -> Result<Self, ValueError> {
        Uint::new(self.0 + 1)
    }
}

impl fmt::Display for Uint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Uint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Uint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Uint::new(u64::deserialize(d)?).map_err(D::Error::custom)
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && ok(b[0])
        && ok(b[b.len() - 1])
        && b.iter().all(|&c| ok(c) || c == b'-')
}

/// A network, node or approver id: a lowercase DNS label (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(Box<str>);

impl Id {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Id {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if !is_dns_label(s) {
            return Err(bad(
                "id",
                format!(
                    "{s:?} is not a lowercase DNS label (a-z, 0-9, '-', 1-63 chars, no leading or trailing '-')"
                ),
            ));
        }
        Ok(Id(s.into()))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
string_serde!(Id, |v: &Id, s: S| s.serialize_str(v.as_str()));

/// A node tag: `tag:` followed by a DNS label.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(Box<str>);

impl Tag {
    /// The tag as text, including the `tag:` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.strip_prefix("tag:") {
            Some(rest) if is_dns_label(rest) => Ok(Tag(s.into())),
            _ => Err(bad(
                "tag",
                format!("{s:?} is not 'tag:' followed by a lowercase DNS label"),
            )),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(Tag, |v: &Tag, s: S| s.serialize_str(v.as_str()));

/// A node owner: `^[A-Za-z0-9._%+@-]{1,128}$` (a user name or an e-mail address).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner(Box<str>);

impl Owner {
    /// The owner as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Owner {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._%+@-".contains(&c));
        if !ok {
            return Err(bad(
                "owner",
                format!("{s:?} must be 1-128 of A-Z a-z 0-9 . _ % + @ -"),
            ));
        }
        Ok(Owner(s.into()))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(Owner, |v: &Owner, s: S| s.serialize_str(v.as_str()));

/// The human reason of an update: at most 256 bytes, no control characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Reason {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.len() > 256 {
            return Err(bad(
                "reason",
                format!("{} bytes; at most 256 are allowed", s.len()),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("reason", "control characters are not allowed"));
        }
        Ok(Reason(s.to_owned()))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(Reason, |v: &Reason, s: S| s.serialize_str(v.as_str()));

fn decode_b64<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], ValueError> {
    let want = N.div_ceil(3) * 4;
    if s.len() != want {
        return Err(bad(
            what,
            format!(
                "expected {want} characters of padded base64, found {}",
                s.len()
            ),
        ));
    }
    let v = B64
        .decode(s)
        .map_err(|e| bad(what, format!("not standard padded base64: {e}")))?;
    let arr: [u8; N] = v
        .try_into()
        .map_err(|_| bad(what, format!("expected {N} bytes")))?;
    // Reject non-canonical encodings (non-zero trailing bits) so one value has one spelling.
    if B64.encode(arr) != s {
        return Err(bad(what, "non-canonical base64"));
    }
    Ok(arr)
}

/// An approver's Ed25519 public key: 32 bytes, a canonical encoding of a point that is not of
/// small order ("weak" keys are refused, spec §4.5.1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ApproverKey {
    bytes: [u8; 32],
    key: VerifyingKey,
}

impl ApproverKey {
    /// Checks the point: decompressible, canonical, not weak.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ValueError> {
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| bad("approver key", "not a valid Ed25519 point"))?;
        if key.is_weak() {
            return Err(bad(
                "approver key",
                "weak (small-order) Ed25519 key refused",
            ));
        }
        // `VerifyingKey::to_bytes` hands back the input bytes; only a fresh encoding of the
        // decoded point shows a second spelling (a y coordinate written as y + p, or the sign
        // bit set on x = 0).
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(bad("approver key", "non-canonical Ed25519 point encoding"));
        }
        Ok(ApproverKey { bytes, key })
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The parsed key, ready for `verify_strict`.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl PartialOrd for ApproverKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ApproverKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl std::hash::Hash for ApproverKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.bytes.hash(h)
    }
}

impl FromStr for ApproverKey {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        ApproverKey::from_bytes(decode_b64("approver key", s)?)
    }
}

impl fmt::Display for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.bytes))
    }
}

impl fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApproverKey({self})")
    }
}
string_serde!(ApproverKey, |v: &ApproverKey, s: S| with_b64(
    v.as_bytes(),
    |t| s.serialize_str(t)
));

/// A node's transport public key (X25519): 32 bytes in padded base64. The all-zero key is
/// refused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransportKey([u8; 32]);

impl TransportKey {
    /// Refuses the all-zero key (it yields an all-zero shared secret).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ValueError> {
        if bytes == [0; 32] {
            return Err(bad("transport key", "the all-zero key is refused"));
        }
        Ok(TransportKey(bytes))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for TransportKey {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        TransportKey::from_bytes(decode_b64("transport key", s)?)
    }
}

impl fmt::Display for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportKey({self})")
    }
}
string_serde!(TransportKey, |v: &TransportKey, s: S| with_b64(&v.0, |t| s
    .serialize_str(t)));

/// An Ed25519 signature (64 bytes, 88 characters of padded base64).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig([u8; 64]);

impl Sig {
    /// Wraps raw signature bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Sig(bytes)
    }

    /// The raw 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// As an `ed25519-dalek` signature.
    pub fn to_dalek(&self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

impl FromStr for Sig {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Ok(Sig(decode_b64("signature", s)?))
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({self})")
    }
}
string_serde!(Sig, |v: &Sig, s: S| with_b64(&v.0, |t| s.serialize_str(t)));

fn parse_hex32(what: &'static str, hex: &str) -> Result<[u8; 32], ValueError> {
    if hex.len() != 64 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad(what, "expected 64 lowercase hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| bad(what, "expected 64 lowercase hex digits"))?;
    }
    Ok(out)
}

pub use crate::text::hex;

/// A SHA-256 digest, written `sha256:<64 hex>`: state roots and policy hashes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Sha256Digest(sha2::Sha256::digest(data).into())
    }

    /// The first 12 hex digits, for human summaries.
    pub fn short(&self) -> String {
        format!("sha256:{}", &hex(&self.0)[..12])
    }
}

impl FromStr for Sha256Digest {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            bad(
                "sha256 digest",
                format!("{s:?} does not start with 'sha256:'"),
            )
        })?;
        Ok(Sha256Digest(parse_hex32("sha256 digest", hex)?))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex(&self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
string_serde!(Sha256Digest, |v: &Sha256Digest, s: S| with_hex(
    "sha256:",
    &v.0,
    |t| s.serialize_str(t)
));

/// A BLAKE3 digest, written `blake3:<64 hex>`: the ledger and audit log chains.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Blake3Digest(pub [u8; 32]);

impl Blake3Digest {
    /// BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Blake3Digest(*blake3::hash(data).as_bytes())
    }
}

impl FromStr for Blake3Digest {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let hex = s.strip_prefix("blake3:").ok_or_else(|| {
            bad(
                "blake3 digest",
                format!("{s:?} does not start with 'blake3:'"),
            )
        })?;
        Ok(Blake3Digest(parse_hex32("blake3 digest", hex)?))
    }
}

impl fmt::Display for Blake3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", hex(&self.0))
    }
}

impl fmt::Debug for Blake3Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
string_serde!(Blake3Digest, |v: &Blake3Digest, s: S| with_hex(
    "blake3:",
    &v.0,
    |t| s.serialize_str(t)
));

/// An update id: 128 random bits as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UpdateId([u8; 16]);

impl UpdateId {
    /// Wraps raw bytes (tests and vectors use fixed ids).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        UpdateId(bytes)
    }

    /// 128 bits from the operating system's RNG.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        Ok(UpdateId(b))
    }
}

impl FromStr for UpdateId {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.len() != 32 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("update_id", "expected 32 lowercase hex digits"));
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("update_id", "expected 32 lowercase hex digits"))?;
        }
        Ok(UpdateId(out))
    }
}

impl fmt::Display for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for UpdateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
string_serde!(UpdateId, |v: &UpdateId, s: S| with_hex("", &v.0, |t| s
    .serialize_str(t)));

/// An IPv4 or IPv6 prefix in canonical form: no host bits set, written as `ipnet` prints it
/// (so each prefix has exactly one spelling). Ordered bytewise by that spelling, like every
/// sorted list in the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl PartialOrd for Cidr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cidr {
    fn cmp(&self, other: &Self) -> Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl Cidr {
    /// The prefix.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// Wraps a prefix, refusing host bits.
    pub fn new(net: IpNet) -> Result<Self, ValueError> {
        if net.trunc() != net {
            return Err(bad(
                "cidr",
                format!("{net} has host bits set; did you mean {}?", net.trunc()),
            ));
        }
        Ok(Cidr(net))
    }

    /// True for a single-host prefix (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }

    /// True for an IPv4 prefix.
    pub fn is_v4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }
}

impl FromStr for Cidr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let net: IpNet = s
            .parse()
            .map_err(|_| bad("cidr", format!("{s:?} is not an address/prefix-length")))?;
        let c = Cidr::new(net)?;
        if c.to_string() != s {
            return Err(bad(
                "cidr",
                format!("{s:?} is not in canonical form; write {c}"),
            ));
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
string_serde!(Cidr);

#[cfg(test)]
mod tests {
    use super::*;

    /// The little-endian encoding of `y + p` (p = 2^255 - 19): the second spelling of the point
    /// whose y coordinate is the small number `y`.
    pub(crate) fn y_plus_p(y: u8) -> [u8; 32] {
        let mut b = [0xff; 32];
        b[31] = 0x7f;
        // p = 0x7fff…ffed; add y byte by byte (y < 19 keeps it below 2^255).
        let (low, carry) = 0xedu8.overflowing_add(y);
        b[0] = low;
        if carry {
            unreachable!("y < 19 fits below 2^255");
        }
        b
    }

    #[test]
    fn a_second_spelling_of_an_approver_key_is_refused() {
        // Among y = 2…18 some y + p decode to ordinary (not small-order) points: each is the
        // same point as the canonical encoding of y, written another way.
        let mut seen = 0;
        for y in 2u8..19 {
            let bytes = y_plus_p(y);
            let Ok(vk) = VerifyingKey::from_bytes(&bytes) else {
                continue;
            };
            if vk.is_weak() {
                continue;
            }
            seen += 1;
            let err = ApproverKey::from_bytes(bytes).unwrap_err().to_string();
            assert!(
                err.contains("non-canonical Ed25519 point encoding"),
                "{err}"
            );
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            canonical[31] = bytes[31] & 0x80;
            assert!(ApproverKey::from_bytes(canonical).is_ok(), "y = {y}");
        }
        assert!(seen > 0, "no y in 2..19 decodes to a non-weak point");
    }

    #[test]
    fn ids_follow_the_dns_label_rule() {
        for ok in ["a", "web-1", "0", "a-b-c", &"x".repeat(63)] {
            assert!(ok.parse::<Id>().is_ok(), "{ok}");
        }
        for no in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64), "é"] {
            assert!(no.parse::<Id>().is_err(), "{no}");
        }
    }

    #[test]
    fn cidrs_must_be_canonical() {
        assert!("100.96.0.1/32".parse::<Cidr>().is_ok());
        assert!("100.96.0.1/16".parse::<Cidr>().is_err());
        assert!("fd00::/8".parse::<Cidr>().is_ok());
        assert!("fd00:0::/8".parse::<Cidr>().is_err());
        assert!("100.96.0.1".parse::<Cidr>().is_err());
    }

    #[test]
    fn integers_above_2_53_are_refused() {
        assert!(Uint::new(MAX_SAFE_INTEGER).is_ok());
        assert!(Uint::new(MAX_SAFE_INTEGER + 1).is_err());
        assert!(serde_json::from_str::<Uint>("9007199254740992").is_err());
        assert!(serde_json::from_str::<Uint>("-1").is_err());
        assert!(serde_json::from_str::<Uint>("1.0").is_err());
    }

    #[test]
    fn base64_keys_are_strict() {
        let zero_point = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let err = zero_point.parse::<ApproverKey>().unwrap_err();
        assert!(err.detail.contains("weak"), "{err}");
        assert!("AAAA".parse::<TransportKey>().is_err());
        let zero = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(zero.parse::<TransportKey>().is_err());
        // Trailing bits set: decodes to the same bytes but is a second spelling.
        let one = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(one.parse::<TransportKey>().is_ok());
        let one_alt = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=";
        assert!(one_alt.parse::<TransportKey>().is_err());
    }

    #[test]
    fn digests_round_trip() {
        let d = Sha256Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Sha256Digest>().unwrap(), d);
        assert!("sha256:E3B0".parse::<Sha256Digest>().is_err());
        assert!(
            format!("blake3:{}", hex(&[0; 32]))
                .parse::<Blake3Digest>()
                .is_ok()
        );
    }
}
