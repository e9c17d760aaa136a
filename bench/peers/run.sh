#!/usr/bin/env bash
# bench/peers/run.sh: Shoal beside the transports users would pick instead,
# measured in one run on this machine (BENCHMARKS.md: every figure with a
# same-run reference, the claim is the ratio).
#
#   1. ../shared/tools/peers.sh: kernel TCP/UDP, UCX over TCP, libfabric
#      rxd (UDP) and rxm (TCP) on loopback.
#   2. Shoal over udp:// on loopback, two processes (shoal-perf --listen /
#      --connect, each end busy-polling its own core, like the peers' tools):
#      64 B message rate with a window of 64, 64 B one-way latency (p50, p99),
#      64 KiB and 1 MiB RDMA WRITE bandwidth.
#      1 and 2 alternate --repeat times (default 3); every figure of either
#      is the median of its repeats (each repeat is kept in the JSON).
#   3. Shoal over dpdk://: (a) net_ring, both ends in one process on the
#      in-process fabric, 64 KiB WRITEs; (b) net_af_packet on a veth pair in
#      a private namespace, two processes, beside dpdk-testpmd txonly ->
#      rxonly on the same veth pair with frames of Shoal's size.
#      goodput_over_testpmd = Shoal's payload packets per second over
#      testpmd's received packets per second (same vdev, same frame size).
#      net_ring is not used for the ratio: testpmd there passes mbuf pointers
#      without touching a byte, so its rate is no ceiling for a transport.
#
# Usage: bench/peers/run.sh [build-dir] [--quick] [--repeat N] [--out DIR] [--json]
#   --quick   shorter runs (peers.sh --quick, fewer iterations)
#   --repeat N  run the peers and Shoal's udp pairs N times, alternating,
#             and report each figure's median (default 3; see section 1-2)
#   --out DIR write DIR/peers.json and DIR/peers.md (docs/results)
#   --json    one JSON object as the last line of stdout
# Root is needed for the namespace part (skipped otherwise). Every process
# runs under `timeout`; the namespace is always deleted.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build"
quick=0; out=""; json=0; repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --repeat) repeat=$2; shift 2
              case "$repeat" in ''|*[!0-9]*|0) echo "peers: --repeat wants a positive count" >&2; exit 2 ;; esac ;;
    --out) out=$2; shift 2 ;;
    --json) json=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
perf="$build/apps/shoal-perf/shoal-perf"
[ -x "$perf" ] || { echo "peers: no $perf (build first)" >&2; exit 1; }
peers_sh="$root/../shared/tools/peers.sh"
log() { echo "peers: $*" >&2; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get(sys.argv[1]))' "$1"; }

msg_iters=200000; lat_iters=20000; bw_iters=20000; bw1m_iters=1000; tp_secs=5
[ $quick = 1 ] && { msg_iters=50000; lat_iters=5000; bw_iters=5000; bw1m_iters=300; tp_secs=3; }

