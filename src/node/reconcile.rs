//! Reconcile: make the tunnel, the routes and the firewall hold a [`Plan`], changing only what
//! differs, and read the interface back.
//!
//! The interface is read back, compared with the plan as a typed [`Diff`], and only that diff
//! is applied: an unrelated ledger change never touches an existing peer, so its WireGuard
//! session, counters and learned endpoint stay. The same diff undoes drift.

use crate::firewall::{FilterIntent, Firewall};
use crate::keys::NodeSecret;
use crate::ledger::types::TransportKey;
use crate::tunnel::{
    DeviceStop, Diff, InterfaceIntent, Observed, PeerConfig, TunnelBackend, TunnelError,
};

use super::plan::Plan;
use super::status::Log;

/// What one [`Dataplane::enforce`] changed, as data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforced {
    /// The diff applied to the interface (empty when it already held the plan).
    pub diff: Diff,
    /// The filter was loaded.
    pub filter: bool,
    /// The routes were changed.
    pub routes: bool,
}

/// The interface settings that come from the node's configuration, not the ledger.
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// MTU.
    pub mtu: u32,
}

/// The tunnel and the firewall of one node, and the plan they hold.
pub struct Dataplane {
    tunnel: Box<dyn TunnelBackend>,
    firewall: Box<dyn Firewall>,
    key: NodeSecret,
    interface: Interface,
    applied: Option<Plan>,
    /// The filter must be loaded again whatever the plan (it drifted, or a reload asks).
    filter_stale: bool,
    /// The routes must be installed again whatever the plan (they drifted).
    routes_stale: bool,
    last_apply: u64,
}

impl Dataplane {
    /// A dataplane over the given backends; nothing is touched until the first enforce.
    pub fn new(
        tunnel: Box<dyn TunnelBackend>,
        firewall: Box<dyn Firewall>,
        key: NodeSecret,
        interface: Interface,
    ) -> Dataplane {
        Dataplane {
            tunnel,
            firewall,
            key,
            interface,
            applied: None,
            filter_stale: false,
            routes_stale: false,
            last_apply: 0,
        }
    }

