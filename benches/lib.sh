# Shared helpers for the end-to-end bench scripts: build, print the environment, start and stop a
# gatewire deployment (register + gateway + worker with a built-in app) on free loopback ports.
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release

build() {
  (cd "$root" && cargo build --release --quiet -p gatewire -p gatewire-loadgen --bins)
}

environment() {
  echo "## environment"
  echo "date:       $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu:        $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  echo "memory:     $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel:     $(uname -r)"
  echo "rustc:      $(rustc --version)"
  echo "gatewire:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "ulimit -n:  $(ulimit -n)"
  for s in net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.ip_local_port_range \
           net.ipv4.tcp_mem fs.nr_open fs.file-max; do
    echo "$s = $(sysctl -n "$s" 2>/dev/null | tr '\t' ' ')"
  done
  echo
}

# in_private_netns SCRIPT ARGS...: re-runs the calling script inside a private network namespace
# when possible (clean socket counts, no port clashes with other programs), raising
# net.ipv4.tcp_child_ehash_entries for it first, and the host-wide sysctls in HOST_SYSCTLS
# ("name=value" words, commas for spaces inside a value; e.g. net.ipv4.tcp_mem, which a namespace
# cannot have its own of), and
# restoring them all when done. Returns only in the re-run (or when no namespace can be made),
# with IN_NETNS=1 or 0.
in_private_netns() {
  if [ "${BENCH_IN_NETNS:-}" = 1 ]; then
    IN_NETNS=1
    ip link set lo up 2>/dev/null || true
    return 0
  fi
  local old_ehash setting name value old
  old_ehash=$(sysctl -n net.ipv4.tcp_child_ehash_entries 2>/dev/null || echo "")
  if [ -n "$old_ehash" ] && command -v unshare >/dev/null &&
     sysctl -qw net.ipv4.tcp_child_ehash_entries=2097152 2>/dev/null; then
    if unshare -n true 2>/dev/null; then
      echo "running inside a private network namespace (tcp_child_ehash_entries=2097152)"
      # Restored however the run ends (an error, Ctrl-C, SIGTERM): the settings are host-wide.
      sysctls_to_restore=("net.ipv4.tcp_child_ehash_entries=$old_ehash")
      trap restore_sysctls EXIT
      trap 'exit 130' INT
      trap 'exit 143' TERM
      for setting in ${HOST_SYSCTLS:-}; do
        name=${setting%%=*}
        value=${setting#*=}
        value=${value//,/ }
        old=$(sysctl -n "$name" | tr '\t' ' ')
        if sysctl -qw "$name=$value"; then
          sysctls_to_restore+=("$name=$old")
          echo "raised $name to $value for the run (was $old)"
        fi
      done
      local status=0
      BENCH_IN_NETNS=1 unshare -n "$@" || status=$?
      exit "$status"
    fi
    sysctl -qw net.ipv4.tcp_child_ehash_entries="$old_ehash"
  fi
  echo "no private network namespace here: running on the host's loopback"
  IN_NETNS=0
}

# restore_sysctls: puts back what in_private_netns changed (its EXIT trap; runs once).
restore_sysctls() {
  local setting
  for setting in "${sysctls_to_restore[@]}"; do
    sysctl -qw "$setting" || echo "could not restore $setting" >&2
  done
  sysctls_to_restore=()
}

# tcp_counters: the kernel's TCP trouble counters for this network namespace, one line (memory
# pressure, pruned or dropped receive queues, retransmission timeouts, listen queue overflows).
tcp_counters() {
  awk '/^TcpExt:/ { if (!names) { split($0, names_a); names = 1 } else { split($0, values) } }
       END { for (i = 2; i in names_a; i++)
               if (names_a[i] ~ /^(TCPMemoryPressures|TCPAbortOnMemory|PruneCalled|RcvPruned|TCPRcvQDrop|TCPTimeouts|ListenOverflows|ListenDrops|TCPSynRetrans|SyncookiesSent)$/)
                 printf "%s=%s ", names_a[i], values[i]
             print "" }' /proc/net/netstat
}

# bench_setup SCRIPT ARGS...: builds and prints the environment once, then continues inside a
# private network namespace when possible (see in_private_netns). Call before parsing arguments.
bench_setup() {
  if [ "${BENCH_IN_NETNS:-}" != 1 ]; then
    build
    environment
  fi
  in_private_netns "$@"
}

# build_peers: builds the peer servers in benches/peers from the package registries (before the
# namespace: building needs the network) and prints their versions. The node `ws` peer is
# skipped, with a line, when node or npm is missing.
build_peers() {
  [ "${BENCH_IN_NETNS:-}" = 1 ] && return 0
  (cd "$root/benches/peers/tokio-broadcast" && cargo build --release --quiet)
  echo "peers: tokio-tungstenite ($(grep -m1 -A1 'name = "tokio-tungstenite"' \
    "$root/benches/peers/tokio-broadcast/Cargo.lock" | tail -1 | tr -d ' '))"
  if command -v node >/dev/null && command -v npm >/dev/null; then
    (cd "$root/benches/peers/node-ws" && npm install --silent >/dev/null)
    echo "peers: node-ws (node $(node --version), ws $(node -p \
      "require('$root/benches/peers/node-ws/node_modules/ws/package.json').version"))"
  else
    echo "peers: node-ws skipped: no node/npm on PATH"
  fi
}

# peer_names: the peers build_peers made that can run here, then those named in EXTRA_PEERS
# ("name=program ..." words: a broadcast server you built yourself, started as `program
# 127.0.0.1:PORT`; e.g. a uWebSockets server, which no package registry carries). PEERS="name
# ..." picks among them.
peer_names() {
  if [ -n "${PEERS:-}" ]; then
    printf '%s\n' $PEERS
    return 0
  fi
  echo tokio-tungstenite
  if [ -d "$root/benches/peers/node-ws/node_modules" ] && command -v node >/dev/null; then
    echo node-ws
  fi
  local extra
  for extra in ${EXTRA_PEERS:-}; do
    echo "${extra%%=*}"
  done
}

# start_peer NAME: starts peer NAME (see peer_names) on a free loopback port; sets PEER_PID and
# PEER_URL. stop_peer stops it.
start_peer() {
  local port extra
  port=$(free_port)
  for extra in ${EXTRA_PEERS:-}; do
    if [ "${extra%%=*}" = "$1" ]; then
      "${extra#*=}" "127.0.0.1:$port" 2>/dev/null &
      PEER_PID=$!
      PEER_URL="ws://127.0.0.1:$port/"
      sleep 1
      return 0
    fi
  done
  case $1 in
    tokio-tungstenite)
      "$root/benches/peers/tokio-broadcast/target/release/tokio-broadcast" "127.0.0.1:$port" 2>/dev/null &
      ;;
    node-ws) node "$root/benches/peers/node-ws/server.js" "127.0.0.1:$port" 2>/dev/null & ;;
    *) echo "unknown peer $1" >&2; return 1 ;;
  esac
  PEER_PID=$!
  PEER_URL="ws://127.0.0.1:$port/"
  sleep 1
}

