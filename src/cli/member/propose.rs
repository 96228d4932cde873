//! `rn member propose OP …`: builds an update against a base state and writes a proposal.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use argh::FromArgs;

use super::input;
use crate::cli::output::{describe_op, now, parse_duration, show_duration};
use crate::cli::{CliError, Exit, usage};
use crate::files;
use crate::ledger::DecodeError;
use crate::ledger::State;
use crate::ledger::canonical::{caps, decode_value, to_jcs};
use crate::ledger::model::{Approver, ApproverStatus, Node, NodeStatus, Params, Role, Set};
use crate::ledger::reduce::reduce;
use crate::ledger::types::{
    ApproverKey, Cidr, Id, Owner, Reason, Sha256Digest, Tag, TransportKey, Uint, UpdateId,
};
use crate::ledger::update::{Op, Proposal, ProposalKind, Update, UpdateKind};
use crate::policy::Policy;

/// Propose a change: `rn member propose OP [op flags] --base FILE [--ttl 1h] [--reason TEXT]
/// [--batch FILE] -o FILE`. OPs: add-node, remove-node, revoke-node, quarantine-node,
/// restore-node, rotate-node-key, set-node, add-approver, revoke-approver,
/// rotate-approver-key, set-threshold, set-params. `rn member propose OP --help` shows an
/// op's flags. `--batch FILE` (a JSON array of ops) adds ops after OP, or stands alone.
#[derive(FromArgs)]
#[argh(subcommand, name = "propose")]
pub struct Propose {
    /// base state: a signed genesis, a snapshot or a proposal (then the state after it)
    #[argh(option)]
    base: Option<PathBuf>,
    /// build on this ledger's current state (default /var/lib/rn when --base is not given)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// validity of the proposal (default 1h)
    #[argh(option)]
    ttl: Option<String>,
    /// why (at most 256 bytes)
    #[argh(option)]
    reason: Option<String>,
    /// a JSON array of ops to include
    #[argh(option)]
    batch: Option<PathBuf>,
    /// output file ("-" for standard output)
    #[argh(option, short = 'o')]
    output: Option<PathBuf>,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
    /// the op and its flags
    #[argh(positional, greedy)]
    op: Vec<String>,
}

/// Common flags may appear after the op too: they are lifted out before the op's own flags
/// are parsed.
fn lift_common(p: &mut Propose) -> anyhow::Result<()> {
    let args = std::mem::take(&mut p.op);
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let slot: Option<&mut Option<String>> = match a.as_str() {
            "--ttl" => Some(&mut p.ttl),
            "--reason" => Some(&mut p.reason),
            _ => None,
        };
        let path_slot: Option<&mut Option<PathBuf>> = match a.as_str() {
            "--base" => Some(&mut p.base),
            "--state-dir" => Some(&mut p.state_dir),
            "--batch" => Some(&mut p.batch),
            "-o" | "--output" => Some(&mut p.output),
            _ => None,
        };
        if a == "--force" {
            p.force = true;
            continue;
        }
        if slot.is_none() && path_slot.is_none() {
            rest.push(a);
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| usage(format!("{a} needs a value")))?;
        let dup = || usage(format!("{a} given twice"));
        if let Some(s) = slot {
            if s.replace(value).is_some() {
                return Err(dup());
            }
        } else if let Some(s) = path_slot
            && s.replace(PathBuf::from(value)).is_some()
        {
            return Err(dup());
        }
    }
    p.op = rest;
    Ok(())
}

/// Admit a node.
#[derive(FromArgs)]
#[argh(subcommand, name = "add-node")]
struct AddNode {
    /// node id
    #[argh(option)]
    id: Id,
    /// the node's WireGuard public key (base64)
    #[argh(option)]
    pubkey: TransportKey,
    /// who answers for the node
    #[argh(option)]
    owner: Owner,
    /// a tag (tag:NAME); repeatable
    #[argh(option)]
    tag: Vec<Tag>,
    /// an overlay address (default: the lowest free host of the overlay); repeatable
    #[argh(option)]
    address: Vec<Cidr>,
    /// a prefix the node may route for; repeatable
    #[argh(option)]
    route: Vec<Cidr>,
    /// the node may serve as an exit node
    #[argh(switch)]
    exit: bool,
}

