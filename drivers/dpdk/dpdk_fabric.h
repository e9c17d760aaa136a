// drivers/dpdk/dpdk_fabric.h: an in-process software L2 "fabric" of net_ring
// ethdev ports, so that any number of dpdk:// contexts in one process (the
// conformance suite, unit tests, shoal-perf on one host) reach each other
// through real ethdev rx/tx bursts.
//
// Model: each attached context is an endpoint with a MAC, an IPv4 address
// and `queues` rx and tx rte_rings; the context's net_ring port is created
// over exactly those rings (rte_eth_from_rings), so it does rte_eth_tx_burst
// into its tx ring q and rte_eth_rx_burst out of its rx ring q like on any
// PMD. The wire is forward(): the sending thread, right after its tx burst,
// drains its own tx ring q and moves each frame to the endpoint owning the
// destination MAC (broadcast: a copy to every other endpoint). The rx ring
// is chosen like RSS would: by a hash of the UDP source port, NOT by the
// destination port, so multi-queue contexts exercise the driver's software
// dispatch exactly as on a NIC without rte_flow.
//
// Invariants:
//  * The fabric owns every ring and the one mbuf pool all its endpoints use,
//    and frees them only when the last driver drops its shared_ptr: a frame
//    in flight to a context that closed is never a dangling mbuf (detach
//    drains the rx rings; later stragglers are freed with the fabric).
//  * Endpoint slots are never reused (kMaxEndpoints per fabric); a detached
//    endpoint is skipped by forward(). Slot lookups are lock-free (atomics).
//  * A full rx ring drops and counts (drops()).
// Threading: forward(ep, q) is called only by the thread owning tx queue q
// of endpoint ep; attach/detach are control-path calls under a mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "absl/status/statusor.h"

namespace shoal::dpdk {

class RingFabric {
 public:
  static constexpr uint32_t kMaxEndpoints = 64;
  static constexpr uint32_t kMaxQueues = 64;

  struct Endpoint {
    std::atomic<bool> live{false};
    uint32_t ip = 0;  // host order
    rte_ether_addr mac{};
    uint32_t queues = 0;
    rte_ring* rx[kMaxQueues] = {};
    rte_ring* tx[kMaxQueues] = {};
  };

  // The live fabric called `name`, created (with a pool of `mbufs` buffers
  // of `data_room` bytes) if none is. Errors: ResourceExhausted.
  static absl::StatusOr<std::shared_ptr<RingFabric>> get(const std::string& name, uint32_t mbufs,
                                                         uint16_t data_room);
  ~RingFabric();

  rte_mempool* pool() const { return pool_; }
  uint16_t data_room() const { return data_room_; }
  // Creates an endpoint's rings. `ip` 0 means "assign 10.77.0.N". Returns
  // the slot index. Errors: ResourceExhausted (slots, rings), AlreadyExists
  // (ip taken on this fabric).
  absl::StatusOr<uint32_t> attach(uint32_t ip, uint32_t queues, uint32_t ring_size);
  const Endpoint& endpoint(uint32_t slot) const { return eps_[slot]; }
  void detach(uint32_t slot);
  // Moves what endpoint `slot` sent on tx queue q to its destinations.
  void forward(uint32_t slot, uint32_t q);
  uint64_t drops() const { return drops_.load(std::memory_order_relaxed); }

 private:
  RingFabric(std::string name, rte_mempool* pool, uint16_t data_room)
      : name_(std::move(name)), pool_(pool), data_room_(data_room) {}
  void deliver(uint32_t to, rte_mbuf* m);

  const std::string name_;
  rte_mempool* const pool_;
  const uint16_t data_room_;
  std::mutex mu_;
  std::atomic<uint32_t> used_{0};  // slots [0, used_) were ever attached
  Endpoint eps_[kMaxEndpoints];
  std::atomic<uint64_t> drops_{0};
};

}  // namespace shoal::dpdk
