//! The mesh carries its own ledger (spec §5a). Each agent serves its verified ledger and the
//! endpoints its interface sees, on its overlay addresses to active members only; a thread of
//! its own catches the ledger up — at start, every `sync_interval` (±20 %) from the configured
//! mirrors and `fanout` random peers, and at once when a peer notifies — notifies peers after
//! each commit, and learns endpoints for peers it cannot reach. Whatever is fetched goes
//! through the gate like any input; a source that fails or serves something refused is backed
//! off, doubling up to ten minutes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use super::status::{LearnedEndpoint, Log, MirrorStatus, Status};
use crate::ledger::canonical::decode;
use crate::ledger::carried::Head;
use crate::ledger::store::{Store, StoreError};
use crate::ledger::types::{Id, TransportKey};
use crate::sync::fetch::{self, Client};
use crate::sync::layout::{self, EndpointSeen, Endpoints, EndpointsKind, Snapshot};
use crate::sync::serve::{self, Request, Response};

/// The longest a failing source is left alone.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The first wait after a peer failed.
const PEER_BACKOFF: Duration = Duration::from_secs(5);

/// Time allowed for one request to a mirror, and to connect to it.
const MIRROR_TIMEOUT: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(5));

/// Time allowed for one request to a peer, and to connect to it (it is one hop away on the
/// overlay).
const PEER_TIMEOUT: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(2));

/// Time allowed for one notification, and to connect: a peer that does not answer at once is
/// left to its periodic pull.
const NOTIFY_TIMEOUT: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(1));

/// The longest one pull from a peer fetches for (each request has its own bound too): what
/// it has then goes to the gate, and the next pull goes on from there.
const PEER_PULL: Duration = Duration::from_secs(60);

/// The longest one catch-up from a mirror fetches for.
const MIRROR_PULL: Duration = Duration::from_secs(120);

/// Notified pulls running at once; further notifications wait for one to end.
const MAX_NOTIFIED_PULLS: usize = 4;

/// Commits from the distribution's sources, one at a time: fetches run in parallel, applies
/// do not wait on each other's lock of the state directory.
static APPLY: Mutex<()> = Mutex::new(());

/// A handshake this recent is a live session (WireGuard rekeys every two minutes).
pub const LIVE_SESSION: u64 = 180;

/// A learned endpoint that gave no handshake in this long is dropped for another answer.
const LEARNED_GRACE: u64 = 20;

/// How often peers without a working endpoint are looked up.
const LEARN_INTERVAL: Duration = Duration::from_secs(5);

/// The least time between two pulls a notification from one source starts.
const NOTIFY_PULL_GAP: Duration = Duration::from_secs(1);

/// One peer as the distribution sees it.
#[derive(Clone, Debug)]
pub struct MeshPeer {
    /// Its id.
    pub id: Id,
    /// Its WireGuard key.
    pub pubkey: TransportKey,
    /// Its overlay host addresses.
    pub addresses: Vec<IpAddr>,
    /// The endpoint in use or configured.
    pub endpoint: Option<SocketAddr>,
    /// Its last handshake.
    pub last_handshake: Option<u64>,
    /// Its endpoint is static (node.json).
    pub static_endpoint: bool,
}

/// What the agent shares with the server and the distribution thread.
#[derive(Debug, Default)]
pub struct Shared {
    /// The verified ledger's layout, while the node is trusted (`None`: serve nothing).
    pub snapshot: Option<Snapshot>,
    /// The `rn/v1/endpoints` answer.
    pub endpoints: Vec<u8>,
    /// The overlay addresses of the active members (who may connect).
    pub members: HashSet<IpAddr>,
    /// The peers.
    pub peers: Vec<MeshPeer>,
    /// Endpoints learned from peers: (endpoint, when learned, from whom).
    pub learned: BTreeMap<Id, (SocketAddr, u64, IpAddr)>,
    /// The agent enforced a new epoch and published it: peers are to be told. Set with
    /// [`Event::Committed`], which only wakes the distribution: an event can be lost to a full
    /// queue, the flag cannot.
    pub committed: bool,
}

impl Shared {
    /// The head served, if any.
    fn head(&self) -> Option<Head> {
        self.snapshot.as_ref().and_then(|s| s.head().cloned())
    }
}

/// What reaches the distribution thread.
#[derive(Debug)]
pub enum Event {
    /// A peer at this address says it is at this epoch, ahead of this node.
    Notified(IpAddr, u64),
    /// This node committed a new epoch.
    Committed,
}