# ---- 1 and 2, interleaved, --repeat times: the peers, then Shoal over udp:// ----
# This VM has slow spells in which every system call costs more; a spell
# that falls on one side of a single peers-then-Shoal run decides a ratio.
# So the peers and Shoal's udp pairs alternate, and every figure reported
# (Shoal's and each peer's alike) is the median of its repeats; each
# repeat's figures are kept in the JSON ("repeats").
oob=$((20000 + RANDOM % 20000))
pair() {  # pair PORT ARGS... : server and client over udp://127.0.0.1, prints the client's JSON line
  local port=$1; shift
  oob=$((oob + 1))
  timeout -k 5 120 "$perf" --driver "udp://127.0.0.1:$port" --listen "127.0.0.1:$oob" --timeout 100 \
    >/dev/null 2>&1 &
  local s=$!
  timeout -k 5 120 "$perf" --driver "udp://127.0.0.1:$((port + 1))" --connect "127.0.0.1:$oob" --timeout 100 \
    --json "$@" 2>/dev/null | tail -1
  wait $s 2>/dev/null
}
mbps() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(round(d["bw_gbps"]*1e3/8,1))' 2>/dev/null || echo null; }
reps=$(mktemp); trap 'rm -f "$reps"' EXIT
for rep in $(seq 1 "$repeat"); do
  peers=null
  if [ -f "$peers_sh" ]; then
    log "[$rep/$repeat] running peers.sh"
    peers=$(bash "$peers_sh" $([ $quick = 1 ] && echo --quick) 2>/dev/null | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))' 2>/dev/null || echo null)
  else
    log "no $peers_sh: peers skipped"
  fi
  log "[$rep/$repeat] shoal udp: 64 B message rate"
  r=$(pair 4800 --op send --size 64 --iters $msg_iters --window 64 --lat-iters 0)
  udp_msg=$(echo "$r" | jget msgs_per_s)
  log "[$rep/$repeat] shoal udp: 64 B latency"
  r=$(pair 4810 --op send --size 64 --iters 1 --window 1 --lat-iters $lat_iters)
  udp_lat50=$(echo "$r" | jget lat_p50_us); udp_lat99=$(echo "$r" | jget lat_p99_us)
  log "[$rep/$repeat] shoal udp: 64 KiB bandwidth"
  udp_bw64k=$(pair 4820 --op write --size 65536 --iters $bw_iters --window 64 --lat-iters 0 | mbps)
  log "[$rep/$repeat] shoal udp: 1 MiB bandwidth"
  udp_bw1m=$(pair 4830 --op write --size 1048576 --iters $bw1m_iters --window 16 --lat-iters 0 | mbps)
  python3 - "$peers" "$udp_msg" "$udp_lat50" "$udp_lat99" "$udp_bw64k" "$udp_bw1m" >> "$reps" <<'PYEOF'
import json, sys
def n(x):
    try: return float(x)
    except: return None
peers = json.loads(sys.argv[1]) if sys.argv[1] != "null" else None
u = dict(zip(["msg64_per_s", "lat64_p50_us", "lat64_p99_us", "bw64k_MBps", "bw1m_MBps"], map(n, sys.argv[2:7])))
print(json.dumps({"peers": peers, "shoal_udp": u}))
PYEOF
done

# ---- 3a. Shoal over dpdk:// net_ring (one process) ----
eal_ring="eal=--no-huge%20--no-pci%20--no-shconf%20-l%200%20-m%201024%20--log-level=lib.eal:warning"
log "shoal dpdk: net_ring 64 KiB"
r=$(timeout -k 5 120 "$perf" --driver "dpdk://?$eal_ring&fabric=peers&mbufs=16383" --op write --size 65536 \
      --iters $bw_iters --lat-iters 2000 --json 2>/dev/null | tail -1)
ring_gbps=$(echo "$r" | jget bw_gbps); ring_lat=$(echo "$r" | jget lat_p50_us)

