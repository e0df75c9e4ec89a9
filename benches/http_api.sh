#!/usr/bin/env bash
# The HTTP API against the Rust GatewayClient, side by side: sendToUid calls at full speed from
# THREADS threads (each one keep-alive HTTP connection), the same calls as /api/batch requests of
# BATCH, and the same sends through GatewayClient in-process (what the API does behind HTTP).
# Register + gateway (2 shards) + worker in one process, the api role in another. REPEATS
# rounds, alternated; every repeat printed.
#
# Usage: benches/http_api.sh   (THREADS default 4, SECONDS default 5, BATCH 100, REPEATS 3)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ "${BENCH_IN_NETNS:-}" != 1 ]; then
  (cd "$root" && cargo build --release --quiet -p gatewire-benches --bin api-load)
fi
bench_setup "$0" "$@"
work=$(mktemp -d)
register_port=$(free_port)
api_port=$(free_port)
cat > "$work/gatewire.toml" <<TOML
[register]
listen = "127.0.0.1:$register_port"
[gateway]
listen = "websocket://127.0.0.1:$(free_port)"
start_port = $((20000 + RANDOM % 8000))
shards = 2
register_address = "127.0.0.1:$register_port"
[worker]
count = 1
register_address = "127.0.0.1:$register_port"
app = "echo"
[api]
listen = "127.0.0.1:$api_port"
register_address = "127.0.0.1:$register_port"
TOML
GATEWIRE_LOG=warn "$bin/gatewire" start --single-process -c "$work/gatewire.toml" \
  --role register,gateway,worker 2>"$work/gatewire.log" &
gw_pid=$!
GATEWIRE_LOG=warn "$bin/gatewire" start --single-process -c "$work/gatewire.toml" --role api \
  2>"$work/api.log" &
api_pid=$!
trap 'kill $gw_pid $api_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
sleep 2
echo "## sendToUid: ${THREADS:-4} threads, ${SECONDS_EACH:-5} s each, batch ${BATCH:-100}"
for rep in $(seq 1 "${REPEATS:-3}"); do
  for mode in http batch client; do
    printf 'rep %s  ' "$rep"
    "$bin/api-load" --mode "$mode" --api "127.0.0.1:$api_port" --register "127.0.0.1:$register_port" \
      --threads "${THREADS:-4}" --seconds "${SECONDS_EACH:-5}" --batch "${BATCH:-100}"
  done
done
