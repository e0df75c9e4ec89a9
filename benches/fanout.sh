#!/usr/bin/env bash
# Broadcast fanout through gatewire: P publishers, every client receives every message.
# Usage: benches/fanout.sh [SHARDS] [CLIENTS...]   (default: 1 shard, 1000 and 5000 clients)
# RATE (messages/s across publishers), DURATION and PAYLOAD may be set in the environment.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
shards=${1:-1}
shift || true
counts=("${@:-1000 5000}")
[ $# -eq 0 ] && counts=(1000 5000)
rate=${RATE:-100}
build
environment
start_gatewire "$shards" broadcast
trap stop_gatewire EXIT
for n in "${counts[@]}"; do
  echo "## broadcast: $n clients, $shards shard(s), $rate msg/s, ${PAYLOAD:-64} B"
  "$bin/loadgen" --url "$PUBLIC_URL" --clients "$n" --scenario broadcast --publishers 1 \
    --rate "$rate" --payload "${PAYLOAD:-64}" --duration "${DURATION:-5}" \
    --source-ips 127.1.0.1-127.1.0.8 --server-pid "$GW_PID" 2>/dev/null
  echo
done
