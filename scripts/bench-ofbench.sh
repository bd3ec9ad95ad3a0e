#!/usr/bin/env bash
# OpenFlow 1.3 flow-setup benchmark (cbench design) of Nimbus against peers.
#
# Builds bin/ofbench, then for each peer in turn: starts it on a free
# loopback port, waits until it listens, runs ofbench in latency and in
# throughput mode, stops the peer by its PID, and finally prints a summary
# table of the medians (responses/s summed over all fake switches).
#
# Peers: ovs-testcontroller (OVS's C learning switch), os-ken with
# bench/osken/l2_learning.py, and Nimbus (bin/controller) when it exists.
#
# Environment:
#   LOOPS=10      measured loops per mode     SECONDS=1  seconds per loop
#   WARMUP=1      discarded warm-up loops      SWITCHES=16, MACS=1000
#   PEERS="ovs-testcontroller os-ken nimbus"   subset/order of peers; the
#                 extra peer nimbus-base runs NIMBUS_BASE_BIN (default
#                 bin/controller-base), an older build to compare against
#                 (scripts/bench-before-after.sh)
#   OUT=path      also write the summary as markdown to path
#
# Latency mode runs first: throughput mode leaves up to SWITCHES*1000
# packet-ins queued in a slow controller, which would still be draining
# during a following run.

# SECONDS is special in bash (time since start); take the caller's value from
# the environment before bash counts on from it.
LOOP_SECONDS=$(printenv SECONDS || true)
set -euo pipefail
LOOP_SECONDS=${LOOP_SECONDS:-1}
LOOPS=${LOOPS:-10}
WARMUP=${WARMUP:-1}
SWITCHES=${SWITCHES:-16}
MACS=${MACS:-1000}
PEERS=${PEERS:-"ovs-testcontroller os-ken nimbus"}
OUT=${OUT:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-ofbench.XXXXXX")
PEER_PID=""

stop_peer() {
  local pid=$PEER_PID
  PEER_PID=""
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_peer
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# free_port prints a loopback TCP port that no socket uses, in any state. It
# stays below 32768, the start of Linux's default ephemeral range, so that no
# outgoing connection (ofbench's own included) can be holding it.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12768))
    [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ] && { echo "$p"; return 0; }
  done
  echo "bench: no free port found" >&2
  return 1
}

# wait_listen PORT SECS: wait until the peer listens; fail if it exits.
wait_listen() {
  local port=$1 tries=$(($2 * 10))
  for _ in $(seq "$tries"); do
    listening "$port" && return 0
    kill -0 "$PEER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_peer LOG CMD...: start a peer in the background and remember its PID.
start_peer() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  PEER_PID=$!
}

echo "bench: building bin/ofbench"
mkdir -p bin
go build -o bin/ofbench ./cmd/ofbench

declare -A TPUT LAT STATUS DETAIL CMDLINE
ORDER=()
FAILED=0

# bench_peer NAME PORT: run both modes against a started peer.
bench_peer() {
  local name=$1 port=$2 mode out json med
  for mode in latency throughput; do
    out="$WORK/$name-$mode.txt"
    local cmd=(bin/ofbench -controller "127.0.0.1:$port" -switches "$SWITCHES" -macs "$MACS"
      -loops "$LOOPS" -warmup "$WARMUP" -seconds "$LOOP_SECONDS" -mode "$mode" -json)
    echo "bench: $name: ${cmd[*]}"
    if ! "${cmd[@]}" 2>&1 | tee "$out"; then
      STATUS[$name]="FAIL ($mode: $(grep -m1 'error:' "$out" | sed 's/^ofbench: error: //'))"
      return 1
    fi
    json=$(grep '^{' "$out" | tail -1)
    med=$(sed -n 's/.*"median":\([0-9.eE+-]*\).*/\1/p' <<<"$json")
    if [ "$mode" = throughput ]; then TPUT[$name]=$med; else LAT[$name]=$med; fi
    DETAIL[$name]="${DETAIL[$name]:-}$mode: $(grep -m1 '^responses:' "$out" | sed 's/^responses: //'); "
    if ! kill -0 "$PEER_PID" 2>/dev/null; then
      STATUS[$name]="FAIL (peer exited during $mode run)"
      return 1
    fi
  done
  STATUS[$name]=ok
  if [ "${TPUT[$name]}" = 0 ] && [ "${LAT[$name]}" = 0 ]; then
    STATUS[$name]="ok, but no FLOW_MOD/PACKET_OUT answered any packet-in (not a reactive controller?)"
  fi
}

# run_peer NAME OPTIONAL LOG WAIT_SECS PORT CMD...: start, measure, stop.
run_peer() {
  local name=$1 optional=$2 log=$3 waitsecs=$4 port=$5
  shift 5
  ORDER+=("$name")
  CMDLINE[$name]="$*"
  echo
  echo "bench: === $name: $* ==="
  start_peer "$log" "$@"
  if ! wait_listen "$port" "$waitsecs"; then
    echo "bench: $name did not start listening on 127.0.0.1:$port within ${waitsecs}s; log tail:"
    tail -n 15 "$log" | sed 's/^/  | /'
    stop_peer
    if [ "$optional" = yes ]; then
      STATUS[$name]="skipped (did not start)"
    else
      STATUS[$name]="FAIL (did not start)"
      FAILED=1
    fi
    return 0
  fi
  if ! bench_peer "$name" "$port"; then
    FAILED=1
    echo "bench: $name: ${STATUS[$name]}; peer log tail:"
    tail -n 15 "$log" | sed 's/^/  | /'
  fi
  stop_peer
}

skip_peer() {
  ORDER+=("$1")
  STATUS[$1]="skipped ($2)"
  echo
  echo "bench: === $1: skipped: $2 ==="
}

for peer in $PEERS; do
  case $peer in
  ovs-testcontroller)
    if ! command -v ovs-testcontroller >/dev/null; then
      skip_peer "$peer" "not installed: apt-get install openvswitch-testcontroller"
      continue
    fi
    port=$(free_port)
    # -O limits the peer to OpenFlow 1.3. Do not add a bare -v: it sets every
    # log module to debug and the peer then logs each message.
    run_peer "$peer" no "$WORK/$peer.log" 10 "$port" \
      ovs-testcontroller -O OpenFlow13 --unixctl="$WORK/ovs-testcontroller.ctl" \
      "ptcp:$port:127.0.0.1"
    ;;
  os-ken)
    if ! command -v osken-manager >/dev/null; then
      skip_peer "$peer" "not installed: apt-get install python3-os-ken"
      continue
    fi
    port=$(free_port)
    run_peer "$peer" no "$WORK/$peer.log" 20 "$port" \
      osken-manager --ofp-listen-host 127.0.0.1 --ofp-tcp-listen-port "$port" \
      bench/osken/l2_learning.py
    ;;
  nimbus|nimbus-base)
    bin=bin/controller
    [ "$peer" = nimbus-base ] && bin=${NIMBUS_BASE_BIN:-bin/controller-base}
    if [ ! -x "$bin" ]; then
      skip_peer "$peer" "$bin not found; build it with: go build -o $bin ./cmd/controller (nimbus-base: scripts/bench-before-after.sh builds it from a base commit)"
      continue
    fi
    port=$(free_port)
    api=$(free_port)
    while [ "$api" = "$port" ]; do api=$(free_port); done
    ec=$(free_port); ep=$(free_port)
    # Embedded etcd in the work dir, on ports of its own.
    run_peer "$peer" yes "$WORK/$peer.log" 20 "$port" \
      "$bin" serve --openflow-listen "127.0.0.1:$port" --api-listen "127.0.0.1:$api" \
        --etcd-data-dir "$WORK/etcd" --etcd-embed-client-url "http://127.0.0.1:$ec" --etcd-embed-peer-url "http://127.0.0.1:$ep" \
        --log-level warn
    ;;
  *)
    echo "bench: unknown peer '$peer' (known: ovs-testcontroller os-ken nimbus nimbus-base)" >&2
    exit 2
    ;;
  esac
