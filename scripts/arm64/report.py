"""Small checks on what the arm64 steps wrote.

    python report.py junit FILE       pass/fail/skip counts per kernel mode (jit, numpy) and per file
    python report.py jsonl FILE --need speech,eeg
                                      the results JSONL parses; each needed modality has an 'ok' result
"""

import argparse
import collections
import json
import re
import sys
import xml.etree.ElementTree as ET


def junit(path):
    root = ET.parse(path).getroot()
    per_mode = collections.defaultdict(collections.Counter)
    per_file = collections.defaultdict(collections.Counter)
    skipped_why = collections.Counter()
    for case in root.iter("testcase"):
        name = case.get("name", "")
        params = re.search(r"\[(.*)\]$", name)
        parts = params.group(1).split("-") if params else []
        mode = "jit" if "jit" in parts else "numpy" if "numpy" in parts else "no mode"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
            msg = case.find("skipped").get("message", "")
            skipped_why[msg[:100]] += 1
        else:
            outcome = "passed"
        per_mode[mode][outcome] += 1
        where = case.get("classname") or name  # a module skipped at collection has no classname
        per_file[where.split(".")[-1]][outcome] += 1

    def fmt(c):
        return ", ".join(f"{c[k]} {k}" for k in ("passed", "failed", "skipped") if c[k]) or "none"

    for mode in ("jit", "numpy", "no mode"):
        if mode in per_mode:
            print(f"  mode {mode:8s} {fmt(per_mode[mode])}")
    for f in sorted(per_file):
        print(f"  {f:22s} {fmt(per_file[f])}")
    for msg, n in skipped_why.items():
        print(f"  skipped x{n}: {msg}")
    return 1 if any(c["failed"] for c in per_mode.values()) else 0


def jsonl(path, need):
    counts = collections.defaultdict(collections.Counter)
    labels = collections.defaultdict(collections.Counter)
    n = 0
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                print(f"  line {i} is not JSON: {exc}")
                return 1
            n += 1
            if rec.get("type") == "result":
                counts[rec.get("modality")][rec.get("status")] += 1
                if rec.get("status") == "ok":
                    labels[rec.get("modality")][rec.get("label")] += 1
    print(f"  {n} records")
    for mod in sorted(counts, key=str):
        top = ", ".join(f"{k} x{v}" for k, v in labels[mod].most_common(3))
        print(f"  {mod:8s} " + ", ".join(f"{v} {k}" for k, v in counts[mod].items()) + (f"; labels {top}" if top else ""))
    missing = [m for m in need if counts[m]["ok"] == 0]
    if missing:
        print(f"  missing an ok result for: {', '.join(missing)}")
        return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("junit")
    j.add_argument("file")
    r = sub.add_parser("jsonl")
    r.add_argument("file")
    r.add_argument("--need", default="")
    args = ap.parse_args(argv)
    if args.cmd == "junit":
        return junit(args.file)
    return jsonl(args.file, [m for m in args.need.split(",") if m])


if __name__ == "__main__":
    sys.exit(main())
