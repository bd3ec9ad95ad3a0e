#!/usr/bin/env bash
# Every benchmark docs/benchmarks.md quotes, in one run on one machine:
#   1. ofbench (cbench design) against ovs-testcontroller, os-ken, Nimbus
#   2. 100k-flow load: Nimbus reconciler vs ovs-ofctl --bundle add-flows
#   3. failover: kill -9 of a master vs OVS's own reconnect (cmd/failbench)
#   4. Neutron port create, 1 and 3 replicas
# Output goes to stdout and, with OUT=dir, one file per benchmark there.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/nimbus-bench.XXXXXX)}
mkdir -p "$OUT"
echo "bench: machine: $(nproc) CPUs, $(uname -r), $(date -u +%FT%TZ); results in $OUT"
scripts/deps.sh >/dev/null
scripts/ovs-start.sh >/dev/null
go build -o bin/controller ./cmd/controller
go build -o bin/ofbench ./cmd/ofbench
go build -o bin/flowload ./cmd/flowload

echo "== 1. ofbench"
OUT="$OUT/ofbench.md" scripts/bench-ofbench.sh | tee "$OUT/ofbench.txt"

echo "== 2. flowload"
bin/flowload -flows 100000 -rounds 5 2>/dev/null | tee "$OUT/flowload.txt"

echo "== 3. failbench"
go run ./cmd/failbench -kills 20 | tee "$OUT/failbench.txt"

echo "== 4. port create"
go test -run '^$' -bench PortCreate -benchtime 1000x ./northbound/ | tee "$OUT/portcreate.txt"
