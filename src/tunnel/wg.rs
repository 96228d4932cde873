//! The WireGuard backends, through `defguard_wireguard_rs`: kernel (netlink), userspace
//! (embedded boringtun) and uapi (an existing daemon's UAPI socket, e.g. `wireguard-go`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{
    InterfaceConfiguration, Kernel, Userspace, WGApi, WireguardInterfaceApi,
};
use ipnet::IpNet;

use zeroize::Zeroizing;

use super::link;
use super::routing::{Routing, ip};
use super::{
    DeviceStop, Diff, InterfaceIntent, Observed, ObservedPeer, PeerConfig, RouteIntent,
    TunnelBackend, TunnelError,
};
use crate::keys::NodeSecret;
use crate::ledger::types::{Cidr, TransportKey};

/// Which WireGuard implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WgKind {
    /// Kernel module, over netlink.
    Kernel,
    /// Embedded userspace implementation, created by the agent.
    Userspace,
    /// A userspace daemon that already runs, reached through its UAPI socket.
    Uapi,
}

enum Api {
    Kernel(WGApi<Kernel>),
    User(WGApi<Userspace>),
}

/// A WireGuard interface driven through `defguard_wireguard_rs`, changed by diff.
pub struct WgBackend {
    kind: WgKind,
    ifname: String,
    api: Api,
    /// This process created the device (or attached to the daemon's).
    created: bool,
    routing: Routing,
}

fn err(kind: WgKind, detail: impl std::fmt::Display) -> TunnelError {
    TunnelError {
        backend: match kind {
            WgKind::Kernel => "kernel",
            WgKind::Userspace => "userspace",
            WgKind::Uapi => "uapi",
        },
        detail: detail.to_string(),
    }
}

fn mask(c: &Cidr) -> IpAddrMask {
    IpAddrMask::new(c.net().addr(), c.net().prefix_len())
}

fn cidr(m: &IpAddrMask) -> Option<Cidr> {
    let net = IpNet::new(m.address, m.cidr).ok()?.trunc();
    Cidr::new(net).ok()
}

impl WgBackend {
    /// Prepares a backend for `ifname` (nothing is created until the first `apply`).
    pub fn new(kind: WgKind, ifname: &str) -> Result<Self, TunnelError> {
        Ok(WgBackend {
            kind,
            ifname: ifname.to_owned(),
            api: Self::fresh_api(kind, ifname)?,
            created: false,
            routing: Routing::new(ifname),
        })
    }

    fn fresh_api(kind: WgKind, ifname: &str) -> Result<Api, TunnelError> {
        Ok(match kind {
            WgKind::Kernel => Api::Kernel(WGApi::<Kernel>::new(ifname).map_err(|e| err(kind, e))?),
            WgKind::Userspace | WgKind::Uapi => {
                Api::User(WGApi::<Userspace>::new(ifname).map_err(|e| err(kind, e))?)
            }
        })
    }

    /// Creates the interface (or, for an attached daemon, checks it is there).
    fn create(&mut self) -> Result<(), TunnelError> {
        let kind = self.kind;
        match kind {
            WgKind::Kernel => {
                let Api::Kernel(api) = &mut self.api else {
                    unreachable!("a kernel backend holds a kernel handle")
                };
                if let Err(e) = api.create_interface() {
                    if !Path::new("/sys/module/wireguard").exists() {
                        return Err(err(
                            kind,
                            "the kernel has no WireGuard module loaded: run 'modprobe wireguard', \
                             or use --backend userspace",
                        ));
                    }
                    return Err(err(kind, e));
                }
            }
            WgKind::Userspace => {
                // A device whose interface was deleted from under it is dropped first (its
                // handle stops its threads), then a new one is made under the same name.
                drop(std::mem::replace(
                    &mut self.api,
                    Self::fresh_api(kind, &self.ifname)?,
                ));
                let Api::User(api) = &mut self.api else {
                    unreachable!("a userspace backend holds a userspace handle")
                };
                // The embedded device blocks SIGTERM and SIGINT in the thread that creates it
                // and reads them through a signalfd, exiting on either. Created from a thread
                // of its own, the block stays there (and in the device's threads), so the
                // agent's own handlers still see the signals and stop it cleanly.
                match std::thread::scope(|s| s.spawn(|| api.create_interface()).join()) {
                    Ok(created) => created.map_err(|e| err(kind, e))?,
                    Err(_) => return Err(err(kind, "the embedded device panicked while starting")),
                }
            }
            WgKind::Uapi => {
                if !interface_exists(&self.ifname) {
                    return Err(err(
                        kind,
                        format!(
                            "interface {} does not exist: start its userspace daemon first \
                             (e.g. 'wireguard-go {}')",
                            self.ifname, self.ifname
                        ),
                    ));
                }
            }
        }
        self.created = true;
        Ok(())
    }

