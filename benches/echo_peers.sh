#!/usr/bin/env bash
# Echo through a business worker, side by side: gatewire (a shard per core, one worker thread
# running the `echo` app) and PHP GatewayWorker (Register + Gateway + BusinessWorker answering with
# Gateway::sendToCurrentClient), under the same loadgen in the same private namespace, runs
# alternated, median of REPEATS. Client → gateway → worker → gateway → client, round trip timed.
#
# PHP runs when GATEWAYWORKER_DIR is a directory whose vendor/autoload.php loads GatewayWorker
# and Workerman (what `composer require workerman/gateway-worker` makes; nothing of it is in this
# repository) and PHP (default `php`) has the pcntl, posix and event extensions — without `event`
# Workerman falls back to select(), which cannot hold 10,000 clients. E.g.
#   PHP="php -d extension=/path/to/event.so" GATEWAYWORKER_DIR=/path/to/gw benches/echo_peers.sh
# PHP_GATEWAYS and PHP_WORKERS set its process counts (default: one gateway process per core the
# server may use, and as many workers, as gatewire runs one shard per core).
#
# SERVER_CPUS (a CPU list, e.g. 0) runs each server, its every process and thread, on those CPUs
# only, and sizes both to them (gatewire's shards, PHP's gateway and worker processes); with
# LOADGEN_CPUS naming the others (e.g. 1), the load generator no longer takes its CPU from the
# server under test. Unset (the default), everything shares the whole box.
#
# Usage: benches/echo_peers.sh [CLIENTS]   (default 10000)
# RATES (echoes/s offered across all clients, default 20000 to 100000 in steps of 10000 up to
# 80000: the steady rate is only as fine as this list), REPEATS
# (default 2), DURATION (default 6). The steady rate is the highest offered rate at which every
# repeat answered every echo with p99 <= STEADY_P99_MS (default 100).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
rates=(${RATES:-20000 30000 40000 50000 60000 70000 80000 100000})
repeats=${REPEATS:-2}
results=$(mktemp)
scenario_args=(--scenario echo)
DURATION=${DURATION:-6}

server_cores=$(server_cpu_count)
export PHP_GATEWAYS=${PHP_GATEWAYS:-$server_cores} PHP_WORKERS=${PHP_WORKERS:-$server_cores}

servers=(gatewire)
php_gatewayworker_available && servers+=(php-gatewayworker)

for rep in $(seq 1 "$repeats"); do
  for server in "${servers[@]}"; do
    case $server in
      gatewire)
        start_gatewire "$server_cores" echo
        measure_rates gatewire "$PUBLIC_URL" "$rep" "$GW_PID" "$WORKER_PID"
        stop_gatewire
        ;;
      php-gatewayworker)
        start_php
        measure_rates php-gatewayworker "$PHP_URL" "$rep" "$PHP_PID"
        stop_php
        ;;
    esac
  done
done

echo "## echo through a worker: $clients clients, 64 B; medians of $repeats repeats;" \
  "servers on CPUs ${SERVER_CPUS:-any}, loadgen on CPUs ${LOADGEN_CPUS:-any}"
python3 "$root/benches/side_by_side.py" "$results" "$clients" --total \
  --p99-limit "${STEADY_P99_MS:-100}" --best-is steady --ratio gatewire php-gatewayworker
rm -f "$results"
