//! The node agent (spec §5): verify the ledger, compile the policy, drive the tunnel and the
//! firewall from the result, and fail closed.
//!
//! Each reconcile computes a [`Plan`] as data from the ledger (pure), then applies it through
//! the tunnel and firewall traits and reads the interface back. Anything in doubt — ledger
//! unreadable, tampered, rolled back; this node revoked; a read-back that disagrees twice —
//! gives restricted mode: an interface with no peers and a drop-all mesh filter.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::Serialize;

use super::config::NodeConfig;
use super::control;
use crate::files;
use crate::firewall::{self, FilterIntent, Firewall};
use crate::keys::NodeSecret;
use crate::ledger::canonical::caps;
use crate::ledger::log::Carried;
use crate::ledger::model::NodeStatus;
use crate::ledger::store::{Mode, Store, StoreError};
use crate::ledger::types::{Cidr, Id, Sha256Digest};
use crate::policy::compile;
use crate::policy::compile::{ForwardRule, InboundRule};
use crate::tunnel::{self, InterfaceIntent, PeerConfig, RouteIntent, TunnelBackend};

/// How long a clean stop may take before the agent exits anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// How often the real interface is re-read to undo drift.
pub const DRIFT_INTERVAL: Duration = Duration::from_secs(10);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the node should look like, computed from the ledger alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `None` when trusted, else why restricted.
    pub restricted: Option<String>,
    /// The node's own overlay addresses, with the overlay prefix length.
    pub addresses: Vec<IpNet>,
    /// Peers by id.
    pub peers: Vec<(Id, PeerConfig)>,
    /// Inbound filter rules.
    pub inbound: Vec<InboundRule>,
    /// Forward filter rules.
    pub forward: Vec<ForwardRule>,
    /// Ledger epoch and root the plan comes from.
    pub epoch: u64,
    /// The ledger root.
    pub root: Option<Sha256Digest>,
    /// The pinned policy, if any.
    pub policy: Option<Sha256Digest>,
    /// The compiler's notes.
    pub notes: Vec<String>,
    /// Routes through the interface (router prefixes, exit default route, forwarding).
    pub routes: RouteIntent,
    /// Prefixes this node offers as a router (when it opted in).
    pub routes_offered: Vec<Cidr>,
    /// Prefixes used through routers: (prefix, router, rule).
    pub routes_used: Vec<(Cidr, Id, usize)>,
    /// The exit in use and the rule granting it.
    pub exit: Option<(Id, usize)>,
    /// Masquerade forwarded traffic.
    pub masquerade: bool,
}

impl Plan {
    fn restricted(reason: String, epoch: u64, root: Option<Sha256Digest>) -> Plan {
        Plan {
            restricted: Some(reason),
            addresses: Vec::new(),
            peers: Vec::new(),
            inbound: Vec::new(),
            forward: Vec::new(),
            epoch,
            root,
            policy: None,
            notes: Vec::new(),
            routes: RouteIntent::default(),
            routes_offered: Vec::new(),
            routes_used: Vec::new(),
            exit: None,
            masquerade: false,
        }
    }
}

