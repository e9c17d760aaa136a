#!/usr/bin/python3
"""Turns the --series files of bench/sim/run.sh into the PNGs of docs/results/sim.md.

Reads BUILD/sim-series/*.series.json (default build/), writes docs/results/sim-*.png.
A figure only shows the runs that exist: a cc/lb pair the transport did not
run yet has no series file and is named in the figure as missing.
Usage: bench/sim/plots.py [build-dir]   (Debian's python3-matplotlib: /usr/bin/python3)
"""
import json
import os
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

build = sys.argv[1] if len(sys.argv) > 1 else "build"
src = os.path.join(build, "sim-series")
dst = "docs/results"


def load(tag):
    path = os.path.join(src, tag + ".series.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def note_missing(ax, missing, x=0.98, y=0.02):
    if missing:
        text = textwrap.fill("not run (the transport lacks it yet): " + ", ".join(missing), 50)
        ax.text(x, y, text, transform=ax.transAxes, ha="right" if x > 0.5 else "left",
                va="top" if y > 0.5 else "bottom", fontsize=8, color="gray")


# 1. FCT CDF, permutation k=8, ECMP vs spray, per cc.
fig, ax = plt.subplots(figsize=(7, 4.5))
missing = []
for lb in ("ecmp", "spray"):
    for cc in ("fixed", "swift", "dcqcn", "eqds"):
        s = load(f"perm-k8-{lb}-{cc}")
        if s is None:
            missing.append(f"{lb}/{cc}")
            continue
        fct = sorted(x for x in s["fct_us"] if x is not None)
        n = len(s["fct_us"])
        ax.step(fct, [(i + 1) / n for i in range(len(fct))], where="post", label=f"{lb} / {cc}")
ideal = None
s = load("perm-k8-ecmp-fixed")
if s:
    ideal = sorted(s["ideal_fct_us"])[len(s["ideal_fct_us"]) // 2]
    ax.axvline(ideal, color="gray", ls=":", label=f"ideal ({ideal:.0f} us)")
ax.set_xscale("log")
ax.set_xlabel("flow completion time (us, log)")
ax.set_ylabel("fraction of flows")
ax.set_title("permutation, fat-tree k=8 (128 hosts), 2 MB per flow")
ax.legend(loc="center left", fontsize=8)
note_missing(ax, missing)
fig.tight_layout()
fig.savefig(os.path.join(dst, "sim-permutation-fct-cdf.png"), dpi=110)

# 2. Incast: the receiver's downlink queue over time, per cc.
fig, ax = plt.subplots(figsize=(7, 4.5))
missing = []
for cc in ("fixed", "swift", "dcqcn", "eqds"):
    s = load(f"incast-k8-{cc}")
    if s is None:
        missing.append(cc)
        continue
    ax.plot([t / 1000 for t in s["queue_t_us"]], s["queue_pkts"], lw=0.6, label=f"{cc} ({s['queue_port']})")
ax.set_xlabel("time (ms)")
ax.set_ylabel("packets queued at the receiver's downlink")
ax.set_title("incast, 127 senders x 2 MB -> 1 receiver, k=8, 35-packet queue")
ax.legend(loc="center right", fontsize=8)
note_missing(ax, missing, 0.98, 0.3)
fig.tight_layout()
fig.savefig(os.path.join(dst, "sim-incast-queue.png"), dpi=110)

# 3. Aggregate goodput around a link failure.
fig, ax = plt.subplots(figsize=(7, 4.5))
missing = []
fail_at = None
for tag, label in (("linkfail-k8-adaptive", "adaptive"), ("linkfail-k8-ecmp", "ecmp (no reroute)"),
                   ("linkfail-k8-ecmp-reroute100", "ecmp, routing converges after 100 us")):
    s = load(tag)
    if s is None:
        missing.append(label)
        continue
    b = s["bin_us"]
    fail_at = s.get("fail_at_us", fail_at)
    ax.step([i * b for i in range(len(s["goodput_gbps"]))], s["goodput_gbps"], where="post", lw=0.9, label=label)
if fail_at is not None:
    ax.axvline(fail_at, color="red", ls="--", lw=0.8, label=f"failure at {fail_at:.0f} us")
ax.set_xlim(0, 1000)
ax.set_xlabel("time (us)")
ax.set_ylabel("aggregate goodput (Gb/s, 5 us bins)")
ax.set_title("link-failure: permutation k=8, 8 MB flows, busiest agg-core link fails")
ax.legend(loc="lower right", fontsize=8)
note_missing(ax, missing, 0.02, 0.02)
fig.tight_layout()
fig.savefig(os.path.join(dst, "sim-link-failure-goodput.png"), dpi=110)
print("wrote", ", ".join(f for f in sorted(os.listdir(dst)) if f.startswith("sim-") and f.endswith(".png")))
