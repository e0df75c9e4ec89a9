#!/usr/bin/env bash
# Where a gateway's CPU goes during a broadcast fanout: gatewire (SHARDS shards, the broadcast
# worker) under loadgen at one rate, `perf record` on the gateway process for PROFILE_SECONDS once
# the clients are connected, the top symbols printed; with C2C=1 also `perf c2c` (cache lines
# written by one core and read or written by another: what shared-nothing shards must not have).
# GATEWIRE_BIN profiles another build. Usage: benches/fanout_profile.sh [CLIENTS] [RATE]   (defaults 10000 clients, 320 messages/s:
# 3.2M deliveries/s). SHARDS (default 2), PROFILE_SECONDS (default 8), TOP (default 30),
# KEEP_PROFILE=DIR (keeps the perf data). PAYLOAD (bytes, default 64), LOADGEN_ARGS (e.g.
# "--deflate --json-payload") and GATEWAY_EXTRA (e.g. "compression = true") shape the run;
# LOADGEN_TOO=1 profiles loadgen's process as well, in the same seconds, reported apart.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v perf >/dev/null || { echo "fanout_profile.sh needs perf" >&2; exit 1; }
if [ "${C2C:-0}" = 1 ] && ! perf mem record -e list >/dev/null 2>&1; then
  echo "perf c2c needs memory sampling events (AMD IBS, Intel PEBS), which this CPU or VM does" \
    "not expose (perf mem: $(perf mem record -e list 2>&1 | head -1))" >&2
  exit 2
fi
bench_setup "$0" "$@"
clients=${1:-10000}
rate=${2:-320}
shards=${SHARDS:-2}
seconds=${PROFILE_SECONDS:-8}
out=$(mktemp -d)
trap 'stop_gatewire; rm -rf "$out"' EXIT

start_gatewire "$shards" broadcast
# Connecting 10,000 clients takes a few seconds; the profile starts once loadgen measures.
# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
"$bin/loadgen" --url "$PUBLIC_URL" --clients "$clients" --scenario broadcast --publishers 1 \
  --rate "$rate" --payload "${PAYLOAD:-64}" --duration $((seconds + 4)) \
  --source-ips 127.1.0.1-127.1.0.8 ${LOADGEN_ARGS:-} \
  --json "$out/run.json" >"$out/loadgen.log" 2>&1 &
loadgen=$!
for _ in $(seq 1 600); do
  grep -q "connected $clients " "$out/loadgen.log" 2>/dev/null && break
  sleep 0.1
done
sleep 1
if [ "${C2C:-0}" = 1 ]; then
  perf c2c record -o "$out/c2c.data" -p "$GW_PID" -- sleep "$seconds" >/dev/null 2>&1
else
  if [ "${LOADGEN_TOO:-0}" = 1 ]; then
    perf record -g -o "$out/loadgen.data" -p "$loadgen" -- sleep "$seconds" >/dev/null 2>&1 &
    loadgen_perf=$!
  fi
  perf record -g -o "$out/perf.data" -p "$GW_PID" -- sleep "$seconds" >/dev/null 2>&1
  [ -n "${loadgen_perf:-}" ] && wait "$loadgen_perf"
fi
wait "$loadgen" || true
# KEEP_PROFILE=DIR keeps the perf data there (perf annotate, perf report by hand).
[ -n "${KEEP_PROFILE:-}" ] && mkdir -p "$KEEP_PROFILE" && cp "$out"/*.data "$KEEP_PROFILE"/
python3 - "$out/run.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
lat = run.get("latency_ms") or {}
print("## run:", {k: run.get(k) for k in ("connected", "deliveries_per_sec", "deliveries_lost")},
      "p50/p99 ms:", lat.get("p50"), lat.get("p99"))
PY
echo "## profile: gateway, $shards shards, $clients clients, $rate messages/s, ${seconds}s"
if [ "${C2C:-0}" = 1 ]; then
  perf c2c report -i "$out/c2c.data" --stdio --stats 2>/dev/null | head -40
  perf c2c report -i "$out/c2c.data" --stdio -N --full-symbols 2>/dev/null |
    sed -n '/Shared Data Cache Line Table/,/Shared Cache Line Distribution/p' | head -40
else
  top_symbols() {
    perf report -i "$1" --no-children --sort symbol --stdio 2>/dev/null |
      grep -v '^#' | grep '%' | grep -v '^ *-' | grep -v '^ *|' | head -"${TOP:-30}"
  }
  top_symbols "$out/perf.data"
  if [ -f "$out/loadgen.data" ]; then
    echo "## profile: loadgen, the same ${seconds}s"
    top_symbols "$out/loadgen.data"
  fi
fi