    /// An embedded device that stopped keeps its socket but never answers, and a UAPI call to
    /// it would wait for its timeout (or, writing, for ever): ask first.
    fn check_answers(&self) -> Result<(), TunnelError> {
        if self.kind == WgKind::Userspace && self.created && !uapi_answers(&self.ifname) {
            return Err(err(
                self.kind,
                "the embedded device does not answer (it has stopped)",
            ));
        }
        Ok(())
    }

    /// The device-wide settings and peers of `diff` for a UAPI device, in the transactions
    /// the embedded device needs: it cannot change a peer in place (a changed peer is
    /// removed, then added again with the endpoint it had learned), it aborts on adding a
    /// peer it already holds (so every added key is removed first: removing an absent peer
    /// is a no-op), and a `remove` or `endpoint` line carries over to the following peer
    /// sections of one transaction (so removals get a transaction of their own, and peers
    /// without an endpoint come before those with one). Removals go first, so a revoked peer
    /// is gone even if a later transaction fails — except a peer whose prefixes pass to a new
    /// one (a re-keyed node), removed once the new one holds them.
    fn apply_uapi(&self, intent: &InterfaceIntent<'_>, diff: &Diff) -> Result<(), TunnelError> {
        let kind = self.kind;
        let set = |body: &str| uapi_set(&self.ifname, body).map_err(|e| err(kind, e));
        let embedded = kind == WgKind::Userspace;
        let mut device = Zeroizing::new(String::new());
        if diff.private_key {
            let _ = writeln!(
                device,
                "private_key={}",
                Key::new(*intent.key.secret_bytes()).to_lower_hex()
            );
        }
        if let Some(port) = diff.listen_port {
            let _ = writeln!(device, "listen_port={port}");
        }
        // The embedded device opens its new sockets unmarked: the mark follows a new port.
        let mark = diff
            .fwmark
            .or(diff.listen_port.and(intent.fwmark).filter(|_| embedded));
        if let Some(mark) = mark {
            let _ = writeln!(device, "fwmark={mark}");
        }
        if !device.is_empty() {
            set(&device)?;
        }
        let mut removals: Vec<&TransportKey> = diff.removed.iter().collect();
        if embedded {
            removals.extend(diff.changed.iter().map(|c| &c.peer.pubkey));
            removals.extend(diff.added.iter().map(|p| &p.pubkey));
        }
        if !removals.is_empty() {
            set(&removals.into_iter().map(remove_section).collect::<String>())?;
        }
        let mut upserts: Vec<PeerConfig> = diff.added.clone();
        upserts.extend(diff.changed.iter().map(|c| {
            let mut p = c.peer.clone();
            if embedded {
                p.endpoint = p.endpoint.or(c.learned);
            }
            p
        }));
        upserts.sort_by_key(|p| (p.endpoint.is_some(), p.pubkey));
        if !upserts.is_empty() {
            let mut body = String::with_capacity(upserts.len() * 200);
            for p in &upserts {
                peer_section(&mut body, p);
            }
            set(&body)?;
        }
        if !diff.handed_over.is_empty() {
            set(&diff
                .handed_over
                .iter()
                .map(remove_section)
                .collect::<String>())?;
        }
        Ok(())
    }

