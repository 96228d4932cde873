//! Routes through the mesh interface: prefixes behind subnet routers, the default route
//! through an exit (policy routing on a firewall mark, like `wg-quick`, so the tunnel's own
//! packets keep using the main table and the exit's underlay endpoint stays reachable), and
//! IP forwarding on routers and exits. Applied with `ip` and `/proc/sys`; removal first.

use std::process::Command;

use super::{ExitRoute, RouteIntent};
use crate::ledger::types::Cidr;

/// Rule priorities rn owns (per family): the main-table lookups first, then the mark's table.
const PRIO_MAIN: &str = "32000";
const PRIO_MARK: &str = "32001";

/// The blackhole default route's metric: the largest, so the route through the interface,
/// while there is one, always comes first.
const BLACKHOLE_METRIC: &str = "4294967295";

/// How many stale rules at one of rn's priorities are removed at most (a loop bound).
const MAX_STALE_RULES: usize = 64;

/// The routing state rn installed for one interface.
pub struct Routing {
    ifname: String,
    installed: RouteIntent,
}

pub(super) fn ip(args: &[&str]) -> Result<(), String> {
    ip_output(args).map(drop)
}

fn ip_output(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn family(c: &Cidr) -> &'static str {
    if c.is_v4() { "-4" } else { "-6" }
}

/// The address families the host has: IPv6 only where the kernel has it.
fn families() -> &'static [&'static str] {
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        &["-4", "-6"]
    } else {
        &["-4"]
    }
}

fn sysctl(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))
}

