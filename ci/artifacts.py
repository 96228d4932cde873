#!/usr/bin/env python3
"""Evidence artifacts under artifacts/, from real results only.

  ci/artifacts.py conformance COMMIT   write artifacts/conformance.json from ci/conformance.json,
                                       the test log (artifacts/tests.log), artifacts/negative.json
                                       and artifacts/recovery.json
  ci/artifacts.py check COMMIT SINCE   every artifact present, written at or after SINCE (Unix
                                       time), for COMMIT, and all-pass; exit 1 naming each problem
"""
import json
import os
import re
import sys

ART = "artifacts"
JSON_ARTIFACTS = ["conformance.json", "negative.json", "recovery.json"]
AUDIT_LOG = "audit-integrity.log"


def load(name):
    path = os.path.join(ART, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        sys.exit(f"artifacts: {path} is missing: the gate that writes it did not run or failed")
    except json.JSONDecodeError as e:
        sys.exit(f"artifacts: {path} is not JSON ({e}): rerun the gate that writes it")


def test_results(log_path):
    """name -> "ok" | "FAILED" | "ignored", from `cargo test` output (last word of the path)."""
    results = {}
    pattern = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)")
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = pattern.match(line)
            if m:
                name, result = m.group(1).split("::")[-1], m.group(2)
                # A name seen twice (two test binaries) keeps its worst run.
                rank = {"ignored": 0, "ok": 1, "FAILED": 2}
                if name not in results or rank[result] > rank[results[name]]:
                    results[name] = result
    return results


def conformance(commit):
    spec = json.load(open("ci/conformance.json", encoding="utf-8"))
    log = os.path.join(ART, "tests.log")
    if not os.path.exists(log):
        sys.exit(f"artifacts: {log} is missing: the tests gate did not run")
    tests = test_results(log)
    vectors = load("negative.json")["vectors"]
    drills = {d["scenario"]: d["outcome"] for d in load("recovery.json")["drills"]}
    checks = []
    for c in spec["checks"]:
        row = {"id": c["id"], "check": c["check"], "tests": [], "vectors": [], "drills": []}
        # Vectors count only through the test that runs them and the one that pins their files.
        vector_tests = ["every_vector_yields_its_named_outcome", "vector_files_match_the_generator"]
        for t in c.get("tests", []) + (vector_tests if c.get("vectors") else []):
            row["tests"].append({"test": t, "result": tests.get(t, "not run")})
        for v in c.get("vectors", []):
            # An IllegalOp vector's outcome carries its kind ("IllegalOp/not_found").
            hits = [x for x in vectors
                    if v in (x["expected"], x["actual"], x["expected"].split("/")[0])
                    or x["vector"].endswith("/" + v)]
            row["vectors"].append({
                "vectors": v,
                "count": len(hits),
                "pass": bool(hits) and all(x["pass"] for x in hits),
            })
        for d in c.get("drills", []):
            row["drills"].append({"drill": d, "outcome": drills.get(d, "not run")})
        ok = (all(t["result"] == "ok" for t in row["tests"])
              and all(v["pass"] for v in row["vectors"])
              and all(d["outcome"] == "pass" for d in row["drills"]))
        row["outcome"] = "pass" if ok else "fail"
        checks.append(row)
    doc = {
        "source": "DESIGN §4.5 checks (ci/conformance.json) against artifacts/tests.log, negative.json, recovery.json",
        "commit": commit,
        "checks": checks,
        "all_pass": all(r["outcome"] == "pass" for r in checks),
    }
    with open(os.path.join(ART, "conformance.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    failed = [r["id"] for r in checks if r["outcome"] != "pass"]
    print(f"conformance: {len(checks) - len(failed)} of {len(checks)} checks pass"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 0 if not failed else 1


def check(commit, since):
    problems = []
    for name in JSON_ARTIFACTS + [AUDIT_LOG]:
        path = os.path.join(ART, name)
        if not os.path.exists(path):
            problems.append(f"{path} is missing")
            continue
        if os.path.getmtime(path) < since:
            problems.append(f"{path} is stale: written before this gate run began")
    for name in JSON_ARTIFACTS:
        path = os.path.join(ART, name)
        if not os.path.exists(path):
            continue
        doc = load(name)
        if doc.get("commit") != commit:
            problems.append(f"{path} is for commit {doc.get('commit')}, not {commit}")
        if doc.get("all_pass") is not True:
            problems.append(f"{path} is not all-pass")
    audit = os.path.join(ART, AUDIT_LOG)
    if os.path.exists(audit):
        text = open(audit, encoding="utf-8").read()
        first = text.splitlines()[0] if text else ""
        if commit not in first:
            problems.append(f"{audit} is not for commit {commit}")
        if "DOES NOT VERIFY" in text or "CHAIN BROKEN" in text or "(exit " in text:
            problems.append(f"{audit} records a chain that does not verify")
        if text.count("hash chain intact") == 0:
            problems.append(f"{audit} holds no verified audit chain")
    for p in problems:
        print(f"artifacts: {p}")
    if not problems:
        print("artifacts: conformance.json, negative.json, recovery.json, audit-integrity.log present, fresh, all-pass")
    return 1 if problems else 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "conformance":
        return conformance(sys.argv[2])
    if len(sys.argv) >= 4 and sys.argv[1] == "check":
        return check(sys.argv[2], float(sys.argv[3]))
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
