//! The acceptance gate (spec §4.5): the one function every path — `apply`, inbox, bundle
//! catch-up, load, `verify` — uses to decide whether an update may be committed.
//!
//! Its only output that can be committed is a [`VerifiedUpdate`], which nothing else can
//! construct. Genesis has its own gate, [`verify_genesis`], returning a [`VerifiedGenesis`].

use std::collections::HashSet;

use super::error::Rejection;
use super::model::{ApproverStatus, State};
use super::quorum;
use super::reduce::{Transition, reduce};
use super::types::{Sha256Digest, UpdateId};
use super::update::{Op, Proposal, SignedGenesis, SignedUpdate};

/// How the update reaches the ledger, which decides the time checks (spec §4.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// A single update judged on its own (`verify`, `sign`): every time check applies and an
    /// expired update is refused whatever it does.
    Lone,
    /// An update followed by others in the same catch-up chain: vouched for by its successor's
    /// quorum, so its expiry is not checked.
    ChainInner,
    /// The last update of a catch-up chain (a lone `apply` is a chain of one): expiry is
    /// checked, except that an update whose every op only restricts is accepted late, so a
    /// lagging node never misses a revocation.
    ChainLast,
    /// Replaying committed history on load: never re-checked against the clock.
    History,
}

/// An update that passed every check of the gate against one exact state. Only
/// [`accept`] creates it; only the store commits it.
#[derive(Debug)]
pub struct VerifiedUpdate {
    signed: SignedUpdate,
    transition: Transition,
    signers: Vec<super::types::Id>,
}

impl VerifiedUpdate {
    /// The verified signed update.
    pub fn signed(&self) -> &SignedUpdate {
        &self.signed
    }

    /// The root the update yields.
    pub fn new_root(&self) -> Sha256Digest {
        self.transition.root()
    }

    /// The approvers whose signatures counted.
    pub fn signers(&self) -> &[super::types::Id] {
        &self.signers
    }

    /// Applies it to the state it was verified against, returning the signed update.
    ///
    /// # Panics
    /// If `state` is not the state the update was verified against (a programming error: the
    /// store verifies and commits under one lock).
    pub fn commit_to(self, state: &mut State) -> SignedUpdate {
        state.apply(self.transition);
        self.signed
    }
}

/// Runs the gate: every check of spec §4.5, in order, each failure its own [`Rejection`].
///
/// `seen` holds every `update_id` already committed to this ledger; `now` is the verifier's
/// clock in unix seconds.
pub fn accept(
    state: &State,
    seen: &HashSet<UpdateId>,
    signed: &SignedUpdate,
    now: u64,
    freshness: Freshness,
) -> Result<VerifiedUpdate, Rejection> {
    accept_with(state, seen, signed, now, freshness, None)
}

/// [`accept`], reusing signature checks made beforehand for this exact update (see
/// [`quorum::PreVerified`]); every other check runs as usual.
pub fn accept_with(
    state: &State,
    seen: &HashSet<UpdateId>,
    signed: &SignedUpdate,
    now: u64,
    freshness: Freshness,
    pre: Option<&quorum::PreVerified>,
) -> Result<VerifiedUpdate, Rejection> {
    let (tally, transition) = run(state, seen, signed, now, freshness, true, pre)?;
    Ok(VerifiedUpdate {
        signed: signed.clone(),
        transition,
        signers: tally.counted,
    })
}

/// What the gate sees in an update that may not have all its signatures yet.
#[derive(Debug)]
pub struct Inspection {
    /// The signatures so far (all of them valid).
    pub tally: quorum::Tally,
    /// The effect of the update.
    pub transition: Transition,
}

/// The state a proposal's update yields on its own `base_state`: every check of the gate
/// except the quorum (a proposal may serve as the base of the next one before it is signed;
/// any signature it carries must still be valid). Its expiry is not checked, as for an inner
/// update of a chain (spec §4.7).
pub fn proposal_result(proposal: &Proposal, now: u64) -> Result<State, Rejection> {
    let i = inspect(
        &proposal.base_state,
        &HashSet::new(),
        &proposal.signed_update(),
        now,
        Freshness::ChainInner,
    )?;
    Ok(proposal.base_state.preview(&i.transition))
}

/// Every check of [`accept`] except that the quorum need not be met yet: used by signers and
/// `verify` to show what an update does and who still has to sign. Any invalid signature,
/// illegal op or wrong root still rejects it.
pub fn inspect(
    state: &State,
    seen: &HashSet<UpdateId>,
    signed: &SignedUpdate,
    now: u64,
    freshness: Freshness,
) -> Result<Inspection, Rejection> {
    let (tally, transition) = run(state, seen, signed, now, freshness, false, None)?;
    Ok(Inspection { tally, transition })
}

