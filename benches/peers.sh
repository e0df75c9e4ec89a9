#!/usr/bin/env bash
# Broadcast fanout side by side: gatewire (2 shards, publish through the broadcast worker) and
# the peers written here, built from the package registries only (benches/peers/*: a
# tokio-tungstenite server, and a node `ws` server when node and npm are present), under the
# same loadgen in the same private namespace, runs alternated, median of REPEATS.
# Usage: benches/peers.sh [CLIENTS]   (default 10000)
# RATES (messages/s, default "10 100 200 400"), REPEATS (default 2), DURATION (default 5).
# BACKENDS (default "auto") runs gatewire once per runtime backend named (e.g. "glommio io_uring
# epoll"), each its own row (gatewire-BACKEND); SHARDS (default 2) likewise runs gatewire once per
# shard count named (e.g. "1 2": rows gatewire-1shard, gatewire-2shards); NO_PEERS=1 runs gatewire
# alone; BUILDS="label=path ..." adds a row per other gatewire build (e.g. the last commit's
# binary: an A/B of a change under the same load in the same run).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "${NO_PEERS:-0}" = 1 ] || build_peers
bench_setup "$0" "$@"
clients=${1:-10000}
rates=(${RATES:-10 100 200 400})
repeats=${REPEATS:-2}
results=$(mktemp)
scenario_args=(--scenario broadcast --publishers 1)

backends=(${BACKENDS:-auto})
layouts=(${SHARDS:-2})
peers=$([ "${NO_PEERS:-0}" = 1 ] || peer_names)
for rep in $(seq 1 "$repeats"); do
  for backend in "${backends[@]}"; do
    for shards in "${layouts[@]}"; do
      name=gatewire
      [ "${#backends[@]}" -gt 1 ] && name=$name-$backend
      [ "${#layouts[@]}" -gt 1 ] && name=$name-${shards}shard$([ "$shards" = 1 ] || echo s)
      GATEWIRE_RUN_BACKEND=$backend start_gatewire "$shards" broadcast
      measure_rates "$name" "$PUBLIC_URL" "$rep" "$GW_PID" "$WORKER_PID"
      stop_gatewire
      for build in ${BUILDS:-}; do
        GATEWIRE_BIN=${build#*=} GATEWIRE_RUN_BACKEND=$backend start_gatewire "$shards" broadcast
        measure_rates "$name-${build%%=*}" "$PUBLIC_URL" "$rep" "$GW_PID" "$WORKER_PID"
        stop_gatewire
      done
    done
  done
  for peer in $peers; do
    start_peer "$peer"
    measure_rates "$peer" "$PEER_URL" "$rep" "$PEER_PID"
    stop_peer
  done
done

echo "## peers: $clients clients, 64 B, broadcast from 1 publisher; medians of $repeats repeats"
python3 "$root/benches/side_by_side.py" "$results" "$clients" --per-client --p99-limit 500 --best-is knee
rm -f "$results"
