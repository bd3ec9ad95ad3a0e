#!/usr/bin/env bash
# Re-record the Neutron differential suite from a real Neutron 21 server.
#
# Starts Debian's neutron-server (noauth, ML2 without mechanism drivers,
# sqlite in WAL mode) on a loopback port in a temporary directory, sends
# it the scripted requests (northbound/testdata/neutron/script.json) with
# the recorder (go test -run TestNeutronRecord with NEUTRON_RECORD_URL
# set), writes northbound/testdata/neutron/recorded.json, then stops the
# server and removes the directory. `make test` only replays the
# committed recording; this script is the only thing that needs
# neutron-server (installed here, not by scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
PORT=${NEUTRON_PORT:-19696}

if ! command -v neutron-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends neutron-server
fi

dir=$(mktemp -d /tmp/neutron-record.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "${KEEP:-}" = "" ]; then rm -rf "$dir"; else echo "kept $dir"; fi
}
trap cleanup EXIT
mkdir -p "$dir/lock"
sed -e "s#@DIR@#$dir#g" -e "s#@PORT@#$PORT#g" test/neutron/neutron.conf.in > "$dir/neutron.conf"
cp test/neutron/ml2_conf.ini test/neutron/api-paste.ini "$dir/"

# Schema: `neutron-db-manage upgrade heads` cannot ALTER constraints on
# sqlite, so create the tables from the models, then stamp the heads.
/usr/bin/python3 test/neutron/mkschema.py "$dir/neutron.sqlite"
neutron-db-manage --config-file "$dir/neutron.conf" stamp heads >"$dir/stamp.log" 2>&1

PYTHONPATH="$PWD/test/neutron" neutron-server --config-file "$dir/neutron.conf" --config-file "$dir/ml2_conf.ini" >"$dir/server.out" 2>&1 &
pid=$!
for i in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "neutron-server died:"; tail -50 "$dir/server.out" "$dir/neutron.log" 2>/dev/null; exit 1; fi
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/" >/dev/null
echo "neutron-server up on 127.0.0.1:$PORT (pid $pid, dir $dir)"
NEUTRON_RECORD_URL="http://127.0.0.1:$PORT" $GO test -count=1 -run '^TestNeutronRecord$' ./northbound/
