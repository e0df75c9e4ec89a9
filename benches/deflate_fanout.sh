#!/usr/bin/env bash
# Broadcast fanout with permessage-deflate against without: gatewire (2 shards, the broadcast
# worker) with `compression = true` and without, 10,000 clients that offer permessage-deflate,
# one publisher sending a compressible JSON payload (PAYLOAD bytes, default 1024: quotes of
# symbol, price and volume), runs alternated, every repeat shown.
# Usage: benches/deflate_fanout.sh [CLIENTS]   (default 10000)
# RATES (messages/s, default "50 100 200 300"), REPEATS (default 2), DURATION (default 5).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
rates=(${RATES:-50 100 200 300})
repeats=${REPEATS:-2}
results=$(mktemp)
scenario_args=(--scenario broadcast --publishers 1)
export PAYLOAD=${PAYLOAD:-1024} LOADGEN_ARGS="--deflate --json-payload"

for rep in $(seq 1 "$repeats"); do
  for compression in false true; do
    GATEWAY_EXTRA="compression = $compression" start_gatewire 2 broadcast
    measure_rates "compression-$compression" "$PUBLIC_URL" "$rep" "$GW_PID" "$WORKER_PID"
    stop_gatewire
  done
done

echo "## deflate fanout: $clients clients, ${PAYLOAD} B JSON, broadcast from 1 publisher"
python3 "$root/benches/side_by_side.py" "$results" "$clients" --per-client --p99-limit 500 --best-is knee
rm -f "$results"
