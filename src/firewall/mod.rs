//! Firewall backends: `nftables` renders table `inet rn` and loads it with one atomic
//! `nft -f`; `none` does nothing (for hosts filtered by other means, and tests). Only traffic
//! on the mesh interface is filtered: established/related is accepted, what the policy
//! allows is accepted, everything else from the mesh is dropped.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::ledger::types::Cidr;
use crate::policy::compile::{ForwardRule, ForwardTo, InboundRule};
use crate::policy::model::{PortRange, Proto};

/// What the filter should let in.
pub enum FilterIntent<'a> {
    /// Trusted: the compiled rules.
    Rules {
        /// Inbound rules (to this node).
        inbound: &'a [InboundRule],
        /// Forward rules (routers and exits).
        forward: &'a [ForwardRule],
        /// Masquerade what is forwarded out of the mesh.
        masquerade: bool,
        /// The ledger distribution port and the members admitted to it (spec §5a).
        serve: Option<(u16, &'a [Cidr])>,
    },
    /// Restricted: nothing from the mesh.
    DropAll,
}

/// A firewall failure.
#[derive(Debug, thiserror::Error)]
#[error("firewall {backend}: {detail}")]
pub struct FirewallError {
    /// Which backend.
    pub backend: &'static str,
    /// What failed.
    pub detail: String,
}

/// Applies filter intents atomically.
pub trait Firewall: Send {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// Replaces the whole filter with `intent` in one transaction.
    fn apply(&mut self, interface: &str, intent: &FilterIntent<'_>) -> Result<(), FirewallError>;
    /// Removes rn's filter.
    fn clear(&mut self) -> Result<(), FirewallError>;
    /// Whether the filter in force is still the one last loaded (read back; true when
    /// nothing was loaded yet).
    fn holds(&self) -> bool {
        true
    }
}

/// Which firewall a node uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallKind {
    /// nftables, table `inet rn`.
    Nftables,
    /// No filtering by rn.
    None,
}

impl std::str::FromStr for FirewallKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nftables" => Ok(FirewallKind::Nftables),
            "none" => Ok(FirewallKind::None),
            _ => Err(format!("firewall {s:?} must be nftables or none")),
        }
    }
}

/// Opens the firewall backend.
pub fn open(kind: FirewallKind) -> Box<dyn Firewall> {
    match kind {
        FirewallKind::Nftables => Box::new(Nftables::default()),
        FirewallKind::None => Box::new(NoFirewall),
    }
}

/// No filtering.
pub struct NoFirewall;

impl Firewall for NoFirewall {
    fn name(&self) -> &'static str {
        "none"
    }
    fn apply(&mut self, _: &str, _: &FilterIntent<'_>) -> Result<(), FirewallError> {
        Ok(())
    }
    fn clear(&mut self) -> Result<(), FirewallError> {
        Ok(())
    }
}

/// nftables through `nft -f -`; what was loaded is read back with `nft --stateless list`.
#[derive(Default)]
pub struct Nftables {
    /// `table inet rn` as nft listed it right after it was loaded.
    loaded: Option<String>,
}

