#!/usr/bin/env python3
"""Checks `warmpool simulate --pool adaptive:T --compare-static --json` and prints the figures.

The adaptive pool reaches the target warm-hit rate, and costs less than the static pool at
the same warm-hit rate (the static pool found by simulation: the smallest size reaching the
adaptive pool's rate, the size below it missing it, and the cost between the two by
interpolation); no run broke an invariant. With `--two-tier REPORT` (the same workload and
seed with `--warm-tier stopped`), the two-tier pool reaches the target too, at least the
single tier's warm-hit rate, for less than the single tier. Exits non-zero with the reasons.
"""
import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--target", type=float, required=True)
    ap.add_argument("--two-tier", help="the same run with --warm-tier stopped (--json)")
    args = ap.parse_args()
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    problems = []
    comparison = report.get("comparison")
    runs = report.get("runs", [])
    if not comparison or not runs:
        print(f"{args.report}: needs 'runs' and a 'comparison' (run with --compare-static)", file=sys.stderr)
        return 1
    for run in runs:
        print(
            f"seed {run['seed']:>3} {run['role']:>8} {run['policy']:>14}: warm hits {run['warm_hit_rate']:.4f}, "
            f"${run['cost_usd']:.2f} ({run['idle_instance_hours']:.1f} idle instance-hours: "
            f"{run['preparing_instance_hours']:.1f} preparing, {run['ready_instance_hours']:.1f} ready), "
            f"warm p50 {run['time_to_ready']['warm']['p50_s']} s"
        )
        if run["violations"]:
            problems.append(f"seed {run['seed']} {run['policy']}: invariant violations {run['violations']}")
        if run["role"] == "adaptive" and run["warm_hit_rate"] < args.target:
            problems.append(f"seed {run['seed']}: adaptive warm-hit rate {run['warm_hit_rate']:.4f} below {args.target}")
        if run["role"] == "static" and run["warm_hit_rate"] + 1e-12 < comparison["adaptive_warm_hit_rate"] and len(runs) == 2:
            problems.append(f"static pool {run['policy']} does not reach the adaptive pool's rate")
    if len(runs) == 2:
        adaptive = next(r for r in runs if r["role"] == "adaptive")
        static = next(r for r in runs if r["role"] == "static")
        size = int(static["policy"].split(":")[1])
        tried = {t["size"]: t["warm_hit_rate"] for t in report.get("static_search", [])}
        if size > 1 and not (size - 1 in tried and tried[size - 1] < adaptive["warm_hit_rate"]):
            problems.append(f"static:{size} is not shown to be the smallest at the adaptive pool's rate (tried {sorted(tried)})")
    c = comparison
    print(
        f"static pool at the adaptive pool's rate ({c['adaptive_warm_hit_rate']:.4f}): {c['static_size']:.2f} instances, "
        f"${c['static_cost_usd']:.2f}; adaptive ${c['adaptive_cost_usd']:.2f}: {c['cost_ratio']:.0%} of it "
        f"(idle instance-hours {c['idle_ratio']:.0%})"
    )
    if c["cost_ratio"] >= 1.0:
        problems.append(f"the adaptive pool costs {c['cost_ratio']:.0%} of the static pool at the same rate: not less")
    if args.two_tier:
        problems.extend(check_two_tier(args.two_tier, next(r for r in runs if r["role"] == "adaptive"), args.target))
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


def check_two_tier(path: str, single: dict, target: float) -> list:
    """The two-tier run against the single tier's on the same workload and seed."""
    with open(path, encoding="utf-8") as f:
        two = next(r for r in json.load(f)["runs"] if r["role"] == "adaptive")
    print(
        f"two tiers: warm hits {two['warm_hit_rate']:.4f}, ${two['cost_usd']:.2f} ({two['idle_instance_hours']:.1f} "
        f"running instance-hours, {two['stopped_instance_hours']:.1f} stopped); one tier: "
        f"{single['warm_hit_rate']:.4f}, ${single['cost_usd']:.2f}"
    )
    problems = []
    if two["violations"]:
        problems.append(f"two tiers: invariant violations {two['violations']}")
    if two["warm_hit_rate"] < max(target, single["warm_hit_rate"]):
        problems.append(f"two tiers: warm-hit rate {two['warm_hit_rate']:.4f} below the target or the single tier's")
    if two["cost_usd"] >= single["cost_usd"]:
        problems.append(f"two tiers cost ${two['cost_usd']:.2f}, not less than one tier's ${single['cost_usd']:.2f}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