/// The `rn.endpoints.v1` answer for the peers an interface sees with a live session.
pub fn endpoints_answer(seen: impl Iterator<Item = (TransportKey, SocketAddr, u64)>) -> Vec<u8> {
    let now = crate::clock::now();
    let mut peers: Vec<EndpointSeen> = seen
        .filter(|(_, _, at)| now.saturating_sub(*at) <= LIVE_SESSION)
        .map(|(pubkey, endpoint, seen_at)| EndpointSeen {
            pubkey,
            endpoint,
            seen_at,
        })
        .collect();
    peers.sort_by_key(|p| p.pubkey.to_string());
    crate::ledger::canonical::to_jcs(&Endpoints {
        kind: EndpointsKind,
        peers,
    })
}

/// Answers the layout, the endpoints and notifications, to active members only.
pub struct LedgerHandler {
    shared: Arc<Mutex<Shared>>,
    events: SyncSender<Event>,
    notified: AtomicU64,
}

impl LedgerHandler {
    /// A handler over `shared`, passing notifications on to `events`.
    pub fn new(shared: Arc<Mutex<Shared>>, events: SyncSender<Event>) -> LedgerHandler {
        LedgerHandler {
            shared,
            events,
            notified: AtomicU64::new(0),
        }
    }
}

impl serve::Handler for LedgerHandler {
    fn handle(&self, r: &Request<'_>) -> Response {
        let Ok(shared) = self.shared.lock() else {
            return Response::status(503, "unavailable");
        };
        // The firewall admits active members only; so does the server, for hosts filtered
        // by other means.
        if !shared.members.contains(&r.peer.ip()) {
            return Response::status(403, "active members only");
        }
        let Some(snapshot) = &shared.snapshot else {
            return Response::status(503, "this node is not trusted: it serves nothing");
        };
        match (r.method, r.path) {
            ("GET", p) if p == layout::endpoints_path() => Response::ok(shared.endpoints.clone()),
            ("GET", p) => match snapshot.get(p) {
                Some(b) => Response::ok(b.to_vec()),
                None => Response::status(404, "not here"),
            },
            ("POST", p) if p == layout::notify_path() => {
                let Ok(head) = decode::<Head>(r.body) else {
                    return Response::status(400, "expected an rn.head.v1 document");
                };
                let ours = snapshot.head();
                if ours.is_none_or(|o| o.network_id != head.network_id) {
                    return Response::status(400, "another network");
                }
                if ours.is_some_and(|o| o.epoch >= head.epoch) {
                    return Response::ok(b"{\"behind\":false}".to_vec());
                }
                match self
                    .events
                    .try_send(Event::Notified(r.peer.ip(), head.epoch.get()))
                {
                    Ok(()) | Err(TrySendError::Full(_)) => {
                        self.notified.fetch_add(1, Ordering::Relaxed);
                        Response {
                            status: 202,
                            body: b"{\"behind\":true}".to_vec(),
                            content_type: "application/json",
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => Response::status(503, "not pulling"),
                }
            }
            _ => Response::status(405, "GET or POST rn/v1/notify"),
        }
    }
}

/// Why a catch-up did not succeed.
#[derive(Debug)]
struct Failure {
    /// What went wrong.
    text: String,
    /// It was the source's doing (it failed, lied or served something refused), so it is
    /// backed off; otherwise it was this node's (its ledger could not be read or taken).
    by_source: bool,
}

impl Failure {
    fn source(text: impl ToString) -> Failure {
        Failure {
            text: text.to_string(),
            by_source: true,
        }
    }

    fn local(text: impl ToString) -> Failure {
        Failure {
            text: text.to_string(),
            by_source: false,
        }
    }
}

/// One source's catch-up: `Ok(text)` says what happened. `known` is the head this node
/// serves, when it serves one: a source whose head is not beyond it costs one small request
/// and no read of the ledger. `claimed` is the epoch the source notified: a source that
/// claimed to be ahead and is not has failed. The fetch stops at `deadline`.
fn catch_up(
    config: &NodeConfig,
    client: &Client,
    base: &str,
    known: Option<&Head>,
    claimed: Option<u64>,
    deadline: Instant,
) -> Result<String, Failure> {
    let open = || {
        Store::open_trusted(
            &config.state_dir,
            Some(&config.genesis_root),
            crate::clock::now(),
        )
        .map_err(|e| Failure::local(format!("ledger: {e}")))
    };
    let network = match known {
        Some(h) => h.network_id.clone(),
        None => open()?.state().network_id().clone(),
    };
    let head = fetch::fetch_head(client, base, &network).map_err(Failure::source)?;
    let theirs = head.epoch.get();
    let not_ahead = |ours: u64| match claimed {
        Some(c) if c > theirs => Err(Failure::source(format!(
            "notified epoch {c}, but serves a head at epoch {theirs}, not beyond this node's {ours}"
        ))),
        _ => Ok(format!("up to date at epoch {ours}")),
    };
    if let Some(h) = known
        && theirs <= h.epoch.get()
    {
        return not_ahead(h.epoch.get());
    }
    // Where the ledger stands exactly (the served head may lag a commit); let it go while
    // fetching.
    let ours = open()?.state().epoch().get();
    if theirs <= ours {
        return not_ahead(ours);
    }
    let Some(carried) =
        fetch::fetch_beyond(client, base, ours, theirs, deadline).map_err(Failure::source)?
    else {
        return Ok(format!("up to date at epoch {ours}"));
    };
    let _one = APPLY.lock();
    let mut store = open()?;
    let r =
        fetch::apply_fetched(&mut store, &carried, crate::clock::now(), base).map_err(
            |e| match e {
                // The gate refused what the source served.
                fetch::FetchError::Store(StoreError::Rejected { .. }) => Failure::source(e),
                // This node's ledger could not take it (busy, a file, restricted meanwhile).
                fetch::FetchError::Store(_) => Failure::local(e),
                e => Failure::source(e),
            },
        )?;
    if r.committed.is_empty() {
        return Ok(format!("nothing new at epoch {}", r.to_epoch));
    }
    Ok(format!(
        "applied {} update(s), epoch {} -> {}",
        r.committed.len(),
        r.from_epoch,
        r.to_epoch
    ))
}

/// A random number below `n` (`n` > 0).
fn below(n: usize) -> usize {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) % n as u64) as usize
}

