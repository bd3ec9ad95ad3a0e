#!/usr/bin/env bash
# Run every Go fuzz target in the repository, one at a time, for DURATION
# each (default 10s; any -fuzztime value: 30s, 2m, 1000x).
#
#   scripts/fuzz.sh [DURATION]
#
# Targets are discovered with `go test -list '^Fuzz'` per package: the wire
# decoders and Conn (ofproto), and the OpenFlow server with the learning
# and isolation apps loaded and 65535-byte messages allowed
# (switches FuzzSwitchConn). A target
# that fails leaves its input in <pkg>/testdata/fuzz/<Name>/ (commit it: it
# becomes a regression seed for plain `go test`). Exits non-zero if any
# target fails. Each target is also bounded by a hard timeout, so a hung
# fuzzer cannot stall CI.
set -uo pipefail

DURATION="${1:-10s}"
cd "$(dirname "$0")/.."

# Hard per-target limit: the fuzz time plus room for building and for
# replaying the seed corpus.
# An iteration count such as 30000x (or an unusual duration): room for
# the fuzz-instrumented build, which for switches' FuzzSwitchConn (the
# server with the apps loaded) covers etcd and Prometheus and takes
# minutes on a busy 2-core machine.
limit=900
if [[ "$DURATION" =~ ^([0-9]+)(s|m|h)$ ]]; then
  n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in
    s) limit=$(( n + 120 )) ;;
    m) limit=$(( n * 60 + 120 )) ;;
    h) limit=$(( n * 3600 + 120 )) ;;
  esac
fi

echo "fuzz: discovering targets"
list_out=$(go test -list '^Fuzz' ./... 2>&1)
list_rc=$?

# `go test -list` prints the matching names of a package, then
# "ok  <import path>  <time>"; a package whose tests do not build gives
# "FAIL <import path> [build failed]". Fuzz the packages that build, and
# count the others as failures.
targets=()
names=()
summary=()
failed=0
while IFS= read -r line; do
  case "$line" in
    Fuzz*) names+=("$line") ;;
    ok*)
      pkg=$(echo "$line" | awk '{print $2}')
      for n in "${names[@]+"${names[@]}"}"; do targets+=("$pkg $n"); done
      names=()
      ;;
    FAIL?*)
      pkg=$(echo "$line" | awk '{print $2}')
      summary+=("$(printf '%-6s %-24s %-40s' FAIL "(listing tests)" "$pkg")")
      failed=$(( failed + 1 ))
      names=()
      ;;
    *) names=() ;;
  esac
done <<< "$list_out"
if [ $list_rc -ne 0 ]; then
  echo "$list_out" | grep -v '^Fuzz' >&2
  [ $failed -eq 0 ] && failed=1 && summary+=("FAIL   go test -list exited with status $list_rc")
fi

if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} target(s), $DURATION each"
start_all=$SECONDS
for t in "${targets[@]}"; do
  pkg=${t% *}
  name=${t#* }
  echo "=== $name ($pkg)"
  log=$(mktemp)
  start=$SECONDS
  timeout --kill-after=10 "$limit" \
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$DURATION" "$pkg" >"$log" 2>&1
  rc=$?
  took=$(( SECONDS - start ))
  execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  if [ $rc -eq 0 ]; then
    status=ok
    tail -n 2 "$log"
  else
    status=FAIL
    [ $rc -eq 124 ] && status="FAIL (timed out after ${limit}s)"
    failed=$(( failed + 1 ))
    cat "$log"
  fi
  rm -f "$log"
  summary+=("$(printf '%-6s %-24s %-40s %4ss  %s execs' "${status%% *}" "$name" "$pkg" "$took" "${execs:-?}")")
done

echo
echo "fuzz summary ($(( SECONDS - start_all ))s total, $DURATION per target):"
printf '  %s\n' "${summary[@]}"
passed=$(( ${#targets[@]} - failed ))
[ $passed -lt 0 ] && passed=0
if [ $failed -ne 0 ]; then
  echo "fuzz: $passed passed, $failed failed"
  exit 1
fi
echo "fuzz: $passed passed, 0 failed"