/// A node id.
#[derive(FromArgs)]
#[argh(subcommand, name = "node-id")]
struct NodeIdArg {
    /// the node
    #[argh(positional)]
    id: Id,
}

/// Replace a node's WireGuard key.
#[derive(FromArgs)]
#[argh(subcommand, name = "rotate-node-key")]
struct RotateNodeKey {
    /// the node
    #[argh(positional)]
    id: Id,
    /// the new public key (base64)
    #[argh(option)]
    pubkey: TransportKey,
}

/// Replace a node's tags, addresses, routes or exit flag (each list wholesale).
#[derive(FromArgs)]
#[argh(subcommand, name = "set-node")]
struct SetNode {
    /// the node
    #[argh(positional)]
    id: Id,
    /// a tag; repeatable; replaces all tags
    #[argh(option)]
    tag: Vec<Tag>,
    /// remove every tag
    #[argh(switch)]
    no_tags: bool,
    /// an address; repeatable; replaces all addresses
    #[argh(option)]
    address: Vec<Cidr>,
    /// a route; repeatable; replaces all routes
    #[argh(option)]
    route: Vec<Cidr>,
    /// remove every route
    #[argh(switch)]
    no_routes: bool,
    /// exit capability: true or false
    #[argh(option)]
    exit: Option<bool>,
}

/// Add an approver (its new key must also sign: rn member sign --key NEWKEY).
#[derive(FromArgs)]
#[argh(subcommand, name = "add-approver")]
struct AddApprover {
    /// approver id
    #[argh(option)]
    id: Id,
    /// owner or guardian
    #[argh(option)]
    role: Role,
    /// its Ed25519 public key (base64, from rn key pub)
    #[argh(option)]
    pubkey: ApproverKey,
}

/// An approver id.
#[derive(FromArgs)]
#[argh(subcommand, name = "approver-id")]
struct ApproverIdArg {
    /// the approver
    #[argh(positional)]
    id: Id,
}

/// Replace an approver's key (the new key must also sign).
#[derive(FromArgs)]
#[argh(subcommand, name = "rotate-approver-key")]
struct RotateApproverKey {
    /// the approver
    #[argh(positional)]
    id: Id,
    /// the new public key (base64)
    #[argh(option)]
    pubkey: ApproverKey,
}

/// Change the signature threshold.
#[derive(FromArgs)]
#[argh(subcommand, name = "set-threshold")]
struct SetThreshold {
    /// the new threshold
    #[argh(positional)]
    threshold: u64,
}

/// Pin a policy document (its rules must name only nodes, tags and owners the ledger has),
/// or unpin with --none.
#[derive(FromArgs)]
#[argh(subcommand, name = "set-policy")]
struct SetPolicy {
    /// the policy document (rn.policy.v1)
    #[argh(positional)]
    file: Option<PathBuf>,
    /// unpin the policy (nothing is allowed afterwards)
    #[argh(switch)]
    none: bool,
}

/// Change network parameters (unnamed ones keep their value).
#[derive(FromArgs)]
#[argh(subcommand, name = "set-params")]
struct SetParams {
    /// longest validity of an update (60s to 30d)
    #[argh(option)]
    max_update_ttl: Option<String>,
    /// tolerated clock skew (at most 10m)
    #[argh(option)]
    clock_skew: Option<String>,
    /// IPv4 overlay range
    #[argh(option)]
    overlay_v4: Option<Cidr>,
    /// IPv6 overlay range
    #[argh(option)]
    overlay_v6: Option<Cidr>,
}

fn parse_op<T: FromArgs>(name: &str, args: &[String]) -> anyhow::Result<T> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = format!("rn member propose {name}");
    T::from_args(&[&cmd], &strs).map_err(|e| {
        if e.status.is_ok() {
            CliError::Help(e.output).into()
        } else {
            usage(e.output.trim().to_owned())
        }
    })
}

fn secs(s: &str, flag: &str) -> anyhow::Result<Uint> {
    let v = parse_duration(s).map_err(|e| usage(format!("--{flag}: {e}")))?;
    Uint::new(v).map_err(|e| usage(format!("--{flag}: {e}")))
}

/// An `add_node` whose address the proposer leaves to rn.
struct Pending {
    index: usize,
}

