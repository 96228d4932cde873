#!/usr/bin/env python3
"""Collects the rows `make bench` measured into bench/results.json, prints them as a table, and
rewrites the results table of docs/benchmarks.md (between its bench:results markers).

Usage: bench/report.py ROWS.jsonl RESULTS.json BENCHMARKS.md
"""
import datetime
import json
import os
import platform
import subprocess
import sys

BEGIN, END = "<!-- bench:results -->", "<!-- /bench:results -->"
# Gate at 4 sizes, load, bulk, policy, reconcile, revocation p50 and p95, size, idle RSS and CPU.
EXPECTED_ROWS = 28


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--"]).returncode != 0:
        commit += "-dirty"
    try:
        flags = next(line for line in open("/proc/cpuinfo", encoding="utf-8")
                     if line.startswith("flags")).split()
        model += " (with SHA extensions)" if "sha_ni" in flags else " (without SHA extensions)"
    except (OSError, StopIteration):
        pass
    return (f"{model}, {os.cpu_count()} cores, Linux {platform.release()}; commit {commit}, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")


def table(rows):
    out = ["| what | unit | rn | reference | ratio | target | meets |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        target = ("≤ " + fmt(r["target"]) + ("×" if r["reference"] is not None else "")
                  if r["target"] is not None else "—")
        meets = r.get("note") or fmt(r["meets"])
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3f}"
        out.append(f"| {r['name']} | {r['unit']} | {fmt(r['rn'])} | {fmt(r['reference'])} | "
                   f"{ratio} | {target} | {meets} |")
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 64
    rows_path, results_path, doc_path = sys.argv[1:]
    rows = [json.loads(line) for line in open(rows_path, encoding="utf-8") if line.strip()]
    if len(rows) != EXPECTED_ROWS:
        sys.exit(f"bench: {len(rows)} rows measured, {EXPECTED_ROWS} expected: a benchmark wrote "
                 f"no row (see its output above)")
    where = machine()  # before anything is written: it reads whether the tree is clean
    for r in rows:
        for k in ("rn", "reference", "ratio"):
            if isinstance(r.get(k), float):
                r[k] = float(f"{r[k]:.6g}")
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
        f.write("\n")
    text = table(rows)
    print(f"\n{where}\n{text}\n")
    missed = [r["name"] for r in rows if r["meets"] is False]
    unrun = [r["name"] for r in rows if r["meets"] is None]
    print(f"{len(rows) - len(missed) - len(unrun)} of {len(rows)} targets met"
          + (f"; missed: {'; '.join(missed)}" if missed else "")
          + (f"; not run: {'; '.join(unrun)}" if unrun else ""))
    doc = open(doc_path, encoding="utf-8").read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"bench: {doc_path} has no {BEGIN} … {END} block to rewrite")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc = f"{head}{BEGIN}\nLatest `make bench`: {where}.\n\n{text}\n{END}{tail}"
    with open(doc_path, "w", encoding="utf-8") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
