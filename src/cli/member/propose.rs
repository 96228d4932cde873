//! `rn member propose OP …`: builds an update against a base state and writes a proposal.

use std::path::PathBuf;

use anyhow::Context as _;
use argh::FromArgs;

use super::input;
use crate::cli::output::{describe_op, now, parse_duration, show_duration};
use crate::cli::{CliError, Exit, usage};
use crate::files;
use crate::ledger::canonical::{caps, to_jcs};
use crate::ledger::editor::{BuildError, ProposalBuilder};
use crate::ledger::model::{Approver, ApproverStatus, Node, NodeStatus, Params, Role, Set};
use crate::ledger::types::{ApproverKey, Cidr, Id, Owner, Reason, Tag, TransportKey, Uint};
use crate::ledger::update::Op;
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

impl Propose {
    /// The common options may be written after the op too (`rn member propose add-node --id x
    /// --base genesis.json`): the same parser reads them there — it says which tokens are its
    /// options and which take a value — and they join those written before the op. An option
    /// given in both places is refused.
    fn lift_common(&mut self) -> anyhow::Result<()> {
        let mut tokens = std::mem::take(&mut self.op).into_iter();
        let (mut common, mut rest) = (Vec::new(), Vec::new());
        while let Some(t) = tokens.next() {
            match crate::cli::option_of::<Propose>("propose", &t) {
                Some(takes_value) => {
                    common.push(t);
                    if takes_value && let Some(v) = tokens.next() {
                        common.push(v);
                    }
                }
                None => rest.push(t),
            }
        }
        self.op = rest;
        if common.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = common.iter().map(String::as_str).collect();
        let after = Propose::from_args(&["propose"], &refs)
            .map_err(|e| usage(e.output.trim().to_owned()))?;
        fn join<T>(before: &mut Option<T>, after: Option<T>, flag: &str) -> anyhow::Result<()> {
            if let Some(v) = after
                && before.replace(v).is_some()
            {
                return Err(usage(format!("{flag} given twice")));
            }
            Ok(())
        }
        join(&mut self.base, after.base, "--base")?;
        join(&mut self.state_dir, after.state_dir, "--state-dir")?;
        join(&mut self.ttl, after.ttl, "--ttl")?;
        join(&mut self.reason, after.reason, "--reason")?;
        join(&mut self.batch, after.batch, "--batch")?;
        join(&mut self.output, after.output, "-o")?;
        self.force |= after.force;
        Ok(())
    }
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

    /// Adds the op to the proposal. An `add_node` without `--address` gets the lowest free
    /// overlay address.
    fn add_to(self, b: &mut ProposalBuilder) -> anyhow::Result<()> {
        let at = b.created_at();
        let op = match self {
            OpArgs::AddNode(a) => {
                let unaddressed = a.address.is_empty();
                let node = Node {
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
                };
                if unaddressed {
                    b.add_node_unaddressed(node);
                    return Ok(());
                }
                Op::AddNode { node }
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
                    doc.validate(b.base()).with_context(|| {
                        format!("policy {} against the base state", file.display())
                    })?;
                    b.set_policy(doc.pinned());
                    return Ok(());
                }
            },
            OpArgs::SetParams(a) => {
                let old = b.base().params();
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
        };
        b.op(op);
        Ok(())
    }
}

impl Propose {
    pub fn run(mut self) -> anyhow::Result<Exit> {
        self.lift_common()?;
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
        if op_args.is_none() && self.batch.is_none() {
            return Err(usage("name an op (e.g. add-node) or give --batch FILE"));
        }
        let mut b = ProposalBuilder::new(base, at);
        if let Some(op) = op_args {
            op.add_to(&mut b)?;
        }
        if let Some(batch) = &self.batch {
            let bytes = files::read_capped(batch, caps::UPDATE)?;
            b.batch(&bytes).map_err(|e| build_error(e, Some(batch)))?;
        }
        let ttl = secs(self.ttl.as_deref().unwrap_or("1h"), "ttl")?;
        let max = b.base().params().max_update_ttl_secs;
        b.ttl(ttl.get()).map_err(|_| {
            usage(format!(
                "--ttl {} must be between 1s and the network's max_update_ttl {}",
                show_duration(ttl.get()),
                show_duration(max.get())
            ))
        })?;
        let reason: Reason = self
            .reason
            .as_deref()
            .unwrap_or("")
            .parse()
            .map_err(|e| usage(format!("--reason: {e}")))?;
        b.reason(reason);
        // The current document too, so a signer can see a policy change rule by rule.
        for doc in &known {
            b.carry_current(doc.pinned());
        }
        let proposal = b.build().map_err(|e| build_error(e, None))?;
        let base = &proposal.base_state;
        let summary: Vec<String> = proposal
            .update
            .ops
            .iter()
            .take(20)
            .map(|op| format!("  {}", describe_op(op, base)))
            .collect();
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

/// A builder's refusal as the command reports it: the caller's mistakes are usage errors, a
/// batch file that does not decode is malformed input (naming the file and op), the gate's
/// verdict keeps its own exit code.
fn build_error(e: BuildError, batch: Option<&std::path::Path>) -> anyhow::Error {
    match e {
        BuildError::Invalid(msg) => usage(msg),
        BuildError::Batch { op, error } => {
            let shown = batch
                .unwrap_or(std::path::Path::new("batch file"))
                .display();
            let context = match op {
                Some(n) => format!("{shown}: op #{n}"),
                None => format!("reading {shown}"),
            };
            anyhow::Error::new(error).context(context)
        }
        BuildError::Rejected(r) => anyhow::Error::new(r).context("the proposal would be rejected"),
        BuildError::Documents(msg) | BuildError::Random(msg) => CliError::Data(msg).into(),
    }
}