fn set<T: Ord + std::fmt::Display>(items: Vec<T>, flag: &str) -> anyhow::Result<Set<T>> {
    Set::new(items).map_err(|dup| usage(format!("--{flag} {dup} given twice")))
}

/// An op as parsed from the command line, before it meets the base state.
enum OpArgs {
    AddNode(AddNode),
    RemoveNode(Id),
    RevokeNode(Id),
    QuarantineNode(Id),
    RestoreNode(Id),
    RotateNodeKey(RotateNodeKey),
    SetNode(SetNode),
    AddApprover(AddApprover),
    RevokeApprover(Id),
    RotateApproverKey(RotateApproverKey),
    SetThreshold(SetThreshold),
    SetParams(SetParams),
    SetPolicy(SetPolicy),
}

impl OpArgs {
    /// Parses the op name and its flags (`--help` ends here, before any file is read).
    fn parse(name: &str, args: &[String]) -> anyhow::Result<OpArgs> {
        let node = || parse_op::<NodeIdArg>(name, args).map(|a| a.id);
        let approver = || parse_op::<ApproverIdArg>(name, args).map(|a| a.id);
        Ok(match name {
            "add-node" => OpArgs::AddNode(parse_op(name, args)?),
            "remove-node" => OpArgs::RemoveNode(node()?),
            "revoke-node" => OpArgs::RevokeNode(node()?),
            "quarantine-node" => OpArgs::QuarantineNode(node()?),
            "restore-node" => OpArgs::RestoreNode(node()?),
            "rotate-node-key" => OpArgs::RotateNodeKey(parse_op(name, args)?),
            "set-node" => OpArgs::SetNode(parse_op(name, args)?),
            "add-approver" => OpArgs::AddApprover(parse_op(name, args)?),
            "revoke-approver" => OpArgs::RevokeApprover(approver()?),
            "rotate-approver-key" => OpArgs::RotateApproverKey(parse_op(name, args)?),
            "set-threshold" => OpArgs::SetThreshold(parse_op(name, args)?),
            "set-params" => OpArgs::SetParams(parse_op(name, args)?),
            "set-policy" => OpArgs::SetPolicy(parse_op(name, args)?),
            other => {
                return Err(usage(format!(
                    "unknown op {other:?}; ops: add-node, remove-node, revoke-node, quarantine-node, restore-node, rotate-node-key, set-node, add-approver, revoke-approver, rotate-approver-key, set-threshold, set-params, set-policy"
                )));
            }
        })
    }

