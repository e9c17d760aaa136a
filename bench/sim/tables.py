#!/usr/bin/env python3
"""Prints the markdown tables of docs/results/sim.md (permutation, incast, link-failure,
other) from docs/results/sim/runs.jsonl, which bench/sim/run.sh writes.

Usage: bench/sim/tables.py [runs.jsonl]   (run from the repository root)
"""
import json,sys
runs={}
for l in open(sys.argv[1] if len(sys.argv) > 1 else 'docs/results/sim/runs.jsonl'):
    d=json.loads(l); runs[d['tag']]=d
def f(x,n=1):
    if x is None: return '-'
    if isinstance(x,str): return x
    return f"{x:.{n}f}"
def r(tag): return (runs.get(tag) or {}).get('result') or {}
print("### permutation k=8\n")
print("| lb / cc | goodput mean / min (Gb/s) | FCT p50 / max (us), max/p50 | uplink util max/min | drops | trims | retransmits (spurious) | RTOs |")
print("|---|---|---|---|---|---|---|---|")
for lb in ['ecmp','spray','adaptive']:
    for cc in ['fixed','swift','dcqcn','eqds']:
        d=r(f'perm-k8-{lb}-{cc}')
        if not d: print(f"| {lb} / {cc} | (no result) |"); continue
        um=d.get('uplink_util_max_over_min'); ums='inf (idle uplinks)' if um is None else f(um,2)
        print(f"| {lb} / {cc} | {f(d['goodput_gbps_mean'])} / {f(d['goodput_gbps_min'])} | {f(d['fct_us_p50'])} / {f(d['fct_us_max'])}, {d['fct_us_max']/d['fct_us_p50']:.2f} | {ums} | {d['drops']} | {d['trims']} | {d['retransmits']} ({d['spurious_retransmits']}) | {d['rto_fires']} |")
print("\n### incast k=8\n")
print("| cc | flows done | receiver goodput overall / steady (Gb/s) | FCT max/min | drops | trims | retransmits | RTOs | bytes lost |")
print("|---|---|---|---|---|---|---|---|---|")
for cc in ['fixed','swift','dcqcn','eqds']:
    d=r(f'incast-k8-{cc}')
    if not d: print(f"| {cc} | (no result) |"); continue
    print(f"| {cc} | {d['flows_completed']} of {d['flows']} | {f(d.get('receiver_goodput_gbps'))} / {f(d.get('receiver_goodput_steady_gbps', d.get('steady_goodput_gbps')))} | {f(d.get('fct_max_over_min'),2)} | {d['drops']} | {d['trims']} | {d['retransmits']} | {d['rto_fires']} | {d['bytes_lost']} |")
print("\n### link-failure k=8\n")
print("| lb / cc | flows done (failed) | bytes lost | recovery (us) | goodput after / without failure | goodput mean (Gb/s) | drops | down drops | RTOs |")
print("|---|---|---|---|---|---|---|---|---|")
for tag in ['linkfail-k8-ecmp','linkfail-k8-adaptive','linkfail-k8-adaptive-swift','linkfail-k8-adaptive-dcqcn','linkfail-k8-adaptive-eqds','linkfail-k8-ecmp-reroute100']:
    d=r(tag)
    if not d: print(f"| {tag} | (no result) |"); continue
    print(f"| {tag} ({d['lb']} / {d['cc']}) | {d['flows_completed']} ({d['flows_failed']}) | {d['bytes_lost']} | {f(d.get('recovery_us'),0)} | {f(d.get('goodput_after_over_no_failure'),3)} | {f(d['goodput_gbps_mean'])} | {d['drops']} | {d['down_drops']} | {d['rto_fires']} |")
print("\n### other\n")
for tag in ['a2a-k8-ecmp-fixed','ring-k8-ecmp-fixed','perm-k16-ecmp-fixed','perm-k16-spray-fixed']:
    x=runs.get(tag); d=r(tag)
    if not d: print(f"- {tag}: no result"); continue
    um=d.get('uplink_util_max_over_min')
    print(f"- {tag}: `{x['cmd']}` rc={x['rc']}: goodput mean {f(d.get('goodput_gbps_mean'))} Gb/s, FCT p50/max {f(d.get('fct_us_p50'))}/{f(d.get('fct_us_max'))} us, uplink max/min {f(um,2) if um else '-'}, wall {f(d.get('wall_s'))} s, events/s {int(d.get('events_per_s',0))}")
