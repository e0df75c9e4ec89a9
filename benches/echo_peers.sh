#!/usr/bin/env bash
# Echo through a business worker, side by side: gatewire (2 shards, one worker thread running the
# `echo` app) and PHP GatewayWorker (Register + Gateway + BusinessWorker answering with
# Gateway::sendToCurrentClient), under the same loadgen in the same private namespace, runs
# alternated, median of REPEATS. Client → gateway → worker → gateway → client, round trip timed.
#
# PHP runs when GATEWAYWORKER_DIR is a directory whose vendor/autoload.php loads GatewayWorker
# and Workerman (what `composer require workerman/gateway-worker` makes; nothing of it is in this
# repository) and PHP (default `php`) has the pcntl, posix and event extensions — without `event`
# Workerman falls back to select(), which cannot hold 10,000 clients. E.g.
#   PHP="php -d extension=/path/to/event.so" GATEWAYWORKER_DIR=/path/to/gw benches/echo_peers.sh
# PHP_GATEWAYS and PHP_WORKERS set its process counts (default 2 and 2: one gateway process per
# core, as gatewire runs one shard per core).
#
# Usage: benches/echo_peers.sh [CLIENTS]   (default 10000)
# RATES (echoes/s offered across all clients, default "20000 40000 60000 80000"), REPEATS
# (default 2), DURATION (default 6). The steady rate is the highest offered rate at which every
# repeat answered every echo with p99 <= STEADY_P99_MS (default 100).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
rates=(${RATES:-20000 40000 60000 80000})
repeats=${REPEATS:-2}
php=${PHP:-php}
results=$(mktemp)

servers=(gatewire)
if [ -n "${GATEWAYWORKER_DIR:-}" ] && [ -f "$GATEWAYWORKER_DIR/vendor/autoload.php" ]; then
  if $php -m 2>/dev/null | grep -qx event; then
    servers+=(php-gatewayworker)
    echo "peer: PHP GatewayWorker ($($php -r 'echo PHP_VERSION;'), workerman $($php -r \
      "require '$GATEWAYWORKER_DIR/vendor/autoload.php'; echo \Workerman\Worker::VERSION;"), \
${PHP_GATEWAYS:-2} gateway and ${PHP_WORKERS:-2} worker processes, ext-event)"
  else
    echo "peer: PHP GatewayWorker skipped: \`$php -m\` lists no event extension"
  fi
else
  echo "peer: PHP GatewayWorker skipped: GATEWAYWORKER_DIR does not hold vendor/autoload.php"
fi

# start_php: Register, Gateway and BusinessWorker in one workerman master on free loopback
# ports; sets PHP_PID (the master), PHP_URL and php_dir.
start_php() {
  php_dir=$(mktemp -d)
  local register_port public_port inner_port
  register_port=$(free_port)
  public_port=$(free_port)
  inner_port=$((20000 + RANDOM % 8000))
  cat >"$php_dir/start.php" <<PHP
<?php
require '$GATEWAYWORKER_DIR/vendor/autoload.php';
use GatewayWorker\BusinessWorker;
use GatewayWorker\Gateway;
use GatewayWorker\Lib\Gateway as Api;
use GatewayWorker\Register;
use Workerman\Worker;
class Events {
    public static function onMessage(\$client_id, \$message) {
        Api::sendToCurrentClient(\$message);
    }
}
new Register('text://127.0.0.1:$register_port');
\$gateway = new Gateway('websocket://127.0.0.1:$public_port');
\$gateway->count = ${PHP_GATEWAYS:-2};
\$gateway->lanIp = '127.0.0.1';
\$gateway->startPort = $inner_port;
\$gateway->registerAddress = '127.0.0.1:$register_port';
\$gateway->pingInterval = 0;
\$worker = new BusinessWorker();
\$worker->count = ${PHP_WORKERS:-2};
\$worker->registerAddress = '127.0.0.1:$register_port';
\$worker->eventHandler = 'Events';
Worker::\$pidFile = __DIR__ . '/php.pid';
Worker::\$logFile = __DIR__ . '/php.log';
Worker::\$stdoutFile = __DIR__ . '/php.out';
Worker::runAll();
PHP
  (cd "$php_dir" && exec $php start.php start >/dev/null 2>&1) &
  PHP_PID=$!
  PHP_URL="ws://127.0.0.1:$public_port/"
  sleep 3
}

