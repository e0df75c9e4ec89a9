#!/usr/bin/env bash
# Broadcast fanout side by side: gatewire (2 shards, publish through the broadcast worker) and
# the peers written here, built from the package registries only (benches/peers/*: a
# tokio-tungstenite server, and a node `ws` server when node and npm are present), under the
# same loadgen in the same private namespace, runs alternated, median of REPEATS.
# Usage: benches/peers.sh [CLIENTS]   (default 10000)
# RATES (messages/s, default "10 100 200 400"), REPEATS (default 2), DURATION (default 5).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_peers
bench_setup "$0" "$@"
clients=${1:-10000}
rates=(${RATES:-10 100 200 400})
repeats=${REPEATS:-2}
results=$(mktemp)

# cpu_ticks PID...: user+system clock ticks of these processes so far.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# measure SERVER URL PIDS...: one loadgen run per rate, a JSON line each into $results.
measure() {
  local server=$1 url=$2 rep=$3
  shift 3
  local rate json before after
  for rate in "${rates[@]}"; do
    json=$(mktemp)
    before=$(cpu_ticks "$@")
    "$bin/loadgen" "$(loadgen_cpus)" --url "$url" --clients "$clients" --scenario broadcast \
      --publishers 1 --rate "$rate" --payload 64 --duration "${DURATION:-5}" \
      --source-ips 127.1.0.1-127.1.0.8 --json "$json" >/dev/null 2>&1 || true
    after=$(cpu_ticks "$@")
    python3 - "$json" "$server" "$rate" "$rep" "$((after - before))" "$(getconf CLK_TCK)" \
      "${DURATION:-5}" >>"$results" <<'PY'
import json, sys
path, server, rate, rep, ticks, hz, duration = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = None
print(json.dumps({"server": server, "rate": float(rate), "rep": int(rep), "run": r,
                  "server_cpu_s": int(ticks) / int(hz)}))
PY
    rm -f "$json"
  done
}

for rep in $(seq 1 "$repeats"); do
  start_gatewire 2 broadcast
  measure gatewire "$PUBLIC_URL" "$rep" "$GW_PID" "$WORKER_PID"
  stop_gatewire
  for peer in $(peer_names); do
    start_peer "$peer"
    measure "$peer" "$PEER_URL" "$rep" "$PEER_PID"
    stop_peer
  done
done

echo "## peers: $clients clients, 64 B, broadcast from 1 publisher; medians of $repeats repeats"
python3 - "$results" "$clients" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
clients = int(sys.argv[2])
runs = defaultdict(list)
for r in rows:
    runs[(r["server"], r["rate"])].append(r)
print(f'{"server":<18} {"msg/s":>6} {"offered/s":>10} {"connected":>9} {"delivered/s":>11} {"lost":>8} {"p50_ms":>8} '
      f'{"p99_ms":>8} {"server_cpu":>10} {"loadgen%":>8}  pass')
knee = defaultdict(float)
for (server, rate), rs in sorted(runs.items()):
    ok_runs = [r for r in rs if r["run"]]
    if not ok_runs:
        print(f"{server:<18} {rate:>6g}  (no result)")
        continue
    med = lambda f: statistics.median(f(r) for r in ok_runs)
    connected = med(lambda r: r["run"]["connected"])
    lost = med(lambda r: r["run"]["deliveries_lost"])
    p50 = med(lambda r: r["run"]["latency_ms"]["p50"])
    p99 = med(lambda r: r["run"]["latency_ms"]["p99"])
    dps = med(lambda r: r["run"]["deliveries_per_sec"])
    cpu = med(lambda r: r["server_cpu_s"] / max(r["run"]["measure_seconds"] + r["run"]["ramp_seconds"] + 2.0, 1e-9))
    lg = med(lambda r: max(r["run"]["loadgen_cpu_pct_per_thread"] or [0]))
    # A run passes when every client connected, every delivery arrived and p99 <= 500 ms (a
    # server still busy with the previous rate may take no client at all: that is no pass).
    passed = len(ok_runs) == len(rs) and all(
        r["run"]["connected"] == clients and r["run"]["deliveries_expected"] > 0
        and r["run"]["deliveries_lost"] == 0 and r["run"]["latency_ms"]["p99"] <= 500
        for r in ok_runs)
    if passed:
        knee[server] = max(knee[server], rate * clients)
    print(f'{server:<18} {rate:>6g} {rate * clients:>10.0f} {connected:>9.0f} {dps:>11.0f} {lost:>8.0f} {p50:>8.1f} '
          f'{p99:>8.1f} {cpu * 100:>9.0f}% {lg:>7.0f}%  {"yes" if passed else "no"}')
print()
for server in sorted({s for s, _ in runs}):
    print(f"knee {server}: {knee[server]:.0f} deliveries/s (every repeat lossless, p99 <= 500 ms)")
PY
rm -f "$results"
