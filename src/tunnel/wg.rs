//! The WireGuard backends, through `defguard_wireguard_rs`: kernel (netlink), userspace
//! (embedded boringtun) and uapi (an existing daemon's UAPI socket, e.g. `wireguard-go`).

use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{
    InterfaceConfiguration, Kernel, Userspace, WGApi, WireguardInterfaceApi,
};
use ipnet::IpNet;

use super::routing::Routing;
use super::{InterfaceIntent, Observed, ObservedPeer, RouteIntent, TunnelBackend, TunnelError};
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

/// A WireGuard interface driven through `defguard_wireguard_rs`.
pub struct WgBackend {
    kind: WgKind,
    ifname: String,
    api: Api,
    created: bool,
    addresses: Vec<IpNet>,
    routing: Routing,
    had_mark: bool,
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
        let api = match kind {
            WgKind::Kernel => Api::Kernel(WGApi::<Kernel>::new(ifname).map_err(|e| err(kind, e))?),
            WgKind::Userspace | WgKind::Uapi => {
                Api::User(WGApi::<Userspace>::new(ifname).map_err(|e| err(kind, e))?)
            }
        };
        Ok(WgBackend {
            kind,
            ifname: ifname.to_owned(),
            api,
            created: false,
            addresses: Vec::new(),
            routing: Routing::new(ifname),
            had_mark: false,
        })
    }

    fn host(intent: &InterfaceIntent<'_>, had_mark: bool) -> Host {
        let mut host = Host::new(intent.listen_port, Key::new(*intent.key.secret_bytes()));
        // Only touch the mark when an exit is (or was) in use.
        host.fwmark = intent.fwmark.or(had_mark.then_some(0));
        for p in &intent.peers {
            let key = Key::new(*p.pubkey.as_bytes());
            let mut peer = Peer::new(key.clone());
            peer.allowed_ips = p.allowed.iter().map(mask).collect();
            peer.endpoint = p.endpoint;
            peer.persistent_keepalive_interval = p.keepalive;
            host.peers.insert(key, peer);
        }
        host
    }

    fn ensure_interface(&mut self) -> Result<(), TunnelError> {
        if self.created {
            return Ok(());
        }
        let kind = self.kind;
        match &mut self.api {
            Api::Kernel(api) => api.create_interface().map_err(|e| err(kind, e))?,
            Api::User(api) if kind == WgKind::Userspace => {
                // The embedded device blocks SIGTERM and SIGINT in the thread that creates it
                // and reads them through a signalfd, exiting on either. Created from a thread
                // of its own, the block stays there (and in the device's threads), so the
                // agent's own handlers still see the signals and stop it cleanly.
                match std::thread::scope(|s| s.spawn(|| api.create_interface()).join()) {
                    Ok(created) => created.map_err(|e| err(kind, e))?,
                    Err(_) => return Err(err(kind, "the embedded device panicked while starting")),
                }
            }
            Api::User(_) => {
                // Attached daemon: the interface exists; make sure it is up.
                let out = Command::new("ip")
                    .args(["link", "set", "dev", &self.ifname, "up"])
                    .output()
                    .map_err(|e| err(kind, format!("ip link set up: {e}")))?;
                if !out.status.success() {
                    return Err(err(
                        kind,
                        format!(
                            "ip link set dev {} up: {}",
                            self.ifname,
                            String::from_utf8_lossy(&out.stderr).trim()
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

    fn assign(&mut self, addresses: &[IpNet]) -> Result<(), TunnelError> {
        let kind = self.kind;
        for a in addresses.iter().filter(|a| !self.addresses.contains(a)) {
            let m = IpAddrMask::new(a.addr(), a.prefix_len());
            let r = match &self.api {
                Api::Kernel(api) => api.assign_address(&m),
                Api::User(api) => api.assign_address(&m),
            };
            r.map_err(|e| err(kind, format!("assign {a}: {e}")))?;
        }
        self.addresses = addresses.to_vec();
        Ok(())
    }
}

impl TunnelBackend for WgBackend {
    fn name(&self) -> &'static str {
        match self.kind {
            WgKind::Kernel => "kernel",
            WgKind::Userspace => "userspace",
            WgKind::Uapi => "uapi",
        }
    }

    fn apply(&mut self, intent: &InterfaceIntent<'_>) -> Result<(), TunnelError> {
        self.ensure_interface()?;
        self.check_answers()?;
        let host = Self::host(intent, self.had_mark);
        self.had_mark = intent.fwmark.is_some();
        let kind = self.kind;
        match &self.api {
            // One UAPI transaction with replace_peers=true: the whole peer set at once.
            Api::User(api) => api
                .write_host(&host)
                .map_err(|e| err(kind, format!("UAPI set: {e}")))?,
            Api::Kernel(api) => {
                let config = InterfaceConfiguration {
                    name: self.ifname.clone(),
                    prvkey: Key::new(*intent.key.secret_bytes()).to_string(),
                    addresses: Vec::new(),
                    port: intent.listen_port,
                    peers: host.peers.into_values().collect(),
                    mtu: None,
                    fwmark: host.fwmark,
                };
                api.configure_interface(&config).map_err(|e| err(kind, e))?;
            }
        }
        self.assign(&intent.addresses)
    }

    fn observe(&self) -> Result<Observed, TunnelError> {
        self.check_answers()?;
        let kind = self.kind;
        let host = match &self.api {
            Api::User(api) => api
                .read_host()
                .map_err(|e| err(kind, format!("UAPI get: {e}")))?,
            Api::Kernel(api) => api.read_interface_data().map_err(|e| err(kind, e))?,
        };
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
                    last_handshake,
                })
            })
            .collect();
        peers.sort_by_key(|p| p.pubkey);
        Ok(Observed {
            listen_port: host.listen_port,
            peers,
        })
    }

    fn apply_routes(&mut self, routes: &RouteIntent) -> Result<(), TunnelError> {
        let kind = self.kind;
        self.routing.apply(routes).map_err(|e| err(kind, e))
    }

    /// The embedded device exits on SIGTERM and SIGINT — which it reads through a signalfd
    /// and so can take before the agent's own handler sees them — and when its UAPI socket is
    /// removed or its TUN device fails. Its interface stays (the handle holds the TUN device)
    /// but nothing answers on its socket any more: that is what is checked.
    fn device_exited(&self) -> bool {
        self.kind == WgKind::Userspace && self.created && !uapi_answers(&self.ifname)
    }

    fn shutdown(&mut self) -> Result<(), TunnelError> {
        self.routing.clear();
        let kind = self.kind;
        match (&self.api, kind) {
            (Api::User(api), WgKind::Uapi) => {
                // Not ours to delete: leave the daemon with no peers.
                if let Ok(mut host) = api.read_host() {
                    host.peers.clear();
                    api.write_host(&host).map_err(|e| err(kind, e))?;
                }
            }
            (Api::User(api), _) if self.created => {
                // Removing closes the device's UAPI socket; dropping its handle stops the
                // device's threads, which closes the TUN device and so the interface. Known
                // trap: removal reports a DNS error on hosts without resolvconf; only an
                // interface that survives both counts as a failure.
                let removed = api.remove_interface();
                let fresh = WGApi::<Userspace>::new(&self.ifname).map_err(|e| err(kind, e))?;
                drop(std::mem::replace(&mut self.api, Api::User(fresh)));
                self.created = false;
                if !gone_within(&self.ifname, Duration::from_secs(2)) {
                    return Err(err(
                        kind,
                        removed.err().map_or_else(
                            || "the interface is still present".to_owned(),
                            |e| e.to_string(),
                        ),
                    ));
                }
            }
            (Api::Kernel(api), _) if self.created => {
                if let Err(e) = api.remove_interface()
                    && interface_exists(&self.ifname)
                {
                    return Err(err(kind, e));
                }
            }
            _ => {}
        }
        self.created = false;
        Ok(())
    }
}

fn interface_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Whether a device answers on the interface's UAPI socket (a live one answers within
/// microseconds): two tries of a quarter second, so one slow reply from a busy device is not
/// taken for a stopped one.
fn uapi_answers(ifname: &str) -> bool {
    uapi_answers_once(ifname) || uapi_answers_once(ifname)
}

/// One try of [`uapi_answers`]. The request is not a UAPI command, so the device only replies
/// with an error number and changes nothing.
fn uapi_answers_once(ifname: &str) -> bool {
    use std::io::{Read, Write};
    let path = format!("/var/run/wireguard/{ifname}.sock");
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let limit = Some(Duration::from_millis(250));
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
