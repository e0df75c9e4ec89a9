#!/usr/bin/env bash
# Idle memory per client: gateway RSS growth ÷ clients, with N idle WebSocket clients.
# Usage: benches/idle_memory.sh [CLIENTS] [SHARDS]   (default 20000 clients, 2 shards: each
# shard's fd table stays under a 20000 fd limit). Clients stay idle DURATION seconds (default 20,
# so the gateway parks them: gateway.park_after defaults to 5 s).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-20000}
shards=${2:-2}
start_gatewire "$shards" echo
trap stop_gatewire EXIT
echo "## idle memory: $clients clients, $shards shards"
"$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --scenario idle --duration "${DURATION:-20}" \
  --source-ips 127.1.0.1-127.1.0.8 --server-pid "$GW_PID" --json "${JSON_OUT:-/dev/null}" 2>/dev/null
echo "kernel sockets: $(grep '^TCP:' /proc/net/sockstat)"
