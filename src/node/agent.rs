//! The node agent (spec §5): verify the ledger, compile the policy, drive the tunnel and the
//! firewall from the result, and fail closed.
//!
//! Each reconcile computes a [`Plan`] as data from the ledger ([`super::plan`], pure), then
//! the [`Dataplane`] applies only what differs from the interface as read back
//! ([`super::reconcile`]). Anything in doubt — ledger unreadable, tampered, rolled back; this
//! node revoked; a read-back that disagrees twice; drift that cannot be undone — gives
//! restricted mode: an interface with no peers and a drop-all mesh filter.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use super::control;
use super::distribute::{self, Event, LedgerHandler, MeshPeer, Shared};
use super::plan::{Plan, plan};
use super::reconcile::{Dataplane, Interface};
use super::status::{Log, NodeMode, PeerStatus, Status};
use super::watch::Watch;
use crate::files;
use crate::firewall::{self, Firewall};
use crate::keys::NodeSecret;
use crate::ledger::canonical::caps;
use crate::ledger::store::{Mode, Store, StoreCache, StoreError};
use crate::tunnel::{self, BackendKind, DeviceStop, TunnelBackend};

/// Where a greeting after a re-key is sent (RFC 863's discard port): nothing listens there.
const DISCARD_PORT: u16 = 9;

/// How long a clean stop may take before the agent exits anyway.
pub const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// How often the real interface is re-read to undo drift.
pub const DRIFT_INTERVAL: Duration = Duration::from_secs(10);

/// Flags the signal handlers and the control socket set, and what ends the process when a
/// stop overruns its deadline.
pub struct Flags {
    /// SIGTERM / SIGINT.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP or `rn node reload`.
    pub reload: Arc<AtomicBool>,
    /// Ends the process (with the code its caller's exit table gives) when stopping takes
    /// longer than the deadline.
    pub overdue: fn() -> !,
}

impl Flags {
    /// Flags, both clear; `overdue` ends the process when a stop overruns its deadline.
    pub fn new(overdue: fn() -> !) -> Flags {
        Flags {
            stop: Arc::default(),
            reload: Arc::default(),
            overdue,
        }
    }
}

/// The agent.
pub struct Agent {
    config: NodeConfig,
    dataplane: Dataplane,
    log: Log,
    metrics_file: Option<PathBuf>,
    status: Arc<Mutex<Status>>,
    /// The ledger as last verified, so the next reconcile verifies only what was appended.
    ledger: Option<StoreCache>,
    /// The plan the ledger asks for (the dataplane may hold a restricted one instead, when it
    /// refused this one).
    wanted: Option<Plan>,
    rejections: u64,
    reconciles: u64,
    drift_corrections: u64,
    apply_ms: Arc<AtomicU64>,
    config_path: Option<PathBuf>,
    /// What the ledger server and the distribution thread see of the node.
    shared: Arc<Mutex<Shared>>,
    /// Set by the distribution thread when it learned endpoints: reconcile.
    wake: Arc<AtomicBool>,
    /// Tells the distribution thread of commits (while it runs).
    events: Option<std::sync::mpsc::SyncSender<Event>>,
    /// The ledger server (while the agent runs and serves).
    server: Option<crate::sync::serve::Server>,
    /// Where to serve the Prometheus metrics (`--metrics-listen`), and the server doing it.
    metrics_listen: Option<std::net::SocketAddr>,
    metrics_server: Option<crate::sync::serve::Server>,
    /// The interface's lock, held while the agent lives (see [`lock_interface`]).
    _lock: Option<fs::File>,
}

