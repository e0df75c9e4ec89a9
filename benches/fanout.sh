#!/usr/bin/env bash
# Broadcast fanout through gatewire: P publishers, every client receives every message.
# Usage: benches/fanout.sh [SHARDS] [CLIENTS...]   (default: 8 shards; 1000, 10000, 100000 clients)
# RATE (messages/s across publishers), DURATION and PAYLOAD may be set in the environment.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
shards=${1:-8}
shift || true
counts=("$@")
[ $# -eq 0 ] && counts=(1000 10000 100000)
rate=${RATE:-2}
start_gatewire "$shards" broadcast
trap stop_gatewire EXIT
for n in "${counts[@]}"; do
  echo "## broadcast: $n clients, $shards shard(s), $rate msg/s, ${PAYLOAD:-64} B"
  "$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$n" --scenario broadcast --publishers 1 \
    --rate "$rate" --payload "${PAYLOAD:-64}" --duration "${DURATION:-5}" \
    --source-ips 127.1.0.1-127.1.0.8 --server-pid "$GW_PID" 2>/dev/null
  echo
done
