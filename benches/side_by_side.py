#!/usr/bin/env python3
"""The table of a side-by-side bench (peers.sh, echo_peers.sh): medians of the repeats per server
and rate from the JSON lines `measure_rates` (lib.sh) wrote, with how many repeats passed and every
repeat's p99 and delivered rate (the spread), and per server the highest rate at which every
repeat passed: every client connected, every delivery arrived, p99 within the limit.

Usage: side_by_side.py RESULTS CLIENTS --per-client|--total --p99-limit MS --best-is WORD
  --per-client: RATE is messages per second each delivered to every client (broadcast), so the
  offered deliveries are RATE x CLIENTS; --total: RATE is the deliveries offered (echo).
  --best-is names the highest passing rate in the summary ("knee", "steady"); with --ratio A B
  the summary also prints A's best over B's.
"""
import argparse
import json
import statistics
from collections import defaultdict

args = argparse.ArgumentParser()
args.add_argument("results")
args.add_argument("clients", type=int)
scale = args.add_mutually_exclusive_group(required=True)
scale.add_argument("--per-client", action="store_true")
scale.add_argument("--total", action="store_true")
args.add_argument("--p99-limit", type=float, required=True)
args.add_argument("--best-is", required=True)
args.add_argument("--ratio", nargs=2, metavar=("A", "B"))
opts = args.parse_args()

runs = defaultdict(list)
for line in open(opts.results):
    row = json.loads(line)
    runs[(row["server"], row["rate"])].append(row)


def offered(rate):
    return rate * opts.clients if opts.per_client else rate


def passed(run):
    # A server still busy with the previous rate may take no client at all: that is no pass.
    return (run["connected"] == opts.clients and run["deliveries_expected"] > 0
            and run["deliveries_lost"] == 0 and run["latency_ms"]["p99"] <= opts.p99_limit)


print(f'{"server":<18} {"rate":>8} {"offered/s":>10} {"connected":>9} {"delivered/s":>11} '
      f'{"lost":>8} {"p50_ms":>8} {"p99_ms":>8} {"server_cpu":>10} {"rss_MB":>7} {"loadgen%":>8}  pass  '
      f'every repeat: p99 ms / delivered M/s')
best = defaultdict(float)
failed = defaultdict(list)  # offered rates at which some repeat did not pass
for (server, rate), rows in sorted(runs.items()):
    ok = [r for r in rows if r["run"]]
    if not ok:
        print(f"{server:<18} {rate:>8g}  (no result)")
        continue

    def med(f):
        return statistics.median(f(r) for r in ok)

    run_seconds = lambda r: r["run"]["measure_seconds"] + r["run"]["ramp_seconds"] + 2.0
    cpu = med(lambda r: r["server_cpu_s"] / max(run_seconds(r), 1e-9))
    every = len(ok) == len(rows) and all(passed(r["run"]) for r in ok)
    if every:
        best[server] = max(best[server], offered(rate))
    else:
        failed[server].append(offered(rate))
    print(f'{server:<18} {rate:>8g} {offered(rate):>10.0f} {med(lambda r: r["run"]["connected"]):>9.0f} '
          f'{med(lambda r: r["run"]["deliveries_per_sec"]):>11.0f} '
          f'{med(lambda r: r["run"]["deliveries_lost"]):>8.0f} '
          f'{med(lambda r: r["run"]["latency_ms"]["p50"]):>8.1f} '
          f'{med(lambda r: r["run"]["latency_ms"]["p99"]):>8.1f} {cpu * 100:>9.0f}% '
          f'{med(lambda r: (r["run"].get("server_rss_bytes") or 0) / 1e6):>7.0f} '
          f'{med(lambda r: max(r["run"]["loadgen_cpu_pct_per_thread"] or [0])):>7.0f}%  '
          f'{"yes" if every else "no":<4} {sum(passed(r["run"]) for r in ok)}/{len(rows)}  '
          + " ".join(f'{r["run"]["latency_ms"]["p99"]:.0f}/{r["run"]["deliveries_per_sec"] / 1e6:.2f}'
                     for r in sorted(ok, key=lambda r: r["rep"])))
print()
# A best rate is only known to lie between it and the next rate offered that failed: say both,
# so a coarse list of rates does not pass for a precise figure.
for server in sorted({s for s, _ in runs}):
    above = [r for r in failed[server] if r > best[server]]
    bound = f", failed at {min(above):.0f}" if above else ", no higher rate offered"
    print(f"{opts.best_is} {server}: {best[server]:.0f} deliveries/s "
          f"(every repeat lossless, p99 <= {opts.p99_limit:g} ms{bound})")
if opts.ratio and best.get(opts.ratio[1]):
    a, b = opts.ratio
    print(f"{a} / {b}: {best[a] / best[b]:.1f}x at the rates offered")