/// The plan for `config`'s node from an opened store (or the reason it could not be opened).
pub fn plan(config: &NodeConfig, store: Result<&Store, String>) -> Plan {
    let store = match store {
        Ok(s) => s,
        Err(reason) => return Plan::restricted(reason, 0, None),
    };
    let state = store.state();
    let (epoch, root) = (state.epoch().get(), Some(state.root()));
    if let Mode::Restricted(r) = store.mode() {
        return Plan::restricted(format!("ledger restricted: {r}"), epoch, root);
    }
    let Some(me) = state.node(&config.node_id) else {
        return Plan::restricted(
            format!("node {} is not in the ledger (yet)", config.node_id),
            epoch,
            root,
        );
    };
    if me.status != NodeStatus::Active {
        let s = if me.status == NodeStatus::Revoked {
            "revoked"
        } else {
            "quarantined"
        };
        return Plan::restricted(
            format!("this node ({}) is {s} in the ledger", config.node_id),
            epoch,
            root,
        );
    }
    let intents = compile(
        store.policy_view(),
        state,
        &config.node_id,
        config.exit.as_ref(),
    );
    let params = state.params();
    let addresses = me
        .addresses
        .iter()
        .filter_map(|a| {
            let overlay = params.overlay_for(a)?;
            IpNet::new(a.net().addr(), overlay.net().prefix_len()).ok()
        })
        .collect();
    let keepalive = (config.keepalive_secs > 0).then_some(config.keepalive_secs);
    let peers = intents
        .peers
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                PeerConfig {
                    pubkey: p.pubkey,
                    allowed: p.allowed.clone(),
                    endpoint: config.endpoints.get(&p.id).copied(),
                    keepalive,
                },
            )
        })
        .collect();
    // Forwarding only where this node opted in and the ledger grants the capability.
    let serve_routes = config.serve_routes && !me.routes.is_empty();
    let serve_exit = config.serve_exit && me.exit;
    let forward: Vec<ForwardRule> = intents
        .forward
        .into_iter()
        .filter(|f| match f.to {
            crate::policy::compile::ForwardTo::Prefixes(_) => serve_routes,
            crate::policy::compile::ForwardTo::Internet => serve_exit,
        })
        .collect();
    let mut prefixes: Vec<Cidr> = intents.routes_used.iter().map(|(p, _, _)| *p).collect();
    prefixes.sort();
    prefixes.dedup();
    let exit = intents.exit.as_ref().map(|e| (e.node.clone(), e.rule));
    let mut notes = intents.notes;
    if config.serve_routes && me.routes.is_empty() {
        notes.push("serve_routes is on, but the ledger grants this node no routes".into());
    }
    if config.serve_exit && !me.exit {
        notes.push("serve_exit is on, but the ledger does not give this node exit: true".into());
    }
    Plan {
        restricted: None,
        addresses,
        peers,
        inbound: intents.inbound,
        forward,
        epoch,
        root,
        policy: state.policy().copied(),
        notes,
        routes: RouteIntent {
            prefixes,
            exit_mark: exit.as_ref().map(|_| config.fwmark),
            forwarding: serve_routes || serve_exit,
        },
        routes_offered: if serve_routes {
            me.routes.iter().copied().collect()
        } else {
            Vec::new()
        },
        routes_used: intents.routes_used,
        exit,
        masquerade: config.masquerade && (serve_routes || serve_exit),
    }
}

/// One peer as `rn node status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Node id.
    pub id: Id,
    /// Public key.
    pub pubkey: String,
    /// Allowed prefixes.
    pub allowed: Vec<Cidr>,
    /// Endpoint.
    pub endpoint: Option<String>,
    /// Last handshake, unix seconds.
    pub last_handshake: Option<u64>,
}

/// What the control socket reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The node.
    pub node_id: String,
    /// `trusted` or `restricted`.
    pub mode: String,
    /// Why restricted.
    pub reason: Option<String>,
    /// Ledger epoch.
    pub epoch: u64,
    /// Ledger root.
    pub root: Option<String>,
    /// Pinned policy.
    pub policy: Option<String>,
    /// Interface.
    pub interface: String,
    /// Tunnel backend.
    pub backend: String,
    /// Firewall backend.
    pub firewall: String,
    /// Peers.
    pub peers: Vec<PeerStatus>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Unix time of the last successful apply.
    pub last_apply: u64,
    /// Inbox files rejected since start.
    pub rejections: u64,
    /// Reconciles since start.
    pub reconciles: u64,
    /// Drift corrections since start.
    pub drift_corrections: u64,
    /// Compiler notes.
    pub notes: Vec<String>,
    /// Prefixes this node offers as a subnet router.
    pub routes_offered: Vec<String>,
    /// Prefixes reached through routers, with the router and the granting rule.
    pub routes_used: Vec<String>,
    /// The exit in use and why.
    pub exit: Option<String>,
}

/// Structured logs on stderr.
#[derive(Clone, Copy)]
pub struct Log {
    json: bool,
}

