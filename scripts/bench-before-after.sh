#!/usr/bin/env bash
# Flow setups before and after a change, in one run: builds the controller
# at BASE (a commit) into bin/controller-base, the working tree into
# bin/controller, and runs scripts/bench-ofbench.sh with the peers
# ovs-testcontroller, nimbus-base and nimbus, each in turn, ROUNDS times
# (default 3; PEERS reorders them), so the ratio nimbus / nimbus-base comes from the same run.
#
#   scripts/bench-before-after.sh BASE [ROUNDS]
#
# Output: one summary per round in $OUT (default a temp dir), and the
# per-round ratios on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: scripts/bench-before-after.sh BASE [ROUNDS]}
ROUNDS=${2:-3}
OUT=${OUT:-$(mktemp -d /tmp/nimbus-ba.XXXXXX)}
mkdir -p "$OUT" bin
wt=$(mktemp -d /tmp/nimbus-base.XXXXXX)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git worktree add -q --detach "$wt" "$BASE"
(cd "$wt" && go build -o "$OLDPWD/bin/controller-base" ./cmd/controller)
go build -o bin/controller ./cmd/controller
go build -o bin/ofbench ./cmd/ofbench
echo "bench: base $(git rev-parse --short "$BASE"), head $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (+ uncommitted changes)'), $ROUNDS rounds; results in $OUT"
for r in $(seq 1 "$ROUNDS"); do
  PEERS="${PEERS:-ovs-testcontroller nimbus-base nimbus}" OUT="$OUT/round$r.md" scripts/bench-ofbench.sh >"$OUT/round$r.log" 2>&1 || { echo "round $r failed: see $OUT/round$r.log"; exit 1; }
  awk -F'|' -v r="$r" '/^\| (ovs-testcontroller|nimbus-base|nimbus) /{gsub(/ /,"",$2); gsub(/[ ,]/,"",$3); gsub(/[ ,]/,"",$4); tp[$2]=$3; lat[$2]=$4}
    END { printf "round %s: throughput nimbus/base %.2fx (nimbus %s, base %s, ovs-testcontroller %s); latency nimbus/base %.2fx (nimbus %s, base %s)\n", r, tp["nimbus"]/tp["nimbus-base"], tp["nimbus"], tp["nimbus-base"], tp["ovs-testcontroller"], lat["nimbus"]/lat["nimbus-base"], lat["nimbus"], lat["nimbus-base"] }' "$OUT/round$r.md"
done
