#!/usr/bin/env bash
# The runtime backends side by side: echo through a worker (client → gateway → worker → gateway
# → client) with 2 shards and one worker thread, the same loadgen in the same private namespace,
# each backend in turn, REPEATS rounds. Reports per backend and rate every repeat's gateway CPU
# per echo (loadgen's --server-pid over the measurement), the worker process's (--worker-pid) and
# their sum, p50/p99 and losses, and their medians.
# SHARDS (default 2) sets the gateway's shard count: 1 with SERVER_CPUS=0 LOADGEN_CPUS=1 gives the
# server one core and loadgen the other (see lib.sh), as benches/echo_peers.sh does.
#
# Usage: benches/backends.sh [CLIENTS]   (default 10000)
# BACKENDS (default "glommio io_uring epoll"), RATES (echoes/s offered, default 20000),
# REPEATS (default 3), DURATION (default 10). BUILDS="label=binary ..." adds a row per other
# gatewire build (e.g. the last commit's) for each backend, measured in the same rounds.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
backends=(${BACKENDS:-glommio io_uring epoll})
rates=(${RATES:-20000})
repeats=${REPEATS:-3}
shards=${SHARDS:-2}
results=$(mktemp)

for rep in $(seq 1 "$repeats"); do
  for backend in "${backends[@]}"; do
    for build in "this=$bin/gatewire" ${BUILDS:-}; do
      label=${build%%=*}
      label=$([ "$label" = this ] && echo "$backend" || echo "$backend-$label")
      export GATEWIRE_RUN_BACKEND=$backend GATEWIRE_BIN=${build#*=}
      start_gatewire "$shards" echo
      for rate in "${rates[@]}"; do
        json=$(mktemp)
        echo_round "$rate" "$GW_PID" "$json" "$WORKER_PID"
        record_run "$json" backend="$label" rate="$rate" rep="$rep" >>"$results"
      done
      stop_gatewire
      unset GATEWIRE_RUN_BACKEND GATEWIRE_BIN
    done
  done
done

echo "## echo through a worker by runtime backend: $clients clients, 64 B, $shards shards, 1 worker thread,"
echo "## servers on CPUs ${SERVER_CPUS:-any}, loadgen on CPUs ${LOADGEN_CPUS:-any}"
python3 - "$results" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["rate"], r["backend"])].append(r)
print(f'{"rate":>7} {"backend":<14} {"rep":>3} {"echoes/s":>9} {"lost":>6} {"p50_ms":>7} '
      f'{"p99_ms":>7} {"gw_cpu":>7} {"us/echo":>8} {"worker":>7} {"gw+wk":>6}')
for (rate, backend), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1])):
    per_echo, both, p50s, p99s = [], [], [], []
    for r in sorted(runs, key=lambda r: r["rep"]):
        run = r["run"]
        if not run or run.get("server_cpu_seconds") is None:
            print(f'{rate:>7.0f} {backend:<14} {r["rep"]:>3}  (no result)')
            continue
        echoes = max(run["deliveries_per_sec"] * run["measure_seconds"], 1)
        us = run["server_cpu_seconds"] / echoes * 1e6
        worker = run.get("worker_cpu_seconds")
        worker_us = worker / echoes * 1e6 if worker is not None else None
        cpu = run["server_cpu_seconds"] / max(run["measure_seconds"], 1e-9)
        per_echo.append(us)
        if worker_us is not None:
            both.append(us + worker_us)
        p50s.append(run["latency_ms"]["p50"])
        p99s.append(run["latency_ms"]["p99"])
        wk = f'{worker_us:>7.1f} {us + worker_us:>6.1f}' if worker_us is not None else ''
        print(f'{rate:>7.0f} {backend:<14} {r["rep"]:>3} {run["deliveries_per_sec"]:>9.0f} '
              f'{run["deliveries_lost"]:>6} {run["latency_ms"]["p50"]:>7.2f} '
              f'{run["latency_ms"]["p99"]:>7.2f} {cpu * 100:>6.0f}% {us:>8.1f} {wk}')
    if per_echo:
        total = f'{"":>7} {statistics.median(both):>6.1f}' if both else ''
        print(f'{rate:>7.0f} {backend:<14} med {"":>9} {"":>6} {statistics.median(p50s):>7.2f} '
              f'{statistics.median(p99s):>7.2f} {"":>7} {statistics.median(per_echo):>8.1f} {total}')
PY
rm -f "$results"
