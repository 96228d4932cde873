//! The agent's control socket (`/run/rn/<interface>.sock`, `0600`): `status` returns the
//! agent's status as JSON, `reload` asks for a reconcile.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::status::{NodeMode, Status};
use crate::tunnel::TunnelBackend;

/// Binds the socket and answers requests on a thread. Returns the socket path. Every `status`
/// answer is refreshed by `live` (see [`Live`]).
pub fn serve(
    path: &Path,
    status: Arc<Mutex<Status>>,
    reload: Arc<AtomicBool>,
    live: Live,
) -> std::io::Result<PathBuf> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another agent answers on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = answer(conn, &status, &reload, &live);
        }
    });
    Ok(path.to_owned())
}

fn answer(
    conn: UnixStream,
    status: &Mutex<Status>,
    reload: &AtomicBool,
    live: &Live,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(conn.try_clone()?.take(256)).read_line(&mut line)?;
    let reply = match line.trim() {
        "status" => match status.lock() {
            Ok(s) => {
                let mut s = s.clone();
                live.refresh(&mut s);
                serde_json::to_string(&s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            }
            Err(_) => "{\"error\":\"status unavailable\"}".into(),
        },
        "reload" => {
            reload.store(true, Ordering::Relaxed);
            "{\"ok\":true}".into()
        }
        other => format!("{{\"error\":\"unknown request {other:?}\"}}"),
    };
    let mut conn = conn;
    conn.write_all(reply.as_bytes())?;
    conn.write_all(b"\n")
}

/// What a status answer reads as it is at the moment of the request, not as the last reconcile
/// found it.
pub struct Live {
    /// A backend used only to read the interface: handshakes, counters and endpoints as they
    /// are now, and a node whose interface is gone is not trusted.
    pub reader: Option<Mutex<Box<dyn TunnelBackend>>>,
    /// Where the ledger server listens (it rebinds on its own thread).
    pub serving: Option<crate::sync::serve::Listening>,
}

impl Live {
    /// Fills `s` with what is in force now. An interface that is gone makes a trusted node
    /// restricted in the answer; one that cannot be read leaves the last reconcile's figures.
    pub fn refresh(&self, s: &mut Status) {
        if let Some(listening) = &self.serving {
            s.distribution.serving = listening.now().iter().map(ToString::to_string).collect();
        }
        let Some(Ok(reader)) = self.reader.as_ref().map(|r| r.lock()) else {
            return;
        };
        let Ok(o) = reader.observe() else {
            return;
        };
        if !o.present {
            if s.mode == NodeMode::Trusted {
                s.mode = NodeMode::Restricted;
                s.reason = Some(format!(
                    "the interface {} is missing (deleted from under rn); restoring it",
                    s.interface
                ));
            }
            return;
        }
        for p in &mut s.peers {
            if let Some(seen) = o.peers.iter().find(|q| q.pubkey.to_string() == p.pubkey) {
                p.last_handshake = seen.last_handshake;
                p.rx_bytes = seen.rx_bytes;
                p.tx_bytes = seen.tx_bytes;
                if let Some(e) = seen.endpoint {
                    p.endpoint = Some(e.to_string());
                }
            }
        }
    }
}

/// Sends one request to the agent and returns its reply.
pub fn request(path: &Path, what: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{what}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