stop_php() {
  kill -INT "$PHP_PID" 2>/dev/null || true
  wait "$PHP_PID" 2>/dev/null || true
  rm -rf "$php_dir"
}

# process_tree_ticks PID: user+system clock ticks of PID and its children (workerman forks).
process_tree_ticks() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# measure SERVER URL PID...: one loadgen echo run per rate, a JSON line each into $results.
measure() {
  local server=$1 url=$2 rep=$3
  shift 3
  local rate json before after pid
  for rate in "${rates[@]}"; do
    json=$(mktemp)
    before=0
    for pid in "$@"; do before=$((before + $(process_tree_ticks "$pid"))); done
    "$bin/loadgen" "$(loadgen_cpus)" --url "$url" --clients "$clients" --scenario echo \
      --rate "$rate" --payload 64 --duration "${DURATION:-6}" \
      --source-ips 127.1.0.1-127.1.0.8 --json "$json" >/dev/null 2>&1 || true
    after=0
    for pid in "$@"; do after=$((after + $(process_tree_ticks "$pid"))); done
    python3 - "$json" "$server" "$rate" "$rep" "$((after - before))" "$(getconf CLK_TCK)" \
      >>"$results" <<'PY'
import json, sys
path, server, rate, rep, ticks, hz = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = None
print(json.dumps({"server": server, "rate": float(rate), "rep": int(rep), "run": r,
                  "server_cpu_s": int(ticks) / int(hz)}))
PY
    rm -f "$json"
  done
}

for rep in $(seq 1 "$repeats"); do
  for server in "${servers[@]}"; do
    case $server in
      gatewire)
        start_gatewire 2 echo
        measure gatewire "$PUBLIC_URL" "$rep" "$GW_PID" "$WORKER_PID"
        stop_gatewire
        ;;
      php-gatewayworker)
        start_php
        measure php-gatewayworker "$PHP_URL" "$rep" "$PHP_PID"
        stop_php
        ;;
    esac
  done
done

echo "## echo through a worker: $clients clients, 64 B; medians of $repeats repeats"
python3 - "$results" "$clients" "${STEADY_P99_MS:-100}" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
clients, limit = int(sys.argv[2]), float(sys.argv[3])
runs = defaultdict(list)
for r in rows:
    runs[(r["server"], r["rate"])].append(r)
print(f'{"server":<18} {"offered/s":>9} {"connected":>9} {"answered/s":>10} {"lost":>8} {"p50_ms":>8} '
      f'{"p99_ms":>8} {"server_cpu":>10} {"loadgen%":>8}  steady')
steady = defaultdict(float)
for (server, rate), rs in sorted(runs.items()):
    ok_runs = [r for r in rs if r["run"]]
    if not ok_runs:
        print(f"{server:<18} {rate:>9.0f}  (no result)")
        continue
    med = lambda f: statistics.median(f(r) for r in ok_runs)
    connected = med(lambda r: r["run"]["connected"])
    lost = med(lambda r: r["run"]["deliveries_lost"])
    p50 = med(lambda r: r["run"]["latency_ms"]["p50"])
    p99 = med(lambda r: r["run"]["latency_ms"]["p99"])
    aps = med(lambda r: r["run"]["deliveries_per_sec"])
    cpu = med(lambda r: r["server_cpu_s"] / max(r["run"]["measure_seconds"] + r["run"]["ramp_seconds"] + 2.0, 1e-9))
    lg = med(lambda r: max(r["run"]["loadgen_cpu_pct_per_thread"] or [0]))
    ok = len(ok_runs) == len(rs) and all(
        r["run"]["connected"] == clients and r["run"]["deliveries_expected"] > 0
        and r["run"]["deliveries_lost"] == 0 and r["run"]["latency_ms"]["p99"] <= limit
        for r in ok_runs)
    if ok:
        steady[server] = max(steady[server], rate)
    print(f'{server:<18} {rate:>9.0f} {connected:>9.0f} {aps:>10.0f} {lost:>8.0f} {p50:>8.1f} '
          f'{p99:>8.1f} {cpu * 100:>9.0f}% {lg:>7.0f}%  {"yes" if ok else "no"}')
print()
for server in sorted({s for s, _ in runs}):
    print(f"steady {server}: {steady[server]:.0f} echoes/s (every repeat: all answered, p99 <= {limit:g} ms)")
if steady.get("php-gatewayworker"):
    print(f'gatewire / PHP GatewayWorker: {steady["gatewire"] / steady["php-gatewayworker"]:.1f}x')
PY
rm -f "$results"
