// drivers/dpdk/dpdk.h: the `dpdk://` driver as the rest of Shoal sees it,
// without a single DPDK header (ARCHITECTURE rule 2: only drivers/dpdk/*.cc
// and dpdk_driver.h include rte_*). open_driver() calls open_dpdk(); tests
// and tools use the option parser and the port layout helpers.
//
// URI (after "dpdk://"): [?key=value&...], values percent-encoded:
//   eal=ARGS      rte_eal_init arguments, space-separated ("%20"). EAL starts
//                 once per process: later contexts reuse it and must pass no
//                 eal= or the identical string (else InvalidArgument). If no
//                 hugepages are available, "--no-huge" is added (logged).
//   port=ID       ethdev port id (default 0). Ignored with fabric=.
//   fabric=NAME   in-process test fabric: the context gets its own net_ring
//                 port on the named software L2 fabric (see dpdk_fabric.h);
//                 any number of contexts in one process reach each other.
//   ip=A.B.C.D[:P] this context's IPv4 address and queue 0's UDP port P
//                 (default 4793; P..P+queues-1 must lie in 4793..5048). Required except on a fabric, which then assigns
//                 10.77.0.N to its N-th port.
//   mtu=B         data payload bytes per packet (256..9000); default: the
//                 largest of 4096/2048/1024/512 that fits the port MTU.
//   entropies=N   UDP source ports per queue, 1..64 (default 64).
//   mbufs=N       mbuf pool size (default 8191); ring=N rx/tx descriptors.
//   neigh=IP@MAC,IP@MAC  static neighbour (ARP) entries.
//   flow=0|1      try rte_flow steering by UDP destination port (default 1).
//   lcores=LIST   the EAL lcore each queue's engine runs on, in queue order
//                 (at least one per queue; each must be in EAL's lcore set,
//                 eal=-l ...). Threaded mode pins engine thread q to that
//                 lcore's CPU (DriverCaps::engine_cpus) unless the
//                 application passed engine_cpus; library mode runs engines
//                 on the application's threads and ignores it.
//
// Port layout: the same protocol constants as drivers/udp (udp.h on branch
// udp), so a udp:// host and a dpdk:// host talk:
//  * queue q listens on L = P + q; every listening port lies in the window
//    [kPortBase, kPortBase + kPortStride) = 4793..5048;
//  * its packets leave from source port L + kPortStride * (entropy % N + 1),
//    N = entropies <= 64 (5049..21432 at most, below the ephemeral range);
//  * a receiver maps a source port s in [kPortBase + kPortStride,
//    kPortBase + kPortStride * 65) back to kPortBase + (s - kPortBase) %
//    kPortStride, the sender's listening port, without knowing the sender's
//    P; any other source port is taken as is (a single-path sender).
// Hence RxMeta.peer = src IPv4 << 16 | listening port = the sender's
// local_addr(q), and RxMeta.entropy = s.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "shoal/driver_sdk.h"

namespace shoal::dpdk {

inline constexpr uint16_t kDefaultUdpPort = 4793;  // = udp::kPortBase
inline constexpr uint16_t kPortBase = 4793;
inline constexpr uint32_t kPortStride = 256;  // listening window; entropy port step
inline constexpr uint32_t kMaxEntropies = 64;
inline constexpr uint32_t kMaxQueues = 64;    // engines per context

// The source port for `entropy` of the queue listening on `listen`, with `n`
// entropies (1..kMaxEntropies).
inline uint16_t src_port_for(uint16_t listen, uint16_t entropy, uint32_t n) {
  return static_cast<uint16_t>(listen + kPortStride * (entropy % n + 1));
}

// The listening port of the sender of a packet with source port `src`.
inline uint16_t listen_port_from_src(uint16_t src) {
  if (src >= kPortBase + kPortStride && src < kPortBase + kPortStride * (kMaxEntropies + 1))
    return static_cast<uint16_t>(kPortBase + (src - kPortBase) % kPortStride);
  return src;
}

using Mac = std::array<uint8_t, 6>;

struct DpdkOptions {
  std::string eal;         // percent-decoded
  bool eal_given = false;
  uint16_t port_id = 0;
  std::string fabric;      // non-empty: in-process net_ring fabric
  uint32_t ip = 0;         // host byte order; 0 = not given
  uint16_t udp_port = kDefaultUdpPort;
  uint32_t mtu = 0;        // 0 = from the port's MTU
  uint32_t entropies = kMaxEntropies;
  uint32_t mbufs = 8191;
  uint32_t ring = 1024;
  bool flow = true;
  std::vector<std::pair<uint32_t, Mac>> neigh;
  std::vector<uint32_t> lcores;
};

// Parses the query part (after '?'). Errors: InvalidArgument naming the
// key (unknown key, key given twice, bad value, bad percent-encoding).
absl::StatusOr<DpdkOptions> parse_dpdk_query(std::string_view query);

// Splits an EAL argument string on spaces (no quoting: DPDK arguments do
// not need it).
std::vector<std::string> split_eal_args(std::string_view args);

// "dpdk://" + rest. Errors: InvalidArgument (options), FailedPrecondition
// (EAL init, port setup, a port already used by another context),
// ResourceExhausted (mempool, rings).
absl::StatusOr<std::unique_ptr<Driver>> open_dpdk(std::string_view rest, uint32_t queues);

}  // namespace shoal::dpdk
