#!/usr/bin/env python3
"""Checks that the workspace's declared rust-version is not below what any dependency in
Cargo.lock declares it needs (a user on the declared toolchain could not build otherwise).
Exit 1 naming the dependencies that need more."""

import json
import subprocess
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], text=True))
    members = set(meta["workspace_members"])
    declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(declared) != 1 or None in declared:
        print(f"workspace members declare rust-version {sorted(map(str, declared))}: want one")
        return 1
    ours = declared.pop()
    needs = sorted(
        ((version(p["rust_version"]), p["name"], p["version"])
         for p in meta["packages"]
         if p["id"] not in members and p.get("rust_version")),
        reverse=True,
    )
    above = [n for n in needs if n[0] > version(ours)]
    for need, name, ver in above:
        print(f"{name} {ver} needs Rust {'.'.join(map(str, need[:2]))}, above rust-version {ours}")
    if above:
        return 1
    top = needs[0] if needs else None
    print(f"rust-version {ours} covers every dependency"
          + (f" (highest: {top[1]} {top[2]}, Rust {'.'.join(map(str, top[0][:2]))})" if top else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