/// One policy-routing rule: its family and its selector and action, as `ip rule` takes them.
type Rule = (&'static str, Vec<String>);

/// The rules a chosen exit needs, in the order they are added: the main-table lookups (the
/// mesh's own destinations, and with `allow_lan` every specific route), then the mark's table.
fn exit_rules(exit: &ExitRoute) -> Vec<Rule> {
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut rules = Vec::new();
    let fams = families();
    for p in &exit.mesh {
        let fam = family(p);
        if fams.contains(&fam) {
            let mut r = words(&["to"]);
            r.push(p.to_string());
            r.extend(words(&["lookup", "main", "suppress_prefixlength", "0"]));
            r.extend(words(&["priority", PRIO_MAIN]));
            rules.push((fam, r));
        }
    }
    for &fam in fams {
        if exit.allow_lan {
            let r = words(&[
                "lookup",
                "main",
                "suppress_prefixlength",
                "0",
                "priority",
                PRIO_MAIN,
            ]);
            rules.push((fam, r));
        }
    }
    for &fam in fams {
        let mut r = words(&["not", "fwmark"]);
        r.push(format!("{:#x}", exit.mark));
        r.extend(words(&["lookup"]));
        r.push(exit.mark.to_string());
        r.extend(words(&["priority", PRIO_MARK]));
        rules.push((fam, r));
    }
    rules
}

fn rule(verb: &str, (fam, spec): &Rule) -> Result<(), String> {
    let mut args = vec![*fam, "rule", verb];
    args.extend(spec.iter().map(String::as_str));
    ip(&args)
}

impl Routing {
    /// Nothing installed yet.
    pub fn new(ifname: &str) -> Self {
        Routing {
            ifname: ifname.to_owned(),
            installed: RouteIntent::default(),
        }
    }

    /// Removes whatever holds rn's priorities and the mark's table: what a previous agent that
    /// did not stop cleanly may have left.
    fn remove_exit(&self, mark: u32) {
        let table = mark.to_string();
        for &fam in families() {
            for prio in [PRIO_MARK, PRIO_MAIN] {
                for _ in 0..MAX_STALE_RULES {
                    if ip(&[fam, "rule", "del", "priority", prio]).is_err() {
                        break;
                    }
                }
            }
            let _ = ip(&[fam, "route", "flush", "table", &table]);
        }
    }

    /// The default route through the interface in the mark's table, ahead of the blackhole.
    fn route_through(&self, mark: u32, verb: &str) -> Result<(), String> {
        let table = mark.to_string();
        for &fam in families() {
            ip(&[
                fam,
                "route",
                verb,
                "default",
                "dev",
                &self.ifname,
                "table",
                &table,
            ])?;
        }
        Ok(())
    }

    /// Makes the exit's policy routing exactly `want`. New rules are added before old ones go,
    /// and the blackhole is in the mark's table before any rule leads there: internet traffic
    /// never falls back to the host's own default route while an exit is chosen.
    fn apply_exit(&mut self, want: Option<&ExitRoute>) -> Result<(), String> {
        let old = self.installed.exit.clone();
        let Some(want) = want else {
            if let Some(old) = old {
                for r in exit_rules(&old).iter().rev() {
                    let _ = rule("del", r);
                }
                for &fam in families() {
                    let _ = ip(&[fam, "route", "flush", "table", &old.mark.to_string()]);
                }
                self.installed.exit = None;
            }
            return Ok(());
        };
        let kept = old.filter(|o| o.mark == want.mark);
        let table = want.mark.to_string();
        if kept.is_none() {
            // First installed (or under another mark): start from nothing of rn's.
            self.apply_exit(None)?;
            self.remove_exit(want.mark);
            sysctl("/proc/sys/net/ipv4/conf/all/src_valid_mark", "1")?;
            for &fam in families() {
                ip(&[
                    fam,
                    "route",
                    "replace",
                    "blackhole",
                    "default",
                    "metric",
                    BLACKHOLE_METRIC,
                    "table",
                    &table,
                ])?;
            }
        }
        let had_through = kept.as_ref().is_some_and(|k| k.through);
        if want.through && !had_through {
            self.route_through(want.mark, "replace")?;
        }
        let old_rules = kept.as_ref().map(exit_rules).unwrap_or_default();
        let new_rules = exit_rules(want);
        for r in new_rules.iter().filter(|r| !old_rules.contains(r)) {
            rule("add", r)?;
        }
        for r in old_rules.iter().filter(|r| !new_rules.contains(r)) {
            let _ = rule("del", r);
        }
        if had_through && !want.through {
            let _ = self.route_through(want.mark, "del");
        }
        self.installed.exit = Some(want.clone());
        Ok(())
    }

    /// Whether what rn installed for the exit is still there (read back): the mark's rule,
    /// the blackhole and, while the exit is usable, the route through the interface.
    pub fn holds(&self) -> bool {
        let Some(exit) = &self.installed.exit else {
            return true;
        };
        let table = exit.mark.to_string();
        families().iter().all(|&fam| {
            let rules =
                ip_output(&[fam, "rule", "show", "priority", PRIO_MARK]).unwrap_or_default();
            let routes = ip_output(&[fam, "route", "show", "table", &table]).unwrap_or_default();
            rules.contains(&format!("lookup {table}"))
                && routes.lines().any(|l| l.starts_with("blackhole default"))
                && (!exit.through
                    || routes
                        .lines()
                        .any(|l| l.starts_with(&format!("default dev {} ", self.ifname))))
        })
    }

    /// Makes the installed routes exactly `want`: stale routes and a dropped exit go first.
    pub fn apply(&mut self, want: &RouteIntent) -> Result<(), String> {
        for p in self.installed.prefixes.clone() {
            if !want.prefixes.contains(&p) {
                let _ = ip(&[
                    family(&p),
                    "route",
                    "del",
                    &p.to_string(),
                    "dev",
                    &self.ifname,
                ]);
                self.installed.prefixes.retain(|x| *x != p);
            }
        }
        for p in &want.prefixes {
            if !self.installed.prefixes.contains(p) {
                ip(&[
                    family(p),
                    "route",
                    "replace",
                    &p.to_string(),
                    "dev",
                    &self.ifname,
                ])?;
                self.installed.prefixes.push(*p);
            }
        }
        if self.installed.exit != want.exit {
            self.apply_exit(want.exit.as_ref())?;
        }
        if want.forwarding && !self.installed.forwarding {
            sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            let _ = sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
            self.installed.forwarding = true;
        }
        Ok(())
    }

    /// Forgets what was installed through the interface (its routes went with it: it was
    /// created anew, or its addresses flushed), so the next [`Routing::apply`] installs all
    /// again. Forwarding is a host setting and stays known.
    /// The exit's rules and blackhole do not go through the interface: they stay known.
    pub fn forget(&mut self) {
        self.installed = RouteIntent {
            prefixes: Vec::new(),
            exit: self.installed.exit.take().map(|e| ExitRoute {
                through: false,
                ..e
            }),
            forwarding: self.installed.forwarding,
        };
    }

    /// Forgets the exit's policy routing too (it was changed behind rn's back): the next
    /// [`Routing::apply`] removes what is left of it and installs it whole.
    pub fn forget_all(&mut self) {
        self.forget();
        self.installed.exit = None;
    }

    /// Removes everything rn installed (forwarding is left as it is: other services may
    /// rely on it).
    pub fn clear(&mut self) {
        let empty = RouteIntent {
            forwarding: self.installed.forwarding,
            ..RouteIntent::default()
        };
        let _ = self.apply(&empty);
    }
}
