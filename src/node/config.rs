//! The node configuration, `/etc/rn/node.json` (`0600`): which node this is, where its
//! ledger lives, the pinned genesis root, and how to drive its tunnel and firewall.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, FileError};
use crate::firewall::FirewallKind;
use crate::ledger::canonical::{decode_value, required};
use crate::ledger::types::{Id, Sha256Digest};
use crate::tunnel::BackendKind;

/// Where `rn node` looks unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/rn/node.json";

/// A node's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id in the ledger.
    pub node_id: Id,
    /// The ledger's state directory.
    pub state_dir: PathBuf,
    /// The genesis root pinned out of band.
    pub genesis_root: Sha256Digest,
    /// The node's WireGuard private key file (`0600`).
    pub private_key: PathBuf,
    /// Mesh interface name.
    pub interface: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// Tunnel backend.
    pub backend: BackendKind,
    /// Firewall backend.
    pub firewall: FirewallKind,
    /// Static endpoints of peers: node id → `ip:port`.
    pub endpoints: BTreeMap<Id, SocketAddr>,
    /// The exit node this node sends its internet traffic through, when granted.
    #[serde(deserialize_with = "required")]
    pub exit: Option<Id>,
    /// While an exit is chosen, keep the host's local networks reachable outside the tunnel
    /// (`--allow-lan`); off, everything but the mesh goes through the exit or nowhere.
    #[serde(default)]
    pub exit_allow_lan: bool,
    /// Persistent keepalive towards peers, seconds (0: off).
    pub keepalive_secs: u16,
    /// The control socket (default `/run/rn/<interface>.sock`).
    pub control_socket: PathBuf,
    /// The `memory` backend's file.
    pub memory_file: PathBuf,
    /// Forward granted traffic to the prefixes this node's ledger `routes` cover (opt-in).
    #[serde(default)]
    pub serve_routes: bool,
    /// Forward granted internet traffic when the ledger gives this node `exit: true`
    /// (opt-in).
    #[serde(default)]
    pub serve_exit: bool,
    /// Masquerade traffic this node forwards out of the mesh.
    #[serde(default)]
    pub masquerade: bool,
    /// Firewall mark of the tunnel's own packets while an exit is in use (also the routing
    /// table number), as `wg-quick` uses.
    #[serde(default = "default_fwmark")]
    pub fwmark: u32,
    /// The mesh interface's MTU (WireGuard's usual 1420: 1500 less the largest overhead).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Mirrors to catch the ledger up from (`http://` or `https://` base URLs of the layout
    /// `rn member publish` writes), tried every `sync_interval`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Seconds between catch-ups from the mirrors and peers (±20 %); at least 5.
    #[serde(default = "default_sync_interval")]
    pub sync_interval: u64,
    /// The CA bundle for `https://` mirrors (default: the system's).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::ledger::canonical::present"
    )]
    pub ca_file: Option<PathBuf>,
    /// TCP port the agent serves its ledger and endpoints on, on its overlay addresses, to
    /// active members only (0: serves nothing; then peers cannot pull from or notify it).
    #[serde(default = "default_serve_port")]
    pub serve_port: u16,
    /// Peers pulled from every `sync_interval` and notified after each commit (0: none; the
    /// node then hears of changes from mirrors, pushes and its inbox only).
    #[serde(default = "default_fanout")]
    pub fanout: u16,
}

/// The port agents serve the layout on unless told otherwise.
pub const DEFAULT_SERVE_PORT: u16 = 51821;

/// How many peers a node pulls from and notifies unless told otherwise.
pub const DEFAULT_FANOUT: u16 = 3;

/// The largest fanout accepted.
pub const MAX_FANOUT: u16 = 64;

fn default_serve_port() -> u16 {
    DEFAULT_SERVE_PORT
}

fn default_fanout() -> u16 {
    DEFAULT_FANOUT
}

/// How often a node catches up from its mirrors unless told otherwise: every 30 s.
pub const DEFAULT_SYNC_INTERVAL: u64 = 30;

fn default_sync_interval() -> u64 {
    DEFAULT_SYNC_INTERVAL
}

fn default_fwmark() -> u32 {
    51820
}

/// An interface name Linux accepts and rn's file names can carry: 1-15 of `a-z A-Z 0-9 - _`.
pub fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "interface {name:?} must be 1-15 of a-z A-Z 0-9 - _"
        ));
    }
    Ok(())
}

/// WireGuard's usual MTU, as `wg-quick` sets it over a 1500-byte underlay.
pub const DEFAULT_MTU: u32 = 1420;

fn default_mtu() -> u32 {
    DEFAULT_MTU
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File problems.
    #[error(transparent)]
    File(#[from] FileError),
    /// Does not decode.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

impl NodeConfig {
    /// Reads and checks the configuration (private file, strict decoding).
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        files::check_private(path, false)?;
        let bytes = files::read_capped(path, 1 << 20)?;
        let c: NodeConfig =
            decode_value("node config", &bytes).map_err(|e| ConfigError::Invalid {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        if let Err(detail) = check_interface(&c.interface) {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                detail,
            });
        }
        for (what, p) in [
            ("state_dir", &c.state_dir),
            ("private_key", &c.private_key),
            ("control_socket", &c.control_socket),
            ("memory_file", &c.memory_file),
        ] {
            if !p.is_absolute() {
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    detail: format!(
                        "{what} {} is relative: give an absolute path (the agent runs from /)",
                        p.display()
                    ),
                });
            }
        }
        if c.listen_port == 0 {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                detail: "listen_port must be 1-65535 (rn reads the port back: it cannot be left \
                         to the system)"
                    .into(),
            });
        }
        for m in &c.mirrors {
            if let Err(e) = crate::sync::fetch::check_base(m) {
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    detail: format!("mirrors: {e}"),
                });
            }
        }
        if c.sync_interval < 5 {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                detail: format!(
                    "sync_interval {} must be at least 5 seconds",
                    c.sync_interval
                ),
            });
        }
        if c.fanout > MAX_FANOUT {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                detail: format!("fanout {} must be at most {MAX_FANOUT}", c.fanout),
            });
        }
        if !(1280..=9000).contains(&c.mtu) {
            return Err(ConfigError::Invalid {
                path: path.display().to_string(),
                detail: format!("mtu {} must be between 1280 and 9000", c.mtu),
            });
        }
        Ok(c)
    }

    /// Writes the configuration (`0600`, atomically).
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), FileError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a config always encodes");
        bytes.push(b'\n');
        files::write_atomic(path, &bytes, 0o600, overwrite)
    }
}
