#!/usr/bin/env bash
# bench/sim/acceptance.sh: the congestion-control / spraying issue's
# acceptance checks on the simulated fabric, run and judged in one go.
# Prints one line per check (holds: yes/no, with the measured figures) and,
# with --json, one JSON object as the last line. Exit status 0 when every
# check holds, 1 otherwise, 2 on a usage error.
#
#   1. permutation --k 8, for swift, dcqcn, eqds: spray mean goodput
#      >= 1.8x ecmp's and >= 75 Gb/s; spray fct_us_max <= 1.25 fct_us_p50;
#      spray uplink_util_max_over_min <= 1.3 (ecmp's is reported).
#   2. incast --k 8: eqds receiver goodput >= 95 Gb/s with 0 drops and
#      FCT max/min <= 1.5; swift and dcqcn >= 90 Gb/s; every flow completes.
#   3. link-failure --k 8 --lb adaptive (each of swift, dcqcn, eqds): every
#      flow completes, bytes_lost = 0, recovery_us <= 200.
#   4. permutation --k 16 --lb spray completes within 180 s of wall time.
#
# Usage: bench/sim/acceptance.sh [build-dir] [--json] [--no-k16] [--seed S] [-- SIM-FLAGS...]
# SIM-FLAGS go to every shoal-sim run (e.g. -- --ecn red --hash crc32c).
set -uo pipefail
build=build; json=0; k16=1; seed=13; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; extra=("$@"); break ;;
    --json) json=1; shift ;;
    --no-k16) k16=0; shift ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "acceptance: unknown flag $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
sim="$build/apps/shoal-sim/shoal-sim"
[ -x "$sim" ] || { echo "acceptance: no $sim (build first)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {  # run NAME ARGS...: the JSON line of one shoal-sim run into $tmp/NAME.json
  local name=$1; shift
  echo "acceptance: shoal-sim $* ${extra[*]} --seed $seed" >&2
  "$sim" "$@" "${extra[@]}" --seed "$seed" --json 2>/dev/null | tail -1 > "$tmp/$name.json"
}
for cc in swift dcqcn eqds; do
  for lb in ecmp spray; do run "perm-$lb-$cc" --scenario permutation --k 8 --cc $cc --lb $lb; done
  run "incast-$cc" --scenario incast --k 8 --cc $cc
  run "linkfail-$cc" --scenario link-failure --k 8 --lb adaptive --cc $cc
done
[ $k16 = 1 ] && run perm-k16 --scenario permutation --k 16 --lb spray
python3 - "$tmp" "$json" "$k16" <<'PY'
import json, os, sys
tmp, want_json, k16 = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
def load(n):
    try:
        return json.load(open(os.path.join(tmp, n + ".json")))
    except Exception:
        return None
checks = []
def check(name, ok, detail):
    checks.append({"check": name, "holds": bool(ok), "measured": detail})
for cc in ("swift", "dcqcn", "eqds"):
    e, s = load(f"perm-ecmp-{cc}"), load(f"perm-spray-{cc}")
    if not e or not s:
        check(f"1.{cc}", False, "run failed"); continue
    ratio = s["goodput_gbps_mean"] / e["goodput_gbps_mean"]
    check(f"1.{cc}.spray_goodput_ge_75_and_1.8x_ecmp", s["goodput_gbps_mean"] >= 75 and ratio >= 1.8,
          f"spray {s['goodput_gbps_mean']:.1f} Gb/s, ecmp {e['goodput_gbps_mean']:.1f}, {ratio:.2f}x")
    r = s["fct_us_max"] / s["fct_us_p50"]
    check(f"1.{cc}.spray_fct_max_le_1.25_p50", r <= 1.25, f"{r:.2f}")
    u = s.get("uplink_util_max_over_min")
    check(f"1.{cc}.spray_uplink_max_over_min_le_1.3", u is not None and u <= 1.3,
          f"spray {u}, ecmp {e.get('uplink_util_max_over_min')} (null = idle uplinks)")
for cc in ("swift", "dcqcn", "eqds"):
    d = load(f"incast-{cc}")
    if not d:
        check(f"2.{cc}", False, "run failed"); continue
    g = d["receiver_goodput_gbps"]
    # Every flow must complete as well: a failed flow leaves less to carry
    # and so can raise the receiver's goodput.
    done = d["flows_completed"] == d["flows"]
    flows = f"{d['flows_completed']}/{d['flows']} flows"
    if cc == "eqds":
        ok = done and g >= 95 and d["drops"] == 0 and d["fct_max_over_min"] <= 1.5
        check("2.eqds.ge_95_no_drops_fct_spread_le_1.5", ok,
              f"{g:.1f} Gb/s, {flows}, {d['drops']} drops, {d['trims']} trims, FCT max/min {d['fct_max_over_min']:.2f}")
    else:
        check(f"2.{cc}.ge_90", done and g >= 90,
              f"{g:.1f} Gb/s overall ({d.get('receiver_goodput_steady_gbps', 0):.1f} steady), {flows}")
for cc in ("swift", "dcqcn", "eqds"):
    d = load(f"linkfail-{cc}")
    if not d:
        check(f"3.{cc}", False, "run failed"); continue
    rec = d.get("recovery_us")
    ok = d["flows_completed"] == d["flows"] and d["bytes_lost"] == 0 and rec is not None and rec <= 200
    check(f"3.{cc}.all_complete_none_lost_recovery_le_200us", ok,
          f"{d['flows_completed']}/{d['flows']} flows, {d['bytes_lost']} bytes lost, recovery {rec} us")
if k16:
    d = load("perm-k16")
    check("4.k16_spray_within_180s", bool(d) and d.get("ok") and d["wall_s"] <= 180,
          f"{d['wall_s']:.1f} s wall, {d['events_per_s']:.3g} events/s" if d else "run failed")
for c in checks:
    print(f"{'yes' if c['holds'] else 'NO ':3}  {c['check']:48} {c['measured']}")
held = sum(c["holds"] for c in checks)
print(f"{held} of {len(checks)} checks hold")
if want_json:
    print(json.dumps({"checks": checks, "held": held, "total": len(checks)}))
sys.exit(0 if held == len(checks) else 1)
PY