    /// The kernel: device-wide changes reconfigure the whole device (key, port and mark are
    /// one netlink message that also replaces the peer set, and the library's call flushes
    /// the addresses, which are then added back); otherwise one netlink message per changed
    /// peer, removals first (a peer whose prefixes pass to a new one: last).
    fn apply_kernel(&self, intent: &InterfaceIntent<'_>, diff: &Diff) -> Result<bool, TunnelError> {
        let kind = self.kind;
        let Api::Kernel(api) = &self.api else {
            unreachable!("a kernel backend holds a kernel handle")
        };
        if diff.device_settings() {
            let config = InterfaceConfiguration {
                name: self.ifname.clone(),
                prvkey: Key::new(*intent.key.secret_bytes()).to_string(),
                addresses: intent.addresses.iter().map(ip_mask).collect(),
                port: intent.listen_port,
                peers: intent.peers.iter().map(wg_peer).collect(),
                mtu: Some(intent.mtu),
                fwmark: Some(intent.fwmark.unwrap_or(0)),
            };
            api.configure_interface(&config).map_err(|e| err(kind, e))?;
            return Ok(true);
        }
        let remove = |keys: &[TransportKey]| {
            keys.iter().try_for_each(|k| {
                api.remove_peer(&Key::new(*k.as_bytes()))
                    .map_err(|e| err(kind, format!("removing peer {k}: {e}")))
            })
        };
        remove(&diff.removed)?;
        for p in diff
            .added
            .iter()
            .chain(diff.changed.iter().map(|c| &c.peer))
        {
            api.configure_peer(&wg_peer(p))
                .map_err(|e| err(kind, format!("peer {}: {e}", p.pubkey)))?;
        }
        remove(&diff.handed_over)?;
        Ok(false)
    }

    /// MTU, link state and addresses, through `ip` (removals before additions).
    fn apply_link(&self, diff: &Diff) -> Result<(), TunnelError> {
        let kind = self.kind;
        let name = self.ifname.as_str();
        if let Some(mtu) = diff.mtu {
            ip(&["link", "set", "dev", name, "mtu", &mtu.to_string()]).map_err(|e| err(kind, e))?;
        }
        if diff.set_up {
            ip(&["link", "set", "dev", name, "up"]).map_err(|e| err(kind, e))?;
        }
        for a in &diff.remove_addresses {
            ip(&["address", "del", &a.to_string(), "dev", name]).map_err(|e| err(kind, e))?;
        }
        for a in &diff.add_addresses {
            ip(&["address", "add", &a.to_string(), "dev", name]).map_err(|e| err(kind, e))?;
        }
        Ok(())
    }
}

/// `public_key=…` and `remove=true`: one peer removed.
fn remove_section(k: &TransportKey) -> String {
    format!(
        "public_key={}\nremove=true\n",
        Key::new(*k.as_bytes()).to_lower_hex()
    )
}

/// One peer's section, every field written (so nothing carries over from the section before
/// it on the embedded device, and an existing peer is updated in place elsewhere).
fn peer_section(out: &mut String, p: &PeerConfig) {
    let _ = writeln!(
        out,
        "public_key={}",
        Key::new(*p.pubkey.as_bytes()).to_lower_hex()
    );
    if let Some(e) = p.endpoint {
        let _ = writeln!(out, "endpoint={e}");
    }
    let _ = writeln!(
        out,
        "persistent_keepalive_interval={}",
        p.keepalive.unwrap_or(0)
    );
    out.push_str("replace_allowed_ips=true\n");
    for a in &p.allowed {
        let _ = writeln!(out, "allowed_ip={a}");
    }
}

fn ip_mask(a: &IpNet) -> IpAddrMask {
    IpAddrMask::new(a.addr(), a.prefix_len())
}

fn wg_peer(p: &PeerConfig) -> Peer {
    let mut peer = Peer::new(Key::new(*p.pubkey.as_bytes()));
    peer.allowed_ips = p.allowed.iter().map(mask).collect();
    peer.endpoint = p.endpoint;
    // 0 turns a keepalive off; left out, the kernel would keep the old one.
    peer.persistent_keepalive_interval = Some(p.keepalive.unwrap_or(0));
    peer
}

