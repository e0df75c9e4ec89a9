#!/usr/bin/env python3
"""Reads an Autobahn fuzzingclient report (REPORT_DIR/index.json) and says whether gatewire passed.

    verdict.py REPORT_DIR --expect N [--compression]

Each case has two grades: `behavior` (OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED,
NO_CLOSE) and `behaviorClose` (OK, INFORMATIONAL, WRONG CODE, FAILED BY CLIENT, UNCLEAN, FAILED).
A case fails on FAILED, NO_CLOSE, WRONG CODE, UNCLEAN or a grade this script does not know.
NON-STRICT (a SHOULD, e.g. UTF-8 checked at the end of a fragment) and INFORMATIONAL pass.
UNIMPLEMENTED (the server declined permessage-deflate) passes unless --compression is given.

The suite's client exits 0 even when the server died part way, so the report must hold at least
--expect cases (the count the client announced).

Exit status: 0 pass, 1 failing cases, 2 report missing or short.
"""

import argparse
import collections
import json
import os
import sys

PASSING_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}
PASSING_CLOSE = {"OK", "INFORMATIONAL", "FAILED BY CLIENT"}


def numeric(case_id):
    return [int(part) for part in case_id.split(".") if part.isdigit()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report_dir")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--compression", action="store_true")
    args = parser.parse_args()

    passing_behavior = set(PASSING_BEHAVIOR)
    if args.compression:
        passing_behavior.discard("UNIMPLEMENTED")

    index = os.path.join(args.report_dir, "index.json")
    try:
        with open(index) as f:
            agents = json.load(f)
    except (OSError, ValueError) as err:
        print(f"no readable report at {index}: {err}")
        return 2
    if len(agents) != 1:
        print(f"{index}: expected one agent, found {len(agents)}")
        return 2
    (agent, cases), = agents.items()

    grades = collections.Counter((c.get("behavior"), c.get("behaviorClose")) for c in cases.values())
    print(f"{agent}: {len(cases)} cases")
    for (behavior, close), count in sorted(grades.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4}  behavior {behavior}, close {close}")

    failing = [
        (case_id, c)
        for case_id, c in sorted(cases.items(), key=lambda kv: numeric(kv[0]))
        if c.get("behavior") not in passing_behavior or c.get("behaviorClose") not in PASSING_CLOSE
    ]
    for case_id, c in failing:
        print(f"  FAILED {case_id}: behavior {c.get('behavior')}, close {c.get('behaviorClose')}, "
              f"close code {c.get('remoteCloseCode')} (see {c.get('reportfile')})")

    if len(cases) < args.expect:
        print(f"SHORT: {len(cases)} of {args.expect} cases reported; the server stopped answering?")
        return 2
    print("PASS" if not failing else f"FAIL: {len(failing)} cases")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