/// `items` in random order.
fn shuffled<T>(mut items: Vec<T>) -> Vec<T> {
    for i in (1..items.len()).rev() {
        items.swap(i, below(i + 1));
    }
    items
}

/// A factor in [0.8, 1.2) for the interval's jitter.
fn jitter() -> f64 {
    0.8 + below(10_000) as f64 / 10_000.0 * 0.4
}

/// A source's backoff: not before `until`; the next wait.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    until: Option<Instant>,
    wait: Duration,
}

impl Backoff {
    fn new(first: Duration) -> Backoff {
        Backoff {
            until: None,
            wait: first,
        }
    }

    fn ready(&self) -> bool {
        self.until.is_none_or(|u| Instant::now() >= u)
    }

    /// Backs off; returns how long.
    fn fail(&mut self) -> Duration {
        let w = self.wait;
        self.until = Some(Instant::now() + w);
        self.wait = (w * 2).min(MAX_BACKOFF);
        w
    }
}

/// How an endpoint answer ranks: the smaller, the better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// The endpoint gave no handshake before.
    failed: bool,
    /// Answers from its source that gave no handshake since one did.
    strikes: u32,
    /// When the source saw it (later is better).
    older: std::cmp::Reverse<u64>,
}

/// What a periodic round hands back, source by source.
enum Done {
    /// A peer: its id when known, its address, why it was pulled from, what the pull gave,
    /// and how long it took.
    Peer(
        Option<Id>,
        IpAddr,
        &'static str,
        Result<String, Failure>,
        Duration,
    ),
    /// Mirror `i`, and what the catch-up gave.
    Mirror(usize, Result<String, Failure>),
    /// Every source of the round answered or gave up.
    RoundOver,
}

/// The distribution thread's state.
struct Distributor {
    config: NodeConfig,
    log: Log,
    status: Arc<Mutex<Status>>,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<AtomicBool>,
    mirrors: Option<Client>,
    peers: Client,
    notifier: Client,
    mirror_backoff: Vec<Backoff>,
    peer_backoff: HashMap<IpAddr, Backoff>,
    last_notify_pull: HashMap<IpAddr, Instant>,
    /// Notifications that came within [`NOTIFY_PULL_GAP`] of a pull from their source: the
    /// epoch claimed, pulled for when the gap has passed.
    pending: HashMap<IpAddr, u64>,
    /// Learned endpoints that gave no handshake: (peer, endpoint).
    failed: HashSet<(Id, SocketAddr)>,
    /// Per source of endpoint answers: how many of its answers gave no handshake since one
    /// last did. Answers from sources with fewer are preferred.
    strikes: HashMap<IpAddr, u32>,
    /// Peers whose learned endpoint gave a session.
    worked: HashSet<Id>,
    /// The sources a notified pull is running for, and the epoch each notified.
    notified_running: HashMap<IpAddr, u64>,
    /// The peers the periodic round in flight is pulling from.
    round_peers: HashSet<IpAddr>,
    /// Where finished pulls and rounds are handed back.
    done: Sender<Done>,
}

