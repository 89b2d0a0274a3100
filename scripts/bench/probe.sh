#!/usr/bin/env bash
# Quick probes of one server under wrk, for finding where the time goes
# (scripts/bench.ts is the benchmark; these are for between its runs).
#
#   bash scripts/bench/probe.sh cpu      PORT -- SERVER COMMAND...
#   bash scripts/bench/probe.sh syscalls PORT -- SERVER COMMAND...
#   bash scripts/bench/probe.sh alloc    PORT -- deno run -A SCRIPT...
#   bash scripts/bench/probe.sh ab       LIB_A LIB_B RUNS [deno|bun]
#
# cpu:      requests/s and CPU ticks per thread (/proc), CPU us per request.
# syscalls: syscalls and context switches per request (perf stat; needs
#           perf from linux-perf and tracepoints readable).
# alloc:    V8 heap bytes allocated per request (Deno only: the sum of
#           --trace-gc-nvp's "allocated"; the command must be `deno run ...`).
# ab:       ymo's bench app with two builds of libymo (YMO_LIB), interleaved
#           RUNS times each, to tell a change from this machine's noise.
#
# Environment: C (connections, default 64), WRK_PATH (default /), SECONDS_
# (measured seconds, default 5). Traffic goes to 127.0.0.1 only.
set -euo pipefail

conns=${C:-64}
path=${WRK_PATH:-/}
secs=${SECONDS_:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)

start_server() { # PORT CMD...: starts CMD, waits until it answers; sets pid
  local port=$1
  shift
  "$@" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  echo "probe: the server did not answer on port $port" >&2
  kill "$pid" 2>/dev/null
  exit 1
}

stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

ticks() { # one line per thread: tid name ticks
  for t in /proc/"$pid"/task/*; do
    echo "$(basename "$t") $(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | sort
}

load() { # PORT: measured wrk run; prints wrk's summary lines
  wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$1$path" |
    grep -E "requests in|Requests/sec"
}

requests() { awk '/requests in/ {print $1}'; }

probe_cpu() {
  local port=$1
  shift 2
  start_server "$port" "$@"
  local before after out
  before=$(ticks)
  out=$(load "$port")
  after=$(ticks)
  stop_server
  echo "$out"
  paste <(echo "$before") <(echo "$after") | awk -v r="$(echo "$out" | requests)" '
    { d = $6 - $3; total += d; if (d > 2) printf "  %-16s %5d ticks\n", $2, d }
    END { printf "  total %d ticks = %.1f us CPU per request\n", total, total * 10000 / r }'
}

probe_syscalls() {
  local port=$1
  shift 2
  start_server "$port" "$@"
  local events="" s out
  for s in read write sendmsg sendto recvfrom writev futex epoll_wait epoll_pwait2; do
    events+="syscalls:sys_enter_$s,"
  done
  perf stat -x, -e "${events}raw_syscalls:sys_enter,context-switches" \
    -p "$pid" -o /tmp/ymo-probe-perf.$$ -- sleep $((secs + 1)) &
  local perf_pid=$!
  sleep 0.2
  out=$(load "$port")
  wait "$perf_pid"
  stop_server
  echo "$out"
  awk -F, -v r="$(echo "$out" | requests)" '$1 ~ /^[0-9]+$/ && $1 > 0 {
    sub("syscalls:sys_enter_", "", $3); printf "  %-24s %7.3f per request\n", $3, $1 / r }' \
    /tmp/ymo-probe-perf.$$
  rm -f /tmp/ymo-probe-perf.$$
}

probe_alloc() {
  local port=$1
  shift 2
  [[ $1 == *deno && ${2:-} == run ]] ||
    { echo "probe: alloc needs a \`deno run ...\` command" >&2; exit 2; }
  local log=/tmp/ymo-probe-gc.$$ out
  "$1" run --v8-flags=--trace-gc-nvp "${@:3}" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  out=$(load "$port")
  stop_server
  echo "$out"
  grep -ao '"allocated":[0-9]*' "$log" | cut -d: -f2 |
    awk -v r="$(echo "$out" | requests)" '{ s += $1 }
      END { printf "  %d scavenges, %.0f bytes allocated per request\n", NR, s / r }'
  rm -f "$log"
}

probe_ab() {
  local lib_a=$1 lib_b=$2 runs=$3 runtime=${4:-deno} cmd
  if [ "$runtime" = bun ]; then
    cmd=("$root/node_modules/.bin/bun")
  else
    cmd=("$root/node_modules/.bin/deno" run -A)
  fi
  cmd+=("$root/scripts/serve.ts" "$root/scripts/bench/app.ts" --hostname 127.0.0.1 --port 18190)
  for _ in $(seq "$runs"); do
    for v in A B; do
      local lib=$lib_a
      [ "$v" = B ] && lib=$lib_b
      echo "$v $(YMO_LIB=$lib probe_cpu 18190 -- "${cmd[@]}" |
        awk '/Requests\/sec/ {r = $2} /total/ {c = $(NF - 4)} END {print r, c}')"
    done
  done | awk '{ r[$1] = r[$1] " " $2; c[$1] = c[$1] " " $3 }
    END { for (v in r) print v, "req/s:" r[v], "  us CPU/req:" c[v] }' | sort
}

case "${1:-}" in
  cpu | syscalls | alloc)
    [ "${3:-}" = "--" ] || { echo "usage: $0 $1 PORT -- COMMAND..." >&2; exit 2; }
    "probe_$1" "${@:2}"
    ;;
  ab) probe_ab "${@:2}" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