impl TunnelBackend for WgBackend {
    fn name(&self) -> &'static str {
        match self.kind {
            WgKind::Kernel => "kernel",
            WgKind::Userspace => "userspace",
            WgKind::Uapi => "uapi",
        }
    }

    fn apply(&mut self, intent: &InterfaceIntent<'_>, diff: &Diff) -> Result<(), TunnelError> {
        if diff.create {
            // A new interface has none of the routes through the old one.
            self.routing.forget();
            self.create()?;
        }
        self.check_answers()?;
        if matches!(self.api, Api::Kernel(_)) {
            let whole = self.apply_kernel(intent, diff)?;
            // The interface is rn's now (also one a killed agent left): stopping removes it.
            self.created = true;
            if whole {
                // Reconfigured whole, addresses and MTU included; flushing the addresses
                // dropped the routes through the interface.
                self.routing.forget();
                return self.apply_link(&Diff {
                    set_up: diff.set_up,
                    ..Diff::default()
                });
            }
        } else {
            self.apply_uapi(intent, diff)?;
            if self.kind == WgKind::Uapi {
                self.created = true;
            }
        }
        self.apply_link(diff)
    }

    fn observe(&self) -> Result<Observed, TunnelError> {
        let kind = self.kind;
        if !interface_exists(&self.ifname) {
            return Ok(Observed::default());
        }
        self.check_answers()?;
        let host = match &self.api {
            Api::User(api) => api
                .read_host()
                .map_err(|e| err(kind, format!("UAPI get: {e}")))?,
            Api::Kernel(api) => api.read_interface_data().map_err(|e| err(kind, e))?,
        };
        let link = link::read(&self.ifname).map_err(|e| err(kind, e))?;
        let mut peers: Vec<ObservedPeer> = host
            .peers
            .values()
            .filter_map(|p| {
                let pubkey = TransportKey::from_bytes(p.public_key.as_array()).ok()?;
                let mut allowed: Vec<Cidr> = p.allowed_ips.iter().filter_map(cidr).collect();
                allowed.sort();
                // wireguard-go reports a handshake that never completed as the unix epoch.
                let last_handshake = p
                    .last_handshake
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .filter(|&s| s > 0);
                Some(ObservedPeer {
                    pubkey,
                    allowed,
                    endpoint: p.endpoint,
                    keepalive: p.persistent_keepalive_interval.filter(|&k| k > 0),
                    last_handshake,
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                })
            })
            .collect();
        peers.sort_by_key(|p| p.pubkey);
        Ok(Observed {
            present: true,
            up: link.up,
            public_key: host
                .private_key
                .map(|k| NodeSecret::from_bytes(k.as_array()).public()),
            listen_port: host.listen_port,
            fwmark: host.fwmark.filter(|&m| m != 0),
            mtu: Some(link.mtu),
            addresses: link.addresses,
            peers,
        })
    }

    fn present(&self) -> bool {
        !self.created || interface_exists(&self.ifname)
    }

    fn apply_routes(&mut self, routes: &RouteIntent) -> Result<(), TunnelError> {
        let kind = self.kind;
        self.routing.apply(routes).map_err(|e| err(kind, e))
    }

    fn routes_hold(&self) -> bool {
        self.routing.holds()
    }

    fn forget_routes(&mut self) {
        self.routing.forget_all();
    }

    fn keep_exit_on_stop(&mut self) {
        self.routing.keep_exit_on_clear();
    }

    /// The embedded device exits on SIGTERM and SIGINT — which it reads through a signalfd
    /// and so can take before the agent's own handler sees them — and when its UAPI socket is
    /// removed or its TUN device fails. Its interface stays (the handle holds the TUN device)
    /// but nothing answers on its socket any more: that is what is checked. Its socket file
    /// stays too unless someone removed it, which tells a signal from a removal. An interface
    /// deleted from under the device is drift instead (re-created by the next apply).
    fn device_stopped(&self) -> Option<DeviceStop> {
        let stopped = self.kind == WgKind::Userspace
            && self.created
            && interface_exists(&self.ifname)
            && !uapi_answers(&self.ifname);
        stopped.then(|| {
            if Path::new(&uapi_socket(&self.ifname)).exists() {
                DeviceStop::Signal
            } else {
                DeviceStop::Failed
            }
        })
    }

    /// The interface goes first, so that no moment leaves it carrying traffic without rn's
    /// filter (which the agent removes only after this succeeded). When the library's removal
    /// fails (it also clears DNS settings, and fails without `resolvconf`), the link is
    /// deleted directly.
    fn shutdown(&mut self) -> Result<(), TunnelError> {
        self.routing.clear();
        let kind = self.kind;
        match (&self.api, kind) {
            (Api::User(api), WgKind::Uapi) => {
                // Not ours to delete: leave the daemon with no peers. A daemon that cannot be
                // read while its interface is there may still hold them: that is a failure.
                match api.read_host() {
                    Ok(mut host) => {
                        host.peers.clear();
                        api.write_host(&host).map_err(|e| err(kind, e))?;
                    }
                    Err(e) if interface_exists(&self.ifname) => {
                        return Err(err(kind, format!("cannot empty the daemon's peers: {e}")));
                    }
                    Err(_) => {}
                }
                self.created = false;
                return Ok(());
            }
            (Api::User(api), _) if self.created => {
                // Removing closes the device's UAPI socket; dropping its handle stops the
                // device's threads, which closes the TUN device and so the interface.
                let removed = api.remove_interface();
                let fresh = Self::fresh_api(kind, &self.ifname)?;
                drop(std::mem::replace(&mut self.api, fresh));
                if !gone_within(&self.ifname, Duration::from_secs(2)) {
                    let _ = ip(&["link", "del", "dev", &self.ifname]);
                }
                if interface_exists(&self.ifname) {
                    return Err(err(
                        kind,
                        removed.err().map_or_else(
                            || "the interface is still present".to_owned(),
                            |e| e.to_string(),
                        ),
                    ));
                }
            }
            (Api::Kernel(api), _) if self.created || interface_exists(&self.ifname) => {
                let removed = api.remove_interface();
                if interface_exists(&self.ifname) {
                    let _ = ip(&["link", "del", "dev", &self.ifname]);
                }
                if interface_exists(&self.ifname) {
                    return Err(err(
                        kind,
                        removed.err().map_or_else(
                            || "the interface is still present".to_owned(),
                            |e| e.to_string(),
                        ),
                    ));
                }
            }
            _ => {}
        }
        self.created = false;
        Ok(())
    }
}