# ---- 3b. dpdk:// net_af_packet on veth beside dpdk-testpmd ----
veth_gbps=null; veth_pps=null; tp_pps=null; ratio=null; veth_lat=null
payload=1024   # Shoal payload per packet at MTU 1500
frame=$((payload + 12 + 44 + 4 + 14 + 20 + 8))  # PDS + SES + trailer + Ethernet + IPv4 + UDP
if [ "$(id -u)" -eq 0 ] && command -v dpdk-testpmd >/dev/null; then
  ns="shpeers$$"
  trap 'ip netns del "$ns" 2>/dev/null || true; rm -f "$reps"' EXIT INT TERM
  ip netns add "$ns"
  ip -n "$ns" link add vA type veth peer name vB
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n "$ns" link set vA up; ip -n "$ns" link set vB up
  log "testpmd txonly -> rxonly on the veth pair, $frame-byte frames"
  tpcommon="-l 0-1 --no-huge --no-pci -m 256 --log-level=lib.eal:warning"
  timeout -s INT $((tp_secs + 3)) ip netns exec "$ns" dpdk-testpmd $tpcommon --file-prefix ${ns}rx \
    --vdev=net_af_packet0,iface=vB -- --forward-mode=rxonly --stats-period 1 -a --total-num-mbufs=4096 \
    > /tmp/$ns.rx 2>&1 &
  sleep 1
  timeout -s INT $tp_secs ip netns exec "$ns" dpdk-testpmd $tpcommon --file-prefix ${ns}tx \
    --vdev=net_af_packet0,iface=vA -- --forward-mode=txonly --txpkts=$frame --stats-period 1 -a \
    --total-num-mbufs=4096 > /tmp/$ns.tx 2>&1
  wait 2>/dev/null
  # The best one-second receive rate once traffic flows.
  tp_pps=$(grep -o 'Rx-pps: *[0-9]*' /tmp/$ns.rx | awk '{print $2}' | sort -n | tail -1)
  [ -n "$tp_pps" ] || tp_pps=null
  rm -f /tmp/$ns.rx /tmp/$ns.tx
  log "shoal dpdk: af_packet on the same veth pair, two processes"
  ip -n "$ns" link set lo up                  # both kernel addresses are local: TCP goes over lo
  ip -n "$ns" addr add 10.99.0.1/24 dev vA   # for the out-of-band TCP only
  ip -n "$ns" addr add 10.99.0.2/24 dev vB
  eal() { echo "eal=--no-huge%20--no-pci%20--no-shconf%20--file-prefix=$ns$1%20-l%200%20-m%20256%20--log-level=lib.eal:warning%20--vdev=net_af_packet0,iface=$2"; }
  r=""
  for attempt in 1 2; do  # the server side has been seen to fail its first EAL start now and then
    timeout -k 5 120 ip netns exec "$ns" "$perf" --driver "dpdk://?$(eal s$attempt vB)&ip=10.99.1.2&mtu=$payload" \
      --listen 10.99.0.2:$((18600 + attempt)) --timeout 100 >/dev/null 2>/tmp/$ns.server &
    s=$!
    r=$(timeout -k 5 120 ip netns exec "$ns" "$perf" --driver "dpdk://?$(eal c$attempt vA)&ip=10.99.1.1&mtu=$payload" \
          --connect 10.99.0.2:$((18600 + attempt)) --timeout 100 --json --op write --size 65536 \
          --iters $((bw_iters / 4)) --lat-iters 1000 2>/tmp/$ns.client | tail -1)
    wait $s 2>/dev/null
    [ -n "$r" ] && break
    log "dpdk af_packet run $attempt failed:"
    cat /tmp/$ns.client /tmp/$ns.server >&2
  done
  rm -f /tmp/$ns.client /tmp/$ns.server
  veth_gbps=$(echo "$r" | jget bw_gbps); veth_lat=$(echo "$r" | jget lat_p50_us)
  veth_pps=$(python3 -c "g=$veth_gbps; print(round(g*1e9/8/$payload) if g else 'null')" 2>/dev/null || echo null)
  ratio=$(python3 -c "a=$veth_pps; b=$tp_pps; print(round(a/b,3) if a and b else 'null')" 2>/dev/null || echo null)
  ip netns del "$ns" 2>/dev/null
else
  log "not root or no dpdk-testpmd: the veth comparison is skipped"
fi

result=$(python3 - "$reps" <<EOF
import json, sys, statistics
reps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def n(x):
    try: return float(x)
    except: return None
def median_of(objs):
    # Field by field: the median of the numbers present; nested objects recurse.
    objs = [o for o in objs if isinstance(o, dict)]
    if not objs: return None
    out = {}
    for k in objs[0]:
        vals = [o.get(k) for o in objs]
        if isinstance(vals[0], dict): out[k] = median_of(vals)
        else:
            nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            out[k] = round(statistics.median(nums), 3) if nums else vals[0]
    return out
r = {
  "peers": median_of([x["peers"] for x in reps]),
  "shoal_udp": median_of([x["shoal_udp"] for x in reps]),
  "repeats": reps,
  "shoal_dpdk": {"net_ring_bw64k_gbps": n("$ring_gbps"), "net_ring_lat64k_p50_us": n("$ring_lat"),
                 "af_packet_bw64k_gbps": n("$veth_gbps"), "af_packet_lat64k_p50_us": n("$veth_lat"),
                 "af_packet_payload_pps": n("$veth_pps"), "testpmd_af_packet_rx_pps": n("$tp_pps"),
                 "frame_bytes": $frame, "goodput_over_testpmd": n("$ratio")},
}
def get(d, *k):
    for x in k:
        if not isinstance(d, dict) or d.get(x) is None: return None
        d = d[x]
    return d
checks = {}
def chk(name, a, op, b, factor):
    if a is None or b is None: checks[name] = None; return
    checks[name] = (a >= factor * b) if op == ">=" else (a <= factor * b)
chk("msg64_ge_2x_ucx_tcp", get(r, "shoal_udp", "msg64_per_s"), ">=", get(r, "peers", "ucx_tcp", "msg64_per_s"), 2)
chk("bw64k_ge_3x_libfabric_rxd", get(r, "shoal_udp", "bw64k_MBps"), ">=", get(r, "peers", "libfabric_rxd", "bw64k_MBps"), 3)
chk("lat64_le_1.5x_ucx_tcp", get(r, "shoal_udp", "lat64_p50_us"), "<=", get(r, "peers", "ucx_tcp", "lat64_us"), 1.5)
g = get(r, "shoal_dpdk", "goodput_over_testpmd")
checks["dpdk_goodput_over_testpmd_ge_0.8"] = None if g is None else g >= 0.8
r["checks"] = checks
print(json.dumps(r))
EOF
)