fn run(
    state: &State,
    seen: &HashSet<UpdateId>,
    signed: &SignedUpdate,
    now: u64,
    freshness: Freshness,
    enforce_quorum: bool,
    pre: Option<&quorum::PreVerified>,
) -> Result<(quorum::Tally, Transition), Rejection> {
    let u = &signed.update;
    // 1. Decoding already happened (typed input); the network must match.
    if u.network_id != *state.network_id() {
        return Err(Rejection::WrongNetwork {
            expected: state.network_id().clone(),
            found: u.network_id.clone(),
        });
    }
    // 2. Epochs.
    let current = state.epoch();
    if u.epoch_prev < current {
        return Err(Rejection::Stale {
            current,
            epoch_prev: u.epoch_prev,
        });
    }
    if u.epoch_prev > current {
        return Err(Rejection::Gap {
            current,
            epoch_prev: u.epoch_prev,
        });
    }
    if u.epoch_new.get() != current.get() + 1 {
        return Err(Rejection::EpochStep {
            expected: current.get() + 1,
            epoch_new: u.epoch_new,
        });
    }
    let computed;
    let message: &[u8] = match pre.filter(|p| p.is_for(u)) {
        Some(p) => p.message(),
        None => {
            computed = u.message();
            &computed
        }
    };
    // 3. Same epoch, same root; a quorum-signed update on another root is fork evidence.
    if u.prev_root != state.root() {
        let quorate = quorum::tally_with(state, u, message, &signed.signatures, pre)
            .and_then(|t| t.check())
            .is_ok();
        let (epoch, expected, found) = (current, state.root(), u.prev_root);
        return Err(if quorate {
            Rejection::Fork {
                epoch,
                expected,
                found,
            }
        } else {
            Rejection::PrevRootMismatch {
                epoch,
                expected,
                found,
            }
        });
    }
    // 4. Replay.
    if seen.contains(&u.update_id) {
        return Err(Rejection::Replay {
            update_id: u.update_id,
        });
    }
    // 5. Time (spec §4.7).
    check_time(state, signed, now, freshness)?;
    // 6. Quorum.
    let tally = quorum::tally_with(state, u, message, &signed.signatures, pre)?;
    if enforce_quorum {
        tally.check()?;
    }
    // 7. Reducer and invariants.
    let transition = reduce(state, u)?;
    // 8. Root.
    if transition.root() != u.new_root {
        return Err(Rejection::RootMismatch {
            claimed: u.new_root,
            computed: transition.root(),
        });
    }
    Ok((tally, transition))
}

/// A ledger as the gate reads it to judge a chain against it: where it starts, where it
/// stands, and what it committed. The store implements it.
pub trait Ledger {
    /// The epoch-0 state.
    fn genesis_state(&self) -> &State;
    /// The current state.
    fn head(&self) -> &State;
    /// Every `update_id` committed so far.
    fn seen(&self) -> &HashSet<UpdateId>;
    /// The committed update that created `epoch` (from 1), with its hash.
    fn committed(&self, epoch: u64) -> Option<(&SignedUpdate, Sha256Digest)>;
}

/// New updates that passed the gate in order, from the ledger head they were judged on. Only
/// [`judge_chain`] and [`judge_chain_from`] create it; only the store commits it.
#[derive(Debug)]
pub struct VerifiedChain {
    already: usize,
    updates: Vec<(SignedUpdate, Sha256Digest)>,
    state: State,
    seen: HashSet<UpdateId>,
}

impl VerifiedChain {
    /// Updates of the input that the ledger had already committed (skipped).
    pub fn already(&self) -> usize {
        self.already
    }

    /// The new updates, in order, with their hashes.
    pub fn updates(&self) -> &[(SignedUpdate, Sha256Digest)] {
        &self.updates
    }

    /// The state after the last new update, the committed ids with the new ones, and the new
    /// updates: what the store commits.
    pub fn into_parts(self) -> (State, HashSet<UpdateId>, Vec<(SignedUpdate, Sha256Digest)>) {
        (self.state, self.seen, self.updates)
    }
}

/// Where a chain failed the gate: the position of the refused update in the input (from 0),
/// its hash, and the verdict. A [`Rejection::Fork`] is evidence worth keeping.
#[derive(Debug)]
pub struct ChainRejection {
    /// Position in the input, from 0.
    pub position: usize,
    /// `sha256(JCS(update))` of the refused update.
    pub update: Sha256Digest,
    /// The verdict.
    pub rejection: Rejection,
}

