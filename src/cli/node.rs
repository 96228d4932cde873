//! `rn node init | run | status | reload`: the node agent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use super::member::ledger::DEFAULT_STATE_DIR;
use super::output::now;
use super::{Exit, usage};
use crate::files;
use crate::firewall::FirewallKind;
use crate::keys::NodeSecret;
use crate::ledger::canonical::caps;
use crate::ledger::store::{Store, StoreError};
use crate::ledger::types::{Id, Sha256Digest};
use crate::node::agent::{Agent, Flags, Stopped};
use crate::node::config::{DEFAULT_CONFIG, NodeConfig};
use crate::node::control;
use crate::node::status::Log;
use crate::tunnel::BackendKind;

/// The node agent: bootstraps, runs and reports.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "node")]
pub struct NodeCmd {
    #[argh(subcommand)]
    sub: NodeSub,
}

#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
enum NodeSub {
    Init(Init),
    Run(Run),
    Status(Status),
    Reload(Reload),
    Exit(ExitCmd),
    Rekey(Rekey),
}

impl NodeCmd {
    /// Did the command line ask for JSON output?
    pub fn json(&self) -> bool {
        match &self.sub {
            NodeSub::Status(c) => c.json,
            NodeSub::Init(c) => c.json,
            NodeSub::Rekey(c) => c.json,
            NodeSub::Reload(c) => c.json,
            NodeSub::Exit(c) => c.json,
            NodeSub::Run(_) => false,
        }
    }

    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Exit> {
        match self.sub {
            NodeSub::Init(c) => c.run(),
            NodeSub::Run(c) => c.run(),
            NodeSub::Status(c) => c.run(),
            NodeSub::Reload(c) => c.run(),
            NodeSub::Exit(c) => c.run(),
            NodeSub::Rekey(c) => c.run(),
        }
    }
}

/// The node configuration a command reads when `--config` is not given: `$RN_CONFIG`, else
/// /etc/rn/node.json.
fn default_config() -> PathBuf {
    std::env::var_os("RN_CONFIG")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CONFIG), PathBuf::from)
}

/// Loads the node configuration, saying which flag or variable to use when it is missing.
fn load_config(path: &std::path::Path) -> anyhow::Result<NodeConfig> {
    match NodeConfig::load(path) {
        Err(crate::node::config::ConfigError::File(files::FileError::Missing { .. })) => {
            Err(anyhow::Error::new(files::FileError::Missing {
                path: path.to_owned(),
            })
            .context(format!(
                "no node configuration at {}: pass --config FILE or set RN_CONFIG (rn node init writes one)",
                path.display()
            )))
        }
        r => Ok(r?),
    }
}

/// This host's node configuration, for the `rn member` commands' defaults: the one `$RN_CONFIG`
/// names (which must exist), else /etc/rn/node.json when it exists, else none.
pub(crate) fn local_config() -> anyhow::Result<Option<NodeConfig>> {
    let path = default_config();
    if std::env::var_os("RN_CONFIG").is_none_or(|v| v.is_empty()) && !path.exists() {
        return Ok(None);
    }
    load_config(&path).map(Some)
}