impl Agent {
    /// Prepares an agent from its configuration (nothing touches the network yet).
    pub fn new(
        config: NodeConfig,
        log: Log,
        metrics_file: Option<PathBuf>,
    ) -> anyhow::Result<Agent> {
        let lock = lock_interface(&config)?;
        let key = NodeSecret::load(&config.private_key)?;
        let tunnel = tunnel::open(config.backend, &config.interface, &config.memory_file)?;
        let firewall = firewall::open(config.firewall);
        Ok(Agent {
            _lock: Some(lock),
            ..Agent::with_backends(config, key, tunnel, firewall, log, metrics_file)
        })
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
            mode: NodeMode::Starting,
            version: env!("CARGO_PKG_VERSION").into(),
            commit: env!("RN_BUILD_COMMIT").into(),
            // The interval is the config's whether or not mirrors are listed (status never
            // shows 0), from the first status on (`rn node run --once` too).
            sync_interval: config.sync_interval,
            distribution: super::status::Distribution {
                serve_port: config.serve_port,
                fanout: config.fanout,
                ..Default::default()
            },
            ..Status::default()
        }));
        let interface = Interface {
            name: config.interface.clone(),
            listen_port: config.listen_port,
            mtu: config.mtu,
        };
        Agent {
            dataplane: Dataplane::new(tunnel, firewall, key, interface),
            config,
            log,
            metrics_file,
            status,
            ledger: None,
            wanted: None,
            rejections: 0,
            reconciles: 0,
            drift_corrections: 0,
            apply_ms: Arc::new(AtomicU64::new(0)),
            config_path: None,
            shared: Arc::default(),
            wake: Arc::default(),
            events: None,
            server: None,
            metrics_listen: None,
            metrics_server: None,
            _lock: None,
        }
    }

    /// Where the config came from, so reloads can re-read it.
    pub fn with_config_path(mut self, path: &Path) -> Agent {
        self.config_path = Some(path.to_owned());
        self
    }

    /// Serves the Prometheus metrics over HTTP on `addr` while the agent runs.
    pub fn with_metrics_listen(mut self, addr: Option<std::net::SocketAddr>) -> Agent {
        self.metrics_listen = addr;
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
                .and_then(|b| crate::policy::read_carried(&b).map_err(|e| e.to_string()))
                .and_then(|c| {
                    store
                        .apply_carried(&c, crate::clock::now(), &shown)
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

    /// Opens the ledger, verifying only the lines appended since the last reconcile when the
    /// verified prefix is unchanged (anything else is a full open).
    fn open_ledger(&mut self) -> Result<Store, StoreError> {
        Store::open_cached(
            &self.config.state_dir,
            Some(&self.config.genesis_root),
            crate::clock::now(),
            self.ledger.take(),
        )
    }

    /// One full pass: ledger → plan → tunnel → read back → firewall.
    pub fn reconcile(&mut self) {
        self.reconciles += 1;
        // A rebuilt state directory may lack its inbox.
        if self.config.state_dir.is_dir() {
            let _ = private_dir(&self.inbox());
        }
        let started = Instant::now();
        let mut store = self.open_ledger().map_err(|e| store_reason(&e));
        if let Ok(s) = &mut store
            && *s.mode() == Mode::Trusted
        {
            self.process_inbox(s);
        }
        let key_before = self.dataplane.public_key();
        let mut plan = self.check_key(plan(&self.config, store.as_ref().map_err(Clone::clone)));
        let rekeyed = self.dataplane.public_key() != key_before;
        if let Ok(mut shared) = self.shared.lock() {
            // Endpoints learned from peers, where node.json gives none.
            for (id, p) in plan.peers.iter_mut() {
                if p.endpoint.is_none()
                    && let Some((ep, _, _)) = shared.learned.get(id)
                {
                    p.endpoint = Some(*ep);
                }
            }
            match (&store, &plan.restricted) {
                (Ok(s), None) => shared.snapshot.get_or_insert_default().refresh(s),
                _ => shared.snapshot = None,
            }
        }
        self.ledger = store.ok().and_then(Store::into_cache);
        self.wanted = Some(plan.clone());
        let before = self.dataplane.applied().map(|p| p.epoch);
        let error = self.enforce_or_restrict(plan);
        self.apply_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let enforced = error.is_none();
        self.publish(error);
        if rekeyed && enforced {
            self.greet_peers();
        }
        // A new epoch enforced: tell peers (after publishing, so the peers told are this
        // epoch's: a peer just revoked is not among them).
        if let (Some(before), Some(now)) = (before, self.dataplane.applied())
            && now.restricted.is_none()
            && now.epoch > before
            && let Some(events) = &self.events
        {
            if let Ok(mut shared) = self.shared.lock() {
                shared.committed = true;
            }
            let _ = events.try_send(Event::Committed);
        }
    }

    /// After this node's own key changed: one empty datagram to each peer's overlay address,
    /// so that the interface starts a handshake under the new key at once. A peer that took
    /// the new key first has already tried to reach this node under it and, refused while the
    /// old key was in force, would otherwise wait for WireGuard's retry (5 s). What the peer's
    /// firewall does with the datagram does not matter; the handshake is the point. Not with
    /// the memory backend, which has no interface to route through.
    fn greet_peers(&self) {
        if self.config.backend == BackendKind::Memory {
            return;
        }
        let Some(plan) = &self.wanted else {
            return;
        };
        for (id, addresses) in &plan.peer_addresses {
            let Some(ip) = addresses.first() else {
                continue;
            };
            let local: std::net::IpAddr = if ip.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            let sent = std::net::UdpSocket::bind((local, 0))
                .and_then(|s| s.send_to(&[], (*ip, DISCARD_PORT)));
            if let Err(e) = sent {
                self.log.event(
                    "warn",
                    &format!("new key: could not start a handshake with {id} ({ip}): {e}"),
                );
            }
        }
    }

    /// The node's key against the ledger's: the same, the plan stands; the staged next key
    /// (`rn node rekey`), it becomes the key — the file replaces the old one and the interface
    /// takes it in this same pass, as the peers take the new key; the key file replaced by
    /// hand with the ledger's key, it is taken; anything else restricts the node.
    fn check_key(&mut self, plan: Plan) -> Plan {
        let Some(want) = plan.key else {
            return plan;
        };
        if want == self.dataplane.public_key() {
            return plan;
        }
        let staged = staged_key_path(&self.config.private_key);
        let promoted = NodeSecret::load(&staged)
            .map_err(|e| e.to_string())
            .and_then(|next| {
                if next.public() != want {
                    return Err(format!("the staged key {} is another one", next.public()));
                }
                fs::rename(&staged, &self.config.private_key)
                    .map_err(|e| format!("{}: {e}", self.config.private_key.display()))?;
                Ok(next)
            })
            .or_else(
                |staged_err| match NodeSecret::load(&self.config.private_key) {
                    Ok(file) if file.public() == want => Ok(file),
                    _ => Err(staged_err),
                },
            );
        match promoted {
            Ok(next) => {
                self.log.event(
                    "info",
                    &format!(
                        "the ledger holds the key {want}: it is this node's key now (was {})",
                        self.dataplane.public_key()
                    ),
                );
                self.dataplane.set_key(next);
                plan
            }
            Err(why) => Plan::restricted(
                format!(
                    "the ledger's key for this node is {want}, but the node holds {} and neither \
                     its key file {} nor a staged key matches ({why}): restore the key file, or \
                     stage a new key with 'rn node rekey' and have it proposed",
                    self.dataplane.public_key(),
                    self.config.private_key.display()
                ),
                plan.epoch,
                plan.root,
            )
            .holding_exit(&self.config),
        }
    }

    /// Enforces `plan`; when the dataplane does not take it, restricts instead. Logs every
    /// change of mode or epoch; returns the error, if any.
    fn enforce_or_restrict(&mut self, plan: Plan) -> Option<String> {
        let error = self.dataplane.enforce(&plan, &self.log).err();
        let final_plan = match &error {
            Some(e) => {
                self.log
                    .event("error", &format!("apply failed twice, restricting: {e}"));
                let r = Plan::restricted(
                    format!("tunnel or firewall did not take the configuration: {e}"),
                    plan.epoch,
                    plan.root,
                )
                .holding_exit(&self.config);
                if let Err(e2) = self.dataplane.enforce(&r, &self.log) {
                    self.log
                        .event("error", &format!("could not even restrict: {e2}"));
                }
                r
            }
            None => plan,
        };
        if self.dataplane.applied().map(|p| (&p.restricted, p.epoch))
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
        self.dataplane.set_applied(final_plan);
        error.map(|e| e.to_string())
    }

    /// Re-reads the interface; undoes anything changed behind rn's back (only what drifted),
    /// and restricts the node when that fails.
    pub fn undo_drift(&mut self) {
        let Some(applied) = self.dataplane.applied().cloned() else {
            return;
        };
        // A node restricted because its dataplane refused the plan retries the plan itself.
        if let Some(wanted) = self.wanted.clone()
            && wanted != applied
        {
            let error = self.enforce_or_restrict(wanted);
            self.publish(error);
            return;
        }
        let mut drifted = Vec::new();
        match self.dataplane.drift() {
            Ok(d) if d.is_empty() => {}
            Ok(d) => drifted.extend(d.describe()),
            Err(e) => drifted.push(format!("cannot read the interface: {e}")),
        }
        // The filter is read back too: one flushed or edited by hand is loaded again; one that
        // cannot be loaded restricts the node (no peers), never an unfiltered interface.
        if !self.dataplane.filter_holds() {
            drifted.push("the firewall table is not the one rn loaded".into());
            self.dataplane.forget_filter();
        }
        // So is the policy routing of a chosen exit: without it, internet traffic would leave
        // by the host's own default route.
        if !self.dataplane.routes_hold() {
            drifted.push("the exit's policy routing is not what rn installed".into());
            self.dataplane.forget_routes();
        }
        let error = if drifted.is_empty() {
            None
        } else {
            self.drift_corrections += 1;
            self.log
                .event("warn", &format!("drift: {}; restoring", drifted.join("; ")));
            self.enforce_or_restrict(applied)
        };
        self.publish(error);
    }

    fn publish(&self, error: Option<String>) {
        let Some(plan) = self.dataplane.applied() else {
            return;
        };
        let observed: HashMap<_, _> = self
            .dataplane
            .observe()
            .map(|o| o.peers.into_iter().map(|p| (p.pubkey, p)).collect())
            .unwrap_or_default();
        let peers = plan
            .peers
            .iter()
            .map(|(id, p)| {
                let o = observed.get(&p.pubkey);
                PeerStatus {
                    id: id.clone(),
                    pubkey: p.pubkey.to_string(),
                    allowed: p.allowed.clone(),
                    // The endpoint the interface reports, and only that: a configured one it
                    // does not hold is not in force.
                    endpoint: o.and_then(|o| o.endpoint).map(|e| e.to_string()),
                    last_handshake: o.and_then(|o| o.last_handshake),
                    rx_bytes: o.map_or(0, |o| o.rx_bytes),
                    tx_bytes: o.map_or(0, |o| o.tx_bytes),
                }
            })
            .collect();
        self.share(plan, &observed);
        if let Ok(mut s) = self.status.lock() {
            s.distribution.serving = self
                .server
                .as_ref()
                .map(|srv| srv.bound().iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            s.metrics_serving = self
                .metrics_server
                .as_ref()
                .map(|srv| srv.bound().iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            s.mode = if plan.restricted.is_some() {
                NodeMode::Restricted
            } else {
                NodeMode::Trusted
            };
            s.reason = plan.restricted.clone();
            s.epoch = plan.epoch;
            s.root = plan.root.map(|r| r.to_string());
            s.policy = plan.policy.map(|p| p.to_string());
            s.key = Some(self.dataplane.public_key().to_string());
            s.peers = peers;
            if error.is_some() {
                s.last_error = error;
            }
            s.last_apply = self.dataplane.last_apply();
            s.rejections = self.rejections;
            s.reconciles = self.reconciles;
            s.last_reconcile_ms = self.apply_ms.load(Ordering::Relaxed);
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
            s.exit_blocked = plan.exit_blocked.clone();
        }
        if let Some(path) = &self.metrics_file
            && let Ok(s) = self.status.lock()
        {
            let text = crate::node::status::prometheus(&s, crate::clock::now());
            let _ = files::write_atomic(path, text.as_bytes(), 0o644, true);
        }
    }

    /// Hands the server and the distribution thread what they need of the applied plan: the
    /// peers, the members, the endpoints answer, where to listen (nothing when restricted).
    fn share(
        &self,
        plan: &Plan,
        observed: &HashMap<crate::ledger::types::TransportKey, crate::tunnel::ObservedPeer>,
    ) {
        let trusted = plan.restricted.is_none();
        if let Ok(mut shared) = self.shared.lock() {
            if !trusted {
                shared.snapshot = None;
            }
            shared.members = plan
                .serve
                .iter()
                .flat_map(|s| s.members.iter().map(|c| c.net().addr()))
                .collect();
            shared.peers = plan
                .peers
                .iter()
                .map(|(id, p)| {
                    let o = observed.get(&p.pubkey);
                    MeshPeer {
                        id: id.clone(),
                        pubkey: p.pubkey,
                        addresses: plan
                            .peer_addresses
                            .iter()
                            .find(|(i, _)| i == id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default(),
                        endpoint: o.and_then(|o| o.endpoint).or(p.endpoint),
                        last_handshake: o.and_then(|o| o.last_handshake),
                        static_endpoint: self.config.endpoints.contains_key(id),
                    }
                })
                .collect();
            shared.endpoints = distribute::endpoints_answer(
                observed
                    .values()
                    .filter_map(|o| Some((o.pubkey, o.endpoint?, o.last_handshake?))),
            );
        }
        if let Some(server) = &self.server {
            server.listen_on(match (&plan.serve, trusted) {
                (Some(s), true) => plan
                    .addresses
                    .iter()
                    .map(|a| std::net::SocketAddr::new(a.addr(), s.port))
                    .collect(),
                _ => Vec::new(),
            });
        }
    }

    /// Re-reads the config file (SIGHUP, `rn node reload`, `rn node exit`) and the key file:
    /// the chosen exit, endpoints, keepalive, router/exit opt-ins and the key take effect at
    /// once; the interface, port, MTU, backend, firewall, state directory and pin only at the
    /// next start.
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
                        c.mtu,
                        (c.serve_port, c.fanout, c.sync_interval),
                        (c.mirrors.clone(), c.ca_file.clone()),
                    )
                };
                if fixed(&new) != fixed(&self.config) {
                    self.log.event("warn", "the config changes the interface, port, backends, ledger, node or distribution settings: restart the agent to apply that");
                }
                let c = &mut self.config;
                c.exit = new.exit;
                c.exit_allow_lan = new.exit_allow_lan;
                c.endpoints = new.endpoints;
                c.keepalive_secs = new.keepalive_secs;
                c.serve_routes = new.serve_routes;
                c.serve_exit = new.serve_exit;
                c.masquerade = new.masquerade;
                c.fwmark = new.fwmark;
                c.private_key = new.private_key;
                self.log
                    .event("info", &format!("config reloaded from {}", path.display()));
            }
            Err(e) => self.log.event(
                "error",
                &format!("config reload failed, keeping the old one: {e}"),
            ),
        }
        match NodeSecret::load(&self.config.private_key) {
            Ok(key) if key.public() != self.dataplane.public_key() => {
                self.log.event(
                    "info",
                    &format!(
                        "key reloaded from {}: {}",
                        self.config.private_key.display(),
                        key.public()
                    ),
                );
                self.dataplane.set_key(key);
            }
            Ok(_) => {}
            Err(e) => self.log.event(
                "error",
                &format!("key reload failed, keeping the old one: {e}"),
            ),
        }
    }

    /// What a status answer reads at the moment of the request: the interface, through a read
    /// handle of its own, and the addresses the ledger server listens on.
    fn live(&self) -> control::Live {
        control::Live {
            reader: tunnel::open(
                self.config.backend,
                &self.config.interface,
                &self.config.memory_file,
            )
            .ok()
            .map(Mutex::new),
            serving: self.server.as_ref().map(|s| s.listening()),
        }
    }

    /// Stops cleanly: removes the interface (or every peer of an attached daemon), then rn's
    /// filter.
    pub fn shutdown(&mut self) {
        self.dataplane.shutdown(&self.log);
        self.log.event("info", "stopped");
    }

    /// Runs until SIGTERM: reconcile on every change of the state directory (inotify, else a
    /// 1 s poll), on SIGHUP or `rn node reload`, and undo drift every 10 s. Also stops when an
    /// embedded tunnel device stops by itself, which it does on SIGTERM or SIGINT when it reads
    /// the signal first.
    pub fn run(&mut self, flags: &Flags) -> anyhow::Result<Stopped> {
        // Serving and pulling (spec §5a): the server answers on the overlay addresses once the
        // node is trusted; the distribution thread pulls, notifies and learns endpoints.
        let (events, received) = std::sync::mpsc::sync_channel(64);
        // Before the control socket: its status answers read where this server listens.
        if self.config.serve_port != 0 {
            let handler = Arc::new(LedgerHandler::new(self.shared.clone(), events.clone()));
            self.server = Some(crate::sync::serve::Server::spawn(
                handler,
                crate::sync::serve::Limits::default(),
                flags.stop.clone(),
            ));
        }
        let server = control::serve(
            &self.config.control_socket,
            self.status.clone(),
            flags.reload.clone(),
            self.live(),
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
        let mut watch = Watch::new(&self.config.state_dir);
        let mut dir_id = dir_identity(&self.config.state_dir);
        if watch.is_none() && dir_id.is_some() {
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
                self.dataplane.tunnel_name(),
                self.dataplane.firewall_name()
            ),
        );
        if let Some(addr) = self.metrics_listen {
            let server = crate::sync::serve::Server::spawn(
                Arc::new(MetricsHandler {
                    status: self.status.clone(),
                    // As the control socket: figures as of the request.
                    live: self.live(),
                }),
                crate::sync::serve::Limits {
                    connections: 8,
                    body_bytes: 0,
                    ..crate::sync::serve::Limits::default()
                },
                flags.stop.clone(),
            );
            server.listen_on(vec![addr]);
            self.log
                .event("info", &format!("metrics on http://{addr}/metrics"));
            self.metrics_server = Some(server);
        }
        if self.config.serve_port != 0 || !self.config.mirrors.is_empty() {
            let (config, log, status, shared, wake, stop) = (
                self.config.clone(),
                self.log,
                self.status.clone(),
                self.shared.clone(),
                self.wake.clone(),
                flags.stop.clone(),
            );
            self.events = Some(events);
            std::thread::spawn(move || {
                distribute::run(config, log, status, shared, received, wake, stop);
            });
        }
        // Stopping is bounded from the moment it is asked for: neither a backend that hangs
        // while tearing down nor a call that hangs in the loop keeps the agent (and its
        // interface name) alive.
        let (stop, log, overdue) = (flags.stop.clone(), self.log, flags.overdue);
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
            }
            std::thread::sleep(STOP_DEADLINE);
            if !done.load(Ordering::Relaxed) {
                log.event("error", "stopping took too long; exiting anyway");
                overdue();
            }
        });
        self.reconcile();
        let mut last_drift = Instant::now();
        let mut last_poll = Instant::now();
        let mut stopped = Stopped::Requested;
        let mut last_probe = Instant::now();
        let mut quick_restore = true;
        while !flags.stop.load(Ordering::Relaxed) {
            let mut changed = match &watch {
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
            changed |= self.wake.swap(false, Ordering::Relaxed);
            // The state directory is followed by its path: one moved away, replaced or
            // restored is watched anew and verified from the pin, like at a start.
            let id = dir_identity(&self.config.state_dir);
            if id != dir_id || reload {
                if id != dir_id {
                    self.log.event(
                        "info",
                        &format!(
                            "state directory {} {}: verifying it from the pin",
                            self.config.state_dir.display(),
                            if id.is_some() { "replaced" } else { "gone" }
                        ),
                    );
                }
                dir_id = id;
                watch = Watch::new(&self.config.state_dir);
                self.ledger = None;
                changed = true;
            }
            let drift_due = last_drift.elapsed() >= DRIFT_INTERVAL;
            // Probed four times a second and before any work that talks to the device, so a
            // device that has stopped is never waited on, and a stop it took is seen at once.
            let work = changed || reload || drift_due;
            let probe = work || last_probe.elapsed() >= Duration::from_millis(250);
            if probe {
                last_probe = Instant::now();
            }
            match probe.then(|| self.dataplane.device_stopped()).flatten() {
                // The device read SIGTERM or SIGINT before rn did: the stop that was asked for.
                Some(DeviceStop::Signal) => break,
                Some(DeviceStop::Failed) => {
                    self.log.event(
                        "warn",
                        &format!(
                            "the {} tunnel device stopped by itself (its UAPI socket was removed, \
                             or it failed); stopping",
                            self.dataplane.tunnel_name()
                        ),
                    );
                    stopped = Stopped::DeviceExited;
                    // Not the operator's stop: internet traffic stays blocked until the
                    // restarted agent takes over.
                    self.dataplane.keep_exit_on_stop();
                    break;
                }
                None => {}
            }
            if reload {
                self.reload_config();
                self.dataplane.forget_filter();
            }
            if changed || reload {
                last_poll = Instant::now();
                self.reconcile();
            }
            // An interface deleted from under the agent is restored at once, not at the next
            // drift check (unless the last restore failed: then at the drift checks only).
            let gone = probe && !self.dataplane.present();
            if drift_due || (gone && quick_restore) {
                last_drift = Instant::now();
                self.undo_drift();
                quick_restore = self.dataplane.present();
            }
        }
        if let Ok(path) = &server {
            let _ = fs::remove_file(path);
        }
        flags.stop.store(true, Ordering::Relaxed);
        self.shutdown();
        finished.store(true, Ordering::Relaxed);
        Ok(stopped)
    }
}

