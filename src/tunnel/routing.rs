//! Routes through the mesh interface: prefixes behind subnet routers, the policy routing of a
//! chosen exit (on a firewall mark, like `wg-quick`, so the tunnel's own packets keep using the
//! main table and the exit's underlay endpoint stays reachable), and IP forwarding on routers
//! and exits. Applied with `ip` and `/proc/sys`.
//!
//! A chosen exit fails closed: its table holds a blackhole default route behind the route
//! through the interface, and once the mark's rule and the blackhole are in place, no change
//! made here removes either of them before its replacement is in — installing adds first and
//! removes what is no longer wanted after, and a failed step leaves them standing.

use std::process::Command;

use super::{ExitRoute, RouteIntent};
use crate::ledger::types::Cidr;

/// Rule priorities rn owns (per family): the main-table lookups for the mesh, for the local
/// networks, then the mark's table. The mesh and the LAN rules need priorities of their own:
/// the kernel takes a rule without a destination for one that exists when a rule with the same
/// priority, table and options has one, and refuses it.
const PRIO_MESH: &str = "31999";
const PRIO_LAN: &str = "32000";
const PRIO_MARK: &str = "32001";
const PRIORITIES: [&str; 3] = [PRIO_MARK, PRIO_LAN, PRIO_MESH];

/// The blackhole default route's metric: the largest, so the route through the interface,
/// while there is one, always comes first.
const BLACKHOLE_METRIC: &str = "4294967295";

/// How many rules at one of rn's priorities are looked at, at most (a loop bound).
const MAX_RULES: usize = 256;

/// What routing is done through: `ip` and `/proc/sys` on the host, a simulation in tests.
pub(super) trait Host: Send {
    /// Runs `ip ARGS`: its standard output, or its error.
    fn ip(&self, args: &[&str]) -> Result<String, String>;
    /// Writes a `/proc/sys` file.
    fn sysctl(&self, path: &str, value: &str) -> Result<(), String>;
    /// The address families to install an exit's policy routing for: `-4`, and `-6` where the
    /// host has IPv6 at all (with it disabled everywhere, no IPv6 packet leaves anyway).
    fn families(&self) -> &'static [&'static str];
}

/// The machine itself.
struct System;

impl Host for System {
    fn ip(&self, args: &[&str]) -> Result<String, String> {
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

    fn sysctl(&self, path: &str, value: &str) -> Result<(), String> {
        std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))
    }

    fn families(&self) -> &'static [&'static str] {
        let disabled = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
            .map(|v| v.trim() == "1");
        match disabled {
            Ok(false) => &["-4", "-6"],
            _ => &["-4"],
        }
    }
}

/// Runs `ip ARGS` on the machine.
pub(super) fn ip(args: &[&str]) -> Result<(), String> {
    System.ip(args).map(drop)
}

fn family(c: &Cidr) -> &'static str {
    if c.is_v4() { "-4" } else { "-6" }
}

/// One policy-routing rule of a chosen exit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    fam: &'static str,
    prio: &'static str,
    /// Selector and action as `ip rule` reads them and prints them after `PRIO:`.
    text: String,
}

impl Rule {
    fn args(&self, verb: &'static str) -> Vec<&str> {
        let mut args = vec![self.fam, "rule", verb, "priority", self.prio];
        args.extend(self.text.split_whitespace());
        args
    }
}