impl Distributor {
    fn base(&self, ip: IpAddr) -> String {
        format!("http://{}", SocketAddr::new(ip, self.config.serve_port))
    }

    /// Peers with a way to reach them: a live session first, then any endpoint.
    fn reachable(&self) -> Vec<MeshPeer> {
        let now = crate::clock::now();
        let peers = self
            .shared
            .lock()
            .map(|s| s.peers.clone())
            .unwrap_or_default();
        let (mut live, rest): (Vec<_>, Vec<_>) = shuffled(peers)
            .into_iter()
            .filter(|p| p.endpoint.is_some() && !p.addresses.is_empty())
            .partition(|p| {
                p.last_handshake
                    .is_some_and(|h| now.saturating_sub(h) <= LIVE_SESSION)
            });
        live.extend(rest);
        live
    }

    /// What a pull from the peer at `ip` gave: logged, in the status, and the peer backed off
    /// when it failed by its own doing.
    fn record_peer(
        &mut self,
        id: Option<&Id>,
        ip: IpAddr,
        why: &str,
        result: &Result<String, Failure>,
        took: Duration,
    ) {
        let who = id.map_or_else(|| ip.to_string(), |id| format!("{id} ({ip})"));
        let text = match result {
            Ok(text) => {
                if text.starts_with("applied") {
                    self.log
                        .event("info", &format!("peer {who} ({why}): {text}"));
                }
                self.peer_backoff.remove(&ip);
                text.clone()
            }
            Err(f) if f.by_source => {
                let wait = self
                    .peer_backoff
                    .entry(ip)
                    .or_insert(Backoff::new(PEER_BACKOFF))
                    .fail();
                self.log.event(
                    "warn",
                    &format!(
                        "peer {who} ({why}): {}; not asked again for {} s",
                        f.text,
                        wait.as_secs()
                    ),
                );
                format!("failed: {}", f.text)
            }
            Err(f) => {
                self.log
                    .event("warn", &format!("pull from peer {who} ({why}): {}", f.text));
                format!("failed here: {}", f.text)
            }
        };
        if let Ok(mut s) = self.status.lock() {
            s.distribution.pulls += 1;
            s.distribution.last_pull_ms = took.as_millis() as u64;
            s.distribution.last_pull = Some(format!(
                "{} {who} ({why}): {text}",
                crate::clock::utc(crate::clock::now())
            ));
        }
        self.show_backoff();
    }

    /// The peers backed off now, in the status.
    fn show_backoff(&self) {
        let mut now: Vec<String> = self
            .peer_backoff
            .iter()
            .filter(|(_, b)| !b.ready())
            .map(|(ip, _)| ip.to_string())
            .collect();
        now.sort();
        if let Ok(mut s) = self.status.lock()
            && s.distribution.backed_off != now
        {
            s.distribution.backed_off = now;
        }
    }