/// Set a node up: bootstrap its ledger from the signed genesis (checked against the pin),
/// write its config (0600) and generate its WireGuard key; prints the public key and the
/// `rn member propose add-node` line to hand to an approver.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "init")]
struct Init {
    /// this node's id
    #[argh(option)]
    node_id: Id,
    /// the signed genesis
    #[argh(option)]
    genesis: PathBuf,
    /// the genesis root, obtained out of band
    #[argh(option)]
    pin: Sha256Digest,
    /// mesh interface name (default rn0)
    #[argh(option, default = "String::from(\"rn0\")")]
    interface: String,
    /// UDP listen port (default 51820)
    #[argh(option, default = "51820")]
    listen_port: u16,
    /// auto, kernel, userspace, uapi or memory (default auto)
    #[argh(option, default = "BackendKind::Auto")]
    backend: BackendKind,
    /// nftables or none (default nftables)
    #[argh(option, default = "FirewallKind::Nftables")]
    firewall: FirewallKind,
    /// a peer's static endpoint, PEER=IP:PORT; repeatable
    #[argh(option)]
    endpoint: Vec<String>,
    /// persistent keepalive in seconds (default 25; 0 turns it off)
    #[argh(option, default = "25")]
    keepalive: u16,
    /// the mesh interface's MTU, 1280-9000 (default 1420)
    #[argh(option, default = "crate::node::config::DEFAULT_MTU")]
    mtu: u32,
    /// a mirror to catch the ledger up from (http:// or https:// base URL); repeatable
    #[argh(option)]
    mirror: Vec<String>,
    /// seconds between catch-ups from the mirrors and peers (default 30, at least 5)
    #[argh(option, default = "crate::node::config::DEFAULT_SYNC_INTERVAL")]
    sync_interval: u64,
    /// the CA bundle for https:// mirrors (default: the system's)
    #[argh(option)]
    ca_file: Option<PathBuf>,
    /// TCP port to serve the ledger and endpoints on, on the overlay (default 51821; 0: do not
    /// serve)
    #[argh(option, default = "crate::node::config::DEFAULT_SERVE_PORT")]
    serve_port: u16,
    /// peers to pull from each interval and to notify after each commit, 0-64 (default 3)
    #[argh(option, default = "crate::node::config::DEFAULT_FANOUT")]
    fanout: u16,
    /// where to write the config (default /etc/rn/node.json)
    #[argh(option, default = "default_config()")]
    config: PathBuf,
    /// the ledger's state directory (default /var/lib/rn)
    #[argh(option, default = "PathBuf::from(DEFAULT_STATE_DIR)")]
    state_dir: PathBuf,
    /// the WireGuard private key file (default: beside the config, <interface>.key)
    #[argh(option)]
    key: Option<PathBuf>,
    /// forward granted traffic to the prefixes this node's ledger routes cover
    #[argh(switch)]
    serve_routes: bool,
    /// forward granted internet traffic when the ledger gives this node exit: true
    #[argh(switch)]
    serve_exit: bool,
    /// masquerade traffic forwarded out of the mesh
    #[argh(switch)]
    masquerade: bool,
    /// the exit node to send internet traffic through, when granted; while chosen, internet
    /// traffic goes through it or nowhere
    #[argh(option)]
    exit: Option<Id>,
    /// with --exit: keep the host's local networks reachable outside the tunnel
    #[argh(switch)]
    allow_lan: bool,
    /// replace an existing config and key
    #[argh(switch)]
    force: bool,
    /// print {"node_id", "pubkey", "config", "key", "state_dir"} as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Init {
    fn run(mut self) -> anyhow::Result<Exit> {
        crate::node::config::check_interface(&self.interface)
            .map_err(|e| usage(format!("--interface: {e}")))?;
        // The agent runs from anywhere (systemd: from /): every path is made absolute.
        let absolute = |p: &std::path::Path| {
            std::path::absolute(p).map_err(|e| usage(format!("{}: {e}", p.display())))
        };
        self.config = absolute(&self.config)?;
        self.state_dir = absolute(&self.state_dir)?;
        if let Some(k) = &self.key {
            self.key = Some(absolute(k)?);
        }
        if let Some(c) = &self.ca_file {
            self.ca_file = Some(absolute(c)?);
        }
        let mut endpoints = BTreeMap::new();
        for e in &self.endpoint {
            let (peer, addr) = e
                .split_once('=')
                .ok_or_else(|| usage(format!("--endpoint {e:?}: expected PEER=IP:PORT")))?;
            let id: Id = peer
                .parse()
                .map_err(|err| usage(format!("--endpoint {e:?}: {err}")))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| usage(format!("--endpoint {e:?}: {addr:?} is not IP:PORT")))?;
            endpoints.insert(id, addr);
        }
        let dir = self
            .config
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let key_path = self
            .key
            .clone()
            .unwrap_or_else(|| dir.join(format!("{}.key", self.interface)));
        let config = NodeConfig {
            node_id: self.node_id.clone(),
            state_dir: self.state_dir.clone(),
            genesis_root: self.pin,
            private_key: key_path.clone(),
            interface: self.interface.clone(),
            listen_port: self.listen_port,
            backend: self.backend,
            firewall: self.firewall,
            endpoints,
            exit: self.exit.clone(),
            exit_allow_lan: self.allow_lan,
            keepalive_secs: self.keepalive,
            control_socket: PathBuf::from(format!("/run/rn/{}.sock", self.interface)),
            memory_file: dir.join(format!("{}.memory.json", self.interface)),
            serve_routes: self.serve_routes,
            serve_exit: self.serve_exit,
            masquerade: self.masquerade,
            fwmark: 51820,
            mtu: self.mtu,
            mirrors: self.mirror.clone(),
            sync_interval: self.sync_interval,
            ca_file: self.ca_file.clone(),
            serve_port: self.serve_port,
            fanout: self.fanout,
        };
        for m in &config.mirrors {
            crate::sync::fetch::check_base(m).map_err(|e| usage(format!("--mirror: {e}")))?;
        }
        if config.sync_interval < 5 {
            return Err(usage("--sync-interval must be at least 5 seconds"));
        }
        if config.fanout > crate::node::config::MAX_FANOUT {
            return Err(usage(format!(
                "--fanout {} must be at most {}",
                config.fanout,
                crate::node::config::MAX_FANOUT
            )));
        }
        if self.allow_lan && self.exit.is_none() {
            return Err(usage(
                "--allow-lan goes with --exit NODE: it only concerns a chosen exit",
            ));
        }
        if self.listen_port == 0 {
            return Err(usage("--listen-port 0: give a port, 1-65535"));
        }
        if !(1280..=9000).contains(&self.mtu) {
            return Err(usage(format!(
                "--mtu {}: must be between 1280 and 9000",
                self.mtu
            )));
        }
        if !self.force {
            for p in [&self.config, &key_path] {
                if p.exists() {
                    return Err(files::FileError::Exists { path: p.clone() }.into());
                }
            }
        }
        // The ledger first: it checks the genesis against the pin.
        let genesis = files::read_capped(&self.genesis, caps::UPDATE)?;
        match Store::bootstrap(&self.state_dir, &genesis, &self.pin, now()) {
            Ok(_) => {}
            Err(StoreError::AlreadyBootstrapped { .. }) => {
                let s = Store::open(&self.state_dir, Some(&self.pin), now())?;
                crate::errln!(
                    "{} already holds this network's ledger (epoch {})",
                    self.state_dir.display(),
                    s.state().epoch()
                );
            }
            Err(e) => return Err(e.into()),
        }
        std::fs::create_dir_all(&dir)?;
        let secret = NodeSecret::generate()?;
        files::write_atomic(&key_path, secret.to_base64().as_bytes(), 0o600, self.force)?;
        config.save(&self.config, self.force)?;
        let public = secret.public();
        if self.json {
            let v = serde_json::json!({
                "node_id": self.node_id.as_str(), "pubkey": public.to_string(),
                "config": self.config, "key": key_path, "state_dir": self.state_dir,
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!("{public}");
        crate::errln!(
            "node {} configured in {} (key {}). Hand this to an approver:\n  rn member propose add-node --id {} --pubkey {public} --owner OWNER [--tag TAG]... -o add-{}.json",
            self.node_id,
            self.config.display(),
            key_path.display(),
            self.node_id,
            self.node_id
        );
        Ok(Exit::Ok)
    }
}

/// Run the agent: verify the ledger, compile the policy, drive the tunnel and firewall, watch
/// for changes (inotify), undo drift every 10 s; SIGHUP reloads, SIGTERM stops.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "run")]
struct Run {
    /// the node configuration (default $RN_CONFIG, else /etc/rn/node.json)
    #[argh(option, default = "default_config()")]
    config: PathBuf,
    /// text or json (default text)
    #[argh(option, default = "String::from(\"text\")")]
    log_format: String,
    /// write Prometheus text metrics here after every reconcile
    #[argh(option)]
    metrics_file: Option<PathBuf>,
    /// serve the Prometheus metrics over HTTP at http://ADDR/metrics (e.g. 127.0.0.1:9851)
    #[argh(option)]
    metrics_listen: Option<SocketAddr>,
    /// reconcile once, print the status and exit (the interface of an embedded backend goes
    /// with the process)
    #[argh(switch)]
    once: bool,
}

impl Run {
    fn run(self) -> anyhow::Result<Exit> {
        let json = match self.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(usage(format!(
                    "--log-format {other:?} must be text or json"
                )));
            }
        };
        let config = load_config(&self.config)?;
        let mut agent = Agent::new(config, Log::new(json), self.metrics_file.clone())?
            .with_config_path(&self.config)
            .with_metrics_listen(self.metrics_listen);
        if self.once {
            agent.reconcile();
            let status = agent.status();
            let s = status
                .lock()
                .map_err(|_| anyhow::anyhow!("status lock poisoned"))?;
            crate::outln!("{}", serde_json::to_string(&*s)?);
            return Ok(if s.mode == crate::node::status::NodeMode::Trusted {
                Exit::Ok
            } else {
                Exit::Rejected
            });
        }
        let flags = Flags::new(crate::cli::exit::stop_overdue);
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flags.stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, flags.stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, flags.reload.clone())?;
        let stopped = agent.run(&flags)?;
        // The interface and filter are already removed: the process ends now, without waiting
        // for the embedded tunnel's threads to wind down. A device that stopped by itself exits
        // 75, so a service manager restarts the agent unless it was stopping it.
        std::mem::forget(agent);
        Ok(match stopped {
            Stopped::Requested => Exit::Ok,
            Stopped::DeviceExited => Exit::TempFail,
        })
    }
}

