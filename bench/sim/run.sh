#!/usr/bin/env bash
# Runs the fabric scenarios behind docs/results/sim.md and keeps their JSON
# (one line per run) and --series files under docs/results/sim/. Every cc/lb
# pair is tried; a pair the transport does not run yet is refused by shoal-sim
# (exit 2) and recorded as such, never guessed.
# The --series files (time series, per-flow FCTs; large) go to
# $build/sim-series/, where bench/sim/plots.py reads them.
# Usage: bench/sim/run.sh [build-dir] [--no-k16]
set -u
build="${1:-build}"
sim="$build/apps/shoal-sim/shoal-sim"
out=docs/results/sim
ser="$build/sim-series"
mkdir -p "$out" "$ser"
: > "$out/runs.jsonl"
run() {  # run TAG ARGS...: appends {"tag", "cmd", "rc", "result"} to runs.jsonl
  local tag="$1"; shift
  local cmd="shoal-sim $*"
  echo "== $tag: $cmd" >&2
  local line rc
  line=$("$sim" "$@" --json 2>"$out/$tag.err" | tail -1; exit "${PIPESTATUS[0]}"); rc=$?
  [ $rc -eq 2 ] && line="null"
  [ -z "$line" ] && line="null"
  printf '{"tag": "%s", "cmd": "%s", "rc": %d, "stderr": %s, "result": %s}\n' "$tag" "$cmd" "$rc" \
    "$(grep -v '^.*: t=' "$out/$tag.err" | head -3 | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" \
    "$line" >> "$out/runs.jsonl"
  rm -f "$out/$tag.err"
}
for lb in ecmp spray adaptive; do
  for cc in fixed swift dcqcn eqds; do
    run "perm-k8-$lb-$cc" --scenario permutation --k 8 --lb $lb --cc $cc --series "$ser/perm-k8-$lb-$cc.series.json"
  done
done
for cc in fixed swift dcqcn eqds; do
  run "incast-k8-$cc" --scenario incast --k 8 --cc $cc --series "$ser/incast-k8-$cc.series.json"
done
for lb in ecmp adaptive; do
  run "linkfail-k8-$lb" --scenario link-failure --k 8 --lb $lb --series "$ser/linkfail-k8-$lb.series.json"
done
for cc in swift dcqcn eqds; do
  run "linkfail-k8-adaptive-$cc" --scenario link-failure --k 8 --lb adaptive --cc $cc
done
run "linkfail-k8-ecmp-reroute100" --scenario link-failure --k 8 --lb ecmp --reroute-us 100 \
  --series "$ser/linkfail-k8-ecmp-reroute100.series.json"
run "a2a-k8-ecmp-fixed" --scenario all-to-all --k 8
run "ring-k8-ecmp-fixed" --scenario ring-allreduce --k 8
if [ "${2:-}" != "--no-k16" ]; then
  run "perm-k16-ecmp-fixed" --scenario permutation --k 16
  run "perm-k16-spray-fixed" --scenario permutation --k 16 --lb spray
fi
echo "wrote $out/runs.jsonl" >&2
