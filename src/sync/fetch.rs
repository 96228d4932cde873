//! Fetching the layout from a base URL (`http://` or `https://`: a mirror, later a peer) and
//! catching a ledger up from it. Nothing fetched is trusted: updates go through the gate in
//! order via the store's one apply path, documents through the policy reader, every response
//! is capped in size and every request in time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ledger::canonical::{caps, decode};
use crate::ledger::carried::{Carried, Head, PinnedDoc};
use crate::ledger::store::{ApplyReport, Store, StoreError};
use crate::ledger::types::Sha256Digest;
use crate::ledger::update::{Op, SignedUpdate};

use super::layout;

/// Where the system keeps its CA bundle (Debian's `ca-certificates`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The most updates one catch-up fetches; the next one goes on from there.
pub const MAX_UPDATES_PER_PULL: u64 = 10_000;

/// The most bytes one catch-up fetches beyond its first new update and first document (each
/// is capped on its own): what a source can make a node hold before the gate has judged any of it.
pub const MAX_BYTES_PER_PULL: usize = 64 << 20;

/// Why a fetch or a catch-up failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The base is not an `http://` or `https://` URL rn can use.
    #[error("{0:?} is not an http:// or https:// base URL")]
    BadUrl(String),
    /// The CA bundle cannot be read.
    #[error("CA bundle {path}: {detail}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The request failed (connection, TLS, status, time, size).
    #[error("{url}: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// What came back is not what the layout says is there.
    #[error("{url}: {detail}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The ledger refused or could not take it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A bounded HTTP(S) client for the layout.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client trusting the CAs in `ca_file` (default: the system bundle, when present) for
    /// `https://`, each request bounded by `timeout` in all and `connect` to connect.
    pub fn new(
        ca_file: Option<&Path>,
        timeout: Duration,
        connect: Duration,
    ) -> Result<Client, FetchError> {
        let path = ca_file.unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
        let certs = match std::fs::read(path) {
            Ok(pem) => ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c.to_owned())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| FetchError::Ca {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?,
            // No system bundle: plain http still works; https fails to verify.
            Err(_) if ca_file.is_none() => Vec::new(),
            Err(e) => {
                return Err(FetchError::Ca {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                });
            }
        };
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(connect)))
            .max_redirects(0)
            .https_only(false)
            .tls_config(tls)
            .build()
            .into();
        Ok(Client { agent })
    }

    /// GETs `base/rel`, at most `cap` bytes; `Ok(None)` for 404.
    fn get(&self, base: &str, rel: &str, cap: usize) -> Result<Option<Vec<u8>>, FetchError> {
        let url = format!("{}/{rel}", base.trim_end_matches('/'));
        let http = |detail: String| FetchError::Http {
            url: url.clone(),
            detail,
        };
        let mut resp = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) => return Ok(None),
            Err(e) => return Err(http(e.to_string())),
        };
        let body = resp
            .body_mut()
            .with_config()
            .limit(cap as u64)
            .read_to_vec()
            .map_err(|e| http(e.to_string()))?;
        Ok(Some(body))
    }
}

impl Client {
    /// Tells the agent at `base` that this ledger stands at `head` (`POST rn/v1/notify`):
    /// `true` when it answered that it will pull (it was behind), `false` when it is not
    /// behind.
    pub fn notify(&self, base: &str, head: &Head) -> Result<bool, FetchError> {
        let url = format!("{}/{}", base.trim_end_matches('/'), layout::notify_path());
        let body = crate::ledger::canonical::to_jcs(head);
        match self
            .agent
            .post(&url)
            .content_type("application/json")
            .send(&body[..])
        {
            Ok(r) => Ok(r.status().as_u16() == 202),
            Err(e) => Err(FetchError::Http {
                url,
                detail: e.to_string(),
            }),
        }
    }

    /// The endpoints the agent at `base` sees (`GET rn/v1/endpoints`).
    pub fn endpoints(&self, base: &str) -> Result<layout::Endpoints, FetchError> {
        let rel = layout::endpoints_path();
        let url = || format!("{}/{rel}", base.trim_end_matches('/'));
        let bytes = self
            .get(base, &rel, layout::ENDPOINTS_CAP)?
            .ok_or_else(|| FetchError::Invalid {
                url: url(),
                detail: "no endpoints: not an rn agent".into(),
            })?;
        decode(&bytes).map_err(|e| FetchError::Invalid {
            url: url(),
            detail: e.to_string(),
        })
    }
}

/// Checks that `base` is an `http://` or `https://` URL.
pub fn check_base(base: &str) -> Result<(), FetchError> {
    let ok = (base.starts_with("http://") || base.starts_with("https://"))
        && !base.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(FetchError::BadUrl(base.to_owned()))
    }
}

