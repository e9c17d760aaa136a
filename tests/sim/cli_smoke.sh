#!/usr/bin/env bash
# Fast checks of the shoal-sim command line: help, bad input, JSON output,
# and that a broken invariant would be reported through the exit status.
set -u
sim="$1"
fail() { echo "FAIL: $*"; exit 1; }

"$sim" --help | grep -q pair-chaos || fail "--help does not list pair-chaos"
"$sim" --scenario pair-chaos --help | grep -q -- '--loss' || fail "scenario help lacks --loss"
"$sim" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no --scenario must exit 2"
"$sim" --scenario nosuch >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown scenario must exit 2"
"$sim" --scenario pair-chaos --bogus 1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown flag must exit 2"
"$sim" --scenario pair-chaos --loss 2 >/dev/null 2>&1; [ $? -eq 2 ] || fail "probability > 1 must exit 2"
"$sim" --scenario pair-chaos --messages abc >/dev/null 2>&1; [ $? -eq 2 ] || fail "non-numeric --messages must exit 2"

out=$("$sim" --scenario pair-chaos --messages 3000 --msg-size 3000 --loss 0.05 --reorder 0.2 \
      --dup 0.02 --corrupt 0.01 --seed 3 --json) || fail "pair-chaos exited $?"
echo "$out" | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["delivered"] == d["messages_sent"] == 3000, d
assert d["duplicates_delivered"] == 0 and d["corrupt_delivered"] == 0, d
assert d["corrupt_dropped"] > 0 and d["completions_error"] == 0, d
assert d["retransmits"] > 0, d
' || fail "pair-chaos JSON does not hold the invariants"

# Trimmed packets are NACKed and resent; nothing is lost or delivered twice.
out=$("$sim" --scenario pair-chaos --messages 3000 --trim 0.05 --seed 5 --json) || fail "pair-chaos --trim exited $?"
echo "$out" | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["delivered"] == 3000 and d["duplicates_delivered"] == 0 and d["corrupt_delivered"] == 0, d
# (a trim of a PSN already delivered, e.g. a late retransmission, asks for nothing)
assert d["trimmed"] > 0 and d["nacks_sent"] >= 0.9 * d["trimmed"], d
' || fail "pair-chaos --trim JSON"

# An impossible run (every packet lost) must fail loudly, not hang or pass.
"$sim" --scenario pair-chaos --messages 10 --loss 1 --time-limit-s 2 >/dev/null 2>&1
[ $? -eq 1 ] || fail "a run that loses everything must exit 1"

out=$("$sim" --scenario pair-throughput --messages 20000 --msg-size 64 --json) || fail "pair-throughput exited $?"
echo "$out" | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["messages"] == 20000 and d["ok"] and d["msgs_per_cpu_s"] > 0, d
assert 0 < d["shoal_over_bare"] < 1, d   # the same-run no-protocol ceiling is beside it
' || fail "pair-throughput JSON"
"$sim" --scenario pair-throughput --only nosuch >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad --only must exit 2"
"$sim" --scenario pair-throughput --messages 1000 --only bare --json | tail -1 | grep -q bare_msgs_per_cpu_s || fail "--only bare"
# pool-scale: PDCs follow peers, not QPs; 0-RTT first message.
out=$("$sim" --scenario pool-scale --qps 3000 --peers 50 --json 2>/dev/null) || fail "pool-scale exited $?"
echo "$out" | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["delivered"] == 3000 and d["pdcs_open"] == 100, d
assert d["pdc_state_bytes"] <= 1024 and d["qp_state_bytes"] <= 512, d
assert d["first_message_rtt_ratio"] <= 1.5, d
' || fail "pool-scale JSON"
"$sim" --scenario pool-scale --qps 10 --peers 20 >/dev/null 2>&1; [ $? -eq 2 ] || fail "--qps < --peers must exit 2"
echo "cli_smoke: all checks passed"