/// One UAPI `set` transaction; the device's errno when it refuses.
fn uapi_set(ifname: &str, body: &str) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    let path = uapi_socket(ifname);
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| format!("UAPI set: {path}: {e}"))?;
    let limit = Some(Duration::from_secs(5));
    s.set_read_timeout(limit)
        .and_then(|()| s.set_write_timeout(limit))
        .map_err(|e| format!("UAPI set: {e}"))?;
    s.write_all(b"set=1\n")
        .and_then(|()| s.write_all(body.as_bytes()))
        .and_then(|()| s.write_all(b"\n"))
        .map_err(|e| format!("UAPI set: {e}"))?;
    for line in BufReader::new(&s).lines() {
        let line = line.map_err(|e| format!("UAPI set: no answer: {e}"))?;
        if let Some(n) = line.strip_prefix("errno=") {
            return match n {
                "0" => Ok(()),
                n => Err(format!("UAPI set refused (errno {n})")),
            };
        }
    }
    Err("UAPI set: the device closed the socket without an answer".into())
}

fn interface_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The UAPI socket of `ifname`.
pub fn uapi_socket(ifname: &str) -> String {
    format!("/var/run/wireguard/{ifname}.sock")
}

/// Whether a userspace WireGuard device answers on the interface's UAPI socket.
pub fn device_answers(ifname: &str) -> bool {
    uapi_answers(ifname)
}

/// Whether a device answers on the interface's UAPI socket (a live one answers within
/// microseconds): two tries of 150 ms, so one slow reply from a busy device is not taken for
/// a stopped one.
fn uapi_answers(ifname: &str) -> bool {
    uapi_answers_once(ifname) || uapi_answers_once(ifname)
}

/// One try of [`uapi_answers`]. The request is not a UAPI command, so the device only replies
/// with an error number and changes nothing.
fn uapi_answers_once(ifname: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(uapi_socket(ifname)) else {
        return false;
    };
    let limit = Some(Duration::from_millis(150));
    if s.set_read_timeout(limit).is_err() || s.set_write_timeout(limit).is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    s.write_all(b"ping=1\n\n").is_ok() && matches!(s.read(&mut reply), Ok(n) if n > 0)
}

/// Waits (bounded) for the interface to disappear; true once it has.
fn gone_within(name: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while interface_exists(name) {
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
