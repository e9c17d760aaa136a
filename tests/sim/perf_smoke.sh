#!/usr/bin/env bash
# shoal-perf over the C API on sim://: it runs, prints its figures and JSON,
# and refuses what is not there with a clear error.
set -u
perf="$1"
fail() { echo "FAIL: $*"; exit 1; }
"$perf" --help | grep -q -- '--op' || fail "--help"
"$perf" --op nosuch >/dev/null 2>&1; [ $? -eq 2 ] || fail "an unknown --op must exit 2"
"$perf" --bogus 1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown flag must exit 2"
for args in "--op send --size 64 --iters 3000 --lat-iters 300" \
            "--op write --size 65536 --iters 500 --lat-iters 100" \
            "--op read --size 65536 --iters 500 --lat-iters 100" \
            "--op write --size 8192 --iters 500 --lat-iters 100 --mode threaded" \
            "--op send --size 5000 --iters 2000 --qps 4 --peers 2 --lat-iters 50 --qp-type rod"; do
  out=$("$perf" $args --json) || fail "shoal-perf $args exited $?"
  echo "$out" | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["errors"] == 0 and d["msgs_per_s"] > 0 and d["lat_p50_us"] > 0, d
' || fail "shoal-perf $args JSON"
done
# --stats: each context's counters on stderr at the end (two contexts here).
err=$("$perf" --op send --size 64 --iters 200 --lat-iters 10 --stats 2>&1 >/dev/null) || fail "--stats run exited $?"
[ "$(echo "$err" | grep -c 'engine 0: polls')" -eq 2 ] || fail "--stats did not print both contexts' engines"
echo "$err" | grep -q 'pds: tx [1-9]' || fail "--stats did not print the PDS counters"
"$perf" --op send --size 64 --iters 200 --lat-iters 10 2>&1 | grep -q 'engine 0: polls' && fail "counters printed without --stats"
echo "perf_smoke: all checks passed"
