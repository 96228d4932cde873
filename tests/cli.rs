//! The real `rn` binary, driven as an operator would: founding a network, proposing, signing
//! on separate "laptops", combining and verifying; and every bad input giving its exit code
//! and leaving no output file behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Env {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn rn_in(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rn"))
            .args(args)
            .current_dir(self.dir.path())
            // This account's signing journals (one per key) live here, not in the real home.
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    fn rn(&self, args: &[&str]) -> Run {
        self.rn_in(args, "")
    }

    /// [`Env::rn`] with environment variables set (`Some`) or removed (`None`) on top.
    fn rn_env(&self, args: &[&str], vars: &[(&str, Option<&Path>)]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rn"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .stdin(Stdio::null());
        for (name, value) in vars {
            match value {
                Some(v) => c.env(name, v),
                None => c.env_remove(name),
            };
        }
        c.output().unwrap().into()
    }

    /// Runs and insists on success, returning stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.rn(args);
        assert_eq!(r.code, 0, "rn {args:?} failed: {}", r.stderr);
        r.stdout.trim().to_owned()
    }

    fn laptop(&self, name: &str) -> String {
        let d = self.path(name);
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        format!("{name}/key")
    }

    /// alice (owner, rn key), bob (owner, ssh-keygen key), carol (guardian, rn key);
    /// threshold 2; genesis signed by all three. Returns the genesis root.
    fn found(&self) -> String {
        let a = self.laptop("alice");
        self.ok(&["key", "gen", "--out", &a]);
        let b = self.laptop("bob");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob", "-f"])
            .arg(self.path(&b))
            .status()
            .expect("ssh-keygen (openssh-client) is installed by `make test`");
        assert!(st.success());
        let c = self.laptop("carol");
        self.ok(&["key", "gen", "--out", &c]);
        let pa = self.ok(&["key", "pub", &a]);
        let pb = self.ok(&["key", "pub", &format!("{b}.pub")]);
        let pc = self.ok(&["key", "pub", &c]);
        let root = self.ok(&[
            "member",
            "init",
            "--network-id",
            "acme",
            "--approver",
            &format!("alice:owner:{pa}"),
            "--approver",
            &format!("bob:owner:{pb}"),
            "--approver",
            &format!("carol:guardian:{pc}"),
            "--threshold",
            "2",
            "-o",
            "genesis.json",
        ]);
        for k in [&a, &b, &c] {
            self.ok(&["member", "sign", "genesis.json", "--key", k, "--yes"]);
        }
        root
    }

    /// The signing journals rn keeps for this account.
    fn journals(&self) -> Vec<PathBuf> {
        fs::read_dir(self.path("state/rn/journals"))
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "journal"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`Env::found`], then a ledger bootstrapped in `dir`.
    fn found_with_ledger(&self, dir: &str) {
        let root = self.found();
        self.ok(&[
            "member",
            "bootstrap",
            "--genesis",
            "genesis.json",
            "--pin",
            &root,
            "--state-dir",
            dir,
        ]);
    }

    /// A ledger in `dir` bootstrapped from `genesis.json` with `root` pinned.
    fn bootstrap(&self, root: &str, dir: &str) {
        self.ok(&[
            "member",
            "bootstrap",
            "--genesis",
            "genesis.json",
            "--pin",
            root,
            "--state-dir",
            dir,
        ]);
    }

    fn node_key(&self, name: &str) -> String {
        self.ok(&["key", "gen-node", "--out", &format!("{name}.key")])
    }
}

fn assert_absent(p: &Path) {
    assert!(!p.exists(), "{} must not have been written", p.display());
}

