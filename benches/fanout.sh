#!/usr/bin/env bash
# Broadcast fanout through gatewire: P publishers, every client receives every message.
# Usage: benches/fanout.sh [SHARDS] [CLIENTS...]   (default: 8 shards; 1000, 10000, 100000 clients)
# RATE (messages/s across publishers), DURATION and PAYLOAD may be set in the environment.
# SWEEP=1: for each client count, rates double from RATE (default 25) until a run loses a
# delivery or its p99 passes P99_LIMIT_MS (default 500); the knee is the highest offered
# deliveries/s that passed. LOADGEN_CPUS=LIST pins loadgen's threads.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
shards=${1:-8}
shift || true
counts=("$@")
[ $# -eq 0 ] && counts=(1000 10000 100000)
start_gatewire "$shards" broadcast
trap stop_gatewire EXIT

# run N RATE JSON: one loadgen run; its table on stdout, its figures in JSON.
run() {
  "$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$1" --scenario broadcast \
    --publishers 1 --rate "$2" --payload "${PAYLOAD:-64}" --duration "${DURATION:-5}" \
    --source-ips 127.1.0.1-127.1.0.8 --server-pid "$GW_PID" --json "$3" 2>/dev/null
}

for n in "${counts[@]}"; do
  if [ "${SWEEP:-0}" != 1 ]; then
    rate=${RATE:-2}
    echo "## broadcast: $n clients, $shards shard(s), $rate msg/s, ${PAYLOAD:-64} B"
    run "$n" "$rate" /dev/null
    echo
    continue
  fi
  echo "## sweep: $n clients, $shards shard(s), ${PAYLOAD:-64} B, rates doubling from ${RATE:-25} msg/s"
  printf '%-10s %-14s %-12s %-8s %-9s %-9s %-8s\n' rate offered/s delivered/s lost p50_ms p99_ms "loadgen%"
  rate=${RATE:-25}
  knee=0
  while :; do
    json="$work/sweep.json"
    run "$n" "$rate" "$json" >/dev/null
    verdict=$(python3 - "$json" "$n" "$rate" "${P99_LIMIT_MS:-500}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, rate, limit = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
lat = r["latency_ms"]
ok = r["deliveries_lost"] == 0 and r["connected"] == n and lat["p99"] <= limit
busiest = max(r["loadgen_cpu_pct_per_thread"] or [0])
print(f'{rate:<10g} {n * rate:<14.0f} {r["deliveries_per_sec"]:<12.0f} {r["deliveries_lost"]:<8} '
      f'{lat["p50"]:<9.1f} {lat["p99"]:<9.1f} {busiest:<8.0f} {"pass" if ok else "FAIL"}')
PY
)
    echo "$verdict"
    case "$verdict" in
      *pass) knee=$(python3 -c "print(int($n * $rate))"); rate=$(python3 -c "print($rate * 2)") ;;
      *) break ;;
    esac
    # Stop before a rate no box could offer (the loadgen would be the limit, not the server).
    if python3 -c "import sys; sys.exit(0 if $n * $rate > 50e6 else 1)"; then break; fi
  done
  echo "knee: $knee deliveries/s (highest offered rate with every delivery and p99 <= ${P99_LIMIT_MS:-500} ms)"
  echo
done
