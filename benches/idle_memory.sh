#!/usr/bin/env bash
# Idle memory per client: server RSS growth ÷ clients, with N idle WebSocket clients, for
# gatewire and then for the peers in benches/peers (the same loadgen, one after the other, in the
# same private namespace; REPEATS rounds, alternated, default 1).
# Usage: benches/idle_memory.sh [CLIENTS] [SHARDS]   (default 19000 clients, 2 shards). The peers
# run in one fd table, which holds 20000 here, so they are skipped above 19000 clients (PEERS=0
# skips them always). Clients stay idle DURATION seconds (default 20, so the gateway parks them:
# gateway.park_after defaults to 5 s). GATEWAY_EXTRA adds gateway keys and LOADGEN_ARGS loadgen
# arguments (e.g. GATEWAY_EXTRA="compression = true" LOADGEN_ARGS=--deflate: every client
# negotiates permessage-deflate).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
clients=${1:-19000}
shards=${2:-2}
if [ "${PEERS:-1}" = 1 ] && [ "$clients" -le 19000 ]; then build_peers; fi
bench_setup "$0" "$@"
results=()

# measure NAME URL PID: one idle run; prints loadgen's table and keeps NAME's bytes per client.
measure() {
  local json
  json=$(mktemp)
  echo "## idle memory: $1, $clients clients"
  "$bin/loadgen" "$(loadgen_cpus)" --url "$2" --clients "$clients" --scenario idle \
    --duration "${DURATION:-20}" --source-ips 127.1.0.1-127.1.0.8 --server-pid "$3" \
    ${LOADGEN_ARGS:-} --json "$json" 2>/dev/null
  echo "kernel sockets: $(grep '^TCP:' /proc/net/sockstat)"
  echo
  results+=("$1 $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["connected"], round(r["server_rss_per_client_bytes"] or 0))' "$json")")
  rm -f "$json"
}

for _ in $(seq 1 "${REPEATS:-1}"); do
  start_gatewire "$shards" echo
  trap stop_gatewire EXIT
  measure "gatewire ($shards shards)" "$PUBLIC_URL" "$GW_PID"
  stop_gatewire
  trap - EXIT
  if [ "${PEERS:-1}" = 1 ] && [ "$clients" -le 19000 ]; then
    for peer in $(peer_names); do
      start_peer "$peer"
      trap stop_peer EXIT
      measure "$peer" "$PEER_URL" "$PEER_PID"
      stop_peer
      trap - EXIT
    done
  fi
done

echo "## idle memory per client ($clients clients requested)"
printf '%-22s %10s %14s\n' server connected bytes/client
for r in "${results[@]}"; do
  # The name may hold spaces: the last two words are the figures.
  set -- $r
  n=$#
  printf '%-22s %10s %14s\n' "${*:1:n-2}" "${@:n-1:1}" "${@:n:1}"
done