table=$(python3 - "$result" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); p = r.get("peers") or {}
def f(x, d=1):
    return "n/a" if x is None else (f"{x:,.{d}f}" if isinstance(x, float) else str(x))
def g(d, *k):
    for x in k:
        if not isinstance(d, dict): return None
        d = d.get(x)
    return d
u = r["shoal_udp"]; s = r["shoal_dpdk"]
rows = [
 ("64 B messages/s (window)", f(u["msg64_per_s"], 0), "UCX tcp " + f(g(p,"ucx_tcp","msg64_per_s"),0) + ", kernel UDP " + f(g(p,"kernel_udp","msg64_per_s"),0)),
 ("64 B one-way latency p50 / p99 (us)", f(u["lat64_p50_us"], 2) + " / " + f(u["lat64_p99_us"], 2), "UCX tcp " + f(g(p,"ucx_tcp","lat64_us"),2) + ", kernel UDP " + f(g(p,"kernel_udp","lat64_p50_us"),2) + ", libfabric rxd " + f(g(p,"libfabric_rxd","lat64_us"),2)),
 ("64 KiB bandwidth (MB/s)", f(u["bw64k_MBps"]), "libfabric rxd " + f(g(p,"libfabric_rxd","bw64k_MBps"))),
 ("1 MiB bandwidth (MB/s)", f(u["bw1m_MBps"]), "UCX tcp " + f(g(p,"ucx_tcp","bw1m_MBps"))),
]
print("| Shoal over udp:// (loopback, two processes) | Shoal | peers, same run |")
print("|---|---|---|")
for a, b, c in rows: print(f"| {a} | {b} | {c} |")
print()
print("| Shoal over dpdk:// | figure | reference, same run |")
print("|---|---|---|")
print(f"| net_ring, one process, 64 KiB WRITE | {f(s['net_ring_bw64k_gbps'],2)} Gb/s, p50 {f(s['net_ring_lat64k_p50_us'],1)} us | (testpmd on net_ring moves pointers only: no ceiling) |")
print(f"| af_packet on veth, two processes, 64 KiB WRITE | {f(s['af_packet_bw64k_gbps'],3)} Gb/s = {f(s['af_packet_payload_pps'],0)} payload pkts/s | testpmd txonly->rxonly {f(s['testpmd_af_packet_rx_pps'],0)} pkts/s of {s['frame_bytes']} B; ratio {f(s['goodput_over_testpmd'],3)} |")
print()
print("| check (issue 5, acceptance 3) | holds |")
print("|---|---|")
for k, v in r["checks"].items(): print(f"| {k} | {'n/a' if v is None else ('yes' if v else 'NO')} |")
EOF
)
echo "$table"
if [ -n "$out" ]; then
  mkdir -p "$out"
  echo "$result" > "$out/peers.json"
  {
    echo "# Shoal beside the transports users would pick instead"
    echo
    echo "Measured by \`bench/peers/run.sh$([ $quick = 1 ] && echo ' --quick') --repeat $repeat --out docs/results\` on $(date -u +%Y-%m-%d)"
    echo "($(nproc) cores, kernel $(uname -r)); every figure beside the peers' figures from the same run: the"
    echo "peers and Shoal's udp pairs alternated $repeat times, each figure the median of its $repeat."
    echo "Raw numbers: [peers.json](peers.json). How each is measured: the header of bench/peers/run.sh."
    echo
    echo "$table"
  } > "$out/peers.md"
  log "wrote $out/peers.json and $out/peers.md"
fi
[ $json = 1 ] && echo "$result"
exit 0
