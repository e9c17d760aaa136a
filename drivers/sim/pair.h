// drivers/sim/pair.h: the deterministic pair harness.
//
// Two sans-I/O transports joined by a simulated full-duplex link in virtual
// time. Each direction serializes packets at the link rate (a NIC that takes
// the next packet only when the previous one is on the wire), adds a one-way
// propagation delay and, from a seeded generator, loses, reorders (extra
// delay), duplicates, corrupts (one flipped bit) or trims (cuts a data
// packet to its headers and marks it, as a UET switch does) packets.
//
// Invariants: the same seed and the same calls give the same run, event for
// event (ties in time are broken by insertion order); no wall clock is read.
// Packet buffers come from a pool that grows to the high-water mark and is
// then reused, so a long run does not allocate per packet.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "lib/base/rng.h"
#include "lib/base/time.h"
#include "lib/ses/transport.h"

namespace shoal::sim {

struct LinkConfig {
  double rate_gbps = 100.0;
  Duration delay = Duration::micros(1);  // one way
  double loss = 0;     // probability a packet is dropped
  double reorder = 0;  // probability a packet gets an extra delay
  double dup = 0;      // probability a packet is delivered twice
  double corrupt = 0;  // probability one bit of the packet is flipped
  double trim = 0;     // probability a data packet loses its payload (UET trimming)
  Duration reorder_delay = Duration::micros(4);  // max extra delay when reordered
  // Bytes each packet costs on the wire beyond the UDP payload: Ethernet
  // header + FCS (18), IPv4 (20), UDP (8), preamble + inter-frame gap (20).
  uint32_t wire_overhead = 66;
  // Packets taken per poll_transmit when the NIC is free. 1 stamps every
  // packet with the time it really starts to leave.
  uint32_t nic_burst = 1;
};

struct LinkStats {
  uint64_t packets = 0;
  uint64_t wire_bytes = 0;
  uint64_t dropped = 0;
  uint64_t reordered = 0;
  uint64_t duplicated = 0;
  uint64_t corrupted = 0;
  uint64_t trimmed = 0;
  uint64_t delivered = 0;
};

class PairSim {
 public:
  // Host 0 has address 1, host 1 has address 2.
  PairSim(const ses::TransportConfig& config, const LinkConfig& link, uint64_t seed);

  ses::Transport& host(int i) { return *hosts_[i]; }
  static PeerAddr address(int i) { return static_cast<PeerAddr>(i + 1); }
  TimePoint now() const { return now_; }
  const LinkStats& link_stats(int from) const { return stats_[from]; }
  uint64_t events() const { return events_; }

  // Runs until `step()` returns true (it is called after every event and may
  // post work and poll completions), until virtual time passes `limit`, or
  // until nothing is left to happen. Returns true iff step() returned true.
  bool run(const std::function<bool()>& step, TimePoint limit);

 private:
  struct Arrival {
    int64_t t;
    uint64_t seq;
    uint32_t buf;
    uint32_t len;
    uint8_t to;
    bool trimmed;
    bool operator>(const Arrival& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  uint32_t alloc_buf();
  void transmit(int h);
  void send_copy(int from, const uint8_t* data, uint32_t len, TimePoint depart, bool corrupt, bool trim);

  LinkConfig link_;
  Rng rng_;
  std::unique_ptr<ses::Transport> hosts_[2];
  TimePoint now_;
  TimePoint nic_free_[2];
  // activity() of each host when a poll returned nothing: do not poll again
  // until the host has had something happen.
  uint64_t stalled_at_[2] = {~uint64_t{0}, ~uint64_t{0}};
  bool stalled(int h) const { return hosts_[h]->activity() == stalled_at_[h]; }
  std::priority_queue<Arrival, std::vector<Arrival>, std::greater<Arrival>> arrivals_;
  uint64_t seq_ = 0;
  uint64_t events_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> bufs_;
  std::vector<uint32_t> free_bufs_;
  std::vector<TxPacket> tx_slots_;
  std::vector<uint32_t> tx_slot_bufs_;
  LinkStats stats_[2];
  static constexpr uint32_t kBufSize = 9216;
};

}  // namespace shoal::sim
