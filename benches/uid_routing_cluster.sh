#!/usr/bin/env bash
# The store's cost across hosts, in the cluster test bed (engine/tests/cluster.rs): four gateway
# hosts of 8 shards each (32 shards) in network namespaces, one worker host (chat, 2 threads),
# 50 clients per gateway host each in a room of its own sending 10 messages/s; the layout is run
# with the store off, then on (Redis on host A). Prints packets per room send and the gateway
# hosts' CPU per 1,000 sends. Needs root (or CAP_NET_ADMIN), iproute2's ip and redis-server.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
environment
cd "$root"
cargo test --release --quiet -p gatewire --test cluster store_cost_across_gateway_hosts \
  -- --ignored --nocapture 2>&1 | grep -vE '^(running [0-9]+ test|test result|$)'