    /// The op, against `base`, created at `at`. An `add_node` without `--address` is queued
    /// in `pending` for address assignment.
    fn into_op(
        self,
        base: &State,
        at: Uint,
        pending: &mut Vec<Pending>,
        index: usize,
        policies: &mut Vec<Policy>,
    ) -> anyhow::Result<Op> {
        Ok(match self {
            OpArgs::AddNode(a) => {
                if a.address.is_empty() {
                    pending.push(Pending { index });
                }
                Op::AddNode {
                    node: Node {
                        id: a.id,
                        pubkey: a.pubkey,
                        owner: a.owner,
                        status: NodeStatus::Active,
                        tags: set(a.tag, "tag")?,
                        addresses: set(a.address, "address")?,
                        routes: set(a.route, "route")?,
                        exit: a.exit,
                        joined_at: at,
                        updated_at: at,
                    },
                }
            }
            OpArgs::RemoveNode(id) => Op::RemoveNode { id },
            OpArgs::RevokeNode(id) => Op::RevokeNode { id },
            OpArgs::QuarantineNode(id) => Op::QuarantineNode { id },
            OpArgs::RestoreNode(id) => Op::RestoreNode { id },
            OpArgs::RotateNodeKey(a) => Op::RotateNodeKey {
                id: a.id,
                pubkey: a.pubkey,
            },
            OpArgs::SetNode(a) => {
                if a.no_tags && !a.tag.is_empty() || a.no_routes && !a.route.is_empty() {
                    return Err(usage(
                        "--no-tags/--no-routes cannot be combined with --tag/--route",
                    ));
                }
                let tags = if a.no_tags || !a.tag.is_empty() {
                    Some(set(a.tag, "tag")?)
                } else {
                    None
                };
                let routes = if a.no_routes || !a.route.is_empty() {
                    Some(set(a.route, "route")?)
                } else {
                    None
                };
                let addresses = if a.address.is_empty() {
                    None
                } else {
                    Some(set(a.address, "address")?)
                };
                if tags.is_none() && routes.is_none() && addresses.is_none() && a.exit.is_none() {
                    return Err(usage(
                        "set-node needs at least one of --tag, --no-tags, --address, --route, --no-routes, --exit",
                    ));
                }
                Op::SetNode {
                    id: a.id,
                    tags,
                    addresses,
                    routes,
                    exit: a.exit,
                }
            }
            OpArgs::AddApprover(a) => Op::AddApprover {
                approver: Approver {
                    id: a.id,
                    pubkey: a.pubkey,
                    role: a.role,
                    status: ApproverStatus::Active,
                    previous_keys: Default::default(),
                },
            },
            OpArgs::RevokeApprover(id) => Op::RevokeApprover { id },
            OpArgs::RotateApproverKey(a) => Op::RotateApproverKey {
                id: a.id,
                pubkey: a.pubkey,
            },
            OpArgs::SetThreshold(a) => Op::SetThreshold {
                threshold: Uint::new(a.threshold).map_err(|e| usage(e.to_string()))?,
            },
            OpArgs::SetPolicy(a) => match (a.file, a.none) {
                (Some(_), true) | (None, false) => {
                    return Err(usage("set-policy takes a policy FILE, or --none to unpin"));
                }
                (None, true) => Op::SetPolicy { policy: None },
                (Some(file), false) => {
                    let bytes = files::read_capped(&file, caps::POLICY)?;
                    let (doc, warnings) = Policy::parse(&bytes)
                        .with_context(|| format!("policy {}", file.display()))?;
                    for w in warnings {
                        crate::errln!("warning: {}: {w}", file.display());
                    }
                    doc.validate(base).with_context(|| {
                        format!("policy {} against the base state", file.display())
                    })?;
                    let hash = doc.hash();
                    policies.push(doc);
                    Op::SetPolicy { policy: Some(hash) }
                }
            },
            OpArgs::SetParams(a) => {
                let old = base.params();
                let params = Params {
                    overlay_v4: a.overlay_v4.or(old.overlay_v4),
                    overlay_v6: a.overlay_v6.or(old.overlay_v6),
                    max_update_ttl_secs: match &a.max_update_ttl {
                        Some(s) => secs(s, "max-update-ttl")?,
                        None => old.max_update_ttl_secs,
                    },
                    clock_skew_secs: match &a.clock_skew {
                        Some(s) => secs(s, "clock-skew")?,
                        None => old.clock_skew_secs,
                    },
                };
                Op::SetParams { params }
            }
        })
    }
}

/// An `add_node` record in a batch file, where everything rn can fill in may be left out.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftNode {
    id: Id,
    pubkey: TransportKey,
    owner: Owner,
    #[serde(default, deserialize_with = "crate::ledger::canonical::present")]
    status: Option<NodeStatus>,
    #[serde(default)]
    tags: Set<Tag>,
    #[serde(default, deserialize_with = "crate::ledger::canonical::present")]
    addresses: Option<Set<Cidr>>,
    #[serde(default)]
    routes: Set<Cidr>,
    #[serde(default)]
    exit: bool,
    #[serde(default, deserialize_with = "crate::ledger::canonical::present")]
    joined_at: Option<Uint>,
    #[serde(default, deserialize_with = "crate::ledger::canonical::present")]
    updated_at: Option<Uint>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftAddNode {
    #[allow(dead_code)]
    op: String,
    node: DraftNode,
}

/// An `add_approver` record in a batch file: `status` (active) and `previous_keys` (none) may
/// be left out.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftApprover {
    id: Id,
    pubkey: ApproverKey,
    #[serde(default, deserialize_with = "crate::ledger::canonical::present")]
    previous_keys: Option<Set<ApproverKey>>,
    role: Role,
    #[serde(default, deserialize_with = "crate::ledger::canonical::present")]
    status: Option<ApproverStatus>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftAddApprover {
    #[allow(dead_code)]
    op: String,
    approver: DraftApprover,
}

/// Only routes an op to its decoder, which then reads the whole op strictly.
#[derive(serde::Deserialize)]
struct OpName {
    op: String,
}

