//! The policy document `rn.policy.v1` (spec §4.9): allow-only rules over ledger identities,
//! parsed strictly into checked types.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ledger::DecodeError;
use crate::ledger::canonical::{self, Document, caps, kind_marker, to_jcs};
use crate::ledger::model::State;
use crate::ledger::types::{Cidr, Id, Owner, Sha256Digest, Tag};

kind_marker!(
    /// `rn.policy.v1`
    PolicyKind = "rn.policy.v1"
);

/// A policy problem found at parse or validation time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document does not decode (syntax, unknown field, bad value, size).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A rule is inconsistent.
    #[error("rule {index}: {reason}")]
    BadRule {
        /// 0-based rule index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A selector names something the ledger does not have.
    #[error("rule {index}: {selector} matches no node in the ledger ({why})")]
    UnknownSelector {
        /// 0-based rule index.
        index: usize,
        /// The selector.
        selector: String,
        /// What is missing.
        why: String,
    },
}

macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
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

/// Who a rule is about: every active node, one node, a tag, or an owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `*`: every active node.
    All,
    /// `node:<id>`.
    Node(Id),
    /// `tag:<t>`.
    Tag(Tag),
    /// `owner:<o>`.
    Owner(Owner),
}

impl FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Selector::All);
        }
        if let Some(id) = s.strip_prefix("node:") {
            return id.parse().map(Selector::Node).map_err(|e| e.to_string());
        }
        if s.starts_with("tag:") {
            return s.parse().map(Selector::Tag).map_err(|e| e.to_string());
        }
        if let Some(o) = s.strip_prefix("owner:") {
            return o.parse().map(Selector::Owner).map_err(|e| e.to_string());
        }
        Err(format!(
            "selector {s:?} must be *, node:<id>, tag:<name> or owner:<owner>"
        ))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("*"),
            Selector::Node(id) => write!(f, "node:{id}"),
            Selector::Tag(t) => write!(f, "{t}"),
            Selector::Owner(o) => write!(f, "owner:{o}"),
        }
    }
}
text_serde!(Selector);

/// Where a rule allows traffic to: nodes, a prefix behind a subnet router, or the internet
/// through an exit node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// Nodes of the mesh.
    Nodes(Selector),
    /// A prefix (only with `via: "router"`).
    Prefix(Cidr),
    /// `internet` (only with `via: "exit"`).
    Internet,
}

impl FromStr for Dest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "internet" {
            return Ok(Dest::Internet);
        }
        if s.contains('/') {
            return s
                .parse()
                .map(Dest::Prefix)
                .map_err(|e: crate::ledger::types::ValueError| e.to_string());
        }
        s.parse().map(Dest::Nodes)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Nodes(s) => s.fmt(f),
            Dest::Prefix(c) => c.fmt(f),
            Dest::Internet => f.write_str("internet"),
        }
    }
}
text_serde!(Dest);

/// Protocol filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
    /// Every protocol.
    Any,
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "icmp" => Ok(Proto::Icmp),
            "any" => Ok(Proto::Any),
            _ => Err(format!("proto {s:?} must be tcp, udp, icmp or any")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Any => "any",
        })
    }
}

/// A port or an inclusive range, written `443` or `8000-8099`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortRange {
    /// Contains `port`.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

fn port(s: &str) -> Result<u16, String> {
    let ok = !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_digit())
        && !(s.len() > 1 && s.starts_with('0'));
    match s.parse::<u16>() {
        Ok(p) if ok && p >= 1 => Ok(p),
        _ => Err(format!("port {s:?} must be a number from 1 to 65535")),
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (lo, hi) = match s.split_once('-') {
            None => {
                let p = port(s)?;
                (p, p)
            }
            Some((a, b)) => (port(a)?, port(b)?),
        };
        if lo > hi {
            return Err(format!("port range {s:?} is reversed; write {hi}-{lo}"));
        }
        if lo == hi && s.contains('-') {
            return Err(format!("port range {s:?}: write a single port as {lo}"));
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}
text_serde!(PortRange);

/// The context a rule grants: through a subnet router, or through an exit node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// To a prefix a node's ledger `routes` cover.
    Router,
    /// To the internet through a node with `exit: true`.
    Exit,
}

impl FromStr for Via {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "router" => Ok(Via::Router),
            "exit" => Ok(Via::Exit),
            _ => Err(format!("via {s:?} must be router or exit")),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Router => "router",
            Via::Exit => "exit",
        })
    }
}

