#!/usr/bin/env python3
"""Prints the score of a `make mutants` run from cargo-mutants' output directory.

Score = caught / (caught + missed) over the mutants this run tested, where caught includes
those whose tests timed out (a mutant that hangs the flow is found); unviable mutants
(that don't build) are not counted. With `--iterate`, the mutants an earlier run saw caught
*or unviable* (cargo-mutants lists both in previously_caught.txt) are skipped: they are
reported apart, not counted in the score.
Exits non-zero when the score is under --min (default 0: report only).
"""
import argparse
import pathlib
import sys


def lines(d: pathlib.Path, name: str) -> list[str]:
    p = d / name
    if not p.exists():
        return []
    return [line for line in p.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=pathlib.Path, help="cargo-mutants' mutants.out directory")
    ap.add_argument("--min", type=float, default=0.0, help="lowest acceptable score, 0-100")
    a = ap.parse_args()
    if not a.out.is_dir():
        print(f"{a.out}: no such directory; run `make mutants` first", file=sys.stderr)
        return 2
    caught = lines(a.out, "caught.txt")
    earlier = lines(a.out, "previously_caught.txt")
    timeout = lines(a.out, "timeout.txt")
    missed = lines(a.out, "missed.txt")
    unviable = lines(a.out, "unviable.txt")
    found = len(caught) + len(timeout)
    tested = found + len(missed)
    if tested == 0:
        print("no mutant was tested", file=sys.stderr)
        return 2
    score = 100.0 * found / tested
    print(
        f"mutants: {tested} tested, {len(caught)} caught, {len(timeout)} timed out, "
        f"{len(missed)} missed, {len(unviable)} unviable; score {score:.1f}%"
        + (f" ({len(earlier)} skipped: caught or unviable in an earlier run)" if earlier else "")
    )
    for m in sorted(missed):
        print(f"  missed: {m}")
    return 0 if score >= a.min else 1


if __name__ == "__main__":
    sys.exit(main())