/// The strings of a JSON array in the agent's status (none when it is not one).
fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .collect()
}

fn socket(config: &std::path::Path) -> anyhow::Result<PathBuf> {
    Ok(load_config(config)?.control_socket)
}

/// Ask the running agent for its status: mode and reason, epoch, root, peers.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "status")]
struct Status {
    /// the node configuration (default $RN_CONFIG, else /etc/rn/node.json)
    #[argh(option, default = "default_config()")]
    config: PathBuf,
    /// print as JSON
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Status {
    fn run(self) -> anyhow::Result<Exit> {
        let path = socket(&self.config)?;
        let reply = control::request(&path, "status").map_err(|e| {
            anyhow::anyhow!(
                "no agent answers on {}: {e} (is `rn node run` running?)",
                path.display()
            )
        })?;
        if self.json {
            crate::out!("{reply}");
            return Ok(Exit::Ok);
        }
        let v: serde_json::Value = serde_json::from_str(&reply)?;
        crate::outln!("node       {}", v["node_id"].as_str().unwrap_or("?"));
        crate::outln!(
            "mode       {}{}",
            v["mode"].as_str().unwrap_or("?"),
            v["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        crate::outln!(
            "epoch      {}  root {}",
            v["epoch"],
            v["root"].as_str().unwrap_or("-")
        );
        crate::outln!(
            "interface  {} ({} backend, {} firewall)",
            v["interface"].as_str().unwrap_or("?"),
            v["backend"].as_str().unwrap_or("?"),
            v["firewall"].as_str().unwrap_or("?")
        );
        let peers = v["peers"].as_array().cloned().unwrap_or_default();
        crate::outln!("peers      {}", peers.len());
        for p in peers {
            let allowed = strings(&p["allowed"]);
            let hs = p["last_handshake"].as_u64().map_or_else(
                || "never".to_owned(),
                |t| format!("{} ago", super::output::show_span(now().saturating_sub(t))),
            );
            crate::outln!(
                "  {:<16} {}  endpoint {}  handshake {hs}  rx {} tx {}",
                p["id"].as_str().unwrap_or("?"),
                allowed.join(" "),
                p["endpoint"].as_str().unwrap_or("none"),
                p["rx_bytes"],
                p["tx_bytes"]
            );
        }
        let metrics = strings(&v["metrics_serving"]);
        if !metrics.is_empty() {
            crate::outln!(
                "metrics    {}",
                metrics
                    .iter()
                    .map(|a| format!("http://{a}/metrics"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        crate::outln!(
            "version    rn {} (commit {})",
            v["version"].as_str().unwrap_or("?"),
            v["commit"].as_str().unwrap_or("?")
        );
        for r in v["routes_offered"].as_array().into_iter().flatten() {
            crate::outln!("offers     {}", r.as_str().unwrap_or("?"));
        }
        for r in v["routes_used"].as_array().into_iter().flatten() {
            crate::outln!("route      {}", r.as_str().unwrap_or("?"));
        }
        match (v["exit"].as_str(), v["exit_blocked"].as_str()) {
            (Some(e), _) => crate::outln!("exit       {e}"),
            (None, Some(why)) => crate::outln!("exit       blocked: {why}"),
            (None, None) => crate::outln!("exit       none"),
        }
        for m in v["mirrors"].as_array().into_iter().flatten() {
            crate::outln!(
                "mirror     {} (every {} s): {}",
                m["url"].as_str().unwrap_or("?"),
                v["sync_interval"],
                m["last_result"].as_str().unwrap_or("not tried yet")
            );
        }
        let d = &v["distribution"];
        let serving = strings(&d["serving"]);
        match d["serve_port"].as_u64() {
            Some(0) | None => crate::outln!("serves     nothing (serve_port 0)"),
            Some(port) if serving.is_empty() => {
                crate::outln!(
                    "serves     nothing now (port {port}: not trusted, or no address yet)"
                )
            }
            Some(_) => crate::outln!("serves     {} (active members only)", serving.join(" ")),
        }
        crate::outln!(
            "sync       {} peer(s) every {} s and on notifications; {} pull(s), {} notification(s) sent ({} behind), {} received",
            d["fanout"],
            v["sync_interval"],
            d["pulls"],
            d["notifications_sent"],
            d["notified_behind"],
            d["notifications_received"]
        );
        if let Some(p) = d["last_pull"].as_str() {
            crate::outln!("last pull  {p}");
        }
        for b in d["backed_off"].as_array().into_iter().flatten() {
            crate::outln!("backed off {}", b.as_str().unwrap_or("?"));
        }
        for e in d["learned_endpoints"].as_array().into_iter().flatten() {
            crate::outln!(
                "endpoint   {} {} (learned from {})",
                e["peer"].as_str().unwrap_or("?"),
                e["endpoint"].as_str().unwrap_or("?"),
                e["from"].as_str().unwrap_or("?")
            );
        }
        for n in v["notes"].as_array().into_iter().flatten() {
            crate::outln!("note       {}", n.as_str().unwrap_or("?"));
        }
        if let Some(e) = v["last_error"].as_str() {
            crate::outln!("last error {e}");
        }
        Ok(Exit::Ok)
    }
}

/// Ask the running agent to reload now.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "reload")]
struct Reload {
    /// the node configuration (default $RN_CONFIG, else /etc/rn/node.json)
    #[argh(option, default = "default_config()")]
    config: PathBuf,
    /// print {"reload_requested": true} as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Reload {
    fn run(self) -> anyhow::Result<Exit> {
        let path = socket(&self.config)?;
        control::request(&path, "reload")
            .map_err(|e| anyhow::anyhow!("no agent answers on {}: {e}", path.display()))?;
        if self.json {
            crate::outln!("{}", serde_json::json!({"reload_requested": true}));
        } else {
            crate::outln!("reload requested");
        }
        Ok(Exit::Ok)
    }
}

/// Stage this node's next WireGuard key beside the current one (`<key>.next`, 0600) and print
/// the proposal line; the agent switches to it when the ledger commits it.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "rekey")]
struct Rekey {
    /// the node configuration (default $RN_CONFIG, else /etc/rn/node.json)
    #[argh(option, default = "default_config()")]
    config: PathBuf,
    /// replace a key already staged (one not yet proposed, or whose proposal was dropped)
    #[argh(switch)]
    force: bool,
    /// print {"node_id", "pubkey", "key"} as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl Rekey {
    fn run(self) -> anyhow::Result<Exit> {
        let config = load_config(&self.config)?;
        let staged = crate::node::agent::staged_key_path(&config.private_key);
        if !self.force
            && let Ok(next) = NodeSecret::load(&staged)
        {
            return Err(usage(format!(
                "a next key is staged already in {} (public {}): propose it (rn member propose \
                 rotate-node-key {} --pubkey {}), or --force to stage another",
                staged.display(),
                next.public(),
                config.node_id,
                next.public()
            )));
        }
        let secret = NodeSecret::generate()?;
        files::write_atomic(&staged, secret.to_base64().as_bytes(), 0o600, true)?;
        let public = secret.public();
        if self.json {
            let v = serde_json::json!({
                "node_id": config.node_id.as_str(), "pubkey": public.to_string(), "key": staged,
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!("{public}");
        crate::errln!(
            "staged the next key of node {} in {}; the agent switches to it when the ledger \
             commits it. Hand this to an approver:\n  rn member propose rotate-node-key {} \
             --pubkey {public} -o rekey-{}.json",
            config.node_id,
            staged.display(),
            config.node_id,
            config.node_id
        );
        Ok(Exit::Ok)
    }
}

/// Choose the exit node for this node's internet traffic (`set NODE`) or stop using one
/// (`off`); stored in the config, applied by the running agent at once.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "exit")]
struct ExitCmd {
    /// set or off
    #[argh(positional)]
    action: String,
    /// the exit node (with "set")
    #[argh(positional)]
    node: Option<Id>,
    /// with "set": keep the host's local networks reachable outside the tunnel (without it,
    /// everything but the mesh goes through the exit or nowhere)
    #[argh(switch)]
    allow_lan: bool,
    /// the node configuration (default $RN_CONFIG, else /etc/rn/node.json)
    #[argh(option, default = "default_config()")]
    config: PathBuf,
    /// print {"exit", "allow_lan", "agent_applying"} as one JSON object
    #[argh(switch)]
    pub(crate) json: bool,
}

impl ExitCmd {
    fn run(self) -> anyhow::Result<Exit> {
        let mut config = load_config(&self.config)?;
        (config.exit, config.exit_allow_lan) = match (self.action.as_str(), self.node) {
            ("set", Some(n)) => (Some(n), self.allow_lan),
            ("off", None) if !self.allow_lan => (None, false),
            _ => {
                return Err(usage(
                    "rn node exit set NODE [--allow-lan] | rn node exit off",
                ));
            }
        };
        config.save(&self.config, true)?;
        let reloaded = control::request(&config.control_socket, "reload").is_ok();
        if self.json {
            let v = serde_json::json!({
                "exit": config.exit.as_ref().map(Id::as_str),
                "allow_lan": config.exit_allow_lan, "agent_applying": reloaded,
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::outln!(
            "exit {}{}",
            config.exit.as_ref().map_or_else(
                || "off".to_owned(),
                |e| format!(
                    "set to {e}{}",
                    if config.exit_allow_lan {
                        ", local networks reachable"
                    } else {
                        ""
                    }
                )
            ),
            if reloaded {
                "; the agent is applying it"
            } else {
                " (no agent running; applies on start)"
            }
        );
        Ok(Exit::Ok)
    }
}
