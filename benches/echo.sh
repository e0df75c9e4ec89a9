#!/usr/bin/env bash
# Echo through a business worker: client → gateway → worker → gateway → client, round trip timed.
# Usage: benches/echo.sh [SHARDS] [CLIENTS]   (default 2 shards, 10000 clients)
# RATE (messages/s across all clients), DURATION and PAYLOAD may be set in the environment;
# JSON_OUT=FILE keeps loadgen's figures (with p99 per second of the measurement);
# WORKER_THREADS sets the worker's thread count (default 1).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
shards=${1:-2}
clients=${2:-10000}
start_gatewire "$shards" echo
trap stop_gatewire EXIT
echo "## echo: $clients clients, $shards shard(s), ${RATE:-10000} msg/s, ${PAYLOAD:-64} B"
"$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --scenario echo --rate "${RATE:-10000}" \
  --payload "${PAYLOAD:-64}" --duration "${DURATION:-10}" --source-ips 127.1.0.1-127.1.0.8 \
  --server-pid "$GW_PID" ${JSON_OUT:+--json "$JSON_OUT"} 2>/dev/null
