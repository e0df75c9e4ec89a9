#!/usr/bin/env bash
# A crowd that leaves and comes back at once (a network blip, a load balancer's failover): one
# gatewire (SHARDS shards, default 1, and the echo worker) takes CLIENTS WebSocket connections
# offered at CONNECT_RATE per second, holds them a second, and loadgen closes them all; the next
# round connects at once, while the shards are still closing the last one's. ROUNDS rounds
# (default 3) per build. Reported per round: connects per second and connect latency (the first
# round meets empty shards; the later ones meet a crowd closing), and the gateway's CPU over all
# rounds.
#
# BUILDS="name=path/to/gatewire other=path/to/gatewire" compares builds (default: this tree's
# release build), alternated, REPEATS (default 2) times. SERVER_CPUS and LOADGEN_CPUS place the
# server and loadgen as in benches/lib.sh; the run backend is GATEWIRE_RUN_BACKEND's (auto).
# Usage: benches/reconnect_storm.sh [CLIENTS]   (default 10000; CONNECT_RATE default 20000)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
rounds=${ROUNDS:-3}
repeats=${REPEATS:-2}
builds=(${BUILDS:-"this=$bin/gatewire"})
results=$(mktemp)
# A run cut short stops the gatewire it started.
trap 'if [ -n "${GW_PID:-}" ]; then stop_gatewire >/dev/null; fi; rm -f "$results"' EXIT

for rep in $(seq 1 "$repeats"); do
  for build in "${builds[@]}"; do
    GATEWIRE_BIN=${build#*=} start_gatewire "${SHARDS:-1}" echo >/dev/null
    before=$(process_ticks "$GW_PID")
    for round in $(seq 1 "$rounds"); do
      json=$(mktemp)
      "$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --scenario idle \
        --duration 1 --connect-rate "${CONNECT_RATE:-20000}" \
        --source-ips 127.1.0.1-127.1.0.8 --json "$json" >/dev/null 2>&1 || true
      record_run "$json" build="${build%%=*}" rep="$rep" round="$round" >>"$results"
    done
    after=$(process_ticks "$GW_PID")
    printf '{"build": "%s", "rep": %s, "gateway_ticks": %s, "hz": %s}\n' "${build%%=*}" "$rep" \
      "$((after - before))" "$(getconf CLK_TCK)" >>"$results"
    stop_gatewire >/dev/null
    GW_PID=
  done
done

echo "## reconnect storm: $clients clients at ${CONNECT_RATE:-20000}/s, $rounds rounds back to back, ${SHARDS:-1} shard(s); every repeat"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'build':<10} {'rep':>3} {'round':>5} {'connected':>9} {'connect/s':>9} {'p50_ms':>7} {'p99_ms':>8} {'max_ms':>8}")
for r in rows:
    if "round" not in r:
        continue
    run = r.get("run") or {}
    ms = run.get("connect_ms", {})
    print(f"{r['build']:<10} {r['rep']:>3} {r['round']:>5} {run.get('connected', 0):>9} "
          f"{run.get('connect_per_sec', 0):>9.0f} {ms.get('p50', 0):>7.2f} {ms.get('p99', 0):>8.2f} "
          f"{ms.get('max', 0):>8.2f}")
for r in rows:
    if "gateway_ticks" in r:
        print(f"gateway CPU over all rounds: {r['build']} rep {r['rep']}: "
              f"{r['gateway_ticks'] / r['hz']:.2f} s")
PY