    /// The tunnel backend's name.
    pub fn tunnel_name(&self) -> &'static str {
        self.tunnel.name()
    }

    /// The firewall backend's name.
    pub fn firewall_name(&self) -> &'static str {
        self.firewall.name()
    }

    /// The node's public key, as the interface is given it.
    pub fn public_key(&self) -> TransportKey {
        self.key.public()
    }

    /// Replaces the node's key: the next enforce puts it on the interface.
    pub fn set_key(&mut self, key: NodeSecret) {
        self.key = key;
    }

    /// The plan last enforced (or the restricted plan that replaced it).
    pub fn applied(&self) -> Option<&Plan> {
        self.applied.as_ref()
    }

    /// Unix time of the last successful enforce.
    pub fn last_apply(&self) -> u64 {
        self.last_apply
    }

    /// Records `plan` as the one in force (after [`Dataplane::enforce`], successful or not).
    pub fn set_applied(&mut self, plan: Plan) {
        self.applied = Some(plan);
    }

    /// The interface as `plan` wants it.
    pub fn intent<'a>(&'a self, plan: &Plan) -> InterfaceIntent<'a> {
        intent(&self.key, &self.interface, plan)
    }

    /// Reads the interface back.
    pub fn observe(&self) -> Result<Observed, TunnelError> {
        self.tunnel.observe()
    }

    /// What differs between the interface and the plan in force (drift); empty when none.
    pub fn drift(&self) -> Result<Diff, TunnelError> {
        let Some(plan) = &self.applied else {
            return Ok(Diff::default());
        };
        Ok(Diff::between(&self.tunnel.observe()?, &self.intent(plan)))
    }

    /// False when the interface is visibly gone (a cheap check, made four times a second).
    pub fn present(&self) -> bool {
        self.tunnel.present()
    }

    /// Whether the firewall still holds the filter last loaded (read back).
    pub fn filter_holds(&self) -> bool {
        self.firewall.holds()
    }

    /// Makes the next enforce load the filter again.
    pub fn forget_filter(&mut self) {
        self.filter_stale = true;
    }

    /// Whether the routes still hold what was installed: the policy routing of a chosen exit,
    /// its blackhole and its route through the interface (read back).
    pub fn routes_hold(&self) -> bool {
        self.tunnel.routes_hold()
    }

    /// Makes the coming stop leave a chosen exit's block in place (the device failed).
    pub fn keep_exit_on_stop(&mut self) {
        self.tunnel.keep_exit_on_stop();
    }

    /// Makes the next enforce install every route again.
    pub fn forget_routes(&mut self) {
        self.tunnel.forget_routes();
        self.routes_stale = true;
    }

    /// How an embedded device stopped by itself, if it did.
    pub fn device_stopped(&self) -> Option<DeviceStop> {
        self.tunnel.device_stopped()
    }

    /// Applies `plan` by diff, reads back, retries once; the error if it still disagrees. A
    /// restricted plan closes the firewall first, whatever the tunnel then does.
    pub fn enforce(&mut self, plan: &Plan, log: &Log) -> anyhow::Result<Enforced> {
        let mut done = Enforced::default();
        let same_filter = !self.filter_stale
            && self.applied.as_ref().is_some_and(|a| {
                a.restricted.is_some() == plan.restricted.is_some()
                    && a.inbound == plan.inbound
                    && a.forward == plan.forward
                    && a.masquerade == plan.masquerade
                    && a.serve == plan.serve
            });
        // Restricting: the filter closes first; if it cannot, the peers still go (below),
        // and the failure is reported after.
        let mut closing_failed = None;
        if plan.restricted.is_some() && !same_filter {
            match self
                .firewall
                .apply(&self.interface.name, &FilterIntent::DropAll)
            {
                Ok(()) => {
                    done.filter = true;
                    self.filter_stale = false;
                }
                Err(e) => closing_failed = Some(e),
            }
        }
        // Routes that go away are removed before the peers change: no route points at a peer
        // that is gone. A chosen exit's blackhole stays (RouteIntent::shrunk_to).
        let old = self
            .applied
            .as_ref()
            .map(|p| p.routes.clone())
            .unwrap_or_default();
        let shrunk = old.shrunk_to(&plan.routes);
        if shrunk != old {
            self.tunnel.apply_routes(&shrunk)?;
            done.routes = true;
        }
        let intent = intent(&self.key, &self.interface, plan);
        // Static endpoints the plan changed (or all, the first time) are sent even where the
        // interface holds another one: otherwise endpoints are the interface's to learn.
        let moved: Vec<PeerConfig> = plan
            .peers
            .iter()
            .map(|(_, p)| p)
            .filter(|p| {
                p.endpoint.is_some()
                    && self.applied.as_ref().is_none_or(|a| {
                        !a.peers
                            .iter()
                            .any(|(_, q)| q.pubkey == p.pubkey && q.endpoint == p.endpoint)
                    })
            })
            .cloned()
            .collect();
        // Read back, apply the diff, read back again: at most two applies, and the plan is
        // in force only when a read-back shows no difference.
        let mut last = String::new();
        for attempt in 1..=3 {
            let observed = match self.tunnel.observe() {
                Ok(o) => o,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let mut diff = Diff::between(&observed, &intent);
            if attempt == 1 {
                diff.send_endpoints(&observed, &moved);
            }
            if diff.is_empty() {
                last.clear();
                break;
            }
            if attempt > 1 {
                last = format!(
                    "read-back differs (attempt {}): {}",
                    attempt - 1,
                    diff.describe().join("; ")
                );
            }
            if attempt == 3 {
                break;
            }
            log.event(
                "info",
                &format!("configuring {}: {}", self.interface.name, diff.summary()),
            );
            if let Err(e) = self.tunnel.apply(&intent, &diff) {
                last = e.to_string();
                continue;
            }
            if done.diff.is_empty() {
                done.diff = diff;
            }
        }
        if !last.is_empty() {
            anyhow::bail!(last);
        }
        if let Some(e) = closing_failed {
            return Err(e.into());
        }
        if plan.restricted.is_none() && !same_filter {
            self.firewall.apply(
                &self.interface.name,
                &FilterIntent::Rules {
                    inbound: &plan.inbound,
                    forward: &plan.forward,
                    masquerade: plan.masquerade,
                    serve: plan.serve.as_ref().map(|s| (s.port, s.members.as_slice())),
                },
            )?;
            done.filter = true;
            self.filter_stale = false;
        }
        // A new interface, or one reconfigured whole, lost the routes through it.
        let routes_lost = done.diff.create || done.diff.device_settings();
        if self
            .applied
            .as_ref()
            .is_none_or(|a| a.routes != plan.routes)
            || shrunk != plan.routes
            || routes_lost
            || self.routes_stale
        {
            self.tunnel.apply_routes(&plan.routes)?;
            self.routes_stale = false;
            done.routes = true;
        }
        self.last_apply = crate::clock::now();
        Ok(done)
    }

    /// Removes the interface, then rn's filter — the filter only once the interface is gone,
    /// so that nothing is ever left carrying traffic without it.
    pub fn shutdown(&mut self, log: &Log) {
        match self.tunnel.shutdown() {
            Ok(()) => {
                if let Err(e) = self.firewall.clear() {
                    log.event("error", &format!("removing the filter: {e}"));
                }
            }
            Err(e) => log.event(
                "error",
                &format!("removing the interface: {e}; rn's filter stays in place"),
            ),
        }
    }
}

/// The interface as `plan` wants it, with the node's key and configured settings.
fn intent<'a>(key: &'a NodeSecret, interface: &'a Interface, plan: &Plan) -> InterfaceIntent<'a> {
    let mut addresses = plan.addresses.clone();
    addresses.sort();
    InterfaceIntent {
        name: &interface.name,
        key,
        listen_port: interface.listen_port,
        addresses,
        peers: plan
            .peers
            .iter()
            .map(|(_, p)| p.clone())
            .collect::<Vec<PeerConfig>>(),
        fwmark: plan.routes.exit.as_ref().map(|e| e.mark),
        mtu: interface.mtu,
    }
}
