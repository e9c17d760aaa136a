#!/usr/bin/env bash
# tests/netns/run.sh: Shoal between network namespaces, as between hosts.
#
# Builds N (2..4, default 2) namespaces, each with a veth pair whose other
# end is enslaved to a bridge in a namespace of its own, so the hosts meet
# through a switch. Then runs shoal-perf in two processes, the server in
# the first namespace and the client in the second (the others are there to
# make the bridge a real L2 segment with bystanders):
#   - udp://  kernel UDP (io_uring) on the namespaces' addresses;
#   - dpdk:// net_af_packet (or net_af_xdp, generic mode) on each
#     namespace's veth, with Shoal's own IPv4 addresses and ARP (addresses
#     the kernel does not own, so it stays out of the way).
# The two ends meet over TCP on the kernel addresses to swap Shoal
# addresses and keys (shoal-perf --listen / --connect).
#
# Bounded: every process runs under `timeout`; the namespaces (and with them
# the veths and the bridge) are deleted on any exit. Needs root; without it
# the script exits 77 (meson's "skipped").
#
# Usage: tests/netns/run.sh [build-dir] [--hosts N] [--pmd af_packet|af_xdp]
#                           [--quick] [--json]
# Prints a table of what it measured and, with --json, one JSON object as
# its last line. Exit status: 0 all runs ok, 1 a run failed, 77 not root.
set -euo pipefail
build=build
hosts=2
pmd=af_packet
quick=0
json=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=$2; shift 2 ;;
    --pmd) pmd=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --json) json=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
perf="$build/apps/shoal-perf/shoal-perf"
[ "$(id -u)" -eq 0 ] || { echo "netns: needs root (skipped)" >&2; exit 77; }
[ -x "$perf" ] || { echo "netns: no $perf (build first)" >&2; exit 1; }
[ "$hosts" -ge 2 ] && [ "$hosts" -le 4 ] || { echo "netns: --hosts wants 2..4" >&2; exit 2; }
case "$pmd" in af_packet|af_xdp) ;; *) echo "netns: --pmd wants af_packet or af_xdp" >&2; exit 2 ;; esac

tag="sh$$"
br="${tag}br"
cleanup() {
  for i in $(seq 1 "$hosts"); do ip netns del "${tag}h$i" 2>/dev/null || true; done
  ip netns del "$br" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$br"
ip -n "$br" link add br0 type bridge
ip -n "$br" link set br0 up
for i in $(seq 1 "$hosts"); do
  ns="${tag}h$i"
  ip netns add "$ns"
  ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$br"
  ip -n "$br" link set "p$i" master br0
  ip -n "$br" link set "p$i" up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 mtu 1500 up
  ip -n "$ns" addr add "10.88.0.$i/24" dev eth0
done

iters=20000; bw_iters=4000; lat=2000
[ $quick = 1 ] && { iters=5000; bw_iters=1000; lat=500; }
results=()
failed=0

# run NAME SERVER_URI CLIENT_URI ARGS...: server in host 1, client in host 2.
run() {
  local name=$1 suri=$2 curi=$3; shift 3
  local out
  oob=$((18515 + ${#results[@]}))
  timeout -k 5 90 ip netns exec "${tag}h1" "$perf" --driver "$suri" --listen 10.88.0.1:$oob --timeout 60 \
    >/dev/null 2>"/tmp/$tag.$name.server" &
  local spid=$!
  if out=$(timeout -k 5 90 ip netns exec "${tag}h2" "$perf" --driver "$curi" --connect 10.88.0.1:$oob \
             --timeout 60 --json "$@" 2>"/tmp/$tag.$name.client"); then
    :
  else
    echo "netns: $name failed:" >&2
    cat "/tmp/$tag.$name.client" "/tmp/$tag.$name.server" >&2 || true
    failed=1
  fi
  wait "$spid" 2>/dev/null || true
  rm -f "/tmp/$tag.$name.client" "/tmp/$tag.$name.server"
  local j
  j=$(printf '%s\n' "$out" | tail -1)
  case "$j" in "{"*) results+=("\"$name\": $j") ;; *) results+=("\"$name\": null") ;; esac
  printf '%s\n' "$out" | grep -E '^  (bandwidth|latency)' | sed "s/^/  [$name] /"
}

echo "netns: $hosts hosts on a bridge; shoal-perf server in h1 (10.88.0.1), client in h2 (10.88.0.2)"
# Kernel UDP: MTU 1500 carries 1024-byte payloads.
# Each run its own port: a closed io_uring releases its sockets a moment late.
run udp_send64 "udp://10.88.0.1:4793?mtu=1024" "udp://10.88.0.2:4793?mtu=1024" \
  --op send --size 64 --iters "$iters" --lat-iters "$lat"
run udp_write64k "udp://10.88.0.1:4794?mtu=1024" "udp://10.88.0.2:4794?mtu=1024" \
  --op write --size 65536 --iters "$bw_iters" --lat-iters 0

# DPDK on each namespace's veth.
vdev() {  # $1 = index
  case "$pmd" in
    af_packet) echo "net_af_packet0,iface=eth0" ;;
    af_xdp) echo "net_af_xdp0,iface=eth0,start_queue=0,queue_count=1" ;;
  esac
}
eal() {  # $1 = host index
  echo "eal=--no-huge%20--no-pci%20--no-shconf%20--file-prefix=${tag}h$1%20-l%200%20-m%20256%20--log-level=lib.eal:warning%20--vdev=$(vdev "$1")"
}
run "dpdk_${pmd}_write64k" "dpdk://?$(eal 1)&ip=10.88.1.1&mtu=1024" "dpdk://?$(eal 2)&ip=10.88.1.2&mtu=1024" \
  --op write --size 65536 --iters "$bw_iters" --lat-iters "$lat"

if [ $json = 1 ]; then
  (IFS=,; echo "{\"hosts\": $hosts, \"pmd\": \"$pmd\", ${results[*]}}")
fi
exit $failed
