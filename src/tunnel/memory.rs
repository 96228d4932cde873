//! The `memory` backend: the interface is a JSON file holding the last applied intent. No
//! packets flow; the agent, the demo without root and the tests drive it like any backend.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ipnet::IpNet;

use super::{
    Diff, InterfaceIntent, Observed, ObservedPeer, PeerConfig, RouteIntent, TunnelBackend,
    TunnelError,
};
use crate::files;
use crate::ledger::types::TransportKey;

#[derive(Serialize, Deserialize)]
struct Recorded {
    interface: String,
    #[serde(default)]
    public_key: Option<TransportKey>,
    listen_port: u16,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    fwmark: Option<u32>,
    addresses: Vec<IpNet>,
    peers: Vec<PeerConfig>,
    #[serde(default)]
    routes: RouteIntent,
}

/// Records intents in a file.
pub struct Memory {
    path: PathBuf,
}

impl Memory {
    /// A backend writing to `path`.
    pub fn new(path: &Path) -> Self {
        Memory {
            path: path.to_owned(),
        }
    }
}

fn err(detail: impl std::fmt::Display) -> TunnelError {
    TunnelError {
        backend: "memory",
        detail: detail.to_string(),
    }
}

impl Memory {
    fn read(&self) -> Result<Recorded, TunnelError> {
        let bytes = files::read_capped(&self.path, 64 << 20).map_err(err)?;
        serde_json::from_slice(&bytes).map_err(err)
    }

    fn write(&self, r: &Recorded) -> Result<(), TunnelError> {
        let mut bytes = serde_json::to_vec_pretty(r).map_err(err)?;
        bytes.push(b'\n');
        files::write_atomic(&self.path, &bytes, 0o600, true).map_err(err)
    }
}

impl TunnelBackend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// The file holds the whole interface, so whatever the diff, the result is the intent.
    fn apply(&mut self, intent: &InterfaceIntent<'_>, _: &Diff) -> Result<(), TunnelError> {
        let r = Recorded {
            interface: intent.name.to_owned(),
            public_key: Some(intent.key.public()),
            listen_port: intent.listen_port,
            mtu: Some(intent.mtu),
            fwmark: intent.fwmark.filter(|&m| m != 0),
            addresses: intent.addresses.clone(),
            peers: intent.peers.clone(),
            routes: self.read().map(|r| r.routes).unwrap_or_default(),
        };
        self.write(&r)
    }

    fn present(&self) -> bool {
        self.path.exists()
    }

    fn apply_routes(&mut self, routes: &RouteIntent) -> Result<(), TunnelError> {
        let mut r = self.read()?;
        r.routes = routes.clone();
        self.write(&r)
    }

    fn observe(&self) -> Result<Observed, TunnelError> {
        if !self.path.exists() {
            return Ok(Observed::default());
        }
        let r = self.read()?;
        let mut peers: Vec<ObservedPeer> = r.peers.iter().map(ObservedPeer::from).collect();
        peers.sort_by_key(|p| p.pubkey);
        let mut addresses = r.addresses;
        addresses.sort();
        Ok(Observed {
            present: true,
            up: true,
            public_key: r.public_key,
            listen_port: r.listen_port,
            fwmark: r.fwmark,
            mtu: r.mtu,
            addresses,
            peers,
        })
    }

    fn shutdown(&mut self) -> Result<(), TunnelError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}
