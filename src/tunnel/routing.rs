//! Routes through the mesh interface: prefixes behind subnet routers, the default route
//! through an exit (policy routing on a firewall mark, like `wg-quick`, so the tunnel's own
//! packets keep using the main table and the exit's underlay endpoint stays reachable), and
//! IP forwarding on routers and exits. Applied with `ip` and `/proc/sys`; removal first.

use std::process::Command;

use super::RouteIntent;
use crate::ledger::types::Cidr;

/// Rule priorities rn owns (one pair per family).
const PRIO_SUPPRESS: &str = "32000";
const PRIO_MARK: &str = "32001";

/// The routing state rn installed for one interface.
pub struct Routing {
    ifname: String,
    installed: RouteIntent,
}

pub(super) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
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

fn sysctl(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))
}

impl Routing {
    /// Nothing installed yet.
    pub fn new(ifname: &str) -> Self {
        Routing {
            ifname: ifname.to_owned(),
            installed: RouteIntent::default(),
        }
    }

    fn remove_exit(&self, mark: u32) {
        let table = mark.to_string();
        for fam in ["-4", "-6"] {
            let _ = ip(&[fam, "rule", "del", "priority", PRIO_MARK]);
            let _ = ip(&[fam, "rule", "del", "priority", PRIO_SUPPRESS]);
            let _ = ip(&[fam, "route", "flush", "table", &table]);
        }
    }

    fn add_exit(&self, mark: u32) -> Result<(), String> {
        let table = mark.to_string();
        let hex = format!("{mark:#x}");
        sysctl("/proc/sys/net/ipv4/conf/all/src_valid_mark", "1")?;
        for fam in ["-4", "-6"] {
            let steps: [&[&str]; 3] = [
                &[
                    fam,
                    "route",
                    "replace",
                    "default",
                    "dev",
                    &self.ifname,
                    "table",
                    &table,
                ],
                &[
                    fam, "rule", "add", "not", "fwmark", &hex, "table", &table, "priority",
                    PRIO_MARK,
                ],
                &[
                    fam,
                    "rule",
                    "add",
                    "table",
                    "main",
                    "suppress_prefixlength",
                    "0",
                    "priority",
                    PRIO_SUPPRESS,
                ],
            ];
            for step in steps {
                match ip(step) {
                    Ok(()) => {}
                    // IPv6 only where the host has it.
                    Err(_) if fam == "-6" => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Makes the installed routes exactly `want`: stale routes and a dropped exit go first.
    pub fn apply(&mut self, want: &RouteIntent) -> Result<(), String> {
        if self.installed.exit_mark != want.exit_mark
            && let Some(mark) = self.installed.exit_mark
        {
            self.remove_exit(mark);
            self.installed.exit_mark = None;
        }
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
        if let Some(mark) = want.exit_mark
            && self.installed.exit_mark != Some(mark)
        {
            self.remove_exit(mark);
            self.add_exit(mark)?;
            self.installed.exit_mark = Some(mark);
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
    pub fn forget(&mut self) {
        self.installed = RouteIntent {
            forwarding: self.installed.forwarding,
            ..RouteIntent::default()
        };
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