impl Log {
    /// Text or JSON lines.
    pub fn new(json: bool) -> Self {
        Log { json }
    }

    /// One event.
    pub fn event(&self, level: &str, msg: &str) {
        let now = unix_now();
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"ts": now, "level": level, "msg": msg})
            );
        } else {
            eprintln!("{} {level:<5} {msg}", crate::cli::output::utc(now));
        }
    }
}

/// Flags the signal handlers and the control socket set.
#[derive(Default)]
pub struct Flags {
    /// SIGTERM / SIGINT.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP or `rn node reload`.
    pub reload: Arc<AtomicBool>,
}

/// The agent.
pub struct Agent {
    config: NodeConfig,
    key: NodeSecret,
    tunnel: Box<dyn TunnelBackend>,
    firewall: Box<dyn Firewall>,
    log: Log,
    metrics_file: Option<PathBuf>,
    status: Arc<Mutex<Status>>,
    applied: Option<Plan>,
    rejections: u64,
    reconciles: u64,
    drift_corrections: u64,
    last_apply: u64,
    apply_ms: Arc<AtomicU64>,
    config_path: Option<PathBuf>,
}

impl Agent {
    /// Prepares an agent from its configuration (nothing touches the network yet).
    pub fn new(
        config: NodeConfig,
        log: Log,
        metrics_file: Option<PathBuf>,
    ) -> anyhow::Result<Agent> {
        let key = NodeSecret::load(&config.private_key)?;
        let tunnel = tunnel::open(config.backend, &config.interface, &config.memory_file)?;
        let firewall = firewall::open(config.firewall);
        Ok(Agent::with_backends(
            config,
            key,
            tunnel,
            firewall,
            log,
            metrics_file,
        ))
    }

    /// An agent over the given tunnel and firewall (tests inject fakes here).
    pub fn with_backends(
        config: NodeConfig,
        key: NodeSecret,
        tunnel: Box<dyn TunnelBackend>,
        firewall: Box<dyn Firewall>,
        log: Log,
        metrics_file: Option<PathBuf>,
    ) -> Agent {
        let status = Arc::new(Mutex::new(Status {
            node_id: config.node_id.to_string(),
            interface: config.interface.clone(),
            backend: tunnel.name().into(),
            firewall: firewall.name().into(),
            mode: "starting".into(),
            ..Status::default()
        }));
        Agent {
            config,
            key,
            tunnel,
            firewall,
            log,
            metrics_file,
            status,
            applied: None,
            rejections: 0,
            reconciles: 0,
            drift_corrections: 0,
            last_apply: 0,
            apply_ms: Arc::new(AtomicU64::new(0)),
            config_path: None,
        }
    }

    /// Where the config came from, so reloads can re-read it.
    pub fn with_config_path(mut self, path: &Path) -> Agent {
        self.config_path = Some(path.to_owned());
        self
    }

    /// The shared status (for the control socket).
    pub fn status(&self) -> Arc<Mutex<Status>> {
        self.status.clone()
    }

    fn inbox(&self) -> PathBuf {
        self.config.state_dir.join("inbox")
    }