/// `table inet rn` as nft lists it, counters left out.
fn list() -> Result<String, FirewallError> {
    let out = Command::new("nft")
        .args(["--stateless", "list", "table", "inet", "rn"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FirewallError {
            backend: "nftables",
            detail: format!("cannot run nft: {e} (apt-get install nftables)"),
        })?;
    if !out.status.success() {
        return Err(FirewallError {
            backend: "nftables",
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn nft(script: &str) -> Result<(), FirewallError> {
    let err = |detail: String| FirewallError {
        backend: "nftables",
        detail,
    };
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run nft: {e} (apt-get install nftables)")))?;
    child
        .stdin
        .take()
        .ok_or_else(|| err("no stdin".into()))?
        .write_all(script.as_bytes())
        .map_err(|e| err(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(())
}

impl Firewall for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }
    fn apply(&mut self, interface: &str, intent: &FilterIntent<'_>) -> Result<(), FirewallError> {
        self.loaded = None;
        nft(&render(interface, intent))?;
        self.loaded = Some(list()?);
        Ok(())
    }
    fn clear(&mut self) -> Result<(), FirewallError> {
        self.loaded = None;
        nft("table inet rn {}\ndelete table inet rn\n")
    }
    fn holds(&self) -> bool {
        self.loaded
            .as_ref()
            .is_none_or(|want| list().is_ok_and(|now| now == *want))
    }
}

fn set<T: std::fmt::Display>(items: &[T]) -> String {
    let v: Vec<String> = items.iter().map(|x| x.to_string()).collect();
    format!("{{ {} }}", v.join(", "))
}

/// `proto` and `ports` as an nft match (empty for `any`).
fn l4(proto: Proto, ports: &[PortRange], v6: bool) -> String {
    match proto {
        Proto::Any => String::new(),
        Proto::Icmp => {
            if v6 {
                " meta l4proto ipv6-icmp".into()
            } else {
                " meta l4proto icmp".into()
            }
        }
        Proto::Tcp | Proto::Udp => {
            let p = if proto == Proto::Tcp { "tcp" } else { "udp" };
            if ports.is_empty() {
                format!(" meta l4proto {p}")
            } else {
                format!(" {p} dport {}", set(ports))
            }
        }
    }
}

/// Source (and destination) address matches per family: one nft statement each.
fn families<'a>(from: &'a [Cidr], to: Option<&'a [Cidr]>) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let src: Vec<&Cidr> = from.iter().filter(|c| c.is_v4() != v6).collect();
        if src.is_empty() {
            continue;
        }
        let fam = if v6 { "ip6" } else { "ip" };
        let mut m = format!("{fam} saddr {}", set(&src));
        if let Some(to) = to {
            let dst: Vec<&Cidr> = to.iter().filter(|c| c.is_v4() != v6).collect();
            if dst.is_empty() {
                continue;
            }
            let _ = write!(m, " {fam} daddr {}", set(&dst));
        }
        out.push((v6, m));
    }
    out
}

/// The whole ruleset for `interface`, replacing table `inet rn` atomically.
pub fn render(interface: &str, intent: &FilterIntent<'_>) -> String {
    let mut s = String::new();
    let q = format!("\"{interface}\"");
    s.push_str("table inet rn {}\ndelete table inet rn\ntable inet rn {\n");
    s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    let _ = writeln!(s, "    iifname != {q} accept");
    match intent {
        FilterIntent::DropAll => {
            s.push_str("    counter drop comment \"restricted: nothing from the mesh\"\n  }\n");
            s.push_str(
                "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
            );
            let _ = writeln!(s, "    iifname {q} counter drop comment \"restricted\"");
            let _ = writeln!(s, "    oifname {q} counter drop comment \"restricted\"");
            s.push_str("  }\n}\n");
        }
        FilterIntent::Rules {
            inbound,
            forward,
            masquerade,
            serve,
        } => {
            s.push_str("    ct state established,related accept\n    ct state invalid drop\n");
            if let Some((port, members)) = serve {
                for (_, m) in families(members, None) {
                    let _ = writeln!(
                        s,
                        "    {m} tcp dport {port} accept comment \"rn ledger distribution: active members\""
                    );
                }
            }
            for r in inbound.iter() {
                for (v6, m) in families(&r.from, None) {
                    let _ = writeln!(
                        s,
                        "    {m}{} accept comment \"rule {}\"",
                        l4(r.proto, &r.ports, v6),
                        r.rule
                    );
                }
            }
            s.push_str("    counter drop comment \"default deny\"\n  }\n");
            s.push_str(
                "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
            );
            let _ = writeln!(s, "    iifname != {q} oifname != {q} accept");
            s.push_str("    ct state established,related accept\n    ct state invalid drop\n");
            for f in forward.iter() {
                match &f.to {
                    ForwardTo::Prefixes(to) => {
                        for (v6, m) in families(&f.from, Some(to)) {
                            let _ = writeln!(
                                s,
                                "    iifname {q} {m}{} accept comment \"rule {} via router\"",
                                l4(f.proto, &f.ports, v6),
                                f.rule
                            );
                        }
                    }
                    ForwardTo::Internet => {
                        // The internet only: private, shared and link-local ranges on the
                        // exit's side need a router grant.
                        for (v6, m) in families(&f.from, None) {
                            let not_lan = if v6 {
                                "ip6 daddr != { fc00::/7, fe80::/10, ::1 }"
                            } else {
                                "ip daddr != { 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16 }"
                            };
                            let _ = writeln!(
                                s,
                                "    iifname {q} oifname != {q} {m} {not_lan}{} accept comment \"rule {} via exit\"",
                                l4(f.proto, &f.ports, v6),
                                f.rule
                            );
                        }
                    }
                }
            }
            s.push_str("    counter drop comment \"default deny\"\n  }\n");
            if *masquerade && !forward.is_empty() {
                s.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
                let _ = writeln!(s, "    iifname {q} oifname != {q} masquerade");
                s.push_str("  }\n");
            }
            s.push_str("}\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_port_is_admitted_from_members_before_the_default_deny() {
        let members: Vec<Cidr> = ["100.96.0.2/32", "fd00::2/128"]
            .iter()
            .map(|c| c.parse().expect("a cidr"))
            .collect();
        let with = render(
            "rn0",
            &FilterIntent::Rules {
                inbound: &[],
                forward: &[],
                masquerade: false,
                serve: Some((51821, &members)),
            },
        );
        let v4 = with
            .find("ip saddr { 100.96.0.2/32 } tcp dport 51821 accept")
            .expect("the v4 rule");
        let v6 = with
            .find("ip6 saddr { fd00::2/128 } tcp dport 51821 accept")
            .expect("the v6 rule");
        let deny = with
            .find("counter drop comment \"default deny\"")
            .expect("deny");
        assert!(v4 < deny && v6 < deny, "{with}");
        let without = render(
            "rn0",
            &FilterIntent::Rules {
                inbound: &[],
                forward: &[],
                masquerade: false,
                serve: None,
            },
        );
        assert!(!without.contains("51821"), "{without}");
        assert!(!render("rn0", &FilterIntent::DropAll).contains("51821"));
    }
}
