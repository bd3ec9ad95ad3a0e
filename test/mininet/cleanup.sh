#!/usr/bin/env bash
# Safe cleanup of Nimbus lab leftovers after a crash (a killed pingall.py or
# test binary).
#
#   test/mininet/cleanup.sh          remove leftovers of DEAD lab processes only
#   test/mininet/cleanup.sh --all    remove every Nimbus lab leftover, live or
#                                    not (only when no lab/test is running!)
#   test/mininet/cleanup.sh --mn     --all, then Mininet's own `mn -c`
#   test/mininet/cleanup.sh -n ...   dry run: print what would be done
#
# What is a lab leftover: an OVS bridge carrying
# external_ids:nimbus-lab-owner=<pid> (set by internal/ovslab and
# test/mininet/pingall.py); with it go its veth ports, the root-namespace
# links named <prefix><letter><N>-eth<M> of its Mininet run
# (external_ids:nimbus-lab-prefix), and that run's Mininet node shells
# ("bash ... mininet:<prefix>h1"), which are killed by PID.
#
# Why not plain `mn -c`: it deletes EVERY OVS bridge on the machine, kills
# every ovs-testcontroller, ping, "controller" and mininet process, deletes
# every *-ethN link and rm's /tmp/*.log and /tmp/*.out. On a shared machine
# that breaks other people's and other tests' work. Use --mn only on a machine
# of your own.
set -euo pipefail

ALL=0 MN=0 DRY=0
for a in "$@"; do
  case "$a" in
    --all) ALL=1 ;;
    --mn) ALL=1; MN=1 ;;
    -n|--dry-run) DRY=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "cleanup.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

run() {
  echo "+ $*"
  if [ "$DRY" = 0 ]; then "$@" || true; fi
}

# A PID is alive if it exists and is not a zombie (a killed process that
# nobody reaped yet still answers kill -0).
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null || echo Z)
  [ "$st" != Z ] && [ "$st" != X ]
}

if ! command -v ovs-vsctl >/dev/null; then
  echo "cleanup.sh: ovs-vsctl not found (run scripts/deps.sh)" >&2
  exit 1
fi
if ! ovs-vsctl --timeout=5 show >/dev/null 2>&1; then
  echo "cleanup.sh: OVS is not running; nothing to clean in OVSDB"
fi

# "name owner prefix", one line per bridge carrying the owner marker.
bridges=""
for br in $(ovs-vsctl --timeout=10 list-br 2>/dev/null || true); do
  owner=$(ovs-vsctl --timeout=10 --if-exists get bridge "$br" external_ids:nimbus-lab-owner 2>/dev/null | tr -d '"' || true)
  [ -z "$owner" ] && continue
  prefix=$(ovs-vsctl --timeout=10 --if-exists get bridge "$br" external_ids:nimbus-lab-prefix 2>/dev/null | tr -d '"' || true)
  bridges+="$br $owner $prefix"$'\n'
done

declare -A stale_prefix=()
n=0
while read -r br owner prefix; do
  [ -z "${br:-}" ] && continue
  if [ "$ALL" = 0 ] && alive "$owner"; then
    continue
  fi
  # veth ports (type "") of the bridge: delete the kernel device too.
  veths=()
  for p in $(ovs-vsctl --timeout=10 list-ports "$br" 2>/dev/null); do
    t=$(ovs-vsctl --timeout=10 get interface "$p" type 2>/dev/null | tr -d '"')
    if [ -z "$t" ] && ip -d link show dev "$p" 2>/dev/null | grep -q veth; then
      veths+=("$p")
    fi
  done
  run ovs-vsctl --timeout=20 --if-exists del-br "$br"
  for v in "${veths[@]}"; do run ip link del "$v"; done
  # A bridge with a Mininet prefix: remember it for links and shells.
  [ -n "$prefix" ] && [ "$prefix" != "$br" ] && stale_prefix[$prefix]=1
  n=$((n + 1))
done <<<"$bridges"

# Leftover Mininet links and node shells of the stale (or, with --all, of
# any) Nimbus lab prefix. Lab prefixes are "m" + 3 hex digits by default.
prefixes=("${!stale_prefix[@]}")
if [ "$ALL" = 1 ]; then
  pat='m[0-9a-f]{3}'
else
  pat=""
  for p in "${prefixes[@]}"; do pat="${pat:+$pat|}$p"; done
fi
if [ -n "$pat" ]; then
  for l in $(ip -o link show | sed -nE "s/^[0-9]+: ((${pat})[a-z][0-9]+-eth[0-9]+)[@:].*/\1/p"); do
    run ip link del "$l"
  done
  for pid in $(pgrep -f -- "mininet:(${pat})[a-z][0-9]+\$" || true); do
    # Kill only a shell whose pingall.py is gone: its parent is not a
    # pingall.py process (re-parented to init, or --all).
    ppid=$(ps -o ppid= -p "$pid" | tr -d ' ')
    if [ "$ALL" = 1 ] || ! ps -o args= -p "$ppid" 2>/dev/null | grep -q pingall.py; then
      run kill -9 "$pid"
    fi
  done
fi

if [ "$MN" = 1 ]; then
  echo "cleanup.sh: running mn -c (deletes ALL OVS bridges on this machine)"
  run mn -c
fi
echo "cleanup.sh: removed $n stale lab bridge(s)"