/// Reads a batch file: a JSON array of ops in the wire format of spec §4.4, decoded as
/// strictly as any rn document, except that an `add_node`'s record may leave out `status`
/// (active), `joined_at`/`updated_at` (the update's time), `tags`/`routes` (none), `exit`
/// (false) and `addresses` (assigned).
fn batch_ops(
    path: &std::path::Path,
    at: Uint,
    pending: &mut Vec<Pending>,
    first_index: usize,
) -> anyhow::Result<Vec<Op>> {
    let bytes = files::read_capped(path, caps::UPDATE)?;
    let what = "batch file";
    let shown = path.display();
    let items: Vec<Box<serde_json::value::RawValue>> =
        decode_value(what, &bytes).with_context(|| format!("reading {shown}"))?;
    let mut ops = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let raw = item.get().as_bytes();
        let context = || format!("{shown}: op #{}", i + 1);
        let name: OpName = serde_json::from_slice(raw)
            .map_err(|e| DecodeError::Malformed {
                what,
                detail: format!("an op is an object with an \"op\" name: {e}"),
            })
            .with_context(context)?;
        if name.op == "add_approver" {
            let d: DraftAddApprover = decode_value(what, raw).with_context(context)?;
            let a = d.approver;
            ops.push(Op::AddApprover {
                approver: Approver {
                    id: a.id,
                    pubkey: a.pubkey,
                    previous_keys: a.previous_keys.unwrap_or_default(),
                    role: a.role,
                    status: a.status.unwrap_or(ApproverStatus::Active),
                },
            });
            continue;
        }
        if name.op != "add_node" {
            ops.push(decode_value::<Op>(what, raw).with_context(context)?);
            continue;
        }
        let d: DraftAddNode = decode_value(what, raw).with_context(context)?;
        let n = d.node;
        if n.addresses.is_none() {
            pending.push(Pending {
                index: first_index + i,
            });
        }
        ops.push(Op::AddNode {
            node: Node {
                id: n.id,
                pubkey: n.pubkey,
                owner: n.owner,
                status: n.status.unwrap_or(NodeStatus::Active),
                tags: n.tags,
                addresses: n.addresses.unwrap_or_default(),
                routes: n.routes,
                exit: n.exit,
                joined_at: n.joined_at.unwrap_or(at),
                updated_at: n.updated_at.unwrap_or(at),
            },
        });
    }
    Ok(ops)
}

/// Gives each pending `add_node` the lowest free host address of the overlay (IPv4 when set,
/// else IPv6), skipping addresses held in the base or named anywhere in this update.
fn assign_addresses(ops: &mut [Op], pending: &[Pending], base: &State) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let params = base.params();
    let range = params
        .overlay_v4
        .or(params.overlay_v6)
        .ok_or_else(|| usage("the network has no overlay range to assign addresses from"))?
        .net();
    let mut taken: HashSet<IpAddr> = base
        .nodes()
        .flat_map(|n| n.addresses.iter().map(|a| a.net().addr()))
        .collect();
    for op in ops.iter() {
        let addrs = match op {
            Op::AddNode { node } => Some(&node.addresses),
            Op::SetNode { addresses, .. } => addresses.as_ref(),
            _ => None,
        };
        taken.extend(
            addrs
                .into_iter()
                .flat_map(|s| s.iter().map(|a| a.net().addr())),
        );
    }
    // Skip the network address, and for IPv4 the broadcast address.
    let mut hosts = range.hosts().filter(|a| *a != range.network());
    for p in pending {
        let addr = hosts
            .by_ref()
            .find(|a| !taken.contains(a))
            .ok_or_else(|| usage(format!("the overlay {range} has no free address left")))?;
        taken.insert(addr);
        let cidr = Cidr::new(ipnet::IpNet::from(addr)).map_err(|e| usage(e.to_string()))?;
        if let Some(Op::AddNode { node }) = ops.get_mut(p.index) {
            node.addresses = Set::new(vec![cidr]).map_err(|_| usage("address assigned twice"))?;
        }
    }
    Ok(())
}

