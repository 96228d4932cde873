#!/usr/bin/env python3
"""Independent check of rn's golden vectors (tests/vectors/golden/).

Recomputes every leaf, digest, header and state root with Python's own JSON encoder and
hashlib (RFC 8785 for the value shapes rn uses: objects with ASCII keys, strings, unsigned
integers, booleans, null), and verifies every Ed25519 signature with the `cryptography`
package. Shares no code with rn.
"""
import base64
import hashlib
import json
import pathlib
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors" / "golden"


def jcs(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def list_digest(records):
    leaves = [sha(jcs(r)) for r in sorted(records, key=lambda r: r["id"].encode())]
    return leaves, {"count": len(records), "digest": "sha256:" + sha(b"".join(leaves)).hex()}


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
    print(f"golden vectors: {checked_roots} roots reproduced, {checked_sigs} signatures verified (independent Python check)")


if __name__ == "__main__":
    main()
