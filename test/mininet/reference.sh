#!/usr/bin/env bash
# Run pingall.py against the reference controller, ovs-testcontroller
# (a C learning switch) speaking OpenFlow 1.3, and print the timings.
#
#   test/mininet/reference.sh [TOPO ...]      default: linear,4 tree,2,2
#
# Useful to tell a lab problem (this fails too) from a Nimbus problem.
set -euo pipefail
cd "$(dirname "$0")"
topos=("$@")
[ ${#topos[@]} -eq 0 ] && topos=(linear,4 tree,2,2)

command -v ovs-testcontroller >/dev/null || {
  echo "reference.sh: ovs-testcontroller missing (scripts/deps.sh)" >&2; exit 1; }
../../scripts/ovs-start.sh >/dev/null

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ctl=$(mktemp -d)
ovs-testcontroller -O OpenFlow13 --unixctl="$ctl/tc.ctl" "ptcp:$port:127.0.0.1" \
  >"$ctl/tc.log" 2>&1 &
tc=$!
trap 'kill "$tc" 2>/dev/null || true; wait "$tc" 2>/dev/null || true; rm -rf "$ctl"' EXIT
sleep 0.2

rc=0
for topo in "${topos[@]}"; do
  start=$(date +%s.%N)
  line=$(/usr/bin/python3 ./pingall.py --topo "$topo" --controller "127.0.0.1:$port" \
           2>"$ctl/err") || rc=1
  end=$(date +%s.%N)
  printf '%-10s %6.2fs  %s\n' "$topo" "$(awk "BEGIN{print $end - $start}")" "$line"
  [ "$rc" = 0 ] || sed 's/^/    /' "$ctl/err"
done
exit $rc