impl Propose {
    pub fn run(mut self) -> anyhow::Result<Exit> {
        lift_common(&mut self)?;
        let op_args = match self.op.split_first() {
            Some((name, args)) => Some(OpArgs::parse(name, args)?),
            None => None,
        };
        let output = self
            .output
            .clone()
            .ok_or_else(|| usage("-o FILE is required (\"-o -\" writes to standard output)"))?;
        let now = now();
        let input::Base {
            state: base,
            policies: known,
        } = match (&self.base, &self.state_dir) {
            (Some(_), Some(_)) => return Err(usage("give --base or --state-dir, not both")),
            (Some(path), None) => input::base(path, now)?,
            (None, dir) => super::ledger::trusted_base(
                dir.as_deref()
                    .unwrap_or(std::path::Path::new(super::ledger::DEFAULT_STATE_DIR)),
            )?,
        };
        let at = Uint::new(now).map_err(|e| usage(e.to_string()))?;

        let mut pending = Vec::new();
        let mut ops = Vec::new();
        let mut policies: Vec<Policy> = Vec::new();
        if let Some(op) = op_args {
            ops.push(op.into_op(&base, at, &mut pending, 0, &mut policies)?);
        }
        if let Some(batch) = &self.batch {
            let more = batch_ops(batch, at, &mut pending, ops.len())?;
            ops.extend(more);
        }
        if ops.is_empty() {
            return Err(usage("name an op (e.g. add-node) or give --batch FILE"));
        }
        assign_addresses(&mut ops, &pending, &base)?;

        let ttl = secs(self.ttl.as_deref().unwrap_or("1h"), "ttl")?;
        let max = base.params().max_update_ttl_secs;
        if ttl.get() == 0 || ttl > max {
            return Err(usage(format!(
                "--ttl {} must be between 1s and the network's max_update_ttl {}",
                show_duration(ttl.get()),
                show_duration(max.get())
            )));
        }
        let reason: Reason = self
            .reason
            .as_deref()
            .unwrap_or("")
            .parse()
            .map_err(|e| usage(format!("--reason: {e}")))?;
        let mut update = Update {
            kind: UpdateKind,
            network_id: base.network_id().clone(),
            update_id: UpdateId::random().map_err(|e| CliError::Data(e.to_string()))?,
            epoch_prev: base.epoch(),
            epoch_new: base.epoch().next().map_err(|e| usage(e.to_string()))?,
            prev_root: base.root(),
            new_root: Sha256Digest([0; 32]),
            created_at: at,
            expires_at: Uint::new(at.get() + ttl.get()).map_err(|e| usage(e.to_string()))?,
            reason,
            ops,
        };
        if update.ops.len() > crate::ledger::update::MAX_OPS {
            return Err(usage(format!(
                "{} ops; one update carries at most {}",
                update.ops.len(),
                crate::ledger::update::MAX_OPS
            )));
        }
        // Illegal proposals are refused now, with the reducer's reason.
        let transition = reduce(&base, &update).context("the proposal would be rejected")?;
        update.new_root = transition.root();
        // The documents the update pins, and the current one so a signer can see the diff.
        if let Some(current) = base.policy()
            && let Some(doc) = known.iter().find(|p| p.hash() == *current)
        {
            policies.push(doc.clone());
        }
        policies.dedup_by_key(|p| p.hash());
        let summary: Vec<String> = update
            .ops
            .iter()
            .take(20)
            .map(|op| format!("  {}", describe_op(op, &base)))
            .collect();
        let proposal = Proposal {
            kind: ProposalKind,
            update,
            signatures: Vec::new(),
            base_state: base,
            policies: policies.iter().map(Policy::pinned).collect(),
        };
        proposal.check_policies().map_err(CliError::Data)?;
        let mut bytes = to_jcs(&proposal);
        bytes.push(b'\n');
        files::write_atomic(&output, &bytes, 0o644, self.force)?;
        let u = &proposal.update;
        crate::errln!(
            "proposal {} for network {}: epoch {} -> {}, {} op(s), expires in {}, new root {}\n{}{}",
            u.hash().short(),
            u.network_id,
            u.epoch_prev,
            u.epoch_new,
            u.ops.len(),
            show_duration(ttl.get()),
            u.new_root,
            summary.join("\n"),
            if u.ops.len() > 20 { "\n  ..." } else { "" }
        );
        crate::errln!(
            "written to {}; {} approver signature(s) needed (rn member sign)",
            output.display(),
            proposal.base_state.threshold()
        );
        Ok(Exit::Ok)
    }
}