    /// Each mirror not backed off.
    /// What a catch-up from mirror `i` gave: logged, in the status, and the mirror backed off
    /// when it failed.
    fn record_mirror(&mut self, i: usize, result: &Result<String, Failure>) {
        let Some(base) = self.config.mirrors.get(i).cloned() else {
            return;
        };
        let now = crate::clock::now();
        let (text, until) = match result {
            Ok(text) => {
                if text.starts_with("applied") {
                    self.log.event("info", &format!("mirror {base}: {text}"));
                }
                self.mirror_backoff[i] = Backoff::new(self.interval());
                (text.clone(), None)
            }
            Err(f) if f.by_source => {
                let wait = self.mirror_backoff[i].fail();
                self.log.event(
                    "warn",
                    &format!(
                        "mirror {base}: {}; next try in {} s",
                        f.text,
                        wait.as_secs()
                    ),
                );
                (format!("failed: {}", f.text), Some(now + wait.as_secs()))
            }
            Err(f) => {
                self.log
                    .event("warn", &format!("catch-up from mirror {base}: {}", f.text));
                (format!("failed here: {}", f.text), None)
            }
        };
        if let Ok(mut s) = self.status.lock()
            && let Some(m) = s.mirrors.get_mut(i)
        {
            m.last_attempt = Some(now);
            m.last_result = Some(text);
            m.backoff_until = until;
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(self.config.sync_interval)
    }

    /// The head this node serves, if it serves one.
    fn known(&self) -> Option<Head> {
        self.shared.lock().ok().and_then(|s| s.head())
    }

    /// Pulls, each on a thread of its own, from each source that notified an epoch beyond
    /// this node's: at most once per [`NOTIFY_PULL_GAP`] per source (a notification within
    /// the gap waits for it), one pull per source and [`MAX_NOTIFIED_PULLS`] in all at a time.
    fn pull_notified(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let known = self.known();
        let ours = known.as_ref().map_or(0, |h| h.epoch.get());
        self.pending.retain(|_, epoch| *epoch > ours);
        let due: Vec<(IpAddr, u64)> = self
            .pending
            .iter()
            .filter(|(ip, _)| {
                // A source the round is pulling from waits for that pull.
                !self.notified_running.contains_key(ip)
                    && !self.round_peers.contains(ip)
                    && self
                        .last_notify_pull
                        .get(ip)
                        .is_none_or(|t| t.elapsed() >= NOTIFY_PULL_GAP)
            })
            .map(|(ip, epoch)| (*ip, *epoch))
            .collect();
        for (ip, epoch) in due {
            if self.notified_running.len() >= MAX_NOTIFIED_PULLS {
                break;
            }
            self.pending.remove(&ip);
            if self.peer_backoff.get(&ip).is_some_and(|b| !b.ready()) {
                continue;
            }
            self.last_notify_pull.insert(ip, Instant::now());
            self.notified_running.insert(ip, epoch);
            let id = self.shared.lock().ok().and_then(|s| {
                s.peers
                    .iter()
                    .find(|p| p.addresses.contains(&ip))
                    .map(|p| p.id.clone())
            });
            let (config, client, done, known) = (
                self.config.clone(),
                self.peers.clone(),
                self.done.clone(),
                known.clone(),
            );
            let base = self.base(ip);
            let spawned = std::thread::Builder::new().spawn(move || {
                let started = Instant::now();
                let deadline = started + PEER_PULL;
                let result = catch_up(
                    &config,
                    &client,
                    &base,
                    known.as_ref(),
                    Some(epoch),
                    deadline,
                );
                let took = started.elapsed();
                let _ = done.send(Done::Peer(id, ip, "notified", result, took));
            });
            if let Err(e) = spawned {
                self.notified_running.remove(&ip);
                self.log.event(
                    "warn",
                    &format!("pull from {ip} (notified): no thread: {e}"),
                );
            }
        }
    }

    /// The periodic round: the mirrors and `fanout` random reachable peers not backed off.
    ///
    /// It runs on a thread of its own, every source at once, and hands back what each gave,
    /// so that a slow or dead source never holds up notifications.
    fn start_round(&mut self, by_peers: bool) -> bool {
        let mirrors: Vec<(usize, String)> = self
            .config
            .mirrors
            .iter()
            .enumerate()
            .filter(|(i, _)| self.mirror_backoff[*i].ready())
            .map(|(i, m)| (i, m.clone()))
            .collect();
        let peers: Vec<(Id, IpAddr)> = if by_peers {
            self.reachable()
                .into_iter()
                .map(|p| (p.id.clone(), p.addresses[0]))
                .filter(|(_, ip)| {
                    self.peer_backoff.get(ip).is_none_or(Backoff::ready)
                        && !self.notified_running.contains_key(ip)
                })
                .take(usize::from(self.config.fanout))
                .collect()
        } else {
            Vec::new()
        };
        self.round_peers = peers.iter().map(|(_, ip)| *ip).collect();
        let (config, mirror_client, peer_client, known, done) = (
            self.config.clone(),
            self.mirrors.clone(),
            self.peers.clone(),
            self.known(),
            self.done.clone(),
        );
        let port = self.config.serve_port;
        let spawned = std::thread::Builder::new().spawn(move || {
            let known = known.as_ref();
            std::thread::scope(|scope| {
                if let Some(client) = &mirror_client {
                    for (i, base) in &mirrors {
                        let (config, done) = (&config, done.clone());
                        scope.spawn(move || {
                            let deadline = Instant::now() + MIRROR_PULL;
                            let result = catch_up(config, client, base, known, None, deadline);
                            let _ = done.send(Done::Mirror(*i, result));
                        });
                    }
                }
                for (id, ip) in peers {
                    let (config, client, done) = (&config, &peer_client, done.clone());
                    scope.spawn(move || {
                        let base = format!("http://{}", SocketAddr::new(ip, port));
                        let started = Instant::now();
                        let deadline = started + PEER_PULL;
                        let result = catch_up(config, client, &base, known, None, deadline);
                        let took = started.elapsed();
                        let _ = done.send(Done::Peer(Some(id), ip, "periodic", result, took));
                    });
                }
            });
            let _ = done.send(Done::RoundOver);
        });
        if let Err(e) = &spawned {
            self.round_peers.clear();
            self.log
                .event("warn", &format!("periodic pull: no thread: {e}"));
        }
        spawned.is_ok()
    }

    /// Takes what the pulls and the round in flight have finished.
    fn take_done(&mut self, done: &Receiver<Done>, in_flight: &mut bool) {
        while let Ok(d) = done.try_recv() {
            match d {
                Done::Peer(id, ip, why, result, took) => {
                    if why == "notified" {
                        // A pull this node could not finish itself (its ledger busy) is
                        // tried again after the gap: the notification is not used up.
                        let epoch = self.notified_running.remove(&ip);
                        if let (Some(epoch), Err(f)) = (epoch, &result)
                            && !f.by_source
                        {
                            let e = self.pending.entry(ip).or_insert(epoch);
                            *e = (*e).max(epoch);
                        }
                    } else {
                        self.round_peers.remove(&ip);
                    }
                    self.record_peer(id.as_ref(), ip, why, &result, took);
                }
                Done::Mirror(i, result) => self.record_mirror(i, &result),
                Done::RoundOver => {
                    self.round_peers.clear();
                    *in_flight = false;
                }
            }
        }
    }

    /// After a commit: tells `fanout` random reachable peers at a time, for as long as some
    /// of those told were behind (feedback: a rumour stops spreading once it meets peers that
    /// know it).
    fn notify(&mut self) {
        let Some(head) = self.shared.lock().ok().and_then(|s| s.head()) else {
            return;
        };
        let bases: Vec<String> = self
            .reachable()
            .iter()
            .map(|p| self.base(p.addresses[0]))
            .collect();
        let client = &self.notifier;
        let done = crate::sync::gossip::spread(bases, usize::from(self.config.fanout), |group| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|b| scope.spawn(|| client.notify(b, &head)))
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .filter(|r| matches!(r, Ok(true)))
                    .count()
            })
        });
        if let Ok(mut s) = self.status.lock() {
            s.distribution.notifications_sent += done.told as u64;
            s.distribution.notified_behind += done.behind as u64;
        }
    }

    /// Looks up endpoints for peers without a static endpoint or a live session, from the
    /// peers with a live session: the best-ranked answer wins ([`Rank`]); one that gave no
    /// handshake counts against its source and is taken again only when no other is offered.
    fn learn(&mut self) {
        let now = crate::clock::now();
        let (peers, learned) = match self.shared.lock() {
            Ok(s) => (s.peers.clone(), s.learned.clone()),
            Err(_) => return,
        };
        let live = |p: &MeshPeer| {
            p.last_handshake
                .is_some_and(|h| now.saturating_sub(h) <= LIVE_SESSION)
        };
        // A learned endpoint that gave no handshake within the grace is written off, and
        // counts against the peer that gave it; one that did clears its source's count.
        // One that worked and whose session lapsed later is dropped, not written off.
        let mut forget = Vec::new();
        for (id, (ep, at, from)) in &learned {
            let peer = peers.iter().find(|p| &p.id == id);
            if peer.is_none_or(|p| p.static_endpoint) {
                forget.push(id.clone());
            } else if peer.is_some_and(live) {
                self.strikes.remove(from);
                self.worked.insert(id.clone());
            } else if self.worked.remove(id) {
                forget.push(id.clone());
            } else if now.saturating_sub(*at) > LEARNED_GRACE {
                self.failed.insert((id.clone(), *ep));
                *self.strikes.entry(*from).or_default() += 1;
                forget.push(id.clone());
            }
        }
        // Only what is still wanted is remembered: write-offs and counts for peers that are
        // still peers (and the write-offs within a bound).
        self.failed
            .retain(|(id, _)| peers.iter().any(|p| &p.id == id));
        self.worked
            .retain(|id| learned.contains_key(id) && !forget.contains(id));
        if self.failed.len() > 64 + 16 * peers.len() {
            self.failed.clear();
        }
        self.strikes
            .retain(|ip, _| peers.iter().any(|p| p.addresses.contains(ip)));
        let lacking: Vec<&MeshPeer> = peers
            .iter()
            .filter(|p| !p.static_endpoint && !live(p))
            .filter(|p| !learned.contains_key(&p.id) || forget.contains(&p.id))
            .collect();
        // Per peer, the best answer: the endpoint, when seen, from whom, and its rank.
        let mut found: BTreeMap<Id, (SocketAddr, u64, IpAddr, Rank)> = BTreeMap::new();
        if !lacking.is_empty() {
            let sources: Vec<IpAddr> = shuffled(peers.iter().filter(|p| live(p)).collect())
                .into_iter()
                .filter_map(|p| p.addresses.first().copied())
                .filter(|ip| self.peer_backoff.get(ip).is_none_or(Backoff::ready))
                .take(usize::from(self.config.fanout).max(1))
                .collect();
            // Every source at once: the slowest bounds the lookup, not their sum.
            let client = &self.peers;
            let answers: Vec<(IpAddr, Result<Endpoints, fetch::FetchError>)> =
                std::thread::scope(|scope| {
                    let asked: Vec<_> = sources
                        .iter()
                        .map(|&ip| {
                            let base = self.base(ip);
                            (ip, scope.spawn(move || client.endpoints(&base)))
                        })
                        .collect();
                    asked
                        .into_iter()
                        .filter_map(|(ip, h)| h.join().ok().map(|r| (ip, r)))
                        .collect()
                });
            for (ip, answer) in answers {
                let answer = match answer {
                    Ok(a) => a,
                    Err(e) => {
                        let wait = self
                            .peer_backoff
                            .entry(ip)
                            .or_insert(Backoff::new(PEER_BACKOFF))
                            .fail();
                        self.log.event(
                            "warn",
                            &format!(
                                "endpoints from {ip}: {e}; not asked again for {} s",
                                wait.as_secs()
                            ),
                        );
                        continue;
                    }
                };
                for seen in answer.peers {
                    let Some(p) = lacking.iter().find(|p| p.pubkey == seen.pubkey) else {
                        continue;
                    };
                    // A claim from the future counts as now.
                    let at = seen.seen_at.min(now);
                    if seen.endpoint.ip().is_unspecified() || seen.endpoint.port() == 0 {
                        continue;
                    }
                    // An endpoint that gave no handshake before is taken again only when no
                    // other is offered (the peer may have been down, not the answer wrong);
                    // then answers from sources whose answers failed less; then the freshest.
                    let rank = Rank {
                        failed: self.failed.contains(&(p.id.clone(), seen.endpoint)),
                        strikes: self.strikes.get(&ip).copied().unwrap_or(0),
                        older: std::cmp::Reverse(at),
                    };
                    if found.get(&p.id).is_none_or(|(_, _, _, r)| rank < *r) {
                        found.insert(p.id.clone(), (seen.endpoint, at, ip, rank));
                    }
                }
            }
        }
        if forget.is_empty() && found.is_empty() {
            return;
        }
        let mut shown = Vec::new();
        if let Ok(mut s) = self.shared.lock() {
            for id in &forget {
                s.learned.remove(id);
            }
            for (id, (ep, _, from, _)) in &found {
                s.learned.insert(id.clone(), (*ep, now, *from));
                self.log.event(
                    "info",
                    &format!("endpoint for {id}: {ep} (from the peer at {from})"),
                );
            }
            shown = s
                .learned
                .iter()
                .map(|(id, (ep, at, from))| LearnedEndpoint {
                    peer: id.clone(),
                    endpoint: ep.to_string(),
                    from: from.to_string(),
                    learned_at: *at,
                })
                .collect();
        }
        if let Ok(mut s) = self.status.lock() {
            s.distribution.learned_endpoints = shown;
        }
        self.wake.store(true, Ordering::Relaxed);
    }
}

