#!/usr/bin/env python3
"""Independent check of rn's golden vectors (tests/vectors/golden/).

Recomputes every leaf, Merkle tree digest (RFC 9162 section 2.1), header and state root with
Python's own JSON encoder and hashlib (RFC 8785 for the value shapes rn uses: objects with
ASCII keys, strings, unsigned integers, booleans, null), and verifies every Ed25519 signature with the `cryptography`
package. Shares no code with rn. It also checks that no approver key is ever reused (current
and previous keys of every approver, revoked ones included, all distinct; a rotation moves the
old key into `previous_keys`), and that every hash, signature and JSON line the worked example
of docs/spec.md §13 quotes is in the golden files. It checks the tree hash against the tree
heads RFC 6962 implementations share, and verifies every golden inclusion proof (proof-*.json)
with the audit-path algorithm of RFC 9162 section 2.1.3.2.
"""
import base64
import hashlib
import json
import pathlib
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "vectors" / "golden"


def jcs(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves):
    """RFC 9162 section 2.1: the Merkle tree hash over the leaves (raw bytes each)."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def root_from_path(leaf_hash, index, size, path):
    """RFC 9162 section 2.1.3.2: the root an audit path leads to, or None."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def list_digest(records):
    leaves = [sha(jcs(r)) for r in sorted(records, key=lambda r: r["id"].encode())]
    return leaves, {"count": len(records), "digest": "sha256:" + mth(leaves).hex()}


def check_rfc_vectors():
    """The tree heads RFC 6962 implementations share, for sizes 0 to 8."""
    data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
            "606162636465666768696a6b6c6d6e6f"]
    heads = ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    leaves = [bytes.fromhex(d) for d in data]
    for n, head in enumerate(heads):
        if mth(leaves[:n]).hex() != head:
            sys.exit(f"FAIL: MTH of the first {n} reference leaves is not {head}")
    return len(heads)


def check_proofs(roots):
    """Every golden inclusion proof: header -> root, record + path -> the header's node digest."""
    checked = 0
    for path in sorted(GOLDEN.glob("proof-*.json")):
        proof = json.loads(path.read_text())
        epoch = int(path.name.split("-")[1])
        header = proof["header"]
        if "sha256:" + sha(jcs(header)).hex() != proof["root"] or proof["root"] != roots[epoch]["root"]:
            sys.exit(f"FAIL: {path.name}: the header does not hash to the epoch {epoch} root")
        leaf = sha(b"\x00" + sha(jcs(proof["node"])))
        hashes = [bytes.fromhex(h.removeprefix("sha256:")) for h in proof["path"]]
        got = root_from_path(leaf, proof["index"], header["nodes"]["count"], hashes)
        if got is None or "sha256:" + got.hex() != header["nodes"]["digest"]:
            sys.exit(f"FAIL: {path.name}: the record and path do not lead to the node digest")
        # The same record at another index, or with one path hash left out, does not.
        for index, hs in ((proof["index"] + 1, hashes), (proof["index"], hashes[1:])):
            bad = root_from_path(leaf, index, header["nodes"]["count"], hs)
            if bad is not None and "sha256:" + bad.hex() == header["nodes"]["digest"]:
                sys.exit(f"FAIL: {path.name}: a wrong index or path also verifies")
        checked += 1
    if checked == 0:
        sys.exit("FAIL: no golden inclusion proof (tests/vectors/golden/proof-*.json)")
    return checked


def state_root(state):
    a_leaves, a = list_digest(state["approvers"])
    n_leaves, n = list_digest(state["nodes"])
    header = dict(state, approvers=a, nodes=n)
    return a_leaves, n_leaves, jcs(header), "sha256:" + sha(jcs(header)).hex()


def verify(pubkey_b64: str, sig_b64: str, message: bytes, what: str):
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(pubkey_b64))
    try:
        key.verify(base64.b64decode(sig_b64), message)
    except InvalidSignature:
        sys.exit(f"FAIL: signature {what} does not verify")


