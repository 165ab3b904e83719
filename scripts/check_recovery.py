#!/usr/bin/env python3
"""Checks `warmpool demo --json` reports of the standard fault mix against issue 10's targets.

For each report: every user ready, or failed with its reason; p95 time to ready at most
--p95 seconds and the max at most --max (simulated time: the same on every machine); no
host sent two inits; nothing outside a group. Prints a line per report, then exits
non-zero with the reasons when one misses.
"""
import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--p95", type=float, default=900.0)
    ap.add_argument("--max", type=float, default=1800.0)
    args = ap.parse_args()
    problems = []
    for path in args.reports:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        s = report["summary"]
        cloud = report["cloud"]
        print(
            f"{path}: {s['ready']} ready, {s['failed']} failed, {s['not_finished']} unfinished; "
            f"p50 {s['p50_s']:.0f} s, p95 {s['p95_s']:.0f} s, max {s['max_s']:.0f} s"
        )
        if s["not_finished"]:
            problems.append(f"{path}: {s['not_finished']} users neither ready nor failed")
        unexplained = [u["user_id"] for u in report["users"] if u["state"] == "failed" and not u.get("reason")]
        if unexplained:
            problems.append(f"{path}: failed without a reason: {unexplained}")
        if s["p95_s"] > args.p95:
            problems.append(f"{path}: p95 {s['p95_s']:.1f} s is over {args.p95:.0f} s")
        if s["max_s"] > args.max:
            problems.append(f"{path}: max {s['max_s']:.1f} s is over {args.max:.0f} s")
        if cloud["repeated_inits"]:
            problems.append(f"{path}: hosts sent two inits: {cloud['repeated_inits']}")
        if cloud["outside"]:
            problems.append(f"{path}: instances outside every group: {cloud['outside']}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
