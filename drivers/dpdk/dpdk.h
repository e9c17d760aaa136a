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
//   ip=A.B.C.D[:P] this context's IPv4 address and base UDP port P (default
//                 4793). Required except on a fabric, which then assigns
//                 10.77.0.N to its N-th port.
//   mtu=B         data payload bytes per packet (256..9000); default: the
//                 largest of 4096/2048/1024/512 that fits the port MTU.
//   entropies=N   UDP source ports per queue, 1..64 (default 64).
//   mbufs=N       mbuf pool size (default 8191); ring=N rx/tx descriptors.
//   neigh=IP@MAC,IP@MAC  static neighbour (ARP) entries.
//   flow=0|1      try rte_flow steering by UDP destination port (default 1).
//   lcores=LIST   accepted and validated; engine pinning to lcores is the
//                 API layer's job and not wired yet.
//
// Port layout (shared with drivers/udp so that udp:// and dpdk:// hosts
// talk): queue q of a context listens on UDP port P+q. Its packets leave
// from source ports in [P + 1024 + 64q, P + 1024 + 64q + N), the entropy
// choosing one (src = window + entropy mod N). A receiver whose own base is
// P maps a source port s in [P+1024, P+1024+64*64) back to the sender's
// listening port P + (s - P - 1024) / 64; any other source port is taken as
// the sender's listening port itself (a sender with a single path). Hence
// PeerAddr = src IPv4 << 16 | that listening port, and all hosts of a job
// share one base P (as they share 4793 by default).
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

inline constexpr uint16_t kDefaultUdpPort = 4793;
inline constexpr uint32_t kSrcPortOffset = 1024;  // first source window = P + this
inline constexpr uint32_t kSrcWindow = 64;        // source ports per queue
inline constexpr uint32_t kMaxQueues = 64;        // windows P+1024 .. P+1024+64*64

// The source port queue q of a context with base port `base` sends
// `entropy` from, with `n` entropies per queue (1..kSrcWindow).
inline uint16_t src_port_for(uint16_t base, uint32_t q, uint16_t entropy, uint32_t n) {
  return static_cast<uint16_t>(base + kSrcPortOffset + kSrcWindow * q + entropy % n);
}

// The listening port of the sender of a packet with source port `src`, as a
// receiver with base port `base` computes it (see the layout above).
inline uint16_t listen_port_from_src(uint16_t base, uint16_t src) {
  const uint32_t lo = base + kSrcPortOffset, hi = lo + kSrcWindow * kMaxQueues;
  if (src >= lo && src < hi) return static_cast<uint16_t>(base + (src - lo) / kSrcWindow);
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
  uint32_t entropies = kSrcWindow;
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
