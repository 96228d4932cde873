//! `rn member propose OP …`: builds an update against a base state and writes a proposal.

use std::path::PathBuf;

use anyhow::Context as _;
use argh::{ArgsInfo, FromArgs};

use super::input;
use crate::cli::output::{describe_ops, now, op_counts, parse_duration, show_duration, show_span};
use crate::cli::{CliError, Exit, usage};
use crate::files;
use crate::ledger::canonical::{caps, to_jcs};
use crate::ledger::editor::{BuildError, ProposalBuilder};
use crate::ledger::model::{Approver, ApproverStatus, Node, NodeStatus, Params, Role, Set};
use crate::ledger::types::{ApproverKey, Cidr, Id, Owner, Reason, Tag, TransportKey, Uint};
use crate::ledger::update::Op;
use crate::policy::Policy;

/// Propose a change: `rn member propose OP [op flags] -o FILE`, or several ops with `--op
/// 'OP [op flags]'` repeated or `--batch FILE`. The base state is this host's ledger
/// (--state-dir, default from the node configuration, else /var/lib/rn) or a file (--base).
/// `rn member propose OP --help` shows an op's flags.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "propose")]
pub struct Propose {
    /// output file ("-" for standard output)
    #[argh(option, short = 'o')]
    output: PathBuf,
    /// base state: a signed genesis, a snapshot or a proposal (then the state after it)
    #[argh(option)]
    base: Option<PathBuf>,
    /// build on this ledger's current state (default: the node configuration's, else
    /// /var/lib/rn) when --base is not given
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// validity of the proposal (default 1h)
    #[argh(option)]
    ttl: Option<String>,
    /// why (at most 256 bytes)
    #[argh(option)]
    reason: Option<String>,
    /// an op with its flags, as written after `rn member propose` (e.g. --op 'revoke-node
    /// web-2'); repeatable, applied in order after OP
    #[argh(option, arg_name = "OP FLAGS")]
    op: Vec<String>,
    /// a file of ops: one `OP [flags]` per line (# comments), or a JSON array of ops in the
    /// update's own format; applied after every --op
    #[argh(option)]
    batch: Option<PathBuf>,
    /// replace an existing output file
    #[argh(switch)]
    force: bool,
    /// print the proposal's summary as one JSON object on standard output (needs -o FILE)
    #[argh(switch)]
    pub(crate) json: bool,
    #[argh(subcommand)]
    first: Option<ProposeOp>,
}

/// The common options may be written after the op too (`rn member propose add-node --id x
/// -o p.json`): before parsing, [`crate::cli::parse`] moves them in front of the op. The
/// propose parser says which tokens are its own options and which take a value; the op's own
/// flags never share a name with them.
pub(crate) fn lift_common(args: &[&str]) -> Result<Vec<String>, String> {
    // The op is the first word after `propose` that is neither an option nor an option's value.
    let mut i = 0;
    while i < args.len() {
        match crate::cli::option_of::<Propose>("propose", args[i]) {
            Some(true) => i += 2,
            Some(false) => i += 1,
            None if args[i].starts_with('-') => i += 1,
            None => break,
        }
    }
    if i >= args.len() {
        return Ok(args.iter().map(|a| (*a).to_owned()).collect());
    }
    let known = ProposeOp::get_args_info().commands;
    if args[i] != "help" && !known.iter().any(|c| c.name == args[i]) {
        return Err(format!("unknown op {:?}; {OPS}", args[i]));
    }
    let (mut common, mut rest) = (Vec::new(), Vec::new());
    let mut tokens = args[i + 1..].iter();
    while let Some(t) = tokens.next() {
        match crate::cli::option_of::<Propose>("propose", t) {
            Some(takes_value) => {
                common.push((*t).to_owned());
                if takes_value && let Some(v) = tokens.next() {
                    common.push((*v).to_owned());
                }
            }
            None => rest.push((*t).to_owned()),
        }
    }
    let mut out: Vec<String> = args[..i].iter().map(|a| (*a).to_owned()).collect();
    out.extend(common);
    out.push(args[i].to_owned());
    out.extend(rest);
    Ok(out)
}

/// The ops `rn member propose` builds, one subcommand each.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand)]
enum ProposeOp {
    AddNode(AddNode),
    RemoveNode(RemoveNode),
    RevokeNode(RevokeNode),
    QuarantineNode(QuarantineNode),
    RestoreNode(RestoreNode),
    RotateNodeKey(RotateNodeKey),
    SetNode(SetNode),
    AddApprover(AddApprover),
    RevokeApprover(RevokeApprover),
    RotateApproverKey(RotateApproverKey),
    SetThreshold(SetThreshold),
    SetParams(SetParams),
    SetPolicy(SetPolicy),
}

