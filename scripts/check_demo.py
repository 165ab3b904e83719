#!/usr/bin/env python3
"""Checks a `warmpool demo --json` report against the product's promises.

Every user ready, at least --min-warm of them warm, distinct instance ids, nothing
running outside a group, no instance in two groups. Exits non-zero with the reasons.
"""
import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--min-warm", type=int, required=True)
    args = ap.parse_args()
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    users = report["users"]
    problems = []
    if len(users) != args.users:
        problems.append(f"{len(users)} users in the report, expected {args.users}")
    not_ready = [u["user_id"] for u in users if u["state"] != "ready"]
    if not_ready:
        problems.append(f"not ready: {not_ready}")
    warm = sum(1 for u in users if u["path"] == "warm")
    if warm < args.min_warm:
        problems.append(f"{warm} warm users, expected at least {args.min_warm}")
    ids = [u["instance_id"] for u in users]
    if None in ids or len(set(ids)) != len(ids):
        problems.append(f"instance ids are missing or shared: {ids}")
    cloud = report["cloud"]
    if cloud["outside"]:
        problems.append(f"instances outside every group: {cloud['outside']}")
    if cloud["in_two_groups"]:
        problems.append(f"instances in two groups: {cloud['in_two_groups']}")
    for name, members in cloud["asgs"].items():
        if name.startswith("warmpool-user-") and len(members) != 1:
            problems.append(f"{name} holds {members}")
    s = report["summary"]
    print(
        f"demo: {s['ready']}/{s['users']} ready, {s['warm']} warm, {s['cold']} cold; "
        f"p50 {s['p50_s']}s p95 {s['p95_s']}s max {s['max_s']}s"
    )
    for p in problems:
        print(f"demo check failed: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
