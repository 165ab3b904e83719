#!/usr/bin/env python3
"""The Lambda bootstraps will start on Lambda: their glibc, their architecture, their size.

Lambda's `provided.al2023` runtime is Amazon Linux 2023, whose glibc is 2.34. A bootstrap
linked on a newer build host (Debian 12 has 2.36) starts there only if it asks for no
glibc symbol version above 2.34: a dependency that begins to call a newer symbol gives a
bootstrap that fails at its first cold start with "version `GLIBC_2.35' not found", and
nothing in a build or a test on the build host would show it.

For each binary this reads the dynamic symbol table (`objdump -T`, binutils, which every
machine that links Rust has) and checks:

- the highest `GLIBC_x.y` version it needs is at most --max-glibc (2.34 by default);
- its architecture (the ELF header's `e_machine`: the host's objdump cannot name another
  architecture's) is --arch (`x86_64` or `aarch64`; the machine's own by default);
- and prints its size and those figures.

With --self-test it first checks that it reads versions from canned `objdump` output and
architectures from crafted ELF headers, and that it rejects a real binary needing a newer glibc when the
machine can make one (a C program calling `arc4random`, glibc 2.36). Exit status 1 on any
finding.

Usage: check_artifacts.py [--arch ARCH] [--max-glibc X.Y] [--self-test] BINARY...
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

GLIBC = re.compile(r"\bGLIBC_(\d+)\.(\d+)(?:\.(\d+))?\b")
# ELF e_machine values (System V ABI, "ELF Header"; elf.h: EM_X86_64, EM_AARCH64), in
# `uname -m` spelling. Read from the header itself: the host's objdump answers "UNKNOWN!"
# for another architecture's binary (x86_64 binutils on an arm64 bootstrap).
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def glibc_versions(dynamic_symbols: str) -> list[tuple[int, ...]]:
    """Every glibc symbol version named in `objdump -T` output."""
    return sorted({tuple(int(p) for p in m.groups() if p is not None) for m in GLIBC.finditer(dynamic_symbols)})


def architecture(header: bytes) -> str | None:
    """The architecture an ELF header names (its first 20 bytes), in `uname -m` spelling;
    None for a file that is not ELF."""
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] not in (1, 2):
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"ELF machine {machine:#x}")


def read_header(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(20)


def objdump(flag: str, path: str) -> str:
    out = subprocess.run(["objdump", flag, path], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"objdump {flag} {path} failed: {out.stderr.strip()}")
    return out.stdout


def version_text(v: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in v)


def check(path: str, arch: str, max_glibc: tuple[int, ...]) -> list[str]:
    """The findings for one binary (empty when it passes); prints its figures."""
    if not os.path.isfile(path):
        return [f"{path}: not found (build it first)"]
    findings = []
    found_arch = architecture(read_header(path))
    if found_arch != arch:
        findings.append(f"{path}: architecture {found_arch}, expected {arch}")
    versions = glibc_versions(objdump("-T", path))
    highest = versions[-1] if versions else None
    if highest is None:
        findings.append(f"{path}: no glibc symbol versions found (a static or non-glibc binary? expected a glibc one)")
    elif highest > max_glibc:
        newer = [version_text(v) for v in versions if v > max_glibc]
        findings.append(
            f"{path}: needs glibc {version_text(highest)} (symbols of {', '.join(newer)}), above the "
            f"{version_text(max_glibc)} of Lambda's provided.al2023 runtime; it would fail to start there. "
            "Find the dependency that calls the newer symbol (objdump -T), pin it, or build against an older "
            "glibc (cargo lambda build --target aarch64-unknown-linux-gnu.2.34)"
        )
    size_mb = os.path.getsize(path) / 1e6
    print(f"{path}: {found_arch}, {size_mb:.1f} MB, highest glibc {version_text(highest) if highest else 'none'}")
    return findings


def self_test(arch: str, max_glibc: tuple[int, ...]) -> list[str]:
    failures = []
    canned = """
0000000000000000      DF *UND*	0000000000000000 (GLIBC_2.2.5) memcpy
0000000000000000      DF *UND*	0000000000000000 (GLIBC_2.34) __libc_start_main
0000000000000000      DF *UND*	0000000000000000  GLIBC_2.33  fstat64
0000000000000000      DF *UND*	0000000000000000 (GLIBC_2.3.4) __memcpy_chk
"""
    if glibc_versions(canned) != [(2, 2, 5), (2, 3, 4), (2, 33), (2, 34)]:
        failures.append(f"self-test: read {glibc_versions(canned)} from canned objdump -T output")
    def elf(machine: int, data: int = 1) -> bytes:
        order = "little" if data == 1 else "big"
        return b"\x7fELF" + bytes([2, data]) + bytes(12) + machine.to_bytes(2, order)

    for header, want in [
        (elf(0xB7), "aarch64"),
        (elf(0x3E), "x86_64"),
        (elf(0xB7, data=2), "aarch64"),
        (elf(0x28), "ELF machine 0x28"),
        (b"#!/bin/sh\n" + bytes(10), None),
    ]:
        if architecture(header) != want:
            failures.append(f"self-test: read architecture {architecture(header)} from {header!r}, expected {want}")
    cc = shutil.which("cc")
    if cc is None:
        print("self-test: no C compiler, so no real binary needing a newer glibc was made (canned checks only)")
        return failures
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "newer.c"), os.path.join(tmp, "newer")
        with open(src, "w", encoding="utf-8") as f:
            f.write("#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n")
        built = subprocess.run([cc, src, "-o", exe], capture_output=True, text=True, check=False)
        if built.returncode != 0:
            print("self-test: this machine's glibc has no arc4random (older than 2.36), so no real binary needing "
                  "a newer glibc was made (canned checks only)")
            return failures
        print("self-test: a C program calling arc4random (glibc 2.36), expected to be rejected:")
        if not check(exe, arch, max_glibc):
            failures.append("self-test: a binary needing glibc 2.36 passed the check")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="*")
    parser.add_argument("--arch", default=platform.machine(), help="expected architecture (uname -m spelling)")
    parser.add_argument("--max-glibc", default="2.34", help="highest glibc symbol version allowed")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if shutil.which("objdump") is None:
        print("check_artifacts: objdump not found; install binutils", file=sys.stderr)
        return 1
    max_glibc = tuple(int(p) for p in args.max_glibc.split("."))
    findings = self_test(args.arch, max_glibc) if args.self_test else []
    if not args.binaries and not args.self_test:
        parser.error("name at least one binary")
    for path in args.binaries:
        findings += check(path, args.arch, max_glibc)
    for finding in findings:
        print(finding, file=sys.stderr)
    if not findings:
        print(f"check_artifacts: {len(args.binaries)} binaries need at most glibc {args.max_glibc}, built for {args.arch}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
