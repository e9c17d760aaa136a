// drivers/sim/loopback.h: the `sim://` driver. Several Shoal contexts in one
// process (tests, shoal-perf on sim://, the conformance suite) reach each
// other through a named in-process fabric, in wall-clock time. For virtual
// time use PairSim / StarSim instead.
//
// Model: every queue of every driver is an endpoint with its own PeerAddr,
// assigned by the fabric in attach order from 1 ("sim:1", "sim:2", ...;
// addresses are never reused on a fabric). Each endpoint has an inbox: a
// bounded ring of packet slots allocated once at attach. A sender copies a
// packet into the destination's inbox under that inbox's mutex (several
// sender threads, one receiver); the receiver reads the slots in place and
// frees them in the order it received them.
//
// Invariants:
//  * No heap allocation per packet: inbox slots and tx buffers are allocated
//    when a driver opens. A burst copies at most one shared_ptr per distinct
//    destination (an atomic increment, no allocation).
//  * A full inbox drops and counts (`inbox_drops`); a packet to an address
//    that does not exist or whose driver closed is dropped and counted
//    (`unroutable`). Nothing crashes when a driver closes while another
//    thread sends to it.
//  * Loss and ECN marks come from a per-queue seeded Rng, so a single-threaded
//    run reproduces from `seed`.
//
// Threading (driver_sdk.h): queue q is used by one thread. Different queues
// and different drivers may run on different threads. open/close, the
// address helpers and counters() are control-path calls.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/base/packet.h"
#include "shoal/driver_sdk.h"

namespace shoal::sim {

// Counted per queue; counters() sums the queues. Sender-side counts land on
// the sending driver, rx_packets on the receiving one.
struct LoopbackCounters {
  uint64_t tx_packets = 0;   // packets with len > 0 taken by tx_burst (sent)
  uint64_t rx_packets = 0;   // packets handed out by rx_burst
  uint64_t inbox_drops = 0;  // sent, but the destination's inbox was full
  uint64_t unroutable = 0;   // sent to an address that is unknown or closed
  uint64_t lost = 0;         // sent, dropped by the `loss` knob
  uint64_t ce_marked = 0;    // delivered with Ecn::kCe set by the `ecn` knob
  uint64_t bad_buffers = 0;  // API misuse: a foreign/double-returned tx buffer,
                             // len > capacity, or an out-of-order rx_release
};

struct LoopbackOptions {
  uint32_t mtu = 4096;    // payload bytes a packet may carry, 256..9000
  uint32_t inbox = 4096;  // slots per endpoint inbox, 1..65536
  double loss = 0;        // drop probability per sent packet, 0..1
  double ecn = 0;         // probability a delivered ECT data packet gets CE, 0..1
  uint64_t seed = 1;      // seeds the per-queue loss/ECN generators
};

struct LoopbackEndpoint;  // an inbox; defined in loopback.cc

// A process-wide registry of named fabrics. A fabric lives while anyone holds
// its shared_ptr (every driver on it does).
class LoopbackFabric {
 public:
  // The fabric called `name`, created if no live one has that name.
  // Thread-safe.
  static std::shared_ptr<LoopbackFabric> get(const std::string& name);

  ~LoopbackFabric();
  LoopbackFabric(const LoopbackFabric&) = delete;
  LoopbackFabric& operator=(const LoopbackFabric&) = delete;

  const std::string& name() const { return name_; }
  // Endpoints currently attached (queues of open drivers). Thread-safe.
  size_t attached() const;

 private:
  friend class LoopbackDriver;
  explicit LoopbackFabric(std::string name) : name_(std::move(name)) {}
  // Gives the endpoints the next consecutive addresses; returns the first.
  // Thread-safe.
  PeerAddr attach(std::span<const std::shared_ptr<LoopbackEndpoint>> eps);
  // Makes `addr` unroutable; in-flight senders see it closed. Thread-safe.
  void detach(PeerAddr addr);
  // Copies the endpoints of `addrs[i]` into `out[i]` (null if unroutable)
  // under one lock.
  void lookup(std::span<const PeerAddr> addrs,
              std::span<std::shared_ptr<LoopbackEndpoint>> out) const;

  const std::string name_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<LoopbackEndpoint>> endpoints_;  // [addr - 1]; null once detached
  size_t attached_ = 0;
};

class LoopbackDriver final : public Driver {
 public:
  static constexpr uint32_t kMaxBurst = 32;
  static constexpr uint32_t kSlotHeadroom = 256;  // inbox slot = mtu + this

  // Attaches `queues` endpoints to `fabric`. Errors: InvalidArgument (queues
  // == 0, an option out of range, null fabric).
  static absl::StatusOr<std::unique_ptr<LoopbackDriver>> open(
      std::shared_ptr<LoopbackFabric> fabric, uint32_t queues, const LoopbackOptions& options = {});

  // Detaches every endpoint: later packets to them count as unroutable.
  ~LoopbackDriver() override;

  const DriverCaps& caps() const override { return caps_; }
  // Address of queue q (0 if q is out of range).
  PeerAddr local_addr(uint32_t q) const override;
  // "sim:N" or "N", N >= 1. Errors: InvalidArgument naming the text.
  absl::StatusOr<PeerAddr> parse_addr(std::string_view text) const override;
  std::string format_addr(PeerAddr addr) const override;  // "sim:" + decimal

  uint32_t rx_burst(uint32_t q, std::span<RxPacket> pkts) override;
  void rx_release(uint32_t q, std::span<RxPacket> pkts) override;
  uint32_t tx_alloc(uint32_t q, std::span<TxPacket> slots) override;
  uint32_t tx_burst(uint32_t q, std::span<TxPacket> pkts) override;

  // Sum over the queues. Call it when no queue is running (or from the one
  // thread that runs them all): the per-queue counts are plain integers.
  const LoopbackCounters& counters() const;
  // One queue's counts; same thread rule, for that queue.
  const LoopbackCounters& queue_counters(uint32_t q) const;
  const LoopbackFabric& fabric() const { return *fabric_; }
  const LoopbackOptions& options() const { return options_; }
  std::string dump() const;

 private:
  struct Queue;
  LoopbackDriver(std::shared_ptr<LoopbackFabric> fabric, uint32_t queues,
                 const LoopbackOptions& options);
  // Sends pkts (at most kMaxBurst) from queue `qu`; returns how many were sent.
  uint32_t tx_chunk(Queue& qu, std::span<TxPacket> pkts);

  std::shared_ptr<LoopbackFabric> fabric_;
  LoopbackOptions options_;
  DriverCaps caps_;
  std::vector<std::unique_ptr<Queue>> queues_;
  mutable LoopbackCounters total_;
};

}  // namespace shoal::sim