/// One allow rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Who may send.
    pub src: Vec<Selector>,
    /// Where to.
    pub dst: Vec<Dest>,
    /// Which protocol.
    pub proto: Proto,
    /// Which ports (tcp/udp only; absent = all).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "canonical::present"
    )]
    pub ports: Option<Vec<PortRange>>,
    /// Router or exit context; absent = node to node.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "canonical::present"
    )]
    pub via: Option<Via>,
}

impl Rule {
    /// Consistency of one rule (spec §4.9).
    fn check(&self) -> Result<(), String> {
        if self.src.is_empty() {
            return Err("src is empty".into());
        }
        if self.dst.is_empty() {
            return Err("dst is empty".into());
        }
        if let Some(p) = &self.ports {
            if !matches!(self.proto, Proto::Tcp | Proto::Udp) {
                return Err(format!(
                    "ports are only allowed with tcp or udp, not {}",
                    self.proto
                ));
            }
            if p.is_empty() {
                return Err("ports is empty; leave it out to allow every port".into());
            }
        }
        for d in &self.dst {
            match (d, self.via) {
                (Dest::Nodes(_), None)
                | (Dest::Prefix(_), Some(Via::Router))
                | (Dest::Internet, Some(Via::Exit)) => {}
                (Dest::Prefix(c), _) => {
                    return Err(format!("destination {c} needs via: \"router\""));
                }
                (Dest::Internet, _) => {
                    return Err("destination internet needs via: \"exit\"".into());
                }
                (Dest::Nodes(s), Some(v)) => {
                    return Err(format!(
                        "destination {s} is a node selector; via: \"{v}\" takes {}",
                        if v == Via::Router {
                            "prefixes"
                        } else {
                            "internet"
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rule as one line of text, as it appears in the document.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&to_jcs(self)).into_owned()
    }

    /// Protocol and port coverage: does this rule allow `proto`/`port`? A query for `any`
    /// needs a rule for `any`; a query without a port needs a rule without port limits.
    pub fn allows(&self, proto: Proto, port: Option<u16>) -> bool {
        let proto_ok = self.proto == Proto::Any || self.proto == proto;
        let port_ok = match (&self.ports, port) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(ranges), Some(p)) => ranges.iter().any(|r| r.contains(p)),
        };
        proto_ok && port_ok
    }
}

/// A parsed, checked policy document: decoding runs every rule check, wherever the document
/// comes from (a file, a proposal, a bundle, the policy store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "PolicyWire")]
pub struct Policy {
    /// `rn.policy.v1`.
    pub kind: PolicyKind,
    /// The allow rules, in order (the first match is reported).
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyWire {
    kind: PolicyKind,
    rules: Vec<Rule>,
}

impl TryFrom<PolicyWire> for Policy {
    type Error = PolicyError;
    fn try_from(w: PolicyWire) -> Result<Self, PolicyError> {
        let p = Policy {
            kind: w.kind,
            rules: w.rules,
        };
        p.check()?;
        Ok(p)
    }
}

impl Document for Policy {
    const KIND: &'static str = PolicyKind::KIND;
    const CAP: usize = caps::POLICY;
}

impl Policy {
    /// Strictly parses and checks a document. Returns warnings (duplicate rules) beside it.
    pub fn parse(bytes: &[u8]) -> Result<(Policy, Vec<String>), PolicyError> {
        let p: Policy = canonical::decode(bytes)?;
        let warnings = p.check()?;
        Ok((p, warnings))
    }

    /// Checks every rule; returns warnings.
    pub fn check(&self) -> Result<Vec<String>, PolicyError> {
        let mut warnings = Vec::new();
        for (index, r) in self.rules.iter().enumerate() {
            r.check()
                .map_err(|reason| PolicyError::BadRule { index, reason })?;
            if let Some(first) = self.rules[..index].iter().position(|x| x == r) {
                warnings.push(format!("rule {index} duplicates rule {first}"));
            }
        }
        Ok(warnings)
    }

    /// `sha256:` of the canonical document: what `set_policy` pins.
    pub fn hash(&self) -> Sha256Digest {
        Sha256Digest::of(&to_jcs(self))
    }

    /// Checks every selector against the ledger: a node, tag or owner that matches no node
    /// is an error at proposal time (at evaluation it simply matches nothing).
    pub fn validate(&self, state: &State) -> Result<(), PolicyError> {
        for (index, r) in self.rules.iter().enumerate() {
            let sels = r.src.iter().chain(r.dst.iter().filter_map(|d| match d {
                Dest::Nodes(s) => Some(s),
                _ => None,
            }));
            for s in sels {
                let why = match s {
                    Selector::All => None,
                    Selector::Node(id) => state.node(id).is_none().then(|| format!("no node {id}")),
                    Selector::Tag(t) => (!state.nodes().any(|n| n.tags.contains(t)))
                        .then(|| format!("no node has {t}")),
                    Selector::Owner(o) => (!state.nodes().any(|n| n.owner == *o))
                        .then(|| format!("no node is owned by {o}")),
                };
                if let Some(why) = why {
                    return Err(PolicyError::UnknownSelector {
                        index,
                        selector: s.to_string(),
                        why,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The rule-level change from `old` to `new`: lines "- rule" for rules only in `old`, "+ rule"
/// for rules only in `new` (with their index in `new`).
pub fn diff(old: Option<&Policy>, new: Option<&Policy>) -> Vec<String> {
    let empty = Vec::new();
    let old_rules = old.map_or(&empty, |p| &p.rules);
    let new_rules = new.map_or(&empty, |p| &p.rules);
    let mut out = Vec::new();
    for r in old_rules.iter().filter(|r| !new_rules.contains(r)) {
        out.push(format!("- {}", r.text()));
    }
    for (i, r) in new_rules
        .iter()
        .enumerate()
        .filter(|(_, r)| !old_rules.contains(r))
    {
        out.push(format!("+ [{i}] {}", r.text()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Policy, PolicyError> {
        Policy::parse(s.as_bytes()).map(|(p, _)| p)
    }

    #[test]
    fn the_design_example_parses() {
        let p = parse(
            r#"{"kind":"rn.policy.v1","rules":[
          {"src":["tag:laptop"],"dst":["tag:web"],"proto":"tcp","ports":["443","8000-8099"]},
          {"src":["owner:alice"],"dst":["*"],"proto":"any"},
          {"src":["tag:laptop"],"dst":["internet"],"via":"exit","proto":"tcp","ports":["80","443"]},
          {"src":["tag:ops"],"dst":["10.20.0.0/16"],"via":"router","proto":"any"}]}"#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 4);
        assert_eq!(
            p.rules[0].ports.as_ref().unwrap()[1],
            PortRange { lo: 8000, hi: 8099 }
        );
    }

    #[test]
    fn bad_documents_are_refused() {
        let rule = |r: &str| format!(r#"{{"kind":"rn.policy.v1","rules":[{r}]}}"#);
        for (doc, needle) in [
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"any","extra":1}"#),
                "unknown field",
            ),
            (
                rule(r#"{"src":["*"],"dst":["10.0.0.1/8"],"via":"router","proto":"any"}"#),
                "host bits",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"tcp","ports":["90-80"]}"#),
                "reversed",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"tcp","ports":["70000"]}"#),
                "1 to 65535",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"tcp","ports":["0"]}"#),
                "1 to 65535",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"icmp","ports":["1"]}"#),
                "only allowed with tcp or udp",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"any","ports":["1"]}"#),
                "only allowed with tcp or udp",
            ),
            (
                rule(r#"{"src":[],"dst":["*"],"proto":"any"}"#),
                "src is empty",
            ),
            (
                rule(r#"{"src":["*"],"dst":[],"proto":"any"}"#),
                "dst is empty",
            ),
            (
                rule(r#"{"src":["*"],"dst":["internet"],"proto":"any"}"#),
                "needs via",
            ),
            (
                rule(r#"{"src":["*"],"dst":["10.0.0.0/8"],"proto":"any"}"#),
                "needs via",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"via":"exit","proto":"any"}"#),
                "node selector",
            ),
            (
                rule(r#"{"src":["group:x"],"dst":["*"],"proto":"any"}"#),
                "selector",
            ),
            (
                rule(r#"{"src":["*"],"dst":["*"],"proto":"sctp"}"#),
                "unknown variant",
            ),
        ] {
            let err = parse(&doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
        let big = format!(
            r#"{{"kind":"rn.policy.v1","rules":[],"pad":"{}"}}"#,
            "x".repeat(1 << 20)
        );
        assert_eq!(
            Policy::parse(big.as_bytes()).unwrap_err(),
            PolicyError::Decode(DecodeError::Oversize {
                what: "rn.policy.v1",
                size: big.len(),
                cap: 1 << 20
            })
        );
    }

    #[test]
    fn duplicate_rules_warn() {
        let r = r#"{"src":["*"],"dst":["*"],"proto":"icmp"}"#;
        let (_, w) =
            Policy::parse(format!(r#"{{"kind":"rn.policy.v1","rules":[{r},{r}]}}"#).as_bytes())
                .unwrap();
        assert_eq!(w, ["rule 1 duplicates rule 0"]);
    }
}