def main():
    roots = json.loads((GOLDEN / "roots.json").read_text())["epochs"]
    checked_roots = checked_sigs = 0
    states = []
    for rec in roots:
        e = rec["epoch"]
        state = json.loads((GOLDEN / f"state-{e:02d}.json").read_text())
        a_leaves, n_leaves, header, root = state_root(state)
        assert [x["leaf"] for x in rec["approver_leaves"]] == [l.hex() for l in a_leaves], e
        assert [x["leaf"] for x in rec["node_leaves"]] == [l.hex() for l in n_leaves], e
        assert header.decode() == rec["header_jcs"], e
        if root != rec["root"]:
            sys.exit(f"FAIL: epoch {e}: root {root} != {rec['root']}")
        states.append(state)
        checked_roots += 1

    genesis = json.loads((GOLDEN / "genesis.json").read_text())
    message = jcs(genesis["genesis"])
    keys = {a["id"]: a["pubkey"] for a in genesis["genesis"]["state"]["approvers"]}
    assert state_root(genesis["genesis"]["state"])[3] == roots[0]["root"]
    for s in genesis["signatures"]:
        verify(keys[s["approver"]], s["sig"], message, f"genesis/{s['approver']}")
        checked_sigs += 1

    for e in range(1, len(roots)):
        signed = json.loads((GOLDEN / f"update-{e:02d}.json").read_text())
        update = signed["update"]
        message = jcs(update)
        assert "sha256:" + sha(message).hex() == roots[e]["update_message_sha256"], e
        assert update["prev_root"] == roots[e - 1]["root"] and update["new_root"] == roots[e]["root"], e
        current = {a["id"]: a["pubkey"] for a in states[e - 1]["approvers"]}
        new_keys = {}
        for op in update["ops"]:
            if op["op"] == "add_approver":
                new_keys[op["approver"]["id"]] = op["approver"]["pubkey"]
            if op["op"] == "rotate_approver_key":
                new_keys[op["id"]] = op["pubkey"]
        for s in signed["signatures"]:
            key = new_keys[s["approver"]] if s.get("new_key") else current[s["approver"]]
            verify(key, s["sig"], message, f"update {e}/{s['approver']}")
            checked_sigs += 1
        check_key_history(states[e - 1], states[e], update, e)
    for e, state in enumerate(states):
        check_no_key_reused(state, e)
    quoted = check_worked_example()
    heads = check_rfc_vectors()
    proofs = check_proofs(roots)
    print(f"golden vectors: {checked_roots} roots reproduced, {checked_sigs} signatures verified, "
          f"{len(states)} states free of key reuse, {quoted} values quoted by the spec found, "
          f"{heads} RFC 6962 tree heads reproduced, {proofs} inclusion proofs verified "
          "(independent Python check)")


def check_no_key_reused(state, e):
    seen = {}
    for a in state["approvers"]:
        if a["previous_keys"] != sorted(a["previous_keys"]):
            sys.exit(f"FAIL: epoch {e}: {a['id']}'s previous_keys are not sorted")
        for key in [a["pubkey"], *a["previous_keys"]]:
            if key in seen:
                sys.exit(f"FAIL: epoch {e}: key {key} held by {seen[key]} and {a['id']}")
            seen[key] = a["id"]


def check_key_history(before, after, update, e):
    old = {a["id"]: a for a in before["approvers"]}
    new = {a["id"]: a for a in after["approvers"]}
    rotated = {op["id"]: op["pubkey"] for op in update["ops"] if op["op"] == "rotate_approver_key"}
    for i, a in new.items():
        if i not in old:
            assert a["previous_keys"] == [], (e, i)
        elif i in rotated:
            want = sorted(old[i]["previous_keys"] + [old[i]["pubkey"]])
            assert a["pubkey"] == rotated[i] and a["previous_keys"] == want, (e, i)
        else:
            assert a["previous_keys"] == old[i]["previous_keys"], (e, i)


def check_worked_example():
    spec = (ROOT / "docs" / "spec.md").read_text()
    section = spec[spec.index("## 13. Worked example"):spec.index("## 14. Test vectors")]
    strings = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            strings.add(v)

    raw = ""
    for path in sorted(GOLDEN.iterdir()):
        text = path.read_text()
        raw += text
        walk(json.loads(text))
    haystack = raw + "\n".join(strings)
    quoted = set(re.findall(r"[0-9a-f]{64}", section)) | set(re.findall(r"[A-Za-z0-9+/]{86}==", section))
    quoted |= {line.strip() for line in re.findall(r"^\s*\{\".*\}\s*$", section, re.M)}
    for q in sorted(quoted):
        if q not in haystack and (not q.startswith("{") or jcs(json.loads(q)).decode() not in haystack):
            sys.exit(f"FAIL: docs/spec.md §13 quotes {q[:80]}, which no golden file holds")
    return len(quoted)


if __name__ == "__main__":
    main()