/// Admit a node to the network, active, with its key, owner, tags, addresses and routes.
#[derive(FromArgs, ArgsInfo)]
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

/// Remove a node's record entirely (it leaves the network; its id may be admitted again).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "remove-node")]
struct RemoveNode {
    /// the node
    #[argh(positional)]
    id: Id,
}

/// Revoke an active or quarantined node: every peer drops it until a restore-node.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "revoke-node")]
struct RevokeNode {
    /// the node
    #[argh(positional)]
    id: Id,
}

/// Quarantine an active node: peers drop it until a restore-node (its record and key stay).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "quarantine-node")]
struct QuarantineNode {
    /// the node
    #[argh(positional)]
    id: Id,
}

/// Restore a revoked or quarantined node to active.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "restore-node")]
struct RestoreNode {
    /// the node
    #[argh(positional)]
    id: Id,
}

/// Replace a node's WireGuard key.
#[derive(FromArgs, ArgsInfo)]
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
#[derive(FromArgs, ArgsInfo)]
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
#[derive(FromArgs, ArgsInfo)]
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

/// Revoke an approver: its signatures no longer count, on this update or any later one.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "revoke-approver")]
struct RevokeApprover {
    /// the approver
    #[argh(positional)]
    id: Id,
}

/// Replace an approver's key (the new key must also sign).
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "rotate-approver-key")]
struct RotateApproverKey {
    /// the approver
    #[argh(positional)]
    id: Id,
    /// the new public key (base64)
    #[argh(option)]
    pubkey: ApproverKey,
}

/// Change how many approver signatures each later change needs.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "set-threshold")]
struct SetThreshold {
    /// the new threshold
    #[argh(positional)]
    threshold: u64,
}

/// Pin a policy document (its rules must name only nodes, tags and owners the ledger has),
/// or unpin with --none.
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "set-policy")]
struct SetPolicy {
    /// the policy document (rn.policy.v1)
    #[argh(positional)]
    file: Option<PathBuf>,
    /// unpin the policy (nothing is allowed afterwards)
    #[argh(switch)]
    none: bool,
}

/// Change network parameters: update validity, clock skew, overlay ranges (unnamed ones keep
/// their value).
#[derive(FromArgs, ArgsInfo)]
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

fn secs(s: &str, flag: &str) -> anyhow::Result<Uint> {
    let v = parse_duration(s).map_err(|e| usage(format!("--{flag}: {e}")))?;
    Uint::new(v).map_err(|e| usage(format!("--{flag}: {e}")))
}

fn set<T: Ord + std::fmt::Display>(items: Vec<T>, flag: &str) -> anyhow::Result<Set<T>> {
    Set::new(items).map_err(|dup| usage(format!("--{flag} {dup} given twice")))
}

impl ProposeOp {
    /// Parses one `--op` value: the op's name and flags, split as a POSIX shell would.
    fn parse_one(text: &str) -> anyhow::Result<ProposeOp> {
        let words =
            shlex::split(text).ok_or_else(|| usage(format!("--op {text:?}: unbalanced quotes")))?;
        let Some((name, flags)) = words.split_first() else {
            return Err(usage(
                "--op needs an op and its flags, e.g. --op 'revoke-node web-2'",
            ));
        };
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ProposeOp::from_args(&["rn member propose", name], &flags).map_err(|e| {
            if e.status.is_ok() {
                CliError::Help(e.output).into()
            } else if e.output.starts_with("no subcommand matched") {
                usage(format!("--op {text:?}: unknown op {name:?}; {OPS}"))
            } else {
                let why = e.output.split_whitespace().collect::<Vec<_>>().join(" ");
                usage(format!("--op {text:?}: {why}"))
            }
        })
    }