/// Why [`Agent::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT reached the agent.
    Requested,
    /// The embedded tunnel device stopped by itself (see [`TunnelBackend::device_stopped`]).
    DeviceExited,
}

/// Another agent drives this interface already.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceBusy {
    /// Another rn agent holds the interface's lock.
    #[error(
        "another rn agent runs for interface {interface} (it holds {lock}): stop it first \
         (systemctl stop rn-node), or give this node another --interface"
    )]
    Agent {
        /// The interface.
        interface: String,
        /// The lock file.
        lock: String,
    },
    /// A userspace WireGuard device (not rn's) answers on the interface's UAPI socket.
    #[error(
        "a userspace WireGuard device already answers on {socket} for interface {interface}: \
         stop it, or drive it with --backend uapi"
    )]
    Device {
        /// The interface.
        interface: String,
        /// Its UAPI socket.
        socket: String,
    },
}

/// Takes the interface's lock — `<interface>.lock` beside the control socket, one per
/// interface name on the host, whatever the network namespace (the UAPI and control sockets
/// of one name are shared too) — and checks that no userspace device answers for the
/// interface already. A second agent for the same interface refuses to start; it never takes
/// over.
fn lock_interface(config: &NodeConfig) -> anyhow::Result<fs::File> {
    use rustix::fs::{FlockOperation, flock};
    let lock = config.control_socket.with_extension("lock");
    if let Some(dir) = lock.parent() {
        private_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| anyhow::anyhow!("{}: {e}", lock.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(InterfaceBusy::Agent {
            interface: config.interface.clone(),
            lock: lock.display().to_string(),
        }
        .into());
    }
    if matches!(config.backend, BackendKind::Userspace | BackendKind::Auto)
        && tunnel::device_answers(&config.interface)
    {
        return Err(InterfaceBusy::Device {
            interface: config.interface.clone(),
            socket: tunnel::uapi_socket(&config.interface),
        }
        .into());
    }
    Ok(file)
}

/// Creates `p` (and its parents) as `0700` when missing.
pub(crate) fn private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

/// Where `rn node rekey` stages the next key: beside the key file, `.next` appended.
pub fn staged_key_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".next");
    PathBuf::from(p)
}

/// The state directory's device and inode (`None` when it is not there).
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

fn store_reason(e: &StoreError) -> String {
    format!("ledger unreadable: {e}")
}

/// Answers `GET /metrics` with the status in the Prometheus text format, the peers' figures
/// read from the interface when asked (as `rn node status` reads them).
struct MetricsHandler {
    status: Arc<Mutex<Status>>,
    live: control::Live,
}

impl crate::sync::serve::Handler for MetricsHandler {
    fn handle(&self, r: &crate::sync::serve::Request<'_>) -> crate::sync::serve::Response {
        use crate::sync::serve::Response;
        if r.method != "GET" {
            return Response::status(405, "GET /metrics");
        }
        if r.path != "metrics" {
            return Response::status(404, "GET /metrics");
        }
        let Ok(mut s) = self.status.lock().map(|s| s.clone()) else {
            return Response::status(503, "status unavailable");
        };
        self.live.refresh(&mut s);
        Response {
            status: 200,
            body: super::status::prometheus(&s, crate::clock::now()).into_bytes(),
            content_type: "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}