/// Judges a chain of updates from an untrusted source (a file, a bundle, a peer) against a
/// ledger, all or nothing: updates identical to committed ones are skipped; an update for a
/// committed epoch that differs is fork evidence when a quorum of that epoch signed it, stale
/// otherwise; the rest must chain from the head, each through every check of the gate, the
/// last one with catch-up expiry (spec §4.7).
pub fn judge_chain<L: Ledger + ?Sized>(
    ledger: &L,
    chain: &[SignedUpdate],
    now: u64,
) -> Result<VerifiedChain, ChainRejection> {
    let head = ledger.head();
    let from = head.epoch().get();
    let mut already = 0;
    let mut first_fresh = None;
    for (position, su) in chain.iter().enumerate() {
        let e = su.update.epoch_new.get();
        let hash = su.update.hash();
        let refuse = |rejection| ChainRejection {
            position,
            update: hash,
            rejection,
        };
        if su.update.network_id != *head.network_id() {
            // The gate's first check (spec §4.5), before any epoch is compared.
            return Err(refuse(Rejection::WrongNetwork {
                expected: head.network_id().clone(),
                found: su.update.network_id.clone(),
            }));
        }
        if e == 0 || e > from {
            first_fresh.get_or_insert(position);
            continue;
        }
        if first_fresh.is_some() {
            // An old update after new ones: the chain is out of order.
            return Err(refuse(Rejection::Stale {
                current: head.epoch(),
                epoch_prev: su.update.epoch_prev,
            }));
        }
        let (committed, committed_hash) = ledger
            .committed(e)
            .expect("every epoch from 1 to the head is committed");
        if committed_hash == hash {
            already += 1;
            continue;
        }
        let rejection = match conflict(ledger, su, committed) {
            Ok(r) | Err(r) => r,
        };
        return Err(refuse(rejection));
    }
    let Some(start) = first_fresh else {
        return Ok(VerifiedChain {
            already,
            updates: Vec::new(),
            state: head.clone(),
            seen: ledger.seen().clone(),
        });
    };
    let mut verified =
        judge_chain_from(head, ledger.seen(), &chain[start..], now).map_err(|mut r| {
            r.position += start;
            r
        })?;
    verified.already = already;
    Ok(verified)
}

/// Judges `chain` as new updates on `base` (whose committed ids are `seen`): each through
/// every check of the gate in order, the last with catch-up expiry (spec §4.7).
pub fn judge_chain_from(
    base: &State,
    seen: &HashSet<UpdateId>,
    chain: &[SignedUpdate],
    now: u64,
) -> Result<VerifiedChain, ChainRejection> {
    let mut state = base.clone();
    let mut seen = seen.clone();
    let mut updates = Vec::with_capacity(chain.len());
    let last = chain.len().saturating_sub(1);
    for (position, su) in chain.iter().enumerate() {
        let freshness = if position == last {
            Freshness::ChainLast
        } else {
            Freshness::ChainInner
        };
        let hash = su.update.hash();
        let v = accept(&state, &seen, su, now, freshness).map_err(|rejection| ChainRejection {
            position,
            update: hash,
            rejection,
        })?;
        seen.insert(su.update.update_id);
        updates.push((v.commit_to(&mut state), hash));
    }
    Ok(VerifiedChain {
        already: 0,
        updates,
        state,
        seen,
    })
}

/// An update for an epoch the ledger already committed, other than `committed`: fork evidence
/// when a quorum of the approvers at that epoch signed it, stale otherwise. (`Err` only when
/// the ledger's own history does not replay, which its store refuses on open.)
fn conflict<L: Ledger + ?Sized>(
    ledger: &L,
    su: &SignedUpdate,
    committed: &SignedUpdate,
) -> Result<Rejection, Rejection> {
    let u = &su.update;
    let base = replayed_state(ledger, u.epoch_new.get() - 1)?;
    let quorate = u.epoch_prev == base.epoch()
        && quorum::tally(&base, u, &u.message(), &su.signatures)
            .and_then(|t| t.check())
            .is_ok();
    Ok(if quorate {
        Rejection::Fork {
            epoch: u.epoch_new,
            expected: committed.update.new_root,
            found: u.new_root,
        }
    } else {
        Rejection::Stale {
            current: ledger.head().epoch(),
            epoch_prev: u.epoch_prev,
        }
    })
}

/// The state at `epoch`, replayed from the genesis through the committed updates (history:
/// no clock).
fn replayed_state<L: Ledger + ?Sized>(ledger: &L, epoch: u64) -> Result<State, Rejection> {
    let mut state = ledger.genesis_state().clone();
    let mut seen = HashSet::new();
    for e in 1..=epoch {
        let (su, _) = ledger
            .committed(e)
            .expect("every epoch from 1 to the head is committed");
        accept(&state, &seen, su, 0, Freshness::History)?.commit_to(&mut state);
        seen.insert(su.update.update_id);
    }
    Ok(state)
}

