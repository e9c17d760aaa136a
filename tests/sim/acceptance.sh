#!/usr/bin/env bash
# The protocol-core acceptance runs (issue 2): pair-chaos at 100k messages for
# seeds 1..20 in RUD and ROD, and the loss sweep's goodput ratios. Suite
# 'slow' (a few minutes on one core): meson test -C build --suite slow
set -u
sim="$1"
rc=0
for mode in rud rod; do
  for seed in $(seq 1 20); do
    line=$("$sim" --scenario pair-chaos --messages 100000 --msg-size 4096 --loss 0.05 --reorder 0.2 \
           --dup 0.02 --corrupt 0.001 --seed "$seed" --mode "$mode" --json | tail -1) || { echo "FAIL: $mode seed $seed exited non-zero"; rc=1; continue; }
    echo "$line" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
ok = (d["delivered"] == d["messages_sent"] == 100000 and d["duplicates_delivered"] == 0
      and d["corrupt_delivered"] == 0 and d["corrupt_dropped"] > 0 and d["completions_error"] == 0)
print("%s seed %2d: delivered %d dup %d corrupt_delivered %d corrupt_dropped %d errors %d retx %d goodput %.3f %s" % (
  d["mode"], d["seed"], d["delivered"], d["duplicates_delivered"], d["corrupt_delivered"],
  d["corrupt_dropped"], d["completions_error"], d["retransmits"], d["goodput_fraction"], "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)' || rc=1
  done
done
"$sim" --scenario loss-sweep --json | tail -1 | python3 -c '
import json, sys
r = {(x["retx"], x["loss"]): x["goodput_fraction"] for x in json.loads(sys.stdin.read())["results"]}
s0, s2, s4, g2 = r[("sack", 0)], r[("sack", 0.01)], r[("sack", 0.0001)], r[("gbn", 0.01)]
print("loss-sweep: sack 1e-2 %.3f of lossless (>= 0.9), 1e-4 %.3f (>= 0.97), gbn/sack at 1e-2 %.3f (<= 0.6)" % (s2/s0, s4/s0, g2/s2))
sys.exit(0 if s2 >= 0.9*s0 and s4 >= 0.97*s0 and g2 <= 0.6*s2 else 1)' || rc=1
# Issue 3, acceptance 2: the pool at scale.
"$sim" --scenario pool-scale --qps 100000 --peers 1000 --json 2>/dev/null | tail -1 | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
ok = (d["delivered"] == 100000 and d["pdcs_open"] <= 2000 and d["pdc_state_bytes"] <= 1024
      and d["qp_state_bytes"] <= 512 and d["first_message_rtt_ratio"] <= 1.5)
print("pool-scale: delivered %d, pdcs_open %d, pdc_state_bytes %.0f, qp_state_bytes %.0f, first_message_rtt_ratio %.3f %s" % (
  d["delivered"], d["pdcs_open"], d["pdc_state_bytes"], d["qp_state_bytes"], d["first_message_rtt_ratio"], "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)' || rc=1
[ $rc -eq 0 ] && echo "acceptance: all runs hold" || echo "acceptance: FAILED"
exit $rc
