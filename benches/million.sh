#!/usr/bin/env bash
# The full run: 1,000,000 WebSocket clients on one gateway, one broadcast to all of them, then a
# ping to every client (each must answer through the gateway). Needs root (network namespace,
# sysctls) and ~8 GB of free memory with loadgen on the same box.
# Runs inside a private network namespace when it can (clean socket counts, no port clashes),
# raising net.ipv4.tcp_child_ehash_entries first and restoring it on exit.
# Usage: benches/million.sh [CLIENTS] [SHARDS]   (default 1000000 clients, 64 shards)
# RATE and DURATION: broadcasts per second and the measurement (default 0.1 and 10: one
# broadcast, then 10 s for it to arrive); CONNECT_RATE: the ramp asked for (default 50000/s).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
clients=${1:-1000000}
shards=${2:-64}

. "$here/lib.sh"
# A million receiving sockets each hold at least a page while a broadcast is in them: the
# default tcp_mem (about 2.2 GB before the kernel starts dropping, on a 24 GB box) is below that,
# and memory pressure turns into retransmission timeouts of seconds. tcp_mem is host-wide.
export HOST_SYSCTLS=${HOST_SYSCTLS-net.ipv4.tcp_mem=2097152,3145728,4194304}
bench_setup "$0" "$@"
start_gatewire "$shards" broadcast
trap stop_gatewire EXIT
threads=$(( (clients + 14999) / 15000 ))
# Sample the kernel's socket counts during the run; report the peak (teardown comes after).
( while sleep 2; do grep '^TCP:' /proc/net/sockstat; done > "$work/sockstat.log" ) &
sampler=$!
echo "## million: $clients clients, $shards shards, $threads loadgen threads (+ a receiver each)"
"$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --threads "$threads" --scenario broadcast \
  --publishers 1 --rate "${RATE:-0.1}" --duration "${DURATION:-10}" --connect-rate "${CONNECT_RATE:-50000}" \
  --source-ips 127.1.0.1-127.1.0.40 --server-pid "$GW_PID" --ping-at-end --json "${JSON_OUT:-/dev/null}" 2>&1 |
  grep -v '^\[' || true
kill "$sampler" 2>/dev/null || true
echo "kernel TCP counters: $(tcp_counters)"
peak=$(sort -t' ' -k11 -n "$work/sockstat.log" | tail -n1)
pages=$(echo "$peak" | awk '{print $NF}')
echo "kernel sockets at the peak of socket memory: $peak"
echo "kernel socket memory at that peak: $(( pages * 4096 / 1048576 )) MiB ($(( pages * 4096 / (clients > 0 ? clients : 1) )) B per client)"
