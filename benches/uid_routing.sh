#!/usr/bin/env bash
# Sends to one uid among many, with the store off (every gateway shard gets every send, as in
# GatewayWorker) and on (Redis says which shard holds the uid), side by side in one run.
# Usage: benches/uid_routing.sh [SHARDS] [CLIENTS]   (default: 8 shards, 100000 clients)
# Every client takes a uid (/nick); one publisher sends RATE messages/s (default 2000) for
# DURATION seconds (default 10), each to a random uid (/msg), through one worker thread running
# benches/src/bin/uid-app.rs (the chat's private messages without its join announcements).
# REPEATS (default 2) alternates off/on. SLOWLOG=1 prints Redis's slow log after each run. Needs redis-server (Debian: apt-get install redis-server);
# the script starts its own on a unix socket and stops it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ! command -v redis-server >/dev/null; then
  echo "uid_routing.sh needs redis-server (Debian: apt-get install redis-server)" >&2
  exit 1
fi
if [ "${BENCH_IN_NETNS:-}" != 1 ]; then
  (cd "$root" && cargo build --release --quiet -p gatewire-benches --bin uid-app)
fi
bench_setup "$0" "$@"
export WORKER_BIN="$bin/uid-app"
# Parking is off: every client here goes idle at the same instant, and parking them all at once in
# the middle of the measurement measures that burst, not routing (with it on: one second with a
# p99 of 75-90 ms with the store on, 1.6 ms off, as the store's thread hops wait for the CPU).
export GATEWAY_EXTRA=${GATEWAY_EXTRA:-park_after = 0.0}
shards=${1:-8}
clients=${2:-100000}
rate=${RATE:-2000}
duration=${DURATION:-10}
repeats=${REPEATS:-2}

top=$(mktemp -d)
redis-server --port 0 --unixsocket "$top/redis.sock" --save "" --appendonly no --dir "$top" \
  --slowlog-log-slower-than 5000 \
  >/dev/null 2>&1 &
REDIS_PID=$!
cleanup() {
  stop_gatewire 2>/dev/null || true
  kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$top"
}
trap cleanup EXIT
for _ in $(seq 50); do [ -S "$top/redis.sock" ] && break; sleep 0.1; done
echo "redis:      $(redis-server --version | cut -d' ' -f3)"
echo "## uid routing: $shards shards, $clients clients each with a uid, 1 publisher, $rate sends/s, ${duration}s, 1 worker thread"
echo

store_on="[store]
backend = \"redis\"
redis_url = \"redis+unix://$top/redis.sock\"
${STORE_EXTRA:-}"

printf '%-6s %-6s %-8s %-12s %-14s %-18s %-8s %-8s %-6s %-9s\n' \
  repeat store sends packets/send gateway_cpu_s cpu_ms/1000_sends p50_ms p99_ms lost fallbacks
results="$top/results"
for r in $(seq "$repeats"); do
  for mode in ${MODES:-off on}; do
    work=$(mktemp -d)
    extra=""
    [ "$mode" = on ] && extra=$store_on
    start_gatewire "$shards" chat "$extra" >/dev/null
    redis-cli -s "$top/redis.sock" flushall >/dev/null
    json="$work/run.json"
    "$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --scenario uid \
      --publishers 1 --rate "$rate" --payload 64 --duration "$duration" \
      --source-ips 127.1.0.1-127.1.0.8 --server-pid "$GW_PID" --json "$json" >/dev/null 2>&1
    sends=$(worker_metric gatewire_routed_commands_total)
    packets=$(worker_metric gatewire_routed_packets_total)
    fallbacks=$(worker_metric gatewire_store_fallbacks_total)
    python3 - "$json" "$r" "$mode" "$sends" "$packets" "$fallbacks" <<'PY' | tee -a "$results"
import json, sys
j = json.load(open(sys.argv[1]))
r, mode = sys.argv[2], sys.argv[3]
sends, packets, fallbacks = (float(x) for x in sys.argv[4:7])
cpu = j["server_cpu_seconds"] or 0.0
sent = max(j["messages_sent"], 1)
lat = j["latency_ms"]
print(f'{r:<6} {mode:<6} {j["messages_sent"]:<8} {packets / max(sends, 1):<12.2f} {cpu:<14.2f} '
      f'{1e6 * cpu / sent:<18.1f} {lat["p50"]:<8.2f} {lat["p99"]:<8.2f} {j["deliveries_lost"]:<6} '
      f'{fallbacks:<9.0f}')
by_second = ", ".join("-" if v is None else f"{v:.1f}" for v in j["latency_p99_ms_by_second"])
print(f'    p99 ms by second: {by_second}')
PY
    if [ -n "${SLOWLOG:-}" ]; then
      echo "    redis slowlog (commands over 5 ms):"
      redis-cli -s "$top/redis.sock" slowlog get 10 | grep -v "gatewire:uid" | tr '\n' ' '
      redis-cli -s "$top/redis.sock" slowlog reset >/dev/null
      echo
    fi
    stop_gatewire
  done
done
echo
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith(" ")]
def med(mode, col):
    return statistics.median(float(r[col]) for r in rows if r[1] == mode)
print("## medians")
for mode in ("off", "on"):
    print(f'store {mode:<3}: packets/send {med(mode, 3):.2f}, gateway cpu per 1000 sends '
          f'{med(mode, 5):.1f} ms, p50 {med(mode, 6):.2f} ms, p99 {med(mode, 7):.2f} ms')
print(f'gateway cpu per send, off/on: {med("off", 5) / max(med("on", 5), 1e-9):.1f}x')
PY