stop_peer() {
  kill "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
}

# process_ticks PID...: user+system clock ticks so far of these processes and their children
# (a workerman master forks its workers).
process_ticks() {
  local total=0 pid
  for pid in "$@" $(for pid in "$@"; do pgrep -P "$pid"; done); do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# measure_rates SERVER URL REPEAT PID...: one loadgen run against URL per rate in $rates (the
# array the caller set), with $clients clients and the scenario arguments in the array
# $scenario_args, for DURATION (default 5) seconds; a JSON line per run into the file $results,
# with the CPU time the PIDs used (and the first PID's memory, as loadgen's --server-pid).
# PAYLOAD (default 64) sets the message size, LOADGEN_ARGS adds loadgen arguments. benches/side_by_side.py makes the table.
measure_rates() {
  local server=$1 url=$2 rep=$3
  shift 3
  local rate json before after
  for rate in "${rates[@]}"; do
    json=$(mktemp)
    before=$(process_ticks "$@")
    "$bin/loadgen" "$(loadgen_cpus)" --url "$url" --clients "$clients" "${scenario_args[@]}" \
      --rate "$rate" --payload "${PAYLOAD:-64}" --duration "${DURATION:-5}" --server-pid "$1" \
      ${LOADGEN_ARGS:-} \
      --source-ips 127.1.0.1-127.1.0.8 --json "$json" >/dev/null 2>&1 || true
    after=$(process_ticks "$@")
    python3 - "$json" "$server" "$rate" "$rep" "$((after - before))" "$(getconf CLK_TCK)" \
      >>"$results" <<'PY'
import json, sys
path, server, rate, rep, ticks, hz = sys.argv[1:]
try:
    run = json.load(open(path))
except Exception:
    run = None
print(json.dumps({"server": server, "rate": float(rate), "rep": int(rep), "run": run,
                  "server_cpu_s": int(ticks) / int(hz)}))
PY
    rm -f "$json"
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_gatewire SHARDS APP [EXTRA_TOML]: starts register + gateway (SHARDS shards) in one process
# and one worker thread running the built-in APP (echo|broadcast|chat) in another, so the gateway's
# memory is measured alone; EXTRA_TOML (e.g. a [store] section) is appended to their configuration.
# Sets GW_PID, WORKER_PID, PUBLIC_URL and WORKER_METRICS (the worker's /metrics address).
# WORKER_BIN runs the worker from another binary built on gatewire::run (a user's app);
# GATEWAY_EXTRA adds keys to the [gateway] section; WORKER_THREADS sets worker.count (default 1);
# WORKER_BACKEND runs the worker on another runtime backend than the gateway; GATEWIRE_BIN runs
# register and gateway from another build (an A/B of two commits).
start_gatewire() {
  local shards=$1 mode=$2 extra=${3:-}
  work=${work:-$(mktemp -d)}
  server_prefix
  local register_port public_port inner_port
  register_port=$(free_port)
  public_port=$(free_port)
  inner_port=$((20000 + RANDOM % 8000))
  cat > "$work/gatewire.toml" <<TOML
[register]
listen = "127.0.0.1:$register_port"
[gateway]
listen = "websocket://127.0.0.1:$public_port"
start_port = $inner_port
shards = $shards
${GATEWAY_EXTRA:-}
register_address = "127.0.0.1:$register_port"
[worker]
count = ${WORKER_THREADS:-1}
register_address = "127.0.0.1:$register_port"
app = "$mode"
$extra
TOML
  GATEWIRE_LOG=${GATEWIRE_LOG:-warn} "${ON_SERVER_CPUS[@]}" "${GATEWIRE_BIN:-$bin/gatewire}" start --single-process -c "$work/gatewire.toml" --role register,gateway \
    2>"$work/gatewire.log" &
  GW_PID=$!
  sleep 1
  WORKER_METRICS=127.0.0.1:$(free_port)
  GATEWIRE_LOG=${GATEWIRE_LOG:-warn} "${ON_SERVER_CPUS[@]}" "${WORKER_BIN:-$bin/gatewire}" start --single-process -c "$work/gatewire.toml" --role worker \
    --set metrics.listen="$WORKER_METRICS" ${WORKER_BACKEND:+--set run.backend="$WORKER_BACKEND"} \
    2>"$work/worker.log" &
  WORKER_PID=$!
  sleep 1
  PUBLIC_URL="ws://127.0.0.1:$public_port/"
  placement "$GW_PID" "$WORKER_PID"
}

# placement PID...: which CPUs each thread of these processes may run on (loadgen prints its own;
# LOADGEN_CPUS=LIST pins its threads, e.g. LOADGEN_CPUS=1).
placement() {
  echo "## placement"
  local pid task
  for pid in "$@"; do
    for task in /proc/"$pid"/task/*; do
      printf '%-8s %-16s cpus %s\n' "$pid" "$(cat "$task/comm")" \
        "$(awk '/Cpus_allowed_list/ {print $2}' "$task/status")"
    done
  done | sort -u -k2 | awk '$2 ~ /^(gw-shard|worker|register)/'
  echo
}

# server_prefix: sets the array ON_SERVER_CPUS to the command prefix that runs a server on the
# CPUs in SERVER_CPUS (a list like 0 or 0-1; every thread and child of the server inherits the
# mask, and gatewire pins its shards inside it); empty when SERVER_CPUS is unset. taskset execs
# the server, so `$!` is still the server's pid. With LOADGEN_CPUS set to the other CPUs, the
# server under test and the load generator stop competing for the same cores.
server_prefix() {
  ON_SERVER_CPUS=()
  [ -n "${SERVER_CPUS:-}" ] && ON_SERVER_CPUS=(taskset -c "$SERVER_CPUS")
  return 0
}

# server_cpu_count: how many CPUs SERVER_CPUS names (all of the box's when unset).
server_cpu_count() {
  if [ -n "${SERVER_CPUS:-}" ]; then
    taskset -c "$SERVER_CPUS" nproc
  else
    nproc
  fi
}

# loadgen_cpus: the --cpus argument for loadgen when LOADGEN_CPUS is set.
loadgen_cpus() {
  if [ -n "${LOADGEN_CPUS:-}" ]; then
    printf -- '--cpus=%s' "$LOADGEN_CPUS"
  else
    printf -- '--cpus='
  fi
}

# metric NAME: the sum of NAME's samples on the worker's /metrics.
worker_metric() {
  python3 - "$WORKER_METRICS" "$1" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
name = sys.argv[2]
print(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
          if l.split("{")[0].split(" ")[0] == name))
PY
}

stop_gatewire() {
  kill "$WORKER_PID" "$GW_PID" 2>/dev/null || true
  wait "$WORKER_PID" "$GW_PID" 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$work"
    unset work # the next start_gatewire (peers.sh's next repeat) makes a fresh one
  fi
}

# record_run JSON FIELD=VALUE...: one line {"FIELD": VALUE, ..., "run": loadgen's --json report
# (null when the run wrote none)} on stdout, numbers kept as numbers; removes JSON.
record_run() {
  python3 - "$@" <<'PY'
import json, sys
path, *fields = sys.argv[1:]
try:
    run = json.load(open(path))
except Exception:
    run = None
line = {}
for field in fields:
    key, value = field.split("=", 1)
    for kind in (int, float):
        try:
            value = kind(value)
            break
        except ValueError:
            pass
    line[key] = value
line["run"] = run
print(json.dumps(line))
PY
  rm -f "$1"
}

# php_gatewayworker_available: whether PHP GatewayWorker can run as a peer here (GATEWAYWORKER_DIR
# holds vendor/autoload.php, and PHP — default `php`, or $PHP — has the event extension: without
# it Workerman falls back to select(), which cannot hold 10,000 clients). Says which, either way.
php_gatewayworker_available() {
  php=${PHP:-php}
  if [ -z "${GATEWAYWORKER_DIR:-}" ] || [ ! -f "$GATEWAYWORKER_DIR/vendor/autoload.php" ]; then
    echo "peer: PHP GatewayWorker skipped: GATEWAYWORKER_DIR does not hold vendor/autoload.php"
    return 1
  fi
  if ! $php -m 2>/dev/null | grep -qx event; then
    echo "peer: PHP GatewayWorker skipped: \`$php -m\` lists no event extension"
    return 1
  fi
  echo "peer: PHP GatewayWorker ($($php -r 'echo PHP_VERSION;'), workerman $($php -r \
    "require '$GATEWAYWORKER_DIR/vendor/autoload.php'; echo \Workerman\Worker::VERSION;"), \
${PHP_GATEWAYS:-2} gateway and ${PHP_WORKERS:-2} worker processes, ext-event)"
}

# start_php: PHP GatewayWorker's Register, Gateway and BusinessWorker (answering each message
# with Gateway::sendToCurrentClient) in one workerman master on free loopback ports; sets PHP_PID
# (the master), PHP_URL and php_dir.
start_php() {
  php_dir=$(mktemp -d)
  server_prefix
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
  # shellcheck disable=SC2086 # PHP is a command with its arguments
  (cd "$php_dir" && exec "${ON_SERVER_CPUS[@]}" ${PHP:-php} start.php start >/dev/null 2>&1) &
  PHP_PID=$!
  PHP_URL="ws://127.0.0.1:$public_port/"
  sleep 3
}

stop_php() {
  kill -INT "$PHP_PID" 2>/dev/null || true
  wait "$PHP_PID" 2>/dev/null || true
  rm -rf "$php_dir"
}

# echo_round RATE SERVER_PID JSON [WORKER_PID]: one run of loadgen's echo (64 B, DURATION seconds,
# default 10) against $PUBLIC_URL with $clients clients, the server's CPU read from SERVER_PID
# (and the worker's from WORKER_PID), the result in JSON (an empty file when loadgen failed).
echo_round() {
  "$bin/loadgen" "$(loadgen_cpus)" --url "$PUBLIC_URL" --clients "$clients" --scenario echo \
    --rate "$1" --payload 64 --duration "${DURATION:-10}" \
    --source-ips 127.1.0.1-127.1.0.8 --server-pid "$2" ${4:+--worker-pid "$4"} --json "$3" \
    >/dev/null 2>&1 || true
}
