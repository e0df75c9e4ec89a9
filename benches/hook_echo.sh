#!/usr/bin/env bash
# Echo through the event hook (worker.app = "http"): loadgen's echo at each rate through a
# gatewire (2 shards, one worker thread) whose worker POSTs every event to a backend —
# examples/http-backend/echo.py (Python's http.server), echo_async.py (Python on asyncio) and
# echo.js (Node, skipped without node) — against the Rust echo app in the same run. Every
# repeat printed. With PHP GatewayWorker available (GATEWAYWORKER_DIR and ext-event, as for
# benches/echo_peers.sh), its whole stack (Register, Gateway, BusinessWorker) runs the same echo
# as the "php" row.
#
# Usage: benches/hook_echo.sh [CLIENTS]   (default 10000)
# RATES (echoes/s, default "1000 2000 5000"), REPEATS (default 2), DURATION (default 10);
# HOOK_EVENTS sets worker.http.events (e.g. '"websocket_connect", "message", "close"');
# BACKENDS picks among "rust python python-async node php".
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup "$0" "$@"
clients=${1:-10000}
rates=(${RATES:-1000 2000 5000})
if [ -n "${BACKENDS:-}" ]; then
  backends=($BACKENDS)
else
  backends=(rust python python-async)
  command -v node >/dev/null && backends+=(node)
  php_gatewayworker_available && backends+=(php)
fi
results=$(mktemp)

start_backend() { # python|node → BACKEND_PID, BACKEND_URL
  local port
  port=$(free_port)
  case $1 in
    python) python3 "$root/examples/http-backend/echo.py" "$port" & ;;
    python-async) python3 "$root/examples/http-backend/echo_async.py" "$port" & ;;
    node) node "$root/examples/http-backend/echo.js" "$port" & ;;
  esac
  BACKEND_PID=$!
  BACKEND_URL="http://127.0.0.1:$port/events"
  sleep 1
}

for rep in $(seq 1 "${REPEATS:-2}"); do
  for backend in "${backends[@]}"; do
    if [ "$backend" = php ]; then
      start_php
      PUBLIC_URL=$PHP_URL WORKER_PID=$PHP_PID
    elif [ "$backend" = rust ]; then
      start_gatewire 2 echo
    else
      start_backend "$backend"
      start_gatewire 2 http "$(printf '[worker.http]\nurl = "%s"\n%s\n' "$BACKEND_URL" \
        "${HOOK_EVENTS:+events = [$HOOK_EVENTS]}")"
    fi
    for rate in "${rates[@]}"; do
      json=$(mktemp)
      echo_round "$rate" "$WORKER_PID" "$json"
      record_run "$json" backend="$backend" rate="$rate" rep="$rep" >>"$results"
    done
    case $backend in
      php) stop_php ;;
      rust) stop_gatewire ;;
      *) stop_gatewire; kill "$BACKEND_PID" 2>/dev/null; wait "$BACKEND_PID" 2>/dev/null || true ;;
    esac
  done
done

echo "## echo through the event hook: $clients clients, 64 B, 2 shards, 1 worker thread"
python3 - "$results" <<'PY'
import json, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["rate"], r["backend"])].append(r)
print(f'{"rate":>6} {"backend":<12} {"rep":>3} {"answered/s":>10} {"lost":>6} {"p50_ms":>8} {"p99_ms":>8}')
for (rate, backend), runs in sorted(rows.items()):
    for r in sorted(runs, key=lambda r: r["rep"]):
        run = r["run"]
        if not run:
            print(f'{rate:>6.0f} {backend:<12} {r["rep"]:>3}  (no result)')
            continue
        lat = run["latency_ms"]
        print(f'{rate:>6.0f} {backend:<12} {r["rep"]:>3} {run["deliveries_per_sec"]:>10.0f} '
              f'{run["deliveries_lost"]:>6} {lat["p50"]:>8.2f} {lat["p99"]:>8.2f}')
PY
rm -f "$results"