#[test]
fn a_network_is_founded_and_changed_from_the_cli() {
    let env = Env::new();
    let root = env.found();
    assert!(root.starts_with("sha256:"), "{root}");
    let pk = env.node_key("web-1");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "web-1",
        "--pubkey",
        &pk,
        "--owner",
        "alice",
        "--tag",
        "tag:web",
        "--base",
        "genesis.json",
        "--reason",
        "onboard web-1",
        "-o",
        "p1.json",
    ]);
    // Two laptops, two copies.
    fs::copy(env.path("p1.json"), env.path("alice/p1.json")).unwrap();
    fs::copy(env.path("p1.json"), env.path("bob/p1.json")).unwrap();
    env.ok(&[
        "member",
        "sign",
        "alice/p1.json",
        "--key",
        "alice/key",
        "--yes",
    ]);
    env.ok(&["member", "sign", "bob/p1.json", "--key", "bob/key", "--yes"]);

    // One signature: rejected, naming what is missing.
    let one = env.rn(&["member", "verify", "alice/p1.json"]);
    assert_eq!(one.code, 78, "{}", one.stdout);
    assert!(one.stdout.contains("1 of 2 signatures"), "{}", one.stdout);
    assert!(one.stdout.contains("bob, carol"), "{}", one.stdout);
    let j: serde_json::Value = serde_json::from_str(
        &env.rn(&["member", "verify", "alice/p1.json", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["error"]["name"], "BelowThreshold");
    assert_eq!(j["missing"][0], "1 more signature(s) from: bob, carol");

    env.ok(&[
        "member",
        "combine",
        "alice/p1.json",
        "bob/p1.json",
        "-o",
        "p1-signed.json",
    ]);
    let v = env.rn(&["member", "verify", "p1-signed.json", "--json"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    let j: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["epoch_new"], 1);
    assert_eq!(j["signatures"], serde_json::json!(["alice", "bob"]));
    assert_eq!(j["threshold"], 2);
    assert_eq!(j["missing"], serde_json::json!([]));
    // Judged against the proposal's own base_state, which only the proposer vouches for.
    assert_eq!(j["base_verified"], false);
    let v = env.rn(&["member", "verify", "p1-signed.json"]);
    assert!(
        v.stdout
            .starts_with("accepted against an UNVERIFIED base: the proposal's own base_state"),
        "{}",
        v.stdout
    );
    let v = env.rn(&[
        "member",
        "verify",
        "p1-signed.json",
        "--base",
        "genesis.json",
    ]);
    assert!(
        v.stdout.starts_with("accepted: network acme"),
        "{}",
        v.stdout
    );

    // The signed proposal is the base of the next one (chained offline).
    let pk2 = env.node_key("web-2");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "web-2",
        "--pubkey",
        &pk2,
        "--owner",
        "bob",
        "--base",
        "p1-signed.json",
        "-o",
        "p2.json",
    ]);
    let p2: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path("p2.json")).unwrap()).unwrap();
    assert_eq!(p2["update"]["epoch_new"], 2);
    assert_eq!(
        p2["update"]["ops"][0]["node"]["addresses"][0], "100.96.0.2/32",
        "lowest free address"
    );

    // alice already signed an update on the genesis: a different one on the same base is refused.
    let pk3 = env.node_key("web-3");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "web-3",
        "--pubkey",
        &pk3,
        "--owner",
        "alice",
        "--base",
        "genesis.json",
        "-o",
        "conflict.json",
    ]);
    let before = fs::read(env.path("conflict.json")).unwrap();
    let r = env.rn(&[
        "member",
        "sign",
        "conflict.json",
        "--key",
        "alice/key",
        "--yes",
    ]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("refusing to sign: this key already signed update"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read(env.path("conflict.json")).unwrap(),
        before,
        "file unchanged"
    );
    // The same update again is fine (idempotent).
    let again = env.rn(&[
        "member",
        "sign",
        "alice/p1.json",
        "--key",
        "alice/key",
        "--yes",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("already signed"), "{}", again.stderr);
}

#[test]
fn signing_asks_and_a_no_changes_nothing() {
    let env = Env::new();
    env.found();
    let pk = env.node_key("n1");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "n1",
        "--pubkey",
        &pk,
        "--owner",
        "ops",
        "--base",
        "genesis.json",
        "-o",
        "p.json",
    ]);
    let before = fs::read(env.path("p.json")).unwrap();
    let r = env.rn_in(&["member", "sign", "p.json", "--key", "carol/key"], "n\n");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Sign? [y/N]"), "{}", r.stderr);
    assert!(
        r.stderr.contains("add node n1 owned by ops"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read(env.path("p.json")).unwrap(), before);
    assert_eq!(env.journals().len(), 0);
    let r = env.rn_in(&["member", "sign", "p.json", "--key", "carol/key"], "y\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(fs::read(env.path("p.json")).unwrap(), before);
    assert_eq!(env.journals().len(), 1);

    // A copy of the key file shares the journal: it refuses a conflicting update.
    fs::create_dir(env.path("usb")).unwrap();
    fs::set_permissions(env.path("usb"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::copy(env.path("carol/key"), env.path("usb/key")).unwrap();
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "n2",
        "--pubkey",
        &env.node_key("n2"),
        "--owner",
        "ops",
        "--base",
        "genesis.json",
        "-o",
        "q.json",
    ]);
    let r = env.rn(&["member", "sign", "q.json", "--key", "usb/key", "--yes"]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(
        r.stderr.contains("this key already signed update"),
        "{}",
        r.stderr
    );
    assert_eq!(env.journals().len(), 1);
}

#[test]
fn new_approvers_must_prove_possession_and_an_owner_must_sign() {
    let env = Env::new();
    env.found();
    let d = env.laptop("dave");
    let pd = env.ok(&["key", "gen", "--out", &d]);
    env.ok(&[
        "member",
        "propose",
        "add-approver",
        "--id",
        "dave",
        "--role",
        "guardian",
        "--pubkey",
        &pd,
        "--base",
        "genesis.json",
        "-o",
        "p.json",
    ]);
    env.ok(&["member", "sign", "p.json", "--key", "carol/key", "--yes"]);
    env.ok(&[
        "member",
        "sign",
        "p.json",
        "--key",
        "alice/key",
        "--yes",
        "-o",
        "p-ac.json",
    ]);
    let r = env.rn(&["member", "verify", "p-ac.json", "--json"]);
    assert_eq!(r.code, 78);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        j["error"]["name"], "MissingProofOfPossession",
        "{}",
        r.stdout
    );
    // Without an owner: carol + dave's proof.
    env.ok(&["member", "sign", "p.json", "--key", &d, "--yes"]);
    env.ok(&["member", "sign", "p.json", "--key", "bob/key", "--yes"]);
    let r = env.rn(&["member", "verify", "p.json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    env.ok(&["member", "sign", "p-ac.json", "--key", &d, "--yes"]);
    let r = env.rn(&["member", "verify", "p-ac.json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    // A governance change signed by two guardians only.
    env.ok(&[
        "member",
        "propose",
        "set-threshold",
        "3",
        "--base",
        "p.json",
        "-o",
        "t.json",
    ]);
    env.ok(&["member", "sign", "t.json", "--key", "carol/key", "--yes"]);
    env.ok(&["member", "sign", "t.json", "--key", &d, "--yes"]);
    let r = env.rn(&["member", "verify", "t.json", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["error"]["name"], "MissingOwner", "{}", r.stdout);
}

#[test]
fn a_batch_onboards_hundreds_of_nodes_in_one_signature_round() {
    let env = Env::new();
    env.found();
    let mut ops = Vec::new();
    for i in 0..300 {
        let key = {
            let secret = rn::keys::NodeSecret::generate().unwrap();
            secret.public().to_string()
        };
        ops.push(serde_json::json!({"op": "add_node", "node": {"id": format!("n{i}"), "pubkey": key, "owner": "ops", "tags": ["tag:fleet"]}}));
    }
    fs::write(env.path("batch.json"), serde_json::to_vec(&ops).unwrap()).unwrap();
    env.ok(&[
        "member",
        "propose",
        "--batch",
        "batch.json",
        "--base",
        "genesis.json",
        "--reason",
        "fleet",
        "-o",
        "p.json",
    ]);
    env.ok(&["member", "sign", "p.json", "--key", "alice/key", "--yes"]);
    env.ok(&["member", "sign", "p.json", "--key", "bob/key", "--yes"]);
    env.ok(&["member", "verify", "p.json"]);
    let p: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path("p.json")).unwrap()).unwrap();
    let addrs: std::collections::HashSet<_> = p["update"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["node"]["addresses"][0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(addrs.len(), 300);
    assert!(
        addrs.contains("100.96.1.44/32"),
        "addresses continue past .255"
    );
    // A reader that stops early (`rn … | head`): rn ends quietly, without a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rn"))
        .args(["member", "sign", "p.json", "--key", "alice/key", "--yes"])
        .args(["-o", "-"])
        .current_dir(env.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with(b"{"), "the document begins");
    assert!(
        p.to_string().len() > 70_000,
        "more than a pipe's buffer (64 KiB)"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn an_expired_proposal_is_neither_signed_nor_accepted() {
    let env = Env::new();
    env.found();
    let pk = env.node_key("n1");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "n1",
        "--pubkey",
        &pk,
        "--owner",
        "ops",
        "--ttl",
        "1s",
        "--base",
        "genesis.json",
        "-o",
        "p.json",
    ]);
    env.ok(&["member", "sign", "p.json", "--key", "alice/key", "--yes"]);
    env.ok(&["member", "sign", "p.json", "--key", "bob/key", "--yes"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = env.rn(&["member", "verify", "p.json", "--json"]);
    assert_eq!(r.code, 78);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["error"]["name"], "Expired");
    let r = env.rn(&["member", "sign", "p.json", "--key", "carol/key", "--yes"]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
}

#[test]
fn passphrase_protected_keys_from_rn_and_ssh_keygen_sign() {
    let env = Env::new();
    env.found();
    fs::write(env.path("alice/pass"), "correct horse\n").unwrap();
    fs::set_permissions(env.path("alice/pass"), fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&[
        "key",
        "gen",
        "--out",
        "alice/enc",
        "--passphrase-file",
        "alice/pass",
    ]);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
        .arg(env.path("alice/ssh-enc"))
        .status()
        .unwrap();
    assert!(st.success());
    for key in ["alice/enc", "alice/ssh-enc"] {
        let r = env.rn(&["key", "pub", key]);
        assert_eq!(r.code, 64, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("passphrase-protected; pass --passphrase-file"),
            "{}",
            r.stderr
        );
        let p = env.ok(&["key", "pub", key, "--passphrase-file", "alice/pass"]);
        assert_eq!(p, env.ok(&["key", "pub", &format!("{key}.pub")]));
    }
    fs::write(env.path("alice/wrong"), "battery staple\n").unwrap();
    fs::set_permissions(env.path("alice/wrong"), fs::Permissions::from_mode(0o600)).unwrap();
    let r = env.rn(&[
        "key",
        "pub",
        "alice/ssh-enc",
        "--passphrase-file",
        "alice/wrong",
    ]);
    assert_eq!(r.code, 77, "{}", r.stderr);
}

/// An Ed25519 public key whose y coordinate (3) is written as y + p: the same point as the
/// canonical `AwAA…AAA=`, spelled a second way.
const SECOND_SPELLING: &str = "8P///////////////////////////////////////38=";
/// The same 32 bytes as the key blob of an OpenSSH `ssh-ed25519` public key line.
const SECOND_SPELLING_SSH: &str =
    "AAAAC3NzaC1lZDI1NTE5AAAAIPD///////////////////////////////////////9/";

#[test]
fn bad_inputs_get_their_exit_code_and_write_nothing() {
    let env = Env::new();
    env.found();
    let pk = env.node_key("n1");
    let second_approver = format!("a:owner:{SECOND_SPELLING}");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["member", "verify", "missing.json"], 66, "no such file"),
        (
            vec![
                "member",
                "propose",
                "revoke-node",
                "n1",
                "--base",
                "missing.json",
                "-o",
                "out.json",
            ],
            66,
            "no such file",
        ),
        (
            vec!["member", "propose", "frob-node", "x"],
            64,
            "unknown op",
        ),
        (
            vec![
                "member", "propose", "add-node", "--id", "Bad_Id", "--pubkey", &pk, "--owner", "o",
            ],
            64,
            "lowercase DNS label",
        ),
        (
            vec![
                "member", "propose", "add-node", "--id", "n1", "--pubkey", "AAAA", "--owner", "o",
            ],
            64,
            "transport key",
        ),
        (
            vec![
                "member",
                "propose",
                "revoke-node",
                "nope",
                "--base",
                "genesis.json",
                "-o",
                "out.json",
            ],
            78,
            "no node nope",
        ),
        (
            vec![
                "member",
                "propose",
                "add-node",
                "--id",
                "n1",
                "--pubkey",
                &pk,
                "--owner",
                "o",
                "--ttl",
                "8d",
                "--base",
                "genesis.json",
                "-o",
                "out.json",
            ],
            64,
            "--ttl",
        ),
        (
            vec![
                "member",
                "sign",
                "genesis.json",
                "--key",
                "web-1.key.missing",
            ],
            66,
            "no such file",
        ),
        (
            vec!["member", "sign", "malformed.json", "--key", "alice/key"],
            65,
            "malformed",
        ),
        (
            vec!["member", "verify", "wrongkind.json"],
            65,
            "unknown kind",
        ),
        (
            vec![
                "member",
                "init",
                "--network-id",
                "x",
                "--approver",
                "a:king:AAAA",
                "--threshold",
                "1",
                "-o",
                "out.json",
            ],
            64,
            "owner or guardian",
        ),
        (
            vec![
                "member",
                "init",
                "--network-id",
                "x",
                "--threshold",
                "1",
                "-o",
                "out.json",
            ],
            64,
            "--approver",
        ),
        (vec!["member", "bogus"], 64, "usage"),
        (
            vec![
                "member",
                "propose",
                "--batch",
                "dup-batch.json",
                "--base",
                "genesis.json",
                "-o",
                "out.json",
            ],
            65,
            "duplicate field",
        ),
        (
            vec![
                "member",
                "init",
                "--network-id",
                "x",
                "--approver",
                &second_approver,
                "--threshold",
                "1",
                "-o",
                "out.json",
            ],
            64,
            "non-canonical Ed25519 point encoding",
        ),
        (
            vec![
                "member",
                "propose",
                "add-approver",
                "--id",
                "dave",
                "--role",
                "guardian",
                "--pubkey",
                SECOND_SPELLING,
                "--base",
                "genesis.json",
                "-o",
                "out.json",
            ],
            64,
            "non-canonical Ed25519 point encoding",
        ),
        (
            vec![
                "member",
                "propose",
                "rotate-approver-key",
                "carol",
                "--pubkey",
                SECOND_SPELLING,
                "--base",
                "genesis.json",
                "-o",
                "out.json",
            ],
            64,
            "non-canonical Ed25519 point encoding",
        ),
        (
            vec!["key", "pub", "second.pub"],
            65,
            "non-canonical Ed25519 point encoding",
        ),
    ];
    fs::write(
        env.path("second.pub"),
        format!("ssh-ed25519 {SECOND_SPELLING_SSH} x\n"),
    )
    .unwrap();
    fs::write(env.path("malformed.json"), b"{\"kind\":\"rn.proposal.v1\",").unwrap();
    fs::write(
        env.path("dup-batch.json"),
        br#"[{"op":"revoke_node","id":"web-1","id":"web-2"}]"#,
    )
    .unwrap();
    fs::write(env.path("wrongkind.json"), b"{\"kind\":\"rn.proposal.v9\"}").unwrap();
    for (args, code, needle) in &cases {
        let r = env.rn(args);
        assert_eq!(r.code, *code, "rn {args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(needle),
            "rn {args:?}: {:?} lacks {needle:?}",
            r.stderr
        );
        assert_eq!(
            r.stderr
                .trim()
                .lines()
                .filter(|l| l.starts_with("rn: "))
                .count(),
            1,
            "one error line: {}",
            r.stderr
        );
        assert_absent(&env.path("out.json"));
    }

    // Wrong key: not an approver of this network.
    let stranger = env.laptop("mallory");
    env.ok(&["key", "gen", "--out", &stranger]);
    let before = fs::read(env.path("genesis.json")).unwrap();
    let r = env.rn(&[
        "member",
        "sign",
        "genesis.json",
        "--key",
        &stranger,
        "--yes",
    ]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("is not an approver"), "{}", r.stderr);
    assert_eq!(fs::read(env.path("genesis.json")).unwrap(), before);

    // A key readable by others is refused, with the fix.
    fs::set_permissions(env.path("alice/key"), fs::Permissions::from_mode(0o644)).unwrap();
    let r = env.rn(&[
        "member",
        "sign",
        "genesis.json",
        "--key",
        "alice/key",
        "--yes",
    ]);
    assert_eq!(r.code, 77);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);

    // key gen never clobbers.
    let key = fs::read(env.path("carol/key")).unwrap();
    let r = env.rn(&["key", "gen", "--out", "carol/key"]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(fs::read(env.path("carol/key")).unwrap(), key);

    // --json errors are one JSON object.
    let r = env.rn(&["member", "verify", "wrongkind.json", "--json"]);
    let j: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(j["error"], "UnknownKind");
    assert_eq!(j["exit"], 65);
}

/// Founds a network, bootstraps two state directories from it, and signs one add-node.
fn two_ledgers(env: &Env) -> String {
    let root = env.found();
    for d in ["a", "b"] {
        env.bootstrap(&root, d);
    }
    let pk = env.node_key("web-1");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "web-1",
        "--pubkey",
        &pk,
        "--owner",
        "alice",
        "--state-dir",
        "a",
        "-o",
        "p.json",
    ]);
    env.ok(&["member", "sign", "p.json", "--key", "alice/key", "--yes"]);
    env.ok(&["member", "sign", "p.json", "--key", "bob/key", "--yes"]);
    root
}

#[test]
fn two_state_dirs_are_kept_in_step_by_export_and_apply() {
    let env = Env::new();
    let root = two_ledgers(&env);
    let r = env.rn(&[
        "member",
        "bootstrap",
        "--genesis",
        "genesis.json",
        "--pin",
        &root,
        "--state-dir",
        "a",
    ]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    let bad_pin = format!("sha256:{}", "0".repeat(64));
    let r = env.rn(&[
        "member",
        "bootstrap",
        "--genesis",
        "genesis.json",
        "--pin",
        &bad_pin,
        "--state-dir",
        "c",
    ]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert_absent(&env.path("c/genesis.json"));

    let out = env.ok(&["member", "apply", "p.json", "--state-dir", "a"]);
    assert!(out.contains("applied 1 update(s): epoch 0 -> 1"), "{out}");
    // export | apply over a pipe, as over ssh.
    let bundle = env.ok(&["member", "export", "--state-dir", "a"]);
    let r = env.rn_in(
        &["member", "apply", "-", "--state-dir", "b", "--json"],
        &bundle,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let status = |d: &str| -> serde_json::Value {
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", d, "--json"])).unwrap()
    };
    let (a, b) = (status("a"), status("b"));
    assert_eq!(a["root"], b["root"]);
    assert_eq!(a["epoch"], 1);
    assert_eq!(b["mode"], "trusted");
    assert_eq!(b["nodes"][0]["id"], "web-1");
    // Applying the bundle again is a clean no-op.
    let again = env.rn_in(&["member", "apply", "-", "--state-dir", "b"], &bundle);
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("already applied"), "{}", again.stdout);
    let log = env.ok(&["member", "log", "--state-dir", "b"]);
    assert!(
        log.contains("signed by alice, bob") && log.contains("add node web-1"),
        "{log}"
    );
    let v = env.ok(&["member", "log", "--state-dir", "b", "--verify"]);
    assert!(
        v.contains("1 entries verified") && v.contains("hash chain intact"),
        "{v}"
    );
}

#[test]
fn the_same_update_applied_by_two_processes_at_once_commits_once() {
    let env = Env::new();
    two_ledgers(&env);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_rn"))
            .args(["member", "apply", "p.json", "--state-dir", "a"])
            .current_dir(env.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (one, two) = (spawn(), spawn());
    let outs: Vec<Run> = [one, two]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().into())
        .collect();
    let applied = outs
        .iter()
        .filter(|r| r.code == 0 && r.stdout.contains("applied 1 update"))
        .count();
    let clean = outs
        .iter()
        .filter(|r| r.code == 0 && r.stdout.contains("already applied") || r.code == 75)
        .count();
    assert_eq!(
        (applied, clean),
        (1, 1),
        "{:?}",
        outs.iter()
            .map(|r| (&r.code, &r.stdout, &r.stderr))
            .collect::<Vec<_>>()
    );
    let s: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", "a", "--json"])).unwrap();
    assert_eq!(s["epoch"], 1);
}

#[test]
fn a_restricted_ledger_says_why_refuses_changes_and_recovers_only_when_told() {
    let env = Env::new();
    two_ledgers(&env);
    env.ok(&["member", "apply", "p.json", "--state-dir", "a"]);
    fs::remove_file(env.path("a/ledger.watermark")).unwrap();
    let s: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", "a", "--json"])).unwrap();
    assert_eq!(s["mode"], "restricted");
    assert_eq!(s["reason"]["name"], "MissingWatermark");
    let text = env.ok(&["member", "status", "--state-dir", "a"]);
    assert!(
        text.contains("restricted: ledger.watermark is missing"),
        "{text}"
    );
    let r = env.rn(&["member", "apply", "p.json", "--state-dir", "a", "--json"]);
    assert_eq!(r.code, 78);
    let j: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(j["error"], "MissingWatermark");
    assert_eq!(
        env.rn(&["member", "log", "--verify", "--state-dir", "a"])
            .code,
        78
    );
    let r = env.rn(&["member", "recover", "--state-dir", "a"]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("--danger-accept-current"), "{}", r.stderr);
    let out = env.ok(&[
        "member",
        "recover",
        "--state-dir",
        "a",
        "--danger-accept-current",
    ]);
    assert!(out.contains("trusted again at epoch 1"), "{out}");
    let audit = env.ok(&["member", "log", "--audit", "--state-dir", "a"]);
    assert!(
        audit.contains("restricted") && audit.contains("recovered"),
        "{audit}"
    );
    let missing = env.rn(&["member", "status", "--state-dir", "nowhere"]);
    assert_eq!(missing.code, 66);
    assert!(
        missing.stderr.contains("rn member bootstrap"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_policy_is_pinned_by_quorum_and_answers_checks() {
    let env = Env::new();
    two_ledgers(&env);
    env.ok(&["member", "apply", "p.json", "--state-dir", "a"]);
    let pk = env.node_key("laptop-1");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "laptop-1",
        "--pubkey",
        &pk,
        "--owner",
        "alice",
        "--tag",
        "tag:laptop",
        "--state-dir",
        "a",
        "-o",
        "p2.json",
    ]);
    env.ok(&["member", "sign", "p2.json", "--key", "alice/key", "--yes"]);
    env.ok(&["member", "sign", "p2.json", "--key", "bob/key", "--yes"]);
    env.ok(&["member", "apply", "p2.json", "--state-dir", "a"]);
    // No policy yet: default deny.
    let r = env.rn(&[
        "policy",
        "check",
        "--from",
        "laptop-1",
        "--to",
        "web-1",
        "--proto",
        "tcp",
        "--port",
        "443",
        "--state-dir",
        "a",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("no policy is pinned"), "{}", r.stdout);

    fs::write(
        env.path("bad-policy.json"),
        br#"{"kind":"rn.policy.v1","rules":[{"src":["tag:nobody"],"dst":["*"],"proto":"any"}]}"#,
    )
    .unwrap();
    let r = env.rn(&[
        "member",
        "propose",
        "set-policy",
        "bad-policy.json",
        "--state-dir",
        "a",
        "-o",
        "bad.json",
    ]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(
        r.stderr.contains("tag:nobody matches no node"),
        "{}",
        r.stderr
    );
    assert_absent(&env.path("bad.json"));

    fs::write(
        env.path("policy.json"),
        br#"{"kind":"rn.policy.v1","rules":[
        {"src":["tag:laptop"],"dst":["node:web-1"],"proto":"tcp","ports":["443"]},
        {"src":["owner:alice"],"dst":["*"],"proto":"icmp"}]}"#,
    )
    .unwrap();
    let v = env.ok(&["policy", "validate", "policy.json", "--state-dir", "a"]);
    assert!(v.contains("valid: 2 rules"), "{v}");
    env.ok(&[
        "member",
        "propose",
        "set-policy",
        "policy.json",
        "--state-dir",
        "a",
        "-o",
        "pp.json",
    ]);
    let r = env.rn_in(&["member", "sign", "pp.json", "--key", "alice/key"], "y\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("policy change, rule by rule") && r.stderr.contains("+ [0]"),
        "{}",
        r.stderr
    );
    env.ok(&["member", "sign", "pp.json", "--key", "bob/key", "--yes"]);
    // The signed update alone pins a document the ledger does not hold: everything denied.
    let pp: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path("pp.json")).unwrap()).unwrap();
    let su = serde_json::json!({"kind": "rn.signed-update.v1", "update": pp["update"], "signatures": pp["signatures"]});
    fs::write(env.path("su.json"), serde_json::to_vec(&su).unwrap()).unwrap();
    env.ok(&["member", "apply", "su.json", "--state-dir", "a"]);
    let st = env.ok(&["member", "status", "--state-dir", "a"]);
    assert!(st.contains("NOT HELD"), "{st}");
    let r = env.rn(&[
        "policy",
        "check",
        "--from",
        "laptop-1",
        "--to",
        "web-1",
        "--proto",
        "tcp",
        "--port",
        "443",
        "--state-dir",
        "a",
        "--json",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("policy_not_held"), "{}", r.stdout);
    // Applying the proposal (which carries the document) stores it.
    let out = env.ok(&["member", "apply", "pp.json", "--state-dir", "a"]);
    assert!(out.contains("stored policy document"), "{out}");
    let allow = env.rn(&[
        "policy",
        "check",
        "--from",
        "laptop-1",
        "--to",
        "web-1",
        "--proto",
        "tcp",
        "--port",
        "443",
        "--state-dir",
        "a",
    ]);
    assert_eq!(allow.code, 0, "{}{}", allow.stdout, allow.stderr);
    assert!(
        allow.stdout.starts_with("allow") && allow.stdout.contains("rule 0"),
        "{}",
        allow.stdout
    );
    let deny = env.rn(&[
        "policy",
        "check",
        "--from",
        "laptop-1",
        "--to",
        "web-1",
        "--proto",
        "udp",
        "--port",
        "443",
        "--state-dir",
        "a",
    ]);
    assert_eq!(deny.code, 1);
    assert!(deny.stdout.contains("no rule allows it"), "{}", deny.stdout);
    let show = env.ok(&[
        "policy",
        "show",
        "--node",
        "laptop-1",
        "--state-dir",
        "a",
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(j["peers"][0]["id"], "web-1");
    // The bundle carries the policy to another ledger.
    let bundle = env.ok(&["member", "export", "--state-dir", "a"]);
    env.rn_in(&["member", "apply", "-", "--state-dir", "b"], &bundle);
    let s: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", "b", "--json"])).unwrap();
    assert_eq!(s["policy_held"], true);
}

#[test]
fn node_init_refuses_bad_interface_names_and_writes_absolute_paths() {
    let env = Env::new();
    let root = env.found();
    let init = |iface: &str, config: &str, extra: &[&str]| {
        let mut args = vec![
            "node",
            "init",
            "--node-id",
            "web-1",
            "--genesis",
            "genesis.json",
            "--pin",
            &root,
            "--backend",
            "memory",
            "--firewall",
            "none",
            "--interface",
            iface,
            "--config",
            config,
            "--state-dir",
            "state",
        ];
        args.extend_from_slice(extra);
        env.rn(&args)
    };
    for bad in ["this-name-is-too-long", "a/b", "a b", ""] {
        let r = init(bad, "bad/node.json", &[]);
        assert_eq!(r.code, 64, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.contains("--interface"), "{bad:?}: {}", r.stderr);
        assert_absent(&env.path("bad/node.json"));
    }
    let r = init("rn0", "node/node.json", &["--listen-port", "0"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_absent(&env.path("node/node.json"));

    // Relative paths given to init are written absolute.
    let r = init("rn0", "node/node.json", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path("node/node.json")).unwrap()).unwrap();
    for member in ["state_dir", "private_key", "memory_file"] {
        let p = config[member].as_str().unwrap();
        assert!(Path::new(p).is_absolute(), "{member}: {p}");
    }
    assert_eq!(config["mtu"], 1420);
    assert_eq!(
        (&config["exit"], &config["exit_allow_lan"]),
        (&serde_json::Value::Null, &false.into())
    );

    // --allow-lan concerns a chosen exit only; rn node exit writes both members, or neither.
    let r = init("rn1", "lan/node.json", &["--allow-lan"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("--allow-lan goes with --exit NODE"),
        "{}",
        r.stderr
    );
    assert_absent(&env.path("lan/node.json"));
    let exit = |args: &[&str]| {
        let mut a = vec!["node", "exit"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--config", "node/node.json"]);
        env.rn(&a)
    };
    let member = |m: &str| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&fs::read(env.path("node/node.json")).unwrap())
            .unwrap()[m]
            .clone()
    };
    let r = exit(&["set", "gw-1", "--allow-lan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "exit set to gw-1, local networks reachable (no agent running; applies on start)"
    );
    assert_eq!(
        (member("exit"), member("exit_allow_lan")),
        ("gw-1".into(), true.into())
    );
    let before = fs::read(env.path("node/node.json")).unwrap();
    for bad in [&["off", "--allow-lan"][..], &["set"], &["on", "gw-1"]] {
        let r = exit(bad);
        assert_eq!(r.code, 64, "{bad:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("rn node exit set NODE [--allow-lan] | rn node exit off"),
            "{bad:?}: {}",
            r.stderr
        );
        assert_eq!(
            fs::read(env.path("node/node.json")).unwrap(),
            before,
            "{bad:?}"
        );
    }
    let r = exit(&["set", "gw-1", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        (&j["exit"], &j["allow_lan"], &j["agent_applying"]),
        (&"gw-1".into(), &false.into(), &false.into())
    );
    assert_eq!(
        exit(&["off"]).stdout.trim(),
        "exit off (no agent running; applies on start)"
    );
    assert_eq!(
        (member("exit"), member("exit_allow_lan")),
        (serde_json::Value::Null, false.into())
    );

    // rn node rekey stages the next key beside the key file, once.
    let key = config["private_key"].as_str().unwrap().to_owned();
    let r = env.rn(&["node", "rekey", "--config", "node/node.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let next = r.stdout.trim().to_owned();
    assert!(
        r.stderr.contains(&format!(
            "rn member propose rotate-node-key web-1 --pubkey {next}"
        )),
        "{}",
        r.stderr
    );
    let staged = format!("{key}.next");
    assert_eq!(
        fs::metadata(&staged).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = env.rn(&["node", "rekey", "--config", "node/node.json"]);
    assert_eq!(again.code, 64, "{}", again.stderr);
    assert!(again.stderr.contains(&next), "{}", again.stderr);
    let forced = env.ok(&["node", "rekey", "--config", "node/node.json", "--force"]);
    assert_ne!(forced, next);

    // On a node, `rn member …` finds the ledger through the configuration ($RN_CONFIG here),
    // from any directory; `rn node status` without one says which flag to pass.
    let elsewhere = env.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let with_config = |args: &[&str], config: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rn"));
        c.args(args).current_dir(&elsewhere).env_remove("RN_CONFIG");
        if let Some(p) = config {
            c.env("RN_CONFIG", p);
        }
        Run::from(c.output().unwrap())
    };
    let r = with_config(
        &["member", "status", "--json"],
        Some(&env.path("node/node.json")),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(s["network_id"], "acme");
    let r = with_config(&["node", "status"], Some(&env.path("missing.json")));
    assert_eq!(r.code, 66, "{}", r.stderr);
    assert!(
        r.stderr.contains("pass --config FILE or set RN_CONFIG"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_retired_approver_key_never_comes_back() {
    let env = Env::new();
    env.found();
    let old = env.ok(&["key", "pub", "carol/key"]);
    let d = env.laptop("carol2");
    let new = env.ok(&["key", "gen", "--out", &d]);
    env.ok(&[
        "member",
        "propose",
        "rotate-approver-key",
        "carol",
        "--pubkey",
        &new,
        "--base",
        "genesis.json",
        "-o",
        "p1.json",
    ]);
    // The signer is told the old key is retired for good.
    let r = env.rn_in(&["member", "sign", "p1.json", "--key", "alice/key"], "n\n");
    let shown = format!("{}{}", r.stdout, r.stderr);
    assert!(
        shown.contains("the old key is retired for good (1 retired key after this)"),
        "{shown}"
    );
    for (op, args) in [
        (
            "rotate back",
            vec!["rotate-approver-key", "carol", "--pubkey", &old],
        ),
        (
            "give to a new approver",
            vec![
                "add-approver",
                "--id",
                "erin",
                "--role",
                "guardian",
                "--pubkey",
                &old,
            ],
        ),
    ] {
        let mut argv = vec!["member", "propose"];
        argv.extend(args);
        argv.extend(["--base", "p1.json", "-o", "out.json"]);
        let r = env.rn(&argv);
        assert_eq!(r.code, 78, "{op}: {}", r.stderr);
        assert!(
            r.stderr.contains("a key is never reused"),
            "{op}: {}",
            r.stderr
        );
        assert_absent(&env.path("out.json"));
    }
}

#[test]
fn output_never_replaces_anything_but_a_regular_file() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    env.found();
    env.ok(&[
        "member",
        "propose",
        "set-threshold",
        "3",
        "--base",
        "genesis.json",
        "-o",
        "p.json",
    ]);
    std::os::unix::fs::symlink(env.path("p.json"), env.path("link.json")).unwrap();
    fs::create_dir(env.path("dir")).unwrap();
    let before = fs::read(env.path("p.json")).unwrap();
    for (out, kind) in [
        ("/dev/null", "a character device"),
        ("link.json", "a symlink"),
        ("dir", "a directory"),
    ] {
        for force in [false, true] {
            let mut args = vec!["member", "sign", "p.json", "--key", "alice/key", "--yes"];
            args.extend(["-o", out]);
            if force {
                args.push("--force");
            }
            let r = env.rn(&args);
            assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains(&format!("is {kind}, not a regular file")),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    assert!(
        fs::symlink_metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        fs::symlink_metadata(env.path("link.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(env.path("p.json")).unwrap(), before);
    // "-o -" writes the signed proposal to standard output and leaves the input alone.
    let r = env.rn(&[
        "member",
        "sign",
        "p.json",
        "--key",
        "alice/key",
        "--yes",
        "-o",
        "-",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("{\"base_state\""),
        "{}",
        &r.stdout[..40.min(r.stdout.len())]
    );
    assert!(r.stdout.contains("\"approver\":\"alice\""));
    assert_eq!(fs::read(env.path("p.json")).unwrap(), before);
}

#[test]
fn what_others_wrote_is_shown_escaped() {
    let env = Env::new();
    env.found();
    // A reason with a right-to-left override and a line separator: legal text, shown escaped.
    env.ok(&[
        "member",
        "propose",
        "set-threshold",
        "3",
        "--reason",
        "pay \u{202e}gnp.exe\u{2028}fake line",
        "--base",
        "genesis.json",
        "-o",
        "p.json",
    ]);
    let r = env.rn_in(&["member", "sign", "p.json", "--key", "alice/key"], "n\n");
    let shown = format!("{}{}", r.stdout, r.stderr);
    assert!(
        shown.contains("reason    pay \\u202egnp.exe\\u2028fake line"),
        "{shown}"
    );
    assert!(!shown.contains('\u{202e}') && !shown.contains('\u{2028}'));
    // A file name with a newline and a bidi isolate: the error stays one escaped line.
    let r = env.rn(&["member", "verify", "bad\n\u{2067}name.json"]);
    assert_eq!(r.code, 66, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad\\u000a\\u2067name.json"),
        "{}",
        r.stderr
    );
}

#[test]
#[ignore = "needs root (a read-only bind mount)"]
fn a_forged_update_on_a_read_only_state_dir_is_still_named_rejected() {
    let env = Env::new();
    env.found_with_ledger("st");
    env.ok(&[
        "member",
        "propose",
        "set-threshold",
        "3",
        "--base",
        "genesis.json",
        "-o",
        "f.json",
    ]);
    env.ok(&["member", "sign", "f.json", "--key", "alice/key", "--yes"]);
    let st = env.path("st");
    let mount = |args: &[&str]| {
        let ok = Command::new("mount")
            .args(args)
            .arg(&st)
            .arg(&st)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {args:?}");
    };
    mount(&["--bind"]);
    mount(&["-o", "remount,ro,bind"]);
    let r = env.rn(&["member", "apply", "f.json", "--state-dir", "st"]);
    let j = env.rn(&["member", "apply", "f.json", "--state-dir", "st", "--json"]);
    let unmounted = Command::new("umount").arg(&st).status().unwrap().success();
    assert!(unmounted);
    assert_eq!(r.code, 78, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(
        lines[0].contains("rejected: 1 of 2 signatures"),
        "{}",
        r.stderr
    );
    assert!(
        lines[1].contains("not audited") && lines[1].contains("Read-only file system"),
        "{}",
        r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(j.stderr.trim()).unwrap();
    assert_eq!(v["error"], "BelowThreshold");
}

#[test]
fn an_oversize_input_is_named_oversize_on_every_path() {
    let env = Env::new();
    env.found_with_ledger("st");
    // Over the 8 MiB cap of a signed update (apply reads up to a bundle's 256 MiB, then the
    // kind's own cap applies).
    let big = format!(
        "{{\"kind\":\"rn.signed-update.v1\",\"pad\":\"{}\"}}",
        "x".repeat(8 << 20)
    );
    fs::write(env.path("big.json"), &big).unwrap();
    for (args, stdin) in [
        (vec!["member", "verify", "big.json", "--json"], ""),
        (vec!["member", "verify", "-", "--json"], big.as_str()),
        (
            vec!["member", "apply", "big.json", "--state-dir", "st", "--json"],
            "",
        ),
        (
            vec!["member", "apply", "-", "--state-dir", "st", "--json"],
            big.as_str(),
        ),
    ] {
        let r = env.rn_in(&args, stdin);
        assert_eq!(r.code, 65, "{args:?}: {}", r.stderr);
        let v: serde_json::Value = serde_json::from_str(r.stderr.trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stderr));
        assert_eq!(v["error"], "Oversize", "{args:?}: {}", r.stderr);
    }
}

#[test]
fn publish_writes_a_mirror_layout_that_only_grows() {
    let env = Env::new();
    let root = two_ledgers(&env);
    env.ok(&["member", "apply", "p.json", "--state-dir", "a"]);
    let out = env.ok(&["member", "publish", "mirror", "--state-dir", "a"]);
    assert!(
        out.contains("published epoch 1") && out.contains("3 file(s) written, 0 unchanged"),
        "{out}"
    );
    let head: serde_json::Value =
        serde_json::from_slice(&fs::read(env.path("mirror/rn/v1/head")).unwrap()).unwrap();
    assert_eq!(head["kind"], "rn.head.v1");
    assert_eq!(head["epoch"], 1);
    assert_eq!(head["network_id"], "acme");
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", "a", "--json"])).unwrap();
    assert_eq!(head["root"], status["root"]);
    // The genesis is the signed genesis, canonical.
    let genesis = fs::read(env.path("mirror/rn/v1/genesis")).unwrap();
    assert_eq!(genesis, fs::read(env.path("a/genesis.json")).unwrap());
    // What the layout holds is what a reader applies: b catches up from the mirror's files.
    env.ok(&["member", "apply", "mirror/rn/v1/log/1", "--state-dir", "b"]);
    let b: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", "b", "--json"])).unwrap();
    assert_eq!(b["root"], status["root"]);
    // Publishing again writes nothing.
    let out = env.ok(&["member", "publish", "mirror", "--state-dir", "a", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["written"].as_u64(), v["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    let mirror_files = || -> Vec<Vec<u8>> {
        ["head", "genesis", "log/1"]
            .iter()
            .map(|f| fs::read(env.path(&format!("mirror/rn/v1/{f}"))).unwrap())
            .collect()
    };
    let before = mirror_files();
    // A ledger behind the mirror may not move its head back.
    env.bootstrap(&root, "c");
    let r = env.rn(&["member", "publish", "mirror", "--state-dir", "c"]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("holds epoch 1, ahead of this ledger's epoch 0"),
        "{}",
        r.stderr
    );
    // Another network's ledger may not publish over it.
    let other = Env::new();
    other.found_with_ledger("x");
    let mirror = env.path("mirror");
    let r = other.rn(&[
        "member",
        "publish",
        mirror.to_str().unwrap(),
        "--state-dir",
        "x",
    ]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(
        r.stderr.contains("publish into an empty directory"),
        "{}",
        r.stderr
    );
    assert_eq!(
        before,
        mirror_files(),
        "a refused publish changed the mirror"
    );
}

#[test]
fn operator_conveniences_version_completions_several_ops_show_and_filters() {
    let env = Env::new();
    // Version: crate version and a commit (or "unknown" outside a checkout).
    let v = env.ok(&["--version"]);
    assert!(
        v.starts_with(&format!("rn {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );

    // Completions from the parser's metadata: bash completes `rn member pro` to `propose`.
    let script = env.ok(&["completions", "bash"]);
    fs::write(env.path("rn.bash"), &script).unwrap();
    let complete = |word: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source ./rn.bash; COMP_WORDS=(rn member {word}); COMP_CWORD=2; _rn; echo \"${{COMPREPLY[@]}}\""
            ))
            .current_dir(env.path(""))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(complete("pro"), "propose prove");
    assert_eq!(complete("prop"), "propose");
    for shell in ["zsh", "fish"] {
        assert!(
            env.ok(&["completions", shell]).contains("propose"),
            "{shell}"
        );
    }
    let bad = env.rn(&["completions", "tcsh"]);
    assert_eq!(bad.code, 64, "{}", bad.stderr);
    let man = env.ok(&["man"]);
    assert!(man.starts_with(".TH RN 1"), "{}", &man[..40]);
    assert!(man.contains(".SS \"rn member propose revoke\\-node\""));

    // Required options are shown as required; each op says what it does.
    let help = env.ok(&["member", "init", "--help"]);
    assert!(help.contains(" --approver <ID:ROLE:PUBKEY>... "), "{help}");
    let help = env.ok(&["member", "propose", "--help"]);
    assert!(
        help.starts_with("Usage: rn member propose -o <output> "),
        "{help}"
    );
    assert!(help.contains("set-policy"), "{help}");
    let help = env.ok(&["member", "propose", "revoke-node", "--help"]);
    assert!(help.contains("every peer drops it"), "{help}");

    // With --json anywhere, even a refused command line reports JSON.
    let r = env.rn(&["member", "status", "--json", "--bogus"]);
    assert_eq!(r.code, 64);
    let e: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(e["error"], "Usage");
    let r = env.rn(&["member", "frob"]);
    assert!(
        r.stderr.contains("Run rn member --help for usage."),
        "{}",
        r.stderr
    );

    // An output in a directory that does not exist: named, exit 66, nothing written.
    let r = env.rn(&["key", "gen", "--out", "nowhere/alice"]);
    assert_eq!(r.code, 66, "{}", r.stderr);
    assert!(
        r.stderr.contains("directory nowhere does not exist"),
        "{}",
        r.stderr
    );
    assert_absent(&env.path("nowhere"));

    env.found_with_ledger("led");
    let k1 = env.node_key("web-1");
    let k2 = env.node_key("web-2");
    let k3 = env.node_key("db-1");
    // Three ops on one command line: the op, a repeated --op, and a text batch.
    fs::write(
        env.path("ops.txt"),
        format!("# the database\nadd-node --id db-1 --pubkey {k3} --owner ops --tag tag:db\n"),
    )
    .unwrap();
    let add2 = format!("add-node --id web-2 --pubkey {k2} --owner ops --tag tag:web");
    let r = env.rn(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "web-1",
        "--pubkey",
        &k1,
        "--owner",
        "ops",
        "--tag",
        "tag:web",
        "--op",
        &add2,
        "--batch",
        "ops.txt",
        "--state-dir",
        "led",
        "-o",
        "p.json",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(p["ops"], 3);
    assert_eq!(p["signatures_needed"], 2);
    let r = env.rn(&[
        "member",
        "propose",
        "--op",
        "frob-node x",
        "--state-dir",
        "led",
        "-o",
        "q.json",
    ]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("unknown op \"frob-node\""),
        "{}",
        r.stderr
    );
    assert_absent(&env.path("q.json"));

    // show: every op, counted by kind; --json carries the ops in the update's own format.
    let shown = env.ok(&["member", "show", "p.json"]);
    assert!(shown.contains("ops       3 ops: 3 add-node"), "{shown}");
    assert!(
        shown.contains("signed    0 signatures, 2 needed"),
        "{shown}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "show", "p.json", "--json"])).unwrap();
    assert_eq!(j["op_counts"]["add-node"], 3);
    assert_eq!(j["ops"][2]["op"], "add_node");
    assert_eq!(j["ops"][2]["node"]["id"], "db-1");

    for k in ["alice/key", "carol/key"] {
        env.ok(&["member", "sign", "p.json", "--key", k, "--yes"]);
    }
    env.ok(&["member", "apply", "p.json", "--state-dir", "led"]);
    // Verifying what the ledger already holds: exit 0, and it says so.
    let r = env.rn(&["member", "verify", "p.json", "--state-dir", "led"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("already applied: led holds update"),
        "{}",
        r.stdout
    );
    // Another update for that same epoch, signed by a quorum whose journals did not see the
    // first (the keys copied to another account): the ledger's own judgement names the fork.
    let k4 = env.node_key("evil");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "evil",
        "--pubkey",
        &k4,
        "--owner",
        "x",
        "--base",
        "genesis.json",
        "-o",
        "fork.json",
    ]);
    let other_account = env.path("other-account");
    for k in ["bob/key", "carol/key"] {
        let args = ["member", "sign", "fork.json", "--key", k, "--yes"];
        let r = env.rn_env(&args, &[("XDG_STATE_HOME", Some(&other_account))]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = env.rn(&["member", "verify", "fork.json", "--state-dir", "led"]);
    assert_eq!(r.code, 78, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("rejected (Fork)"), "{}", r.stdout);

    // Status filters.
    let s: serde_json::Value = serde_json::from_str(&env.ok(&[
        "member",
        "status",
        "--state-dir",
        "led",
        "--tag",
        "tag:web",
        "--json",
    ]))
    .unwrap();
    let ids: Vec<&str> = s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["web-1", "web-2"]);
    let text = env.ok(&["member", "status", "--state-dir", "led", "--node", "db-1"]);
    assert!(text.contains("nodes      3 (3 active), 1 listed"), "{text}");
    assert_eq!(
        env.rn(&["member", "status", "--state-dir", "led", "--node", "nope"])
            .code,
        65
    );
    assert_eq!(
        env.rn(&["member", "status", "--state-dir", "led", "--status", "gone"])
            .code,
        64
    );

    // The log: a multi-op update is a counted line and one line per op; --json has the ops.
    let log = env.ok(&["member", "log", "--state-dir", "led"]);
    assert!(log.contains("3 ops: 3 add-node"), "{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("    add node"))
            .count(),
        3,
        "{log}"
    );
    let line: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "log", "--state-dir", "led", "--json"])).unwrap();
    assert_eq!(line["ops"][0]["op"], "add_node");
    assert_eq!(line["described"].as_array().unwrap().len(), 3);
}

/// A signature through OpenSSH's own `ssh-agent`: the approver key never leaves the agent, the
/// journal keyed by its fingerprint still refuses a second update on the same base.
#[test]
fn an_approver_key_held_by_ssh_agent_signs() {
    let env = Env::new();
    env.found();
    let sock = env.path("agent.sock");
    /// The agent this test started, stopped by its PID however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Stop(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) is installed by `make test`"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let with_agent = |args: &[&str]| env.rn_env(args, &[("SSH_AUTH_SOCK", Some(&sock))]);
    let ssh_add = |key: &str| {
        let st = Command::new("ssh-add")
            .arg("-q")
            .arg(env.path(key))
            .env("SSH_AUTH_SOCK", &sock)
            .status()
            .unwrap();
        assert!(st.success(), "ssh-add {key}");
    };
    let k = env.node_key("web-1");
    let propose = |out: &str, id: &str| {
        env.ok(&[
            "member",
            "propose",
            "add-node",
            "--id",
            id,
            "--pubkey",
            &k,
            "--owner",
            "ops",
            "--base",
            "genesis.json",
            "-o",
            out,
        ]);
    };
    propose("p.json", "web-1");

    // A proposal too long for one agent request (OpenSSH reads at most 256 KiB) is refused
    // before the journal records anything: bob then signs p.json through the agent below.
    let batch: Vec<serde_json::Value> = (0..1500)
        .map(|i| {
            serde_json::json!({"op": "add_node", "node": {"id": format!("n{i:04}"),
                "pubkey": env.node_key(&format!("n{i:04}")), "owner": "alice@example.com", "tags": ["tag:web"]}})
        })
        .collect();
    fs::write(
        env.path("big-batch.json"),
        serde_json::to_vec(&batch).unwrap(),
    )
    .unwrap();
    env.ok(&[
        "member",
        "propose",
        "--batch",
        "big-batch.json",
        "--base",
        "genesis.json",
        "-o",
        "big.json",
    ]);
    ssh_add("bob/key");
    let r = with_agent(&["member", "sign", "big.json", "--ssh-agent", "--yes"]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("an ssh-agent signs at most 262080 (OpenSSH's 256 KiB request limit)"),
        "{}",
        r.stderr
    );
    let removed = Command::new("ssh-add")
        .arg("-D")
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(removed.success());

    // An empty agent: nothing may sign, and the command says what the agent holds.
    let r = with_agent(&["member", "sign", "p.json", "--ssh-agent", "--yes"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("holds no Ed25519 key"), "{}", r.stderr);

    ssh_add("bob/key");
    let r = with_agent(&["member", "sign", "p.json", "--ssh-agent", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("signed as bob"), "{}", r.stderr);

    // Two keys that may sign: the fingerprint chooses.
    ssh_add("carol/key");
    let r = with_agent(&["member", "sign", "p.json", "--ssh-agent", "--yes"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("--key-fingerprint"), "{}", r.stderr);
    let fingerprint = |key: &str| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["key", "pub", key, "--json"])).unwrap();
        v["fingerprint"].as_str().unwrap().to_owned()
    };
    let sign_with = |file: &str, fp: &str| {
        with_agent(&[
            "member",
            "sign",
            file,
            "--ssh-agent",
            "--key-fingerprint",
            fp,
            "--yes",
        ])
    };
    let r = sign_with("p.json", &fingerprint("carol/key"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("quorum met"), "{}", r.stderr);
    let v = env.rn(&["member", "verify", "p.json"]);
    assert_eq!(v.code, 0, "{}", v.stdout);

    // The journal keyed by bob's fingerprint: a different update on the same base is refused,
    // whether the key comes from the agent or from its file.
    propose("q.json", "web-9");
    let r = sign_with("q.json", &fingerprint("bob/key"));
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(r.stderr.contains("already signed update"), "{}", r.stderr);
    let r = env.rn(&["member", "sign", "q.json", "--key", "bob/key", "--yes"]);
    assert_eq!(r.code, 78, "{}", r.stderr);

    // No agent at all: named, with the fix.
    let r = env.rn_env(
        &["member", "sign", "q.json", "--ssh-agent", "--yes"],
        &[("SSH_AUTH_SOCK", None)],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("SSH_AUTH_SOCK is not set"),
        "{}",
        r.stderr
    );
}

/// Every data command speaks JSON when asked: one object on standard output.
#[test]
fn json_results_of_init_sign_combine_bootstrap_and_validate() {
    let env = Env::new();
    let a = env.laptop("alice");
    let b = env.laptop("bob");
    env.ok(&["key", "gen", "--out", &a]);
    env.ok(&["key", "gen", "--out", &b]);
    let pa = env.ok(&["key", "pub", &a]);
    let pb = env.ok(&["key", "pub", &b]);
    let json = |out: String| -> serde_json::Value { serde_json::from_str(&out).unwrap() };
    let g = json(env.ok(&[
        "member",
        "init",
        "--network-id",
        "acme",
        "--approver",
        &format!("alice:owner:{pa}"),
        "--approver",
        &format!("bob:owner:{pb}"),
        "--threshold",
        "2",
        "-o",
        "genesis.json",
        "--json",
    ]));
    assert_eq!(g["network_id"], "acme");
    let root = g["root"].as_str().unwrap().to_owned();
    let s = json(env.ok(&[
        "member",
        "sign",
        "genesis.json",
        "--key",
        &a,
        "--yes",
        "--json",
    ]));
    assert_eq!(
        (s["signed_as"].as_str(), s["complete"].as_bool()),
        (Some("alice"), Some(false))
    );
    let s = json(env.ok(&[
        "member",
        "sign",
        "genesis.json",
        "--key",
        &b,
        "--yes",
        "--json",
    ]));
    assert_eq!(s["complete"], true);
    let bs = json(env.ok(&[
        "member",
        "bootstrap",
        "--genesis",
        "genesis.json",
        "--pin",
        &root,
        "--state-dir",
        "led",
        "--json",
    ]));
    assert_eq!(
        (bs["genesis_root"].as_str(), bs["threshold"].as_u64()),
        (Some(root.as_str()), Some(2))
    );
    let k = env.node_key("web-1");
    env.ok(&[
        "member",
        "propose",
        "add-node",
        "--id",
        "web-1",
        "--pubkey",
        &k,
        "--owner",
        "ops",
        "--state-dir",
        "led",
        "-o",
        "p.json",
    ]);
    fs::copy(env.path("p.json"), env.path("q.json")).unwrap();
    env.ok(&["member", "sign", "p.json", "--key", &a, "--yes"]);
    env.ok(&["member", "sign", "q.json", "--key", &b, "--yes"]);
    let c = json(env.ok(&[
        "member", "combine", "p.json", "q.json", "-o", "pq.json", "--json",
    ]));
    assert_eq!(c["signatures"], serde_json::json!(["alice", "bob"]));
    assert_eq!(c["quorum_met"], true);
    // -o - with --json would mix the document and the result: refused, nothing written.
    let r = env.rn(&["member", "combine", "p.json", "q.json", "-o", "-", "--json"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    fs::write(
        env.path("policy.json"),
        r#"{"kind":"rn.policy.v1","rules":[]}"#,
    )
    .unwrap();
    let v = json(env.ok(&["policy", "validate", "policy.json", "--json"]));
    assert_eq!(v["rules"], 0);
}

#[test]
fn a_node_proves_its_membership_to_anyone_holding_the_root() {
    let env = Env::new();
    two_ledgers(&env);
    env.ok(&["member", "apply", "p.json", "--state-dir", "a"]);
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["member", "status", "--state-dir", "a", "--json"])).unwrap();
    let root = status["root"].as_str().unwrap().to_owned();
    let out = env.ok(&[
        "member",
        "prove",
        "--node",
        "web-1",
        "--state-dir",
        "a",
        "-o",
        "web-1.proof",
    ]);
    assert!(
        out.contains("node web-1 (active) is record 1 of 1 in network acme at epoch 1"),
        "{out}"
    );
    let out = env.ok(&["member", "verify-proof", "web-1.proof", "--root", &root]);
    assert!(out.starts_with("verified: node web-1"), "{out}");
    // The same bytes on standard output.
    let printed = env.ok(&["member", "prove", "--node", "web-1", "--state-dir", "a"]);
    assert_eq!(
        printed.trim_end(),
        fs::read_to_string(env.path("web-1.proof"))
            .unwrap()
            .trim_end()
    );

    // Another root, an edited record, a node that is not there, a file that is not a proof.
    let other = format!("sha256:{}", "0".repeat(64));
    let r = env.rn(&["member", "verify-proof", "web-1.proof", "--root", &other]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(
        r.stderr.contains("the proof is for state root"),
        "{}",
        r.stderr
    );
    let edited = printed.replace("\"exit\":false", "\"exit\":true");
    assert_ne!(edited, printed);
    fs::write(env.path("edited.proof"), edited).unwrap();
    let r = env.rn(&[
        "member",
        "verify-proof",
        "edited.proof",
        "--root",
        &root,
        "--json",
    ]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("do not lead to the node digest"),
        "{j}"
    );
    let r = env.rn(&[
        "member",
        "prove",
        "--node",
        "web-9",
        "--state-dir",
        "a",
        "-o",
        "x",
    ]);
    assert_eq!(r.code, 65, "{}", r.stderr);
    assert!(r.stderr.contains("no such node"), "{}", r.stderr);
    assert_absent(&env.path("x"));
    let r = env.rn(&["member", "verify-proof", "p.json", "--root", &root]);
    assert_eq!(r.code, 65, "{}", r.stderr);

    // The golden proofs verify through the CLI as through ci/vectors_check.py.
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/golden");
    let roots: serde_json::Value =
        serde_json::from_slice(&fs::read(golden.join("roots.json")).unwrap()).unwrap();
    let root2 = roots["epochs"][2]["root"].as_str().unwrap();
    for id in ["db-1", "web-1", "web-2"] {
        let file = golden.join(format!("proof-02-{id}.json"));
        let out = env.ok(&[
            "member",
            "verify-proof",
            file.to_str().unwrap(),
            "--root",
            root2,
        ]);
        assert!(out.contains(&format!("node {id} ")), "{out}");
    }
}
