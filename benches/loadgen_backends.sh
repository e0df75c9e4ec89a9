#!/usr/bin/env bash
# loadgen's runtime backends side by side against one gatewire (default backend, 2 shards): echo
# through a worker and a broadcast, each loadgen backend in turn, REPEATS rounds, the same
# gateway process for all. Reports every repeat's delivery rate, losses, p50/p99 and loadgen's
# own CPU (all its threads), then the medians. A loadgen build to compare with (an earlier
# commit's) may be added as LOADGEN_OTHER=label=path; it runs with its own default backend.
#
# Usage: benches/loadgen_backends.sh [CLIENTS]   (default 10000)
# BACKENDS (default "glommio io_uring epoll"), ECHO_RATE (default 20000), BROADCAST_RATE
# (messages/s, default 100), REPEATS (default 3), DURATION (default 10).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
loadgens=()
for backend in ${BACKENDS:-glommio io_uring epoll}; do
  loadgens+=("$backend=$bin/loadgen --backend $backend")
done
[ -n "${LOADGEN_OTHER:-}" ] && loadgens+=("${LOADGEN_OTHER%%=*}=${LOADGEN_OTHER#*=}")
repeats=${REPEATS:-3}
results=$(mktemp)

run_one() { # label command scenario rate rep
  local json
  json=$(mktemp)
  # shellcheck disable=SC2086 # the command is a binary and its arguments
  $2 "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --scenario "$3" --rate "$4" \
    --payload 64 --duration "${DURATION:-10}" --source-ips 127.1.0.1-127.1.0.8 \
    --server-pid "$GW_PID" --json "$json" >/dev/null 2>&1 || true
  record_run "$json" label="$1" scenario="$3" rep="$5" >>"$results"
}

for app_scenario in "echo echo ${ECHO_RATE:-20000}" "broadcast broadcast ${BROADCAST_RATE:-100}"; do
  read -r app scenario rate <<<"$app_scenario"
  start_gatewire 2 "$app"
  for rep in $(seq 1 "$repeats"); do
    for entry in "${loadgens[@]}"; do
      run_one "${entry%%=*}" "${entry#*=}" "$scenario" "$rate" "$rep"
    done
  done
  stop_gatewire
done

echo "## loadgen by runtime backend: $clients clients, 64 B, gatewire 2 shards (its default backend)"
python3 - "$results" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["scenario"], r["label"])].append(r)
print(f'{"scenario":<10} {"loadgen":<14} {"rep":>3} {"deliv/s":>9} {"lost":>6} {"p50_ms":>7} '
      f'{"p99_ms":>7} {"lg_cpu%":>8}')
for (scenario, label), runs in sorted(rows.items()):
    p50s, p99s, cpus = [], [], []
    for r in sorted(runs, key=lambda r: r["rep"]):
        run = r["run"]
        if not run:
            print(f'{scenario:<10} {label:<14} {r["rep"]:>3}  (no result)')
            continue
        lat = run["latency_ms"]
        p50s.append(lat["p50"]); p99s.append(lat["p99"]); cpus.append(run["loadgen_cpu_pct"])
        print(f'{scenario:<10} {label:<14} {r["rep"]:>3} {run["deliveries_per_sec"]:>9.0f} '
              f'{run["deliveries_lost"]:>6} {lat["p50"]:>7.2f} {lat["p99"]:>7.2f} '
              f'{run["loadgen_cpu_pct"]:>8.1f}')
    if p50s:
        print(f'{scenario:<10} {label:<14} med {"":>9} {"":>6} {statistics.median(p50s):>7.2f} '
              f'{statistics.median(p99s):>7.2f} {statistics.median(cpus):>8.1f}')
PY
rm -f "$results"