    /// Adds the op to the proposal. An `add_node` without `--address` gets the lowest free
    /// overlay address.
    fn add_to(self, b: &mut ProposalBuilder) -> anyhow::Result<()> {
        let at = b.created_at();
        let op = match self {
            ProposeOp::AddNode(a) => {
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
            ProposeOp::RemoveNode(a) => Op::RemoveNode { id: a.id },
            ProposeOp::RevokeNode(a) => Op::RevokeNode { id: a.id },
            ProposeOp::QuarantineNode(a) => Op::QuarantineNode { id: a.id },
            ProposeOp::RestoreNode(a) => Op::RestoreNode { id: a.id },
            ProposeOp::RotateNodeKey(a) => Op::RotateNodeKey {
                id: a.id,
                pubkey: a.pubkey,
            },
            ProposeOp::SetNode(a) => {
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
            ProposeOp::AddApprover(a) => Op::AddApprover {
                approver: Approver {
                    id: a.id,
                    pubkey: a.pubkey,
                    role: a.role,
                    status: ApproverStatus::Active,
                    previous_keys: Default::default(),
                },
            },
            ProposeOp::RevokeApprover(a) => Op::RevokeApprover { id: a.id },
            ProposeOp::RotateApproverKey(a) => Op::RotateApproverKey {
                id: a.id,
                pubkey: a.pubkey,
            },
            ProposeOp::SetThreshold(a) => Op::SetThreshold {
                threshold: Uint::new(a.threshold).map_err(|e| usage(e.to_string()))?,
            },
            ProposeOp::SetPolicy(a) => match (a.file, a.none) {
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
            ProposeOp::SetParams(a) => {
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

/// The ops `rn member propose` knows, for error messages.
const OPS: &str = "ops: add-node, remove-node, revoke-node, quarantine-node, restore-node, rotate-node-key, set-node, add-approver, revoke-approver, rotate-approver-key, set-threshold, set-params, set-policy";

/// How many ops the summary lists before pointing to `rn member show`.
const SHOWN: usize = 20;

/// Reads a `--batch` file: a JSON array of ops in the update's format, or one op per line as
/// on the command line (blank lines and lines starting with # skipped).
fn add_batch(b: &mut ProposalBuilder, path: &std::path::Path) -> anyhow::Result<()> {
    let bytes = files::read_capped(path, caps::UPDATE)?;
    if bytes.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[') {
        b.batch(&bytes).map_err(|e| build_error(e, Some(path)))?;
        return Ok(());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::Data(format!("{}: not UTF-8 text", path.display())))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let op = ProposeOp::parse_one(line).with_context(at)?;
        op.add_to(b).with_context(at)?;
    }
    Ok(())
}

impl Propose {
    pub fn run(self) -> anyhow::Result<Exit> {
        // Every op is parsed before any file is read: a typo costs nothing.
        let mut ops: Vec<ProposeOp> = self.first.into_iter().collect();
        for text in &self.op {
            ops.push(ProposeOp::parse_one(text)?);
        }
        if ops.is_empty() && self.batch.is_none() {
            return Err(usage(format!(
                "name an op (e.g. rn member propose revoke-node web-2 -o p.json), --op 'OP FLAGS' or --batch FILE; {OPS}"
            )));
        }
        if self.json && files::is_stdin(&self.output) {
            return Err(usage(
                "--json prints the summary on standard output: write the proposal to a file (-o FILE)",
            ));
        }
        let now = now();
        let input::Base {
            state: base,
            policies: known,
        } = match (&self.base, &self.state_dir) {
            (Some(_), Some(_)) => return Err(usage("give --base or --state-dir, not both")),
            (Some(path), None) => input::base(path, now)?,
            (None, dir) => super::ledger::trusted_base(&super::ledger::state_dir(dir.as_deref())?)?,
        };
        let at = Uint::new(now).map_err(|e| usage(e.to_string()))?;
        let mut b = ProposalBuilder::new(base, at);
        for op in ops {
            op.add_to(&mut b)?;
        }
        if let Some(batch) = &self.batch {
            add_batch(&mut b, batch)?;
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
        let mut bytes = to_jcs(&proposal);
        bytes.push(b'\n');
        files::write_atomic(&self.output, &bytes, 0o644, self.force)?;
        let u = &proposal.update;
        let needed = proposal.base_state.threshold();
        if self.json {
            let v = serde_json::json!({
                "file": self.output,
                "update": u.hash().to_string(),
                "network_id": u.network_id.as_str(),
                "epoch_prev": u.epoch_prev.get(),
                "epoch_new": u.epoch_new.get(),
                "new_root": u.new_root.to_string(),
                "expires_at": u.expires_at.get(),
                "ops": u.ops.len(),
                "signatures_needed": needed.get(),
            });
            crate::outln!("{v}");
            return Ok(Exit::Ok);
        }
        crate::errln!(
            "proposal {} for network {}: epoch {} -> {}, expires in {}, new root {}\n{}\n{}",
            u.hash().short(),
            u.network_id,
            u.epoch_prev,
            u.epoch_new,
            show_span(ttl.get()),
            u.new_root,
            op_counts(&u.ops),
            describe_ops(
                &u.ops,
                Some(&proposal.base_state),
                Some(SHOWN),
                "rn member show FILE lists every op"
            )
            .trim_end()
        );
        crate::errln!(
            "written to {}; {needed} approver signature{} needed (rn member sign)",
            self.output.display(),
            if needed.get() == 1 { "" } else { "s" }
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
