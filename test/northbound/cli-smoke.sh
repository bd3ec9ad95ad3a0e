#!/usr/bin/env bash
# Smoke-test a running Nimbus API (noauth) with the real OpenStack clients.
#   test/northbound/cli-smoke.sh [http://127.0.0.1:9696]
# The full scenarios (every resource, create/list/show/update/delete, LBaaS
# v1 with the neutron CLI) are Go tests:
#   NIMBUS_E2E=1 go test -run CLI -v ./northbound/
set -euo pipefail
URL=${1:-http://127.0.0.1:9696}
P=smoke-$$
os() { openstack --os-auth-type none --os-endpoint "$URL" "$@"; }
nt() { OS_AUTH_TYPE=admin_token neutron --os-token noauth --os-url "$URL" "$@"; }
NET=$(os network create --project "$P" -f value -c id "net-$P")
SUB=$(os subnet create --project "$P" --network "$NET" --subnet-range 10.77.0.0/24 -f value -c id "sub-$P")
PORT=$(os port create --project "$P" --network "$NET" -f value -c id "port-$P")
os port show "$PORT" -f value -c fixed_ips
POOL=$(nt lb-pool-create --tenant-id "$P" --lb-method ROUND_ROBIN --protocol TCP --subnet-id "$SUB" --name "pool-$P" -f value -c id)
nt lb-pool-show "$POOL" -f value -c lb_method
nt lb-pool-delete "$POOL"
os port delete "$PORT"
os subnet delete "$SUB"
os network delete "$NET"
echo "cli-smoke: OK against $URL"