/// The base's head (`rn/v1/head`), which must name `network`.
pub fn fetch_head(
    client: &Client,
    base: &str,
    network: &crate::ledger::types::Id,
) -> Result<Head, FetchError> {
    check_base(base)?;
    let head_url = || format!("{base}/{}", layout::head_path());
    let Some(bytes) = client.get(base, &layout::head_path(), 4096)? else {
        return Err(FetchError::Invalid {
            url: head_url(),
            detail: "no head: not an rn layout".into(),
        });
    };
    let head: Head = decode(&bytes).map_err(|e| FetchError::Invalid {
        url: head_url(),
        detail: e.to_string(),
    })?;
    if head.network_id != *network {
        return Err(FetchError::Invalid {
            url: head_url(),
            detail: format!(
                "the layout is of network {}, not {network}",
                head.network_id
            ),
        });
    }
    Ok(head)
}

/// What the base holds beyond `ours`, up to its head's epoch `theirs`: the update at `ours`
/// itself (so that the gate sees whether the base's history is this ledger's: a
/// quorum-signed other update there is fork evidence), the updates after it (consecutive
/// from `ours + 1`, stopping at the first missing one) and the pinned documents they name,
/// the last pinned first. One pull holds at most [`MAX_UPDATES_PER_PULL`] updates and,
/// beyond the first update after `ours` and its first document, stops fetching at
/// [`MAX_BYTES_PER_PULL`] or at `deadline`: what it has then goes to the gate, and the next
/// pull goes on from there.
/// `None` when the base holds nothing beyond `ours`.
pub fn fetch_beyond(
    client: &Client,
    base: &str,
    ours: u64,
    theirs: u64,
    deadline: Instant,
) -> Result<Option<Carried>, FetchError> {
    check_base(base)?;
    if theirs <= ours {
        return Ok(None);
    }
    let mut used = 0usize;
    let spent = |used: usize| used >= MAX_BYTES_PER_PULL || Instant::now() >= deadline;
    let mut updates: Vec<SignedUpdate> = Vec::new();
    for epoch in ours.max(1)..=theirs.min(ours + MAX_UPDATES_PER_PULL) {
        // Stopping early keeps at least one update beyond `ours`: every pull gets somewhere.
        if epoch > ours + 1 && spent(used) {
            break;
        }
        let rel = layout::log_path(epoch);
        let Some(bytes) = client.get(base, &rel, caps::UPDATE)? else {
            if epoch == ours {
                continue;
            }
            break;
        };
        used += bytes.len();
        let su: SignedUpdate = decode(&bytes).map_err(|e| FetchError::Invalid {
            url: format!("{base}/{rel}"),
            detail: e.to_string(),
        })?;
        if su.update.epoch_new.get() != epoch {
            return Err(FetchError::Invalid {
                url: format!("{base}/{rel}"),
                detail: format!("holds the update for epoch {}", su.update.epoch_new),
            });
        }
        updates.push(su);
    }
    if updates.is_empty() {
        return Ok(None);
    }
    // Each document once, the one in force after the chain first.
    let mut pinned: Vec<Sha256Digest> = Vec::new();
    for op in updates
        .iter()
        .rev()
        .flat_map(|su| su.update.ops.iter().rev())
    {
        if let Op::SetPolicy { policy: Some(hash) } = op
            && !pinned.contains(hash)
        {
            pinned.push(*hash);
        }
    }
    let mut documents = Vec::new();
    for hash in pinned {
        if !documents.is_empty() && spent(used) {
            break;
        }
        let rel = layout::policy_path(&hash);
        // A document the base does not hold leaves the node's policy "pinned, not held"
        // (everything denied) until some source supplies it.
        if let Some(bytes) = client.get(base, &rel, caps::POLICY)? {
            used += bytes.len();
            let doc = PinnedDoc::from_bytes(&bytes)
                .ok()
                .filter(|d| d.hash() == hash)
                .ok_or_else(|| FetchError::Invalid {
                    url: format!("{base}/{rel}"),
                    detail: format!("is not the document {hash}"),
                })?;
            documents.push(doc);
        }
    }
    Ok(Some(Carried {
        updates,
        documents,
        genesis_root: None,
    }))
}

/// Commits what [`fetch_beyond`] brought through the store's one apply path (the gate, fork
/// evidence, audit; all or nothing), after the policy layer has read every document.
pub fn apply_fetched(
    store: &mut Store,
    carried: &Carried,
    now: u64,
    source: &str,
) -> Result<ApplyReport, FetchError> {
    crate::policy::read_documents(crate::ledger::carried::BundleKind::KIND, &carried.documents)
        .map_err(|e| FetchError::Invalid {
            url: source.to_owned(),
            detail: e.to_string(),
        })?;
    Ok(store.apply_carried(carried, now, source)?.0)
}