/// The states a verified history goes through: after each committed update in turn, starting
/// from `start`. Only for history the store verified through this gate when it opened (it
/// replays the reducer, not the signatures), so it is not visible outside the ledger; an update
/// that does not apply ends the walk with its rejection.
pub(super) fn replay_verified<'a, I>(
    start: State,
    history: I,
) -> impl Iterator<Item = Result<State, Rejection>> + 'a
where
    I: IntoIterator<Item = &'a SignedUpdate>,
    I::IntoIter: 'a,
{
    let mut state = Some(start);
    history.into_iter().map_while(move |su| {
        let current = state.take()?;
        Some(match reduce(&current, &su.update) {
            Ok(t) => {
                let next = current.preview(&t);
                state = Some(next.clone());
                Ok(next)
            }
            Err(r) => Err(r),
        })
    })
}

fn check_time(
    state: &State,
    signed: &SignedUpdate,
    now: u64,
    freshness: Freshness,
) -> Result<(), Rejection> {
    let u = &signed.update;
    let params = state.params();
    if freshness != Freshness::History
        && u.created_at.get() > now.saturating_add(params.clock_skew_secs.get())
    {
        return Err(Rejection::FutureDated {
            created_at: u.created_at,
            now,
            skew: params.clock_skew_secs,
        });
    }
    if u.created_at >= u.expires_at {
        return Err(Rejection::BadValidity {
            created_at: u.created_at,
            expires_at: u.expires_at,
        });
    }
    let ttl = u.expires_at.get() - u.created_at.get();
    if ttl > params.max_update_ttl_secs.get() {
        return Err(Rejection::TtlTooLong {
            ttl,
            max: params.max_update_ttl_secs,
        });
    }
    let expiry_applies = match freshness {
        Freshness::Lone => true,
        Freshness::ChainLast => !u.ops.iter().all(Op::is_restrictive),
        Freshness::ChainInner | Freshness::History => false,
    };
    if expiry_applies && now > u.expires_at.get() {
        return Err(Rejection::Expired {
            expires_at: u.expires_at,
            now,
        });
    }
    Ok(())
}

/// A genesis whose every listed approver signed it. Only [`verify_genesis`] creates it.
#[derive(Clone, Debug)]
pub struct VerifiedGenesis {
    signed: SignedGenesis,
}

impl VerifiedGenesis {
    /// The verified signed genesis.
    pub fn signed(&self) -> &SignedGenesis {
        &self.signed
    }

    /// The epoch-0 state.
    pub fn state(&self) -> &State {
        &self.signed.genesis.state
    }

    /// The genesis root: the network's trust anchor.
    pub fn root(&self) -> Sha256Digest {
        self.signed.genesis.state.root()
    }
}

/// What the genesis gate sees in a genesis that may not have all its signatures yet.
#[derive(Debug)]
pub struct GenesisInspection {
    /// The listed approvers who have not signed (every signature present is valid).
    pub missing: Vec<super::types::Id>,
}

/// Every check of [`verify_genesis`] but the pin, except that signatures may still be
/// missing: used by signers to show what they sign and who still has to. A malformed state or
/// an invalid signature still rejects it.
pub fn inspect_genesis(sg: &SignedGenesis) -> Result<GenesisInspection, Rejection> {
    check_genesis_state(sg)?;
    Ok(GenesisInspection {
        missing: quorum::genesis_missing(&sg.genesis, &sg.signatures)?,
    })
}

/// Checks that a genesis holds a valid epoch-0 state.
fn check_genesis_state(sg: &SignedGenesis) -> Result<(), Rejection> {
    let state = &sg.genesis.state;
    let bad = |reason: &str| Rejection::BadGenesis {
        reason: reason.to_owned(),
    };
    if state.epoch().get() != 0 {
        return Err(bad("the genesis state must be at epoch 0"));
    }
    if state
        .approvers()
        .any(|a| a.status != ApproverStatus::Active)
    {
        return Err(bad("every genesis approver must be active"));
    }
    Ok(())
}

/// The genesis gate: a valid epoch-0 state, every listed approver signed, and — when `pin` is
/// given — the root equals the pin.
pub fn verify_genesis(
    sg: &SignedGenesis,
    pin: Option<&Sha256Digest>,
) -> Result<VerifiedGenesis, Rejection> {
    check_genesis_state(sg)?;
    if let Some(pin) = pin {
        let found = sg.genesis.state.root();
        if found != *pin {
            return Err(Rejection::PinMismatch {
                pinned: *pin,
                found,
            });
        }
    }
    let missing = quorum::genesis_missing(&sg.genesis, &sg.signatures)?;
    if !missing.is_empty() {
        return Err(Rejection::GenesisUnsigned { missing });
    }
    Ok(VerifiedGenesis { signed: sg.clone() })
}