done

# Summary.
summary() {
  echo "## ofbench: OpenFlow 1.3 flow setups (cbench design)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $SWITCHES switches, $MACS MACs/switch," \
    "$WARMUP warm-up + $LOOPS loops of ${LOOP_SECONDS}s; responses/s summed over switches, median over loops."
  echo
  echo "| peer | throughput median (responses/s) | latency median (responses/s) | status |"
  echo "|---|---:|---:|---|"
  local p
  for p in "${ORDER[@]}"; do
    echo "| $p | ${TPUT[$p]:--} | ${LAT[$p]:--} | ${STATUS[$p]} |"
  done
  echo
  for p in "${ORDER[@]}"; do
    if [ -n "${CMDLINE[$p]:-}" ]; then
      echo "- $p: \`${CMDLINE[$p]//$WORK/\$WORK}\`${DETAIL[$p]:+ — ${DETAIL[$p]%; }}"
    fi
  done
  echo "- ofbench: \`bin/ofbench -controller 127.0.0.1:PORT -switches $SWITCHES -macs $MACS -loops $LOOPS -warmup $WARMUP -seconds $LOOP_SECONDS -mode latency|throughput -json\`"
}
echo
summary | tee "$WORK/summary.md"
if [ -n "$OUT" ]; then
  mkdir -p "$(dirname "$OUT")"
  cp "$WORK/summary.md" "$OUT"
  echo "bench: summary written to $OUT"
fi
exit "$FAILED"
