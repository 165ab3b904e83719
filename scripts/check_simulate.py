#!/usr/bin/env python3
"""Checks `warmpool simulate --pool adaptive:T --compare-static --json` against issue 5's
done-criterion and prints the figures.

The adaptive pool reaches the target warm-hit rate with fewer idle instance-hours than
the smallest static pool that also reaches it; that static pool is the smallest (one
instance fewer misses the target); no run broke an invariant. Exits non-zero with the
reasons.
"""
import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--target", type=float, required=True)
    args = ap.parse_args()
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    problems = []
    adaptive, static = report.get("adaptive"), report.get("static")
    if not adaptive or not static:
        print(f"{args.report}: needs both 'adaptive' and 'static' runs", file=sys.stderr)
        return 1
    for name, run in (("adaptive", adaptive), ("static", static)):
        print(
            f"{name:>8} {run['policy']:>14}: warm hits {run['warm_hit_rate']:.4f}, "
            f"idle instance-hours {run['idle_instance_hours']:.1f}, "
            f"warm p50 {run['time_to_ready']['warm']['p50_s']} s, "
            f"AWS calls per signup {run['calls_per_signup_total']:.1f}"
        )
        if run["violations"]:
            problems.append(f"{name}: invariant violations {run['violations']}")
        if run["warm_hit_rate"] < args.target:
            problems.append(f"{name}: warm-hit rate {run['warm_hit_rate']:.4f} below {args.target}")
    if adaptive["idle_instance_hours"] >= static["idle_instance_hours"]:
        problems.append(
            f"adaptive pool costs {adaptive['idle_instance_hours']:.1f} idle instance-hours, "
            f"not fewer than static ({static['idle_instance_hours']:.1f})"
        )
    size = int(static["policy"].split(":")[1])
    tried = {t["size"]: t["warm_hit_rate"] for t in report.get("static_search", [])}
    if size > 1 and not (size - 1 in tried and tried[size - 1] < args.target):
        problems.append(f"static:{size} is not shown to be the smallest (tried {sorted(tried)})")
    saved = 1 - adaptive["idle_instance_hours"] / static["idle_instance_hours"]
    print(f"adaptive saves {saved:.0%} of the smallest static pool's idle instance-hours at {args.target} warm hits")
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
