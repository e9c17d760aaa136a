// drivers/sim/star.h: many hosts around one switch, in virtual time.
//
// Each host has a NIC that serializes its packets onto its link to the
// switch; the switch forwards each packet, store-and-forward, onto the link
// of its destination, whose output queue is FIFO at the link rate. Every link
// has the same rate and one-way delay. There is no loss and no queue limit
// yet: this is the fabric for pool and engine scenarios (pool-scale); the
// multi-tier fabric with ECN, trimming and failures is the next step of this
// driver.
//
// Hosts are woken through the event queue (a lazily-invalidated wake event
// per host), so one event costs O(log events) however many hosts there are.
// Invariant: deterministic for a given seed and call sequence.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "lib/base/time.h"
#include "lib/ses/transport.h"

namespace shoal::sim {

struct StarLinkConfig {
  double rate_gbps = 100.0;
  Duration hop_delay = Duration::micros(1);  // host->switch and switch->host each
  uint32_t wire_overhead = 66;               // Ethernet + IPv4 + UDP + preamble/IFG
};

struct StarStats {
  uint64_t packets = 0;
  uint64_t events = 0;
  uint64_t max_queue_bytes = 0;  // deepest switch output queue seen
};

class StarSim {
 public:
  // Host i has address i + 1.
  StarSim(uint32_t hosts, const std::function<ses::TransportConfig(uint32_t host)>& config_of,
          const StarLinkConfig& link, uint64_t seed);

  uint32_t hosts() const { return static_cast<uint32_t>(hosts_.size()); }
  ses::Transport& host(uint32_t i) { return *hosts_[i]; }
  static PeerAddr address(uint32_t i) { return i + 1; }
  TimePoint now() const { return now_; }
  const StarStats& stats() const { return stats_; }

  // Tells the simulator that the caller did something to host i outside an
  // event (posted work): it is polled at the current time.
  void touch(uint32_t i);
  // Runs f at virtual time t (for work that starts later than now).
  void call_at(TimePoint t, std::function<void()> f);

  // Runs events until `done()` holds, virtual time passes `limit`, or nothing
  // is left. After every event on host h it calls on_host(h), where the
  // caller polls completions and may post more. Returns done().
  bool run(const std::function<void(uint32_t host)>& on_host, const std::function<bool()>& done,
           TimePoint limit);

  // The same path with nothing queued: propagation and serialization of a
  // request of `request_bytes` and its ACK of `ack_bytes` (UDP payloads).
  Duration unloaded_rtt(uint32_t request_bytes, uint32_t ack_bytes) const;

 private:
  enum class Kind : uint8_t { kAtSwitch, kAtHost, kWake, kCall };
  struct Event {
    int64_t t;
    uint64_t seq;
    Kind kind;
    uint32_t host;  // destination (kAtSwitch/kAtHost) or the host to wake
    uint32_t from;
    uint32_t buf;
    uint32_t len;
    bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  void push(Kind kind, TimePoint t, uint32_t host, uint32_t from = 0, uint32_t buf = 0, uint32_t len = 0);
  void schedule(uint32_t h);
  void transmit(uint32_t h);
  uint32_t alloc_buf();
  Duration ser(uint32_t len) const { return serialization_time(len + link_.wire_overhead, link_.rate_gbps * 1e9); }

  StarLinkConfig link_;
  std::vector<std::unique_ptr<ses::Transport>> hosts_;
  std::vector<TimePoint> nic_free_;
  std::vector<TimePoint> port_free_;     // switch output port to each host
  std::vector<uint64_t> port_bytes_;     // bytes queued at that port (for stats)
  std::vector<TimePoint> wake_at_;       // the earliest wake event pending per host
  std::vector<uint64_t> stalled_at_;     // activity() when a poll gave nothing
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t seq_ = 0;
  TimePoint now_;
  std::vector<std::unique_ptr<uint8_t[]>> bufs_;
  std::vector<uint32_t> free_bufs_;
  std::vector<TxPacket> slots_;
  std::vector<uint32_t> slot_bufs_;
  StarStats stats_;
  std::vector<std::function<void()>> calls_;
  static constexpr uint32_t kBufSize = 9216;
  static constexpr uint32_t kBurst = 4;
};

}  // namespace shoal::sim
