#!/usr/bin/env bash
# The handshake rate with and without token authentication ([gateway.auth]): gatewire (2 shards,
# the echo worker) takes CLIENTS WebSocket connections offered at CONNECT_RATE per second, each
# with a token in its URL (?token=) when auth is on; loadgen reports the connects per second and
# the connect latency, and the gateway's CPU over the whole run is read from /proc. Modes: off
# (no [gateway.auth]), hs256, rs256, es256 (keys: engine/tests/fixtures/jwt, made for the tests).
# Runs alternated, REPEATS (default 3) of each.
# Usage: benches/auth_handshake.sh [CLIENTS]   (default 10000; CONNECT_RATE default 20000)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
repeats=${REPEATS:-3}
modes=(${MODES:-off hs256 rs256 es256})
keys=$root/engine/tests/fixtures/jwt
scratch=$(mktemp -d)
results=$scratch/results
trap 'rm -rf "$scratch"' EXIT

# auth_toml MODE: the [gateway.auth] section for MODE (empty for off).
auth_toml() {
  case $1 in
    off) ;;
    hs256) printf '[gateway.auth]\nsecret = "bench-secret"\n' ;;
    rs256|es256) printf '[gateway.auth]\npublic_key = "%s/%s-public.pem"\n' "$keys" "$1" ;;
  esac
}

# token MODE: a token the gateway in MODE accepts (one for every client: the cost measured is
# the verification, the same for any token).
token() {
  case $1 in
    off) ;;
    hs256) (cd "$scratch" && "$bin/gatewire" token --set gateway.auth.secret=bench-secret --sub bench --ttl 3600) ;;
    rs256|es256) (cd "$scratch" && "$bin/gatewire" token --private-key "$keys/$1-private.pem" --sub bench --ttl 3600) ;;
  esac
}

for rep in $(seq 1 "$repeats"); do
  for mode in "${modes[@]}"; do
    start_gatewire 2 echo "$(auth_toml "$mode")"
    url=$PUBLIC_URL
    [ "$mode" = off ] || url="${PUBLIC_URL}?token=$(token "$mode")"
    json=$(mktemp)
    before=$(process_ticks "$GW_PID")
    "$bin/loadgen" --url "$url" --clients "$clients" --scenario idle --duration 1 \
      --connect-rate "${CONNECT_RATE:-20000}" --source-ips 127.1.0.1-127.1.0.8 \
      --json "$json" >/dev/null 2>&1 || true
    after=$(process_ticks "$GW_PID")
    record_run "$json" mode="$mode" rep="$rep" gateway_ticks=$((after - before)) \
      hz="$(getconf CLK_TCK)" >>"$results"
    stop_gatewire
  done
done

echo "## handshakes: $clients clients offered at ${CONNECT_RATE:-20000}/s, 2 shards; every repeat"
python3 - "$results" "$clients" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[r["mode"]].append(r)
clients = int(sys.argv[2])
print(f'{"mode":<6} {"connected":>9} {"connects/s":>10} {"connect p50 ms":>14} {"p99 ms":>7} '
      f'{"gateway CPU us/handshake":>24}  each repeat (connects/s, us/handshake)')
for mode, runs in rows.items():
    ok = [r for r in runs if r["run"]]
    cpu = [r["gateway_ticks"] / r["hz"] * 1e6 / max(r["run"]["connected"], 1) for r in ok]
    med = lambda f: statistics.median(f(r) for r in ok)
    each = " ".join(f'{r["run"]["connect_per_sec"]:.0f}/{c:.0f}' for r, c in zip(ok, cpu))
    print(f'{mode:<6} {med(lambda r: r["run"]["connected"]):>9.0f} '
          f'{med(lambda r: r["run"]["connect_per_sec"]):>10.0f} '
          f'{med(lambda r: r["run"]["connect_ms"]["p50"]):>14.2f} '
          f'{med(lambda r: r["run"]["connect_ms"]["p99"]):>7.2f} '
          f'{statistics.median(cpu):>24.1f}  {each}')
PY
