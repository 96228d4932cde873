//! Catching the ledger up from the configured mirrors (spec §5a): at start and every
//! `sync_interval` (±20 %), on a thread of its own so a slow mirror never delays the agent.
//! What a mirror serves goes through the gate like any input; a mirror that fails or serves
//! something refused is backed off, doubling up to ten minutes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use super::status::{Log, MirrorStatus, Status};
use crate::ledger::store::Store;
use crate::sync::fetch::{self, Client};

/// The longest a failing mirror is left alone.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Time allowed for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One mirror's catch-up from `ours`: `Ok(text)` says what happened.
fn catch_up(config: &NodeConfig, client: &Client, base: &str) -> Result<String, String> {
    let now = crate::clock::now();
    // Read where the ledger stands, and let it go while fetching.
    let (network, ours) = {
        let store = Store::open_trusted(&config.state_dir, Some(&config.genesis_root), now)
            .map_err(|e| format!("ledger: {e}"))?;
        (
            store.state().network_id().clone(),
            store.state().epoch().get(),
        )
    };
    let Some(carried) =
        fetch::fetch_beyond(client, base, &network, ours).map_err(|e| e.to_string())?
    else {
        return Ok(format!("up to date at epoch {ours}"));
    };
    let mut store = Store::open_trusted(&config.state_dir, Some(&config.genesis_root), now)
        .map_err(|e| format!("ledger: {e}"))?;
    let r = fetch::apply_fetched(&mut store, &carried, crate::clock::now(), base)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "applied {} update(s), epoch {} -> {}",
        r.committed.len(),
        r.from_epoch,
        r.to_epoch
    ))
}

/// A factor in [0.8, 1.2) for the interval's jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    0.8 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 0.4
}

/// Runs until `stop`: every mirror at start, then every interval; failures back off.
pub fn run(config: NodeConfig, log: Log, status: Arc<Mutex<Status>>, stop: Arc<AtomicBool>) {
    let client = match Client::new(config.ca_file.as_deref(), REQUEST_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            log.event("warn", &format!("mirrors: {e}; not catching up from them"));
            return;
        }
    };
    let interval = Duration::from_secs(config.sync_interval);
    let mut backoff: Vec<(Option<Instant>, Duration)> =
        config.mirrors.iter().map(|_| (None, interval)).collect();
    if let Ok(mut s) = status.lock() {
        s.sync_interval = config.sync_interval;
        s.mirrors = config
            .mirrors
            .iter()
            .map(|m| MirrorStatus {
                url: m.clone(),
                ..MirrorStatus::default()
            })
            .collect();
    }
    while !stop.load(Ordering::Relaxed) {
        for (i, base) in config.mirrors.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if backoff[i].0.is_some_and(|until| Instant::now() < until) {
                continue;
            }
            let result = catch_up(&config, &client, base);
            let now = crate::clock::now();
            let (text, until) = match &result {
                Ok(text) => {
                    if text.starts_with("applied") {
                        log.event("info", &format!("mirror {base}: {text}"));
                    }
                    backoff[i] = (None, interval);
                    (text.clone(), None)
                }
                Err(e) => {
                    let wait = backoff[i].1;
                    log.event(
                        "warn",
                        &format!("mirror {base}: {e}; next try in {} s", wait.as_secs()),
                    );
                    backoff[i] = (Some(Instant::now() + wait), (wait * 2).min(MAX_BACKOFF));
                    (format!("failed: {e}"), Some(now + wait.as_secs()))
                }
            };
            if let Ok(mut s) = status.lock()
                && let Some(m) = s.mirrors.get_mut(i)
            {
                m.last_attempt = Some(now);
                m.last_result = Some(text);
                m.backoff_until = until;
            }
        }
        let wait = interval.mul_f64(jitter());
        let start = Instant::now();
        while start.elapsed() < wait && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