    /// Applies every file in `inbox/` through the gate: accepted files are removed, rejected
    /// ones moved to `inbox/rejected/` (the store audits each rejection).
    fn process_inbox(&mut self, store: &mut Store) {
        let inbox = self.inbox();
        let Ok(entries) = fs::read_dir(&inbox) else {
            return;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        for path in names {
            let shown = format!(
                "inbox/{}",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            let result = files::read_capped(&path, caps::LOG)
                .map_err(|e| e.to_string())
                .and_then(|b| Carried::decode(&b).map_err(|e| e.to_string()))
                .and_then(|c| {
                    store
                        .apply_carried(&c, unix_now(), &shown)
                        .map(|(report, _)| report)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(r) => {
                    let _ = fs::remove_file(&path);
                    self.log.event(
                        "info",
                        &format!(
                            "{shown}: applied {} update(s), epoch {} -> {}",
                            r.committed.len(),
                            r.from_epoch,
                            r.to_epoch
                        ),
                    );
                }
                Err(e) => {
                    self.rejections += 1;
                    let rejected = inbox.join("rejected");
                    let _ = private_dir(&rejected);
                    if let Some(name) = path.file_name() {
                        let _ = fs::rename(&path, rejected.join(name));
                    }
                    self.log.event("warn", &format!("{shown}: rejected: {e}"));
                }
            }
        }
    }

    /// One full pass: ledger → plan → tunnel → read back → firewall.
    pub fn reconcile(&mut self) {
        self.reconciles += 1;
        let started = Instant::now();
        let opened = Store::open(
            &self.config.state_dir,
            Some(&self.config.genesis_root),
            unix_now(),
        );
        let mut store = match opened {
            Ok(s) => Ok(s),
            Err(e) => Err(store_reason(&e)),
        };
        if let Ok(s) = &mut store
            && *s.mode() == Mode::Trusted
        {
            self.process_inbox(s);
        }
        let plan = plan(&self.config, store.as_ref().map_err(Clone::clone));
        drop(store);
        let error = self.enforce(&plan).err();
        let final_plan = match &error {
            Some(e) => {
                self.log
                    .event("error", &format!("apply failed twice, restricting: {e}"));
                let r = Plan::restricted(
                    format!("tunnel or firewall did not take the configuration: {e}"),
                    plan.epoch,
                    plan.root,
                );
                if let Err(e2) = self.enforce(&r) {
                    self.log
                        .event("error", &format!("could not even restrict: {e2}"));
                }
                r
            }
            None => plan,
        };
        if self.applied.as_ref().map(|p| (&p.restricted, p.epoch))
            != Some((&final_plan.restricted, final_plan.epoch))
        {
            match &final_plan.restricted {
                None => self.log.event(
                    "info",
                    &format!(
                        "trusted at epoch {}: {} peer(s)",
                        final_plan.epoch,
                        final_plan.peers.len()
                    ),
                ),
                Some(r) => self.log.event("warn", &format!("RESTRICTED: {r}")),
            }
        }
        self.apply_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.applied = Some(final_plan);
        self.publish(error.map(|e| e.to_string()));
    }

    /// Applies `plan`, reads back, retries once; the error if it still disagrees. A
    /// restricted plan closes the firewall first, whatever the tunnel then does.
    fn enforce(&mut self, plan: &Plan) -> anyhow::Result<()> {
        let same_filter = self.applied.as_ref().is_some_and(|a| {
            a.restricted.is_some() == plan.restricted.is_some()
                && a.inbound == plan.inbound
                && a.forward == plan.forward
                && a.masquerade == plan.masquerade
        });
        if plan.restricted.is_some() && !same_filter {
            self.firewall
                .apply(&self.config.interface, &FilterIntent::DropAll)?;
        }
        // Routes that go away are removed before the peers change: no leak, no black hole.
        let old = self
            .applied
            .as_ref()
            .map(|p| p.routes.clone())
            .unwrap_or_default();
        let shrunk = RouteIntent {
            prefixes: old
                .prefixes
                .iter()
                .filter(|p| plan.routes.prefixes.contains(p))
                .copied()
                .collect(),
            exit_mark: old.exit_mark.filter(|m| plan.routes.exit_mark == Some(*m)),
            forwarding: old.forwarding && plan.routes.forwarding,
        };
        if shrunk != old {
            self.tunnel.apply_routes(&shrunk)?;
        }
        let peers: Vec<PeerConfig> = plan.peers.iter().map(|(_, p)| p.clone()).collect();
        let intent = InterfaceIntent {
            name: &self.config.interface,
            key: &self.key,
            listen_port: self.config.listen_port,
            addresses: plan.addresses.clone(),
            peers: peers.clone(),
            fwmark: plan.routes.exit_mark,
        };
        let mut last = String::new();
        for attempt in 0..2 {
            let needs = match self.tunnel.observe() {
                Ok(o) => {
                    !o.differences(self.config.listen_port, &peers).is_empty()
                        || self.applied.is_none()
                }
                Err(_) => true,
            };
            if needs {
                self.log.event(
                    "info",
                    &format!(
                        "configuring {} with {} peer(s)",
                        self.config.interface,
                        peers.len()
                    ),
                );
                if let Err(e) = self.tunnel.apply(&intent) {
                    last = e.to_string();
                    continue;
                }
            }
            // Never assume the backend did what it said: read it back.
            match self.tunnel.observe() {
                Ok(o) => {
                    let d = o.differences(self.config.listen_port, &peers);
                    if d.is_empty() {
                        last.clear();
                        break;
                    }
                    last = format!(
                        "read-back differs (attempt {}): {}",
                        attempt + 1,
                        d.join("; ")
                    );
                }
                Err(e) => last = e.to_string(),
            }
        }
        if !last.is_empty() {
            anyhow::bail!(last);
        }
        if plan.restricted.is_none() && !same_filter {
            self.firewall.apply(
                &self.config.interface,
                &FilterIntent::Rules {
                    inbound: &plan.inbound,
                    forward: &plan.forward,
                    masquerade: plan.masquerade,
                },
            )?;
        }
        if self
            .applied
            .as_ref()
            .is_none_or(|a| a.routes != plan.routes)
            || shrunk != plan.routes
        {
            self.tunnel.apply_routes(&plan.routes)?;
        }
        self.last_apply = unix_now();
        Ok(())
    }

    /// Re-reads the interface; undoes anything changed behind rn's back.
    pub fn undo_drift(&mut self) {
        let Some(plan) = self.applied.clone() else {
            return;
        };
        let peers: Vec<PeerConfig> = plan.peers.iter().map(|(_, p)| p.clone()).collect();
        match self.tunnel.observe() {
            Ok(o) => {
                let d = o.differences(self.config.listen_port, &peers);
                if !d.is_empty() {
                    self.drift_corrections += 1;
                    self.log
                        .event("warn", &format!("drift: {}; re-applying", d.join("; ")));
                    if let Err(e) = self.enforce(&plan) {
                        self.log
                            .event("error", &format!("drift correction failed: {e}"));
                    }
                }
            }
            Err(e) => self
                .log
                .event("warn", &format!("cannot read the interface: {e}")),
        }
        self.publish(None);
    }

    fn publish(&self, error: Option<String>) {
        let Some(plan) = &self.applied else { return };
        let observed: HashMap<_, _> = self
            .tunnel
            .observe()
            .map(|o| o.peers.into_iter().map(|p| (p.pubkey, p)).collect())
            .unwrap_or_default();
        let peers = plan
            .peers
            .iter()
            .map(|(id, p)| PeerStatus {
                id: id.clone(),
                pubkey: p.pubkey.to_string(),
                allowed: p.allowed.clone(),
                endpoint: p.endpoint.map(|e| e.to_string()),
                last_handshake: observed.get(&p.pubkey).and_then(|o| o.last_handshake),
            })
            .collect();
        if let Ok(mut s) = self.status.lock() {
            s.mode = if plan.restricted.is_some() {
                "restricted"
            } else {
                "trusted"
            }
            .into();
            s.reason = plan.restricted.clone();
            s.epoch = plan.epoch;
            s.root = plan.root.map(|r| r.to_string());
            s.policy = plan.policy.map(|p| p.to_string());
            s.peers = peers;
            if error.is_some() {
                s.last_error = error;
            }
            s.last_apply = self.last_apply;
            s.rejections = self.rejections;
            s.reconciles = self.reconciles;
            s.drift_corrections = self.drift_corrections;
            s.notes = plan.notes.clone();
            s.routes_offered = plan.routes_offered.iter().map(|c| c.to_string()).collect();
            s.routes_used = plan
                .routes_used
                .iter()
                .map(|(p, r, rule)| format!("{p} via {r} (granted by rule {rule})"))
                .collect();
            s.exit = plan
                .exit
                .as_ref()
                .map(|(e, rule)| format!("{e} (granted by rule {rule})"));
        }
        if let Some(path) = &self.metrics_file {
            let _ = files::write_atomic(path, self.metrics(plan).as_bytes(), 0o644, true);
        }
    }

    fn metrics(&self, plan: &Plan) -> String {
        let node = &self.config.node_id;
        format!(
            "# HELP rn_ledger_epoch Ledger epoch the node enforces.\n# TYPE rn_ledger_epoch gauge\nrn_ledger_epoch{{node=\"{node}\"}} {}\n\
             # HELP rn_restricted 1 when the node is restricted (fails closed).\n# TYPE rn_restricted gauge\nrn_restricted{{node=\"{node}\"}} {}\n\
             # HELP rn_peers Peers configured on the mesh interface.\n# TYPE rn_peers gauge\nrn_peers{{node=\"{node}\"}} {}\n\
             # HELP rn_last_apply_timestamp_seconds Unix time of the last successful apply.\n# TYPE rn_last_apply_timestamp_seconds gauge\nrn_last_apply_timestamp_seconds{{node=\"{node}\"}} {}\n\
             # HELP rn_last_reconcile_milliseconds Duration of the last reconcile.\n# TYPE rn_last_reconcile_milliseconds gauge\nrn_last_reconcile_milliseconds{{node=\"{node}\"}} {}\n\
             # HELP rn_inbox_rejections_total Inbox files rejected by the gate.\n# TYPE rn_inbox_rejections_total counter\nrn_inbox_rejections_total{{node=\"{node}\"}} {}\n\
             # HELP rn_drift_corrections_total Times the interface was changed behind rn and restored.\n# TYPE rn_drift_corrections_total counter\nrn_drift_corrections_total{{node=\"{node}\"}} {}\n",
            plan.epoch,
            u8::from(plan.restricted.is_some()),
            plan.peers.len(),
            self.last_apply,
            self.apply_ms.load(Ordering::Relaxed),
            self.rejections,
            self.drift_corrections,
        )
    }

    /// Re-reads the config file (SIGHUP, `rn node reload`, `rn node exit`): the chosen exit,
    /// endpoints, keepalive and router/exit opt-ins take effect at once; the interface, port,
    /// backend, firewall, state directory and pin only at the next start.
    fn reload_config(&mut self) {
        let Some(path) = self.config_path.clone() else {
            return;
        };
        match NodeConfig::load(&path) {
            Ok(new) => {
                let fixed = |c: &NodeConfig| {
                    (
                        c.interface.clone(),
                        c.listen_port,
                        c.backend,
                        c.firewall,
                        c.state_dir.clone(),
                        c.genesis_root,
                        c.node_id.clone(),
                    )
                };
                if fixed(&new) != fixed(&self.config) {
                    self.log.event("warn", "the config changes the interface, port, backends, ledger or node: restart the agent to apply that");
                }
                let c = &mut self.config;
                c.exit = new.exit;
                c.endpoints = new.endpoints;
                c.keepalive_secs = new.keepalive_secs;
                c.serve_routes = new.serve_routes;
                c.serve_exit = new.serve_exit;
                c.masquerade = new.masquerade;
                c.fwmark = new.fwmark;
                self.log
                    .event("info", &format!("config reloaded from {}", path.display()));
            }
            Err(e) => self.log.event(
                "error",
                &format!("config reload failed, keeping the old one: {e}"),
            ),
        }
    }

    /// Stops cleanly: removes the interface (or every peer of an attached daemon) and rn's
    /// filter.
    pub fn shutdown(&mut self) {
        if let Err(e) = self.tunnel.shutdown() {
            self.log
                .event("error", &format!("removing the interface: {e}"));
        }
        if let Err(e) = self.firewall.clear() {
            self.log
                .event("error", &format!("removing the filter: {e}"));
        }
        self.log.event("info", "stopped");
    }

    /// Runs until SIGTERM: reconcile on every change of the state directory (inotify, else a
    /// 1 s poll), on SIGHUP or `rn node reload`, and undo drift every 10 s. Also stops when an
    /// embedded tunnel device stops by itself, which it does on SIGTERM or SIGINT when it reads
    /// the signal first.
    pub fn run(&mut self, flags: &Flags) -> anyhow::Result<Stopped> {
        let _ = private_dir(&self.inbox());
        let server = control::serve(
            &self.config.control_socket,
            self.status.clone(),
            flags.reload.clone(),
        );
        if let Err(e) = &server {
            self.log.event(
                "warn",
                &format!(
                    "control socket {}: {e}",
                    self.config.control_socket.display()
                ),
            );
        }
        let watch = Watch::new(&self.config.state_dir);
        if watch.is_none() {
            self.log.event(
                "warn",
                "inotify unavailable: polling the state directory every second",
            );
        }
        self.log.event(
            "info",
            &format!(
                "starting: node {}, interface {}, backend {}, firewall {}",
                self.config.node_id,
                self.config.interface,
                self.tunnel.name(),
                self.firewall.name()
            ),
        );
        // Stopping is bounded from the moment it is asked for: neither a backend that hangs
        // while tearing down nor a call that hangs in the loop keeps the agent (and its
        // interface name) alive.
        let (stop, log) = (flags.stop.clone(), self.log);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
            }
            std::thread::sleep(STOP_DEADLINE);
            log.event("error", "stopping took too long; exiting anyway");
            std::process::exit(1);
        });
        self.reconcile();
        let mut last_drift = Instant::now();
        let mut last_poll = Instant::now();
        let mut stopped = Stopped::Requested;
        let mut last_probe = Instant::now();
        while !flags.stop.load(Ordering::Relaxed) {
            let changed = match &watch {
                Some(w) => w.wait(Duration::from_millis(250)),
                None => {
                    std::thread::sleep(Duration::from_millis(250));
                    last_poll.elapsed() >= Duration::from_secs(1)
                }
            };
            if flags.stop.load(Ordering::Relaxed) {
                break;
            }
            let reload = flags.reload.swap(false, Ordering::Relaxed);
            let drift_due = last_drift.elapsed() >= DRIFT_INTERVAL;
            // Probed twice a second and before any work that talks to the device, so a device
            // that has stopped is never waited on.
            let work = changed || reload || drift_due;
            if (work || last_probe.elapsed() >= Duration::from_millis(500)) && {
                last_probe = Instant::now();
                self.tunnel.device_exited()
            } {
                self.log.event(
                    "warn",
                    &format!(
                        "the {} tunnel device stopped by itself (on SIGTERM or SIGINT, which it \
                         can receive before rn does, or when its socket is removed or its TUN \
                         device fails); stopping",
                        self.tunnel.name()
                    ),
                );
                stopped = Stopped::DeviceExited;
                break;
            }
            if reload {
                self.reload_config();
            }
            if changed || reload {
                last_poll = Instant::now();
                self.reconcile();
            }
            if drift_due {
                last_drift = Instant::now();
                self.undo_drift();
            }
        }
        if let Ok(path) = &server {
            let _ = fs::remove_file(path);
        }
        flags.stop.store(true, Ordering::Relaxed);
        self.shutdown();
        Ok(stopped)
    }
}

/// Why [`Agent::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT reached the agent.
    Requested,
    /// The embedded tunnel device stopped by itself (see [`TunnelBackend::device_exited`]).
    DeviceExited,
}

fn private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

fn store_reason(e: &StoreError) -> String {
    format!("ledger unreadable: {e}")
}

/// inotify on the state directory, its inbox and its policy directory.
struct Watch {
    fd: rustix::fd::OwnedFd,
}

impl Watch {
    fn new(dir: &Path) -> Option<Watch> {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
        let flags = inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::MOVED_FROM
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::DELETE
            | inotify::WatchFlags::ATTRIB;
        inotify::add_watch(&fd, dir, flags).ok()?;
        for sub in ["inbox", "policy"] {
            let p = dir.join(sub);
            let _ = private_dir(&p);
            inotify::add_watch(&fd, &p, flags).ok()?;
        }
        Some(Watch { fd })
    }

    /// Waits up to `timeout` for an event; drains them; true if there was one.
    fn wait(&self, timeout: Duration) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                let mut buf = [0u8; 4096];
                while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
                true
            }
            _ => false,
        }
    }
}
