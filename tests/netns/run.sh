#!/usr/bin/env bash
# tests/netns/run.sh: shoal-perf over dpdk:// on net_af_packet, through a
# veth pair inside a private network namespace (root only).
#
# shoal-perf runs both ends in one process, so both veth ends live in one
# namespace: the sender's context uses ethdev port 0 (af_packet on vA), the
# receiver's port 1 (af_packet on vB); frames cross the kernel veth. No IP is
# configured on the kernel side, so the kernel neither answers ARP nor
# replies to the UDP frames: Shoal's own ARP resolves 10.9.0.x.
#
# Bounded: every run is under `timeout`; the namespace (and with it the veth
# pair) is removed on any exit. Usage: tests/netns/run.sh [build-dir] [PMD]
# with PMD af_packet (default) or af_xdp (generic XDP mode; MTU <= 1500).
set -euo pipefail
build=${1:-build}
pmd=${2:-af_packet}
perf="$build/apps/shoal-perf/shoal-perf"
[ "$(id -u)" -eq 0 ] || { echo "netns: needs root" >&2; exit 77; }
[ -x "$perf" ] || { echo "netns: no $perf (build first)" >&2; exit 1; }
ns="shoal-netns-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip netns exec "$ns" ip link add vA type veth peer name vB
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec "$ns" ip link set vA up
ip netns exec "$ns" ip link set vB up
case "$pmd" in
  af_packet) vdevA="net_af_packet0,iface=vA"; vdevB="net_af_packet1,iface=vB" ;;
  af_xdp) vdevA="net_af_xdp0,iface=vA,start_queue=0,queue_count=1"; vdevB="net_af_xdp1,iface=vB,start_queue=0,queue_count=1" ;;
  *) echo "netns: unknown PMD $pmd" >&2; exit 2 ;;
esac
eal="eal=--no-huge%20--no-pci%20--no-shconf%20-l%200%20-m%20512%20--log-level=lib.eal:warning"
eal="$eal%20--vdev=$vdevA%20--vdev=$vdevB"
timeout -k 5 60 ip netns exec "$ns" "$perf" \
  --driver "dpdk://?$eal&port=0&ip=10.9.0.1" --peer-driver "dpdk://?$eal&port=1&ip=10.9.0.2" \
  --size 65536 --iters 2000 --window 32 --lat-iters 1000 "${@:3}"