/// Runs until `stop`: catches up at start, every interval and on notifications, notifies
/// after commits, learns endpoints.
pub fn run(
    config: NodeConfig,
    log: Log,
    status: Arc<Mutex<Status>>,
    shared: Arc<Mutex<Shared>>,
    events: Receiver<Event>,
    wake: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mirrors = if config.mirrors.is_empty() {
        None
    } else {
        match Client::new(
            config.ca_file.as_deref(),
            MIRROR_TIMEOUT.0,
            MIRROR_TIMEOUT.1,
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                log.event("warn", &format!("mirrors: {e}; not catching up from them"));
                None
            }
        }
    };
    let (peers, notifier) = match (
        Client::new(None, PEER_TIMEOUT.0, PEER_TIMEOUT.1),
        Client::new(None, NOTIFY_TIMEOUT.0, NOTIFY_TIMEOUT.1),
    ) {
        (Ok(p), Ok(n)) => (p, n),
        (Err(e), _) | (_, Err(e)) => {
            log.event("error", &format!("peers: {e}; not distributing"));
            return;
        }
    };
    let interval = Duration::from_secs(config.sync_interval);
    if let Ok(mut s) = status.lock() {
        s.mirrors = config
            .mirrors
            .iter()
            .map(|m| MirrorStatus {
                url: m.clone(),
                ..MirrorStatus::default()
            })
            .collect();
    }
    let (done, finished) = std::sync::mpsc::channel();
    let mut d = Distributor {
        mirror_backoff: vec![Backoff::new(interval); config.mirrors.len()],
        config,
        log,
        status,
        shared,
        wake,
        mirrors,
        peers,
        notifier,
        peer_backoff: HashMap::new(),
        last_notify_pull: HashMap::new(),
        pending: HashMap::new(),
        failed: HashSet::new(),
        strikes: HashMap::new(),
        worked: HashSet::new(),
        notified_running: HashMap::new(),
        round_peers: HashSet::new(),
        done,
    };
    let by_peers = d.config.serve_port != 0 && d.config.fanout > 0;
    // The first round waits for the first reconcile to list the peers.
    let mut next_round = Instant::now() + Duration::from_secs(1);
    let mut next_learn = Instant::now() + Duration::from_secs(1);
    let mut in_flight = false;
    while !stop.load(Ordering::Relaxed) {
        // Everything queued, notifications from one source folded into one pending pull.
        let mut next = events.recv_timeout(Duration::from_millis(250));
        loop {
            match next {
                Ok(Event::Notified(ip, epoch)) if by_peers => {
                    if let Ok(mut s) = d.status.lock() {
                        s.distribution.notifications_received += 1;
                    }
                    let e = d.pending.entry(ip).or_insert(epoch);
                    *e = (*e).max(epoch);
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            match events.try_recv() {
                Ok(e) => next = Ok(e),
                Err(_) => break,
            }
        }
        let committed = d
            .shared
            .lock()
            .map(|mut s| std::mem::take(&mut s.committed))
            .unwrap_or(false);
        if committed && by_peers {
            d.notify();
        }
        d.take_done(&finished, &mut in_flight);
        d.pull_notified();
        d.show_backoff();
        if Instant::now() >= next_round && !in_flight {
            in_flight = d.start_round(by_peers);
            next_round = Instant::now() + interval.mul_f64(jitter());
        }
        if by_peers && Instant::now() >= next_learn {
            d.learn();
            next_learn = Instant::now() + LEARN_INTERVAL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;

    fn rank(failed: bool, strikes: u32, seen_at: u64) -> Rank {
        Rank {
            failed,
            strikes,
            older: Reverse(seen_at),
        }
    }

    #[test]
    fn an_endpoint_answer_ranks_by_write_off_then_its_source_then_freshness() {
        // Not written off beats written off, however stale and struck.
        assert!(rank(false, 9, 100) < rank(true, 0, 900));
        // A source whose answers worked beats a fresher claim from one whose did not: a liar
        // that says "seen just now" wins once, not every time.
        assert!(rank(false, 0, 100) < rank(false, 1, 900));
        // Between equals, the fresher.
        assert!(rank(false, 1, 900) < rank(false, 1, 100));
        let mut answers = [
            rank(true, 0, 950),
            rank(false, 2, 990),
            rank(false, 0, 500),
            rank(false, 0, 800),
        ];
        answers.sort();
        assert_eq!(answers[0], rank(false, 0, 800));
        assert_eq!(answers[3], rank(true, 0, 950));
    }
}