/// The rules a chosen exit needs: the main-table lookups for the mesh's own destinations (and
/// with `allow_lan` for every specific route), each with the main table's default route
/// ignored; then the mark's table for everything not carrying the mark.
fn exit_rules(exit: &ExitRoute, fams: &[&'static str]) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut mesh = exit.mesh.clone();
    mesh.sort();
    mesh.dedup();
    for p in &mesh {
        let fam = family(p);
        if fams.contains(&fam) {
            rules.push(Rule {
                fam,
                prio: PRIO_MESH,
                text: format!("from all to {p} lookup main suppress_prefixlength 0"),
            });
        }
    }
    for &fam in fams {
        if exit.allow_lan {
            rules.push(Rule {
                fam,
                prio: PRIO_LAN,
                text: "from all lookup main suppress_prefixlength 0".into(),
            });
        }
        rules.push(Rule {
            fam,
            prio: PRIO_MARK,
            text: format!("not from all fwmark {:#x} lookup {}", exit.mark, exit.mark),
        });
    }
    rules
}

/// The routing state rn installed for one interface.
pub struct Routing {
    ifname: String,
    installed: RouteIntent,
    host: Box<dyn Host>,
    /// A stop leaves a chosen exit's block in place (the device failed: not the operator's act).
    keep_exit: bool,
}

impl Routing {
    /// Nothing installed yet.
    pub fn new(ifname: &str) -> Self {
        Self::on(ifname, Box::new(System))
    }

    fn on(ifname: &str, host: Box<dyn Host>) -> Self {
        Routing {
            ifname: ifname.to_owned(),
            installed: RouteIntent::default(),
            host,
            keep_exit: false,
        }
    }

    /// Adds `rule`; one already there (a previous agent's, or a retry's) is as good.
    fn add_rule(&self, rule: &Rule) -> Result<(), String> {
        match self.host.ip(&rule.args("add")) {
            Err(e) if e.contains("File exists") => Ok(()),
            r => r.map(drop),
        }
    }

    /// Removes every rule at rn's priorities of `fam` that is not in `wanted`: what an earlier
    /// choice, a previous agent or a hand left there. Read back, so nothing is missed.
    fn remove_unwanted(&self, fam: &'static str, wanted: &[Rule]) {
        for prio in PRIORITIES {
            let shown = self
                .host
                .ip(&[fam, "rule", "show", "priority", prio])
                .unwrap_or_default();
            for line in shown.lines().take(MAX_RULES) {
                let Some((_, text)) = line.split_once(':') else {
                    continue;
                };
                let rule = Rule {
                    fam,
                    prio,
                    text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                };
                if !rule.text.is_empty() && !wanted.contains(&rule) {
                    let _ = self.host.ip(&rule.args("del"));
                }
            }
        }
    }

    /// The route through the interface in the mark's table, ahead of the blackhole. IPv6 is
    /// best effort: an interface without IPv6 refuses it, and IPv6 then stays blackholed.
    fn route_through(&self, mark: u32) -> Result<(), String> {
        let table = mark.to_string();
        for &fam in self.host.families() {
            let r = self.host.ip(&[
                fam,
                "route",
                "replace",
                "default",
                "dev",
                &self.ifname,
                "table",
                &table,
            ]);
            if fam == "-4" {
                r?;
            }
        }
        Ok(())
    }

    /// Makes a chosen exit's policy routing exactly `want`, adding before removing: the
    /// blackhole first, then the route through the interface, then the rules; what is no longer
    /// wanted goes after. Lifting it (`None`) removes the rules, then the table.
    fn apply_exit(&mut self, want: Option<&ExitRoute>) -> Result<(), String> {
        let fams = self.host.families();
        let Some(want) = want else {
            if let Some(old) = self.installed.exit.take() {
                for &fam in fams {
                    self.remove_unwanted(fam, &[]);
                    let _ = self
                        .host
                        .ip(&[fam, "route", "flush", "table", &old.mark.to_string()]);
                }
            }
            return Ok(());
        };
        let table = want.mark.to_string();
        for &fam in fams {
            self.host.ip(&[
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
        if want.through {
            self.route_through(want.mark)?;
        }
        let rules = exit_rules(want, fams);
        for r in &rules {
            self.add_rule(r)?;
        }
        for &fam in fams {
            self.remove_unwanted(fam, &rules);
        }
        // Should a rule that reads back differently have been taken for a stale one.
        for r in &rules {
            self.add_rule(r)?;
        }
        if let Some(old) = &self.installed.exit
            && old.mark != want.mark
        {
            let old_table = old.mark.to_string();
            for &fam in fams {
                let _ = self.host.ip(&[fam, "route", "flush", "table", &old_table]);
            }
        }
        if !want.through {
            for &fam in fams {
                let _ = self.host.ip(&[
                    fam,
                    "route",
                    "del",
                    "default",
                    "dev",
                    &self.ifname,
                    "table",
                    &table,
                ]);
            }
        }
        self.installed.exit = Some(want.clone());
        if want.through {
            // As wg-quick sets it: reverse-path filtering takes the mark into account.
            self.host
                .sysctl("/proc/sys/net/ipv4/conf/all/src_valid_mark", "1")?;
        }
        Ok(())
    }

    /// Whether what rn installed for the exit is still there (read back): every rule, the
    /// blackhole and, while the exit is usable, the IPv4 route through the interface.
    pub fn holds(&self) -> bool {
        let Some(exit) = self.installed.exit.clone() else {
            return true;
        };
        let fams = self.host.families();
        let rules = exit_rules(&exit, fams);
        let table = exit.mark.to_string();
        let through = format!("default dev {} ", self.ifname);
        fams.iter().all(|&fam| {
            let mut shown = String::new();
            for prio in PRIORITIES {
                shown += &self
                    .host
                    .ip(&[fam, "rule", "show", "priority", prio])
                    .unwrap_or_default();
            }
            let present: Vec<String> = shown
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(_, t)| t.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            let routes = self
                .host
                .ip(&[fam, "route", "show", "table", &table])
                .unwrap_or_default();
            rules
                .iter()
                .filter(|r| r.fam == fam)
                .all(|r| present.contains(&r.text))
                && routes.lines().any(|l| l.starts_with("blackhole default"))
                && (!exit.through
                    || fam == "-6"
                    || routes
                        .lines()
                        .any(|l| format!("{l} ").starts_with(&through)))
        })
    }

    /// Makes the installed routes exactly `want`: stale routes first.
    pub fn apply(&mut self, want: &RouteIntent) -> Result<(), String> {
        for p in self.installed.prefixes.clone() {
            if !want.prefixes.contains(&p) {
                let _ = self.host.ip(&[
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
                self.host.ip(&[
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
            self.host.sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            let _ = self
                .host
                .sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
            self.installed.forwarding = true;
        }
        Ok(())
    }

    /// Forgets what was installed through the interface (its routes went with it: it was
    /// created anew, or its addresses flushed), so the next [`Routing::apply`] installs all
    /// again. Forwarding is a host setting and stays known. The exit's rules and blackhole do
    /// not go through the interface: they stay known.
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
    /// [`Routing::apply`] installs it whole, adding before removing what is stale.
    pub fn forget_all(&mut self) {
        self.forget();
        self.installed.exit = None;
    }

    /// Makes [`Routing::clear`] leave a chosen exit's block in place (the blackhole and the
    /// rules): the device stopped by itself, which is not the operator lifting it.
    pub fn keep_exit_on_clear(&mut self) {
        self.keep_exit = true;
    }

    /// Removes everything rn installed (forwarding is left as it is: other services may rely
    /// on it), a chosen exit's block too unless told to keep it.
    pub fn clear(&mut self) {
        let exit = if self.keep_exit {
            self.installed.exit.clone().map(|e| ExitRoute {
                through: false,
                ..e
            })
        } else {
            None
        };
        let empty = RouteIntent {
            prefixes: Vec::new(),
            exit,
            forwarding: self.installed.forwarding,
        };
        let _ = self.apply(&empty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// A simulated kernel: rules per family, route tables, and every moment at which a chosen
    /// exit's block (the mark's rule and the blackhole) was missing once it had been complete.
    #[derive(Default)]
    struct Kernel {
        /// (family, priority, text as `ip rule show` prints it)
        rules: Vec<(String, String, String)>,
        /// (family, table) -> routes as `ip route show` prints them
        tables: BTreeMap<(String, String), Vec<String>>,
        /// The block to hold: (mark's rule text, table); `complete` once it held.
        guard: Option<(String, String)>,
        complete: bool,
        gaps: Vec<String>,
        commands: Vec<String>,
        /// Fail the command with this index (counting from 0).
        fail_at: Option<usize>,
        /// IPv6 refuses routes through the interface (disabled on it).
        v6_off_on_iface: bool,
        sysctls: Vec<String>,
    }

    impl Kernel {
        fn blocked(&self, fam: &str) -> bool {
            let Some((rule, table)) = &self.guard else {
                return true;
            };
            self.rules
                .iter()
                .any(|(f, p, t)| f == fam && p == PRIO_MARK && t == rule)
                && self
                    .tables
                    .get(&(fam.to_owned(), table.clone()))
                    .is_some_and(|r| r.iter().any(|l| l.starts_with("blackhole default")))
        }

        fn run(&mut self, args: &[&str]) -> Result<String, String> {
            let n = self.commands.len();
            self.commands.push(args.join(" "));
            if self.fail_at == Some(n) {
                return Err(format!("ip {}: injected failure", args.join(" ")));
            }
            let fam = args[0].to_owned();
            let words = |from: usize| args[from..].join(" ");
            let out = match &args[1..] {
                ["rule", "add", "priority", prio, ..] => {
                    let r = (fam.clone(), (*prio).to_owned(), words(5));
                    // As the kernel compares: a rule without a destination "exists" when one
                    // with the same priority and the rest, but with a destination, does.
                    let without_to = |t: &str| {
                        let w: Vec<&str> = t.split(' ').collect();
                        match w.iter().position(|x| *x == "to") {
                            Some(i) => [&w[..i], &w[i + 2..]].concat().join(" "),
                            None => t.to_owned(),
                        }
                    };
                    if self.rules.iter().any(|(f, p, t)| {
                        *f == r.0
                            && *p == r.1
                            && (*t == r.2 || (!r.2.contains(" to ") && without_to(t) == r.2))
                    }) {
                        return Err("RTNETLINK answers: File exists".into());
                    }
                    self.rules.push(r);
                    String::new()
                }
                ["rule", "del", "priority", prio, ..] => {
                    let text = words(5);
                    let i = self
                        .rules
                        .iter()
                        .position(|(f, p, t)| {
                            *f == fam && p == prio && (text.is_empty() || *t == text)
                        })
                        .ok_or("RTNETLINK answers: No such file or directory")?;
                    self.rules.remove(i);
                    String::new()
                }
                ["rule", "show", "priority", prio] => self
                    .rules
                    .iter()
                    .filter(|(f, p, _)| *f == fam && p == prio)
                    .map(|(_, p, t)| format!("{p}:\t{t} \n"))
                    .collect(),
                [
                    "route",
                    "replace",
                    "blackhole",
                    "default",
                    "metric",
                    m,
                    "table",
                    t,
                ] => {
                    let table = self
                        .tables
                        .entry((fam.clone(), (*t).to_owned()))
                        .or_default();
                    table.retain(|l| !l.starts_with("blackhole"));
                    table.push(format!("blackhole default metric {m}"));
                    String::new()
                }
                ["route", "replace", "default", "dev", dev, "table", t] => {
                    if fam == "-6" && self.v6_off_on_iface {
                        return Err("RTNETLINK answers: Permission denied".into());
                    }
                    let table = self
                        .tables
                        .entry((fam.clone(), (*t).to_owned()))
                        .or_default();
                    table.retain(|l| !l.starts_with("default dev"));
                    table.insert(0, format!("default dev {dev} scope link"));
                    String::new()
                }
                ["route", "del", "default", "dev", dev, "table", t] => {
                    let table = self
                        .tables
                        .entry((fam.clone(), (*t).to_owned()))
                        .or_default();
                    let want = format!("default dev {dev} scope link");
                    let i = table
                        .iter()
                        .position(|l| *l == want)
                        .ok_or("RTNETLINK answers: No such process")?;
                    table.remove(i);
                    String::new()
                }
                ["route", "flush", "table", t] => {
                    self.tables.remove(&(fam.clone(), (*t).to_owned()));
                    String::new()
                }
                ["route", "show", "table", t] => self
                    .tables
                    .get(&(fam.clone(), (*t).to_owned()))
                    .map(|r| r.iter().map(|l| format!("{l} \n")).collect())
                    .unwrap_or_default(),
                ["route", "replace" | "del", _, "dev", _] => String::new(),
                other => panic!("unexpected ip command: {other:?}"),
            };
            if self.guard.is_some() {
                let held = ["-4", "-6"].iter().all(|f| self.blocked(f));
                if self.complete && !held {
                    self.gaps.push(args.join(" "));
                }
                self.complete |= held;
            }
            Ok(out)
        }
    }

    struct Fake(Arc<Mutex<Kernel>>);

    impl Host for Fake {
        fn ip(&self, args: &[&str]) -> Result<String, String> {
            self.0.lock().unwrap().run(args)
        }
        fn sysctl(&self, path: &str, value: &str) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .sysctls
                .push(format!("{path}={value}"));
            Ok(())
        }
        fn families(&self) -> &'static [&'static str] {
            &["-4", "-6"]
        }
    }

    fn routing() -> (Routing, Arc<Mutex<Kernel>>) {
        let k = Arc::new(Mutex::new(Kernel::default()));
        (Routing::on("rn0", Box::new(Fake(k.clone()))), k)
    }

    fn exit(mark: u32, through: bool, allow_lan: bool, mesh: &[&str]) -> RouteIntent {
        RouteIntent {
            prefixes: Vec::new(),
            exit: Some(ExitRoute {
                mark,
                through,
                mesh: mesh.iter().map(|p| p.parse().unwrap()).collect(),
                allow_lan,
            }),
            forwarding: false,
        }
    }

    /// Every rule at rn's priorities, as `ip rule show` would list them.
    fn rules(k: &Arc<Mutex<Kernel>>) -> Vec<String> {
        let mut r: Vec<String> = k
            .lock()
            .unwrap()
            .rules
            .iter()
            .map(|(f, p, t)| format!("{f} {p}: {t}"))
            .collect();
        r.sort();
        r
    }

    fn guard(k: &Arc<Mutex<Kernel>>, mark: u32) {
        let mut k = k.lock().unwrap();
        k.guard = Some((
            format!("not from all fwmark {mark:#x} lookup {mark}"),
            mark.to_string(),
        ));
    }

    #[test]
    fn an_exit_is_installed_whole_and_the_block_never_opens_on_any_change() {
        let (mut r, k) = routing();
        guard(&k, 51820);
        let overlay = ["100.96.0.0/16", "fd7a::/48"];
        r.apply(&exit(51820, true, false, &overlay)).unwrap();
        assert!(k.lock().unwrap().complete, "the block is in place");
        assert_eq!(
            rules(&k),
            [
                "-4 31999: from all to 100.96.0.0/16 lookup main suppress_prefixlength 0",
                "-4 32001: not from all fwmark 0xca6c lookup 51820",
                "-6 31999: from all to fd7a::/48 lookup main suppress_prefixlength 0",
                "-6 32001: not from all fwmark 0xca6c lookup 51820",
            ]
        );
        assert_eq!(
            k.lock().unwrap().tables[&("-4".into(), "51820".into())],
            [
                "default dev rn0 scope link",
                "blackhole default metric 4294967295"
            ]
        );
        assert!(r.holds());

        // Every later change, and the re-installations of the agent's drift correction and of a
        // re-created interface, keep the block standing throughout.
        let steps: Vec<(&str, RouteIntent)> = vec![
            ("exit unusable", exit(51820, false, false, &overlay)),
            (
                "usable again, LAN allowed",
                exit(51820, true, true, &overlay),
            ),
            (
                "a routed prefix joins",
                exit(
                    51820,
                    true,
                    true,
                    &["100.96.0.0/16", "10.20.0.0/16", "fd7a::/48"],
                ),
            ),
            ("LAN no longer allowed", exit(51820, true, false, &overlay)),
        ];
        for (what, step) in &steps {
            r.apply(step).unwrap();
            assert!(r.holds(), "{what}");
        }
        r.forget();
        r.apply(&exit(51820, true, false, &overlay)).unwrap();
        r.forget_all();
        r.apply(&exit(51820, true, false, &overlay)).unwrap();
        assert!(r.holds());
        assert_eq!(k.lock().unwrap().gaps, Vec::<String>::new());
        assert_eq!(rules(&k).len(), 4, "{:?}", rules(&k));

        // The operator lifts it: nothing of rn's is left.
        r.apply(&RouteIntent::default()).unwrap();
        assert_eq!(rules(&k), Vec::<String>::new());
        assert!(k.lock().unwrap().tables.is_empty());
    }

    #[test]
    fn a_restart_finds_leftovers_and_replaces_them_without_a_gap() {
        let (mut r, k) = routing();
        // What an earlier agent left: a full block, and wg-quick's LAN rule, not wanted now.
        {
            let mut k = k.lock().unwrap();
            for f in ["-4", "-6"] {
                k.rules.push((
                    f.into(),
                    PRIO_LAN.into(),
                    "from all lookup main suppress_prefixlength 0".into(),
                ));
                k.rules.push((
                    f.into(),
                    PRIO_MARK.into(),
                    "not from all fwmark 0xca6c lookup 51820".into(),
                ));
                k.tables.insert(
                    (f.into(), "51820".into()),
                    vec!["blackhole default metric 4294967295".into()],
                );
            }
        }
        guard(&k, 51820);
        k.lock().unwrap().complete = true;
        r.apply(&exit(51820, false, false, &["100.96.0.0/16"]))
            .unwrap();
        assert_eq!(k.lock().unwrap().gaps, Vec::<String>::new());
        assert_eq!(
            rules(&k),
            [
                "-4 31999: from all to 100.96.0.0/16 lookup main suppress_prefixlength 0",
                "-4 32001: not from all fwmark 0xca6c lookup 51820",
                "-6 32001: not from all fwmark 0xca6c lookup 51820",
            ],
            "the stale LAN rule is gone"
        );
    }

    #[test]
    fn a_failed_step_leaves_the_block_standing_and_a_retry_completes() {
        // Fail each command of a change in turn: the block never opens, and the next apply
        // (the agent's retry) completes the change.
        let (mut probe, pk) = routing();
        let overlay = ["100.96.0.0/16"];
        probe.apply(&exit(51820, true, false, &overlay)).unwrap();
        let before = pk.lock().unwrap().commands.len();
        probe.apply(&exit(51820, false, true, &overlay)).unwrap();
        let change = pk.lock().unwrap().commands.len() - before;
        assert!(change > 5, "{change} commands");
        for fail in 0..change {
            let (mut r, k) = routing();
            r.apply(&exit(51820, true, false, &overlay)).unwrap();
            guard(&k, 51820);
            k.lock().unwrap().complete = true;
            let at = k.lock().unwrap().commands.len() + fail;
            k.lock().unwrap().fail_at = Some(at);
            let _ = r.apply(&exit(51820, false, true, &overlay));
            r.apply(&exit(51820, false, true, &overlay)).unwrap();
            assert!(r.holds(), "failing command {fail}");
            assert_eq!(
                k.lock().unwrap().gaps,
                Vec::<String>::new(),
                "failing command {fail}"
            );
        }
    }

    #[test]
    fn a_new_mark_is_in_place_before_the_old_one_goes() {
        let (mut r, k) = routing();
        r.apply(&exit(51820, true, false, &["100.96.0.0/16"]))
            .unwrap();
        // Watch both marks: at every moment at least one full block stands.
        let old_rule = "not from all fwmark 0xca6c lookup 51820";
        let before = k.lock().unwrap().commands.len();
        r.apply(&exit(4242, true, false, &["100.96.0.0/16"]))
            .unwrap();
        assert!(r.holds());
        let k = k.lock().unwrap();
        assert!(
            !k.rules.iter().any(|(_, _, t)| t == old_rule),
            "the old mark's rule is gone"
        );
        assert!(
            !k.tables.contains_key(&("-4".into(), "51820".into())),
            "its table too"
        );
        let commands = &k.commands[before..];
        let new_rule = commands
            .iter()
            .position(|c| c.contains("rule add") && c.contains("0x1092"));
        let old_gone = commands
            .iter()
            .position(|c| c.contains("rule del") && c.contains("0xca6c"));
        assert!(new_rule < old_gone, "{commands:?}");
    }

    #[test]
    fn ipv6_refused_on_the_interface_stays_blackholed_and_a_kept_exit_survives_a_stop() {
        let (mut r, k) = routing();
        k.lock().unwrap().v6_off_on_iface = true;
        r.apply(&exit(51820, true, false, &["100.96.0.0/16"]))
            .unwrap();
        assert!(r.holds(), "IPv4 through the exit, IPv6 blackholed");
        assert_eq!(
            k.lock().unwrap().tables[&("-6".into(), "51820".into())],
            ["blackhole default metric 4294967295"]
        );
        // The device failed: the stop keeps the block.
        r.keep_exit_on_clear();
        r.clear();
        let k = k.lock().unwrap();
        assert!(k.rules.iter().any(|(f, p, _)| f == "-4" && p == PRIO_MARK));
        assert_eq!(
            k.tables[&("-4".into(), "51820".into())],
            ["blackhole default metric 4294967295"]
        );
    }

    #[test]
    fn drift_is_seen_in_every_part_of_the_block() {
        let (mut r, k) = routing();
        r.apply(&exit(51820, true, true, &["100.96.0.0/16"]))
            .unwrap();
        assert!(r.holds());
        type Edit = fn(&mut Kernel);
        let edits: [(&str, Edit); 4] = [
            ("the mark's rule", |k| {
                k.rules.retain(|(_, p, _)| p != PRIO_MARK)
            }),
            ("a mesh rule", |k| {
                k.rules.retain(|(_, _, t)| !t.contains("100.96.0.0/16"))
            }),
            ("the blackhole", |k| {
                for t in k.tables.values_mut() {
                    t.retain(|l| !l.starts_with("blackhole"));
                }
            }),
            ("the route through", |k| {
                for t in k.tables.values_mut() {
                    t.retain(|l| !l.starts_with("default dev"));
                }
            }),
        ];
        for (what, edit) in edits {
            edit(&mut k.lock().unwrap());
            assert!(!r.holds(), "{what} deleted");
            r.forget_all();
            r.apply(&exit(51820, true, true, &["100.96.0.0/16"]))
                .unwrap();
            assert!(r.holds(), "{what} restored");
        }
    }
}
