// drivers/dpdk/dpdk_driver.h: the DPDK ethdev driver (internal: includes DPDK
// headers, so only drivers/dpdk files and its tests include it).
//
// One context = one ethdev port with `queues` rx/tx queue pairs, queue q used
// by engine q only. Frames are Ethernet/IPv4/UDP (no VLAN, no IP options on
// tx); the port layout is in dpdk.h.
//
// Data path:
//  * tx_alloc lends mbuf data areas (the payload starts after room for the
//    42 header bytes); tx_burst writes the headers in front, in place: no copy
//    and no allocation beyond the mbufs. IPv4 checksum is offloaded when the
//    port advertises RTE_ETH_TX_OFFLOAD_IPV4_CKSUM, computed otherwise; the
//    UDP checksum is 0 (allowed for IPv4; the Shoal trailer carries a CRC).
//  * rx_burst hands out RxPacket.data pointing into the mbuf (zero copy);
//    RxPacket.handle is the mbuf; rx_release frees them in bulk.
//  * Steering: rte_flow rules (UDP dst port P+q -> queue q) when the PMD
//    takes them. Otherwise (net_ring, af_packet, af_xdp) software dispatch:
//    whoever polls a hardware rx queue forwards frames for a sibling queue's
//    port into that queue's MP/SC rte_ring; rx_burst(q) reads its ring first.
//    Each hardware rx queue is polled under a try-lock, and an engine whose
//    own queue was empty helps by polling one sibling queue, so frames never
//    wait for an engine the application is not driving.
//  * Neighbours: a lock-free table (static neigh= entries, learned from ARP
//    requests and replies for our IP). A frame to an unresolved IP waits in
//    a small per-queue pending list while an ARP request goes out (resent
//    every 100 ms, the frame dropped after 1 s); ARP requests for our IP are
//    answered in place with the received mbuf.
//  * Frames to our own IP are looped back inside the driver (a NIC does not
//    hairpin), through the target queue's dispatch ring.
// Invariants: every lent or received mbuf is freed exactly once (tx_burst
// takes back all lent buffers; rx_release frees what rx_burst handed out);
// bad frames are counted and dropped, never trusted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "absl/status/statusor.h"
#include "drivers/dpdk/dpdk.h"
#include "drivers/dpdk/dpdk_fabric.h"
#include "shoal/driver_sdk.h"

namespace shoal::dpdk {

// Starts EAL once per process with `o.eal` (see dpdk.h); later calls check
// that o.eal is empty or identical. Errors: InvalidArgument (conflicting
// eal=), FailedPrecondition (rte_eal_init failed).
absl::Status ensure_eal(const DpdkOptions& o);

// Per-queue counts; counters() sums them. Plain integers written by the
// queue's thread: read them when the queues are quiet.
struct DpdkCounters {
  uint64_t tx_packets = 0;
  uint64_t rx_packets = 0;
  uint64_t tx_full_drops = 0;      // the NIC tx queue did not take them
  uint64_t tx_alloc_fail = 0;      // tx_alloc found the pool empty
  uint64_t rx_dispatched = 0;      // forwarded to a sibling queue's ring
  uint64_t rx_dispatch_drops = 0;  // sibling ring full
  uint64_t rx_bad = 0;             // malformed frame, bad checksum, chained mbuf
  uint64_t rx_not_ours = 0;        // other IP/protocol/port
  uint64_t arp_rx = 0;
  uint64_t arp_replies = 0;
  uint64_t arp_requests = 0;
  uint64_t neigh_drops = 0;        // unresolved after 1 s, or pending list full
  uint64_t loopback = 0;           // sent to our own IP
  uint64_t bad_buffers = 0;        // a TxPacket that was not lent by this queue
};

class NeighTable {
 public:
  static constexpr uint32_t kSize = 1024;  // power of two
  bool lookup(uint32_t ip, rte_ether_addr* mac) const;
  // Adds or updates; returns false if the table is full.
  bool learn(uint32_t ip, const rte_ether_addr& mac);

 private:
  std::atomic<uint32_t> ip_[kSize] = {};   // 0 = empty; set once per slot
  std::atomic<uint64_t> mac_[kSize] = {};  // the MAC in the low 48 bits
  std::mutex write_mu_;
};

class DpdkDriver final : public Driver {
 public:
  static constexpr uint32_t kMaxBurst = 32;
  static constexpr uint32_t kHdrLen = sizeof(rte_ether_hdr) + 20 + 8;  // 42

  static absl::StatusOr<std::unique_ptr<DpdkDriver>> open(const DpdkOptions& o, uint32_t queues);
  ~DpdkDriver() override;

  const DriverCaps& caps() const override { return caps_; }
  PeerAddr local_addr(uint32_t q) const override;
  absl::StatusOr<PeerAddr> parse_addr(std::string_view text) const override;
  std::string format_addr(PeerAddr addr) const override;
  uint32_t rx_burst(uint32_t q, std::span<RxPacket> pkts) override;
  void rx_release(uint32_t q, std::span<RxPacket> pkts) override;
  uint32_t tx_alloc(uint32_t q, std::span<TxPacket> slots) override;
  uint32_t tx_burst(uint32_t q, std::span<TxPacket> pkts) override;

  uint16_t port_id() const { return port_; }
  const rte_ether_addr& mac() const { return mac_; }
  uint32_t ip() const { return ip_; }
  bool flow_steering() const { return flow_steering_; }
  bool ip_cksum_offload() const { return ip_cksum_offload_; }
  NeighTable& neigh() { return neigh_; }
  DpdkCounters counters() const;
  const DpdkCounters& queue_counters(uint32_t q) const;
  // Link, steering, counters and the port's xstats, one per line.
  std::string dump() const;
  // Sends an ARP request for `ip` on queue q's thread (tests, warm-up).
  void arp_request(uint32_t q, uint32_t ip);

 private:
  struct Queue;
  DpdkDriver(const DpdkOptions& o, uint32_t queues);
  absl::Status start();
  uint32_t poll_hw(uint32_t hwq, uint32_t q, RxPacket* out, uint32_t room);
  // Classifies a received frame: fills `out` and returns true if it is for
  // queue q; otherwise consumes it (dispatch, ARP, drop) and returns false.
  bool accept(uint32_t q, rte_mbuf* m, RxPacket* out, bool from_ring);
  bool parse_udp(rte_mbuf* m, uint32_t* target, RxPacket* out, DpdkCounters& c);
  void handle_arp(uint32_t q, rte_mbuf* m);
  // Hands frames to tx queue q of the port (and the fabric wire); frees and
  // counts what the queue refuses. Returns how many it took.
  uint32_t send_raw(uint32_t q, rte_mbuf** ms, uint32_t n);
  void flush_pending(uint32_t q, uint64_t now);
  void dispatch(uint32_t target, rte_mbuf* m, DpdkCounters& c);

  DpdkOptions opts_;
  DriverCaps caps_;
  uint32_t nq_;
  uint16_t port_ = 0;
  bool port_started_ = false;
  bool port_claimed_ = false;
  std::string vdev_name_;  // fabric: the net_ring vdev we created
  std::shared_ptr<RingFabric> fabric_;
  uint32_t fabric_slot_ = 0;
  rte_mempool* pool_ = nullptr;  // owned unless on a fabric
  bool own_pool_ = false;
  rte_ether_addr mac_{};
  uint32_t ip_ = 0;
  uint16_t base_port_ = kDefaultUdpPort;
  bool ip_cksum_offload_ = false;
  bool flow_steering_ = false;
  std::vector<struct rte_flow*> flows_;
  NeighTable neigh_;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace shoal::dpdk
