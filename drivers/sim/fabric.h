// drivers/sim/fabric.h: a multi-tier switched fabric in virtual time.
//
// FabricSim runs one real ses::Transport per host (as StarSim does) over
// either a 2-tier leaf-spine or a 3-tier k-ary fat-tree. Every hop is a
// switch output port: a FIFO that serializes at the link rate, then the
// link's propagation delay (store and forward). Hosts have a NIC that
// serializes their packets onto their uplink.
//
// Each port has two queues: a high-priority one, served first, for control
// packets (ACK/NACK/CTRL) and trimmed headers, and a data queue with a packet
// limit. A data packet that finds the data queue full is dropped (drop-tail)
// or cut to its PDS+SES headers and moved to the high-priority queue
// (trimming, UET/NDP style); the high-priority queue has its own limit past
// which even headers drop. ECT data packets are CE-marked on enqueue by a
// step threshold or by RED.
//
// Routing is ECMP: going up, a switch hashes the 5-tuple (src, dst, entropy =
// UDP source port, fixed destination port, UDP) with its own seed onto one of
// its uplinks, so the same packet fields always take the same path and a
// connection that varies its entropy sprays; going down is deterministic.
// A failed link drops what is queued on it, in flight on it and sent to it.
// Until `reroute_delay` has passed after the failure (default: never) the
// hash still maps flows onto the dead link, as a real network does before
// routing converges: failover within the run must come from the transport's
// path selection. After convergence switches hash only over uplinks from
// which the destination is still reachable.
//
// Queue depth counts packets waiting, not the one being serialized (as in
// ns-3); ECN and the limit look at the data queue's depth on enqueue.
// Defaults: ECN off, drop-tail, 35-packet data queues (BENCHMARKS.md).
//
// Invariants: deterministic for a given seed and call sequence (ties in time
// are broken by insertion order); no wall clock, no threads; no allocation per
// packet once buffer pool and event heap have reached their high-water marks
// (events are 24-byte PODs; packets are buffer indices with a metadata slot).
// Thread: single-threaded; everything runs on the caller's thread in run().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "lib/base/rng.h"
#include "lib/base/time.h"
#include "lib/ses/transport.h"

namespace shoal::sim {

enum class Topology : uint8_t {
  kLeafSpine,  // leaves x hosts_per_leaf hosts, every leaf linked to every spine
  kFatTree,    // k pods of k/2 edge + k/2 aggregation switches, (k/2)^2 cores, k^3/4 hosts
};

struct FabricLinkConfig {
  double rate_gbps = 100.0;                  // host links (and every link unless overridden)
  Duration hop_delay = Duration::micros(1);  // propagation per hop, every link
  uint32_t wire_overhead = 66;               // Ethernet + IPv4 + UDP + preamble/IFG per packet
  // Each hop's delay plus a uniform 0..jitter (from the seeded RNG). Zero:
  // every packet of one size takes the same time per hop, so arrivals from
  // equal-rate links line up with departures and drop-tail favours some
  // inputs for good (the phase effect: incast k=8 --cc fixed, the host one
  // hop from the receiver lost ~97% of its packets; FCT max/min 20.1, 2.45
  // with 20 ns). Keep it well under one packet's serialization (~330 ns
  // for 4 KiB at 100 Gb/s) or packets on one link reorder.
  Duration jitter = Duration::zero();
};

enum class EcnMode : uint8_t { kOff, kStep, kRed };
enum class FullPolicy : uint8_t { kDropTail, kTrim };

struct QueueConfig {
  uint32_t limit_packets = 35;          // data queue (packets waiting, not the one on the wire)
  uint32_t header_limit_packets = 256;  // high-priority queue: control packets and trimmed headers
  FullPolicy full = FullPolicy::kDropTail;
  EcnMode ecn = EcnMode::kOff;
  uint32_t ecn_k = 12;  // kStep: mark when the data queue holds >= K packets on enqueue
  // kRed: probability 0 below kmin packets, rising linearly to pmax at kmax,
  // 1 at and above kmax (DCQCN-style RED on the instantaneous depth).
  uint32_t red_kmin = 5;
  uint32_t red_kmax = 30;
  double red_pmax = 0.2;
};

struct FabricConfig {
  Topology topology = Topology::kFatTree;
  uint32_t k = 8;                                       // fat-tree arity (even, >= 2)
  uint32_t leaves = 4, hosts_per_leaf = 8, spines = 4;  // leaf-spine
  // Leaf-spine: the leaf->spine link rate is hosts_per_leaf * rate /
  // (spines * oversubscription) unless uplink_rate_gbps is set. Fat-tree: all
  // links run at link.rate_gbps unless uplink_rate_gbps (switch-to-switch) is set.
  double oversubscription = 1.0;
  double uplink_rate_gbps = 0;
  FabricLinkConfig link;
  QueueConfig queue;
  // How long after a failure the switches stop hashing onto the dead link.
  // Duration::max() (default): never within the run.
  Duration reroute_delay = Duration::max();
  // How a switch hashes a packet's 5-tuple onto its uplinks. kRandom: an
  // ideal random function per switch (every tuple independent). kCrc32c: as
  // merchant silicon does, a CRC of the tuple with a per-switch seed, the
  // uplink taken from a per-switch window of its bits, each tier fed the
  // tuple in its own byte order (a different hash function per tier, as
  // switches are configured against polarization); a CRC is linear in the
  // tuple's bits, so a block of 2^n consecutive source ports splits evenly
  // over 2^m <= 2^n uplinks at every tier.
  enum class EcmpHash : uint8_t { kRandom, kCrc32c };
  EcmpHash hash = EcmpHash::kRandom;
  uint64_t seed = 13;
};

// Counters for one output port (one direction of one link).
struct PortStats {
  uint64_t packets = 0;       // put on the wire
  uint64_t bytes = 0;         // on the wire, including wire overhead
  uint64_t drops = 0;         // data queue full (drop-tail, or not trimmable)
  uint64_t header_drops = 0;  // high-priority queue full (control or trimmed header)
  uint64_t down_drops = 0;    // queued on, in flight on, or sent to this link after it failed
  uint64_t trims = 0;
  uint64_t ecn_marks = 0;
  uint32_t max_depth_packets = 0;  // both queues, packets waiting
  uint64_t max_depth_bytes = 0;
};

struct FabricStats {
  uint64_t events = 0;
  uint64_t packets_sent = 0;  // by host NICs
  uint64_t delivered = 0;     // to hosts
  uint64_t drops = 0;         // sum of the PortStats counters below
  uint64_t header_drops = 0;
  uint64_t down_drops = 0;
  uint64_t unroutable = 0;  // to an address that is no host
  uint64_t trims = 0;
  uint64_t ecn_marks = 0;
  uint32_t max_depth_packets = 0;  // deepest switch port seen
  uint64_t max_depth_bytes = 0;
};

struct QueueSample {
  TimePoint t;
  uint32_t packets;  // both queues
  uint64_t bytes;
};

struct QueueSummary {
  uint32_t max_packets = 0, p99_packets = 0;
  uint64_t max_bytes = 0, p99_bytes = 0;
  double mean_packets = 0;
};

// Utilization spread over a set of links (e.g. every edge uplink).
struct LinkImbalance {
  double max_util = 0, min_util = 0, mean_util = 0;
  double max_over_min = 0;  // infinity when some link carried nothing and another did
  double cv = 0;            // coefficient of variation of the bytes carried
};

class FabricSim {
 public:
  // Host i has address i + 1. config_of(i) gives host i's transport config.
  FabricSim(const FabricConfig& config,
            const std::function<ses::TransportConfig(uint32_t host)>& config_of);
  ~FabricSim();
  FabricSim(const FabricSim&) = delete;
  FabricSim& operator=(const FabricSim&) = delete;

  // ---- topology ----
  uint32_t hosts() const { return n_hosts_; }
  uint32_t switches() const { return static_cast<uint32_t>(nodes_.size()) - hosts(); }
  uint32_t ports() const { return static_cast<uint32_t>(ports_.size()); }
  ses::Transport& host(uint32_t i) { return *hosts_[i]; }
  static PeerAddr address(uint32_t i) { return i + 1; }
  const FabricConfig& config() const { return config_; }
  // Links a packet crosses from src to dst, host links included: fat-tree 2
  // under one edge, 4 in one pod, 6 across pods; leaf-spine 2 or 4; 0 to self.
  uint32_t hops(uint32_t src, uint32_t dst) const;
  // Leaf-spine: hosts_per_leaf * host rate / (spines * uplink rate); fat-tree
  // host rate / uplink rate (1 by default).
  double oversubscription() const;

  // Nodes: hosts are 0..hosts()-1, switches follow (leaf-spine: leaves then
  // spines; fat-tree: edges pod by pod, then aggregations pod by pod, then
  // cores). A port is one direction of one link, named by a global id; a
  // node's ports are numbered 0.. (down ports first, then up ports; a host
  // has one port, its uplink).
  uint32_t port_id(uint32_t node, uint32_t index) const { return nodes_[node].first_port + index; }
  uint32_t port_count(uint32_t node) const { return nodes_[node].down + nodes_[node].up; }
  uint32_t port_owner(uint32_t port) const { return ports_[port].owner; }
  uint32_t port_peer(uint32_t port) const { return ports_[port].peer; }
  uint32_t reverse(uint32_t port) const { return ports_[port].reverse; }
  double port_rate_gbps(uint32_t port) const { return ports_[port].rate_gbps; }
  uint32_t host_uplink(uint32_t h) const { return nodes_[h].first_port; }
  std::string node_name(uint32_t node) const;  // "h5", "edge3", "agg1", "core7", "leaf0", "spine2"
  std::string port_name(uint32_t port) const;  // "edge3:p5->agg2"
  // Every first-tier uplink (fat-tree edge->aggregation, leaf-spine leaf->spine).
  std::vector<uint32_t> edge_uplinks() const;
  // Every aggregation->core link (fat-tree; empty for leaf-spine).
  std::vector<uint32_t> agg_uplinks() const;
  // A deterministic top-tier link to fail: the (i mod count)-th aggregation->core
  // link of a fat-tree, or leaf->spine link of a leaf-spine.
  uint32_t core_link(uint32_t i = 0) const;

  // ---- time and work ----
  TimePoint now() const { return now_; }
  // Tells the simulator that the caller did something to host i outside an
  // event (posted work): it is polled at the current time.
  void touch(uint32_t i);
  // Runs f at virtual time t.
  void call_at(TimePoint t, std::function<void()> f);
  // Runs events until done() holds, virtual time passes `limit`, or nothing is
  // left. After every event on host h it calls on_host(h), where the caller
  // polls completions and may post more. Returns done().
  bool run(const std::function<void(uint32_t host)>& on_host, const std::function<bool()>& done,
           TimePoint limit);
  // Calls f every `every_events` events and/or whenever virtual time has
  // advanced by `every` (0 / zero disables either), e.g. to print progress.
  void set_progress(std::function<void()> f, uint64_t every_events,
                    Duration every = Duration::zero());

  // Sends a raw datagram from host src's NIC (not through its transport), for
  // tests of the fabric itself. The destination transport gets it like any
  // other (and counts it as a wire error if it is not a valid datagram).
  void inject(uint32_t src, const TxPacket& pkt);

  // ---- failures ----
  // At virtual time t the link that `port` belongs to goes down in both
  // directions. Errors: none (an out-of-range port is ignored).
  void fail_link(uint32_t port, TimePoint t);
  void fail_link(uint32_t node, uint32_t index, TimePoint t) { fail_link(port_id(node, index), t); }
  bool link_up(uint32_t port) const { return !ports_[port].down; }

  // ---- stats ----
  const FabricStats& stats() const { return stats_; }
  const PortStats& port_stats(uint32_t port) const { return ports_[port].stats; }
  // Depth of a port now (packets waiting in both queues).
  uint32_t queue_packets(uint32_t port) const {
    return ports_[port].hi_count + ports_[port].data_count;
  }
  // bytes * 8 / (rate * elapsed).
  double utilization(uint32_t port, Duration elapsed) const;
  LinkImbalance imbalance(const std::vector<uint32_t>& ports, Duration elapsed) const;
  // Samples the depth of `port` every `every` from now on (while anything
  // else is left to simulate). Returns the sampler's id.
  uint32_t sample_queue(uint32_t port, Duration every);
  const std::vector<QueueSample>& samples(uint32_t sampler) const {
    return samplers_[sampler].samples;
  }
  QueueSummary summarize(uint32_t sampler) const;

  // ---- ideal figures ----
  // A request of `request_bytes` and its ACK of `ack_bytes` (UDP payloads)
  // over the src->dst path and back with nothing queued.
  Duration unloaded_rtt(uint32_t request_bytes, uint32_t ack_bytes, uint32_t src,
                        uint32_t dst) const;
  // The time from posting a `bytes` message to its send completion on an idle
  // fabric: packets of mtu_payload (+ header_bytes each) pipelined at the
  // path's bottleneck, the last one's one-way latency, then its ACK back.
  Duration ideal_fct(uint64_t bytes, uint32_t src, uint32_t dst, uint32_t mtu_payload = 4096,
                     uint32_t header_bytes = 12 + 44 + 4, uint32_t ack_bytes = 36) const;

 private:
  enum class Kind : uint8_t { kArrive, kPortFree, kWake, kCall, kFail, kReroute, kSample };
  // 24 bytes: the kind rides in the low byte of the sequence number, so that
  // (t, seq_kind) orders ties by insertion.
  struct Event {
    int64_t t;
    uint64_t seq_kind;
    uint32_t a;    // kArrive: the port the packet crossed; kPortFree/kFail/kReroute: port;
                   // kWake: host; kCall: call slot; kSample: sampler
    uint32_t buf;  // kArrive: the packet
    bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq_kind > o.seq_kind; }
  };
  struct Pkt {          // metadata of the packet in buffer b (one packet per buffer)
    uint32_t src, dst;  // host indices
    uint16_t len;
    uint16_t entropy;
    Ecn ecn;
    bool trimmed;
    bool control;  // rides the high-priority queue
  };
  struct Node {
    uint32_t first_port;
    uint16_t down, up;  // down ports [0, down), up ports [down, down + up)
    uint8_t tier;       // 0 host, 1 edge/leaf, 2 agg/spine, 3 core
    uint32_t index;     // within its tier
    // Hosts [lo, lo + down * span) lie below; down port i leads to
    // [lo + i * span, lo + (i + 1) * span).
    uint32_t lo, span;
    uint64_t hash_seed;
    uint8_t hash_shift;  // kCrc32c: the uplink index starts at this bit of the CRC
  };
  struct Port {
    uint32_t owner, peer, reverse;
    uint32_t ring;  // offset of this port's rings in ring_
    uint16_t hi_head = 0, hi_count = 0, data_head = 0, data_count = 0;
    uint64_t queued_bytes = 0;
    int64_t busy_until = 0;  // ns: the wire is busy until then
    double rate_gbps;
    double bits_per_sec;
    bool free_pending = false;  // a kPortFree event is queued
    bool down = false;
    bool unrouted = false;  // routing has converged around its failure
    PortStats stats;
  };
  struct Sampler {
    uint32_t port;
    Duration every;
    std::vector<QueueSample> samples;
  };

  void build_leaf_spine();
  void build_fat_tree();
  uint32_t add_node(uint8_t tier, uint32_t index, uint32_t down, uint32_t up, uint32_t lo,
                    uint32_t span);
  void connect(uint32_t a, uint32_t a_index, uint32_t b, uint32_t b_index, double rate_gbps);

  void push(Kind kind, int64_t t, uint32_t a, uint32_t buf = 0) {
    events_.push(Event{t, seq_++ << 8 | static_cast<uint64_t>(kind), a, buf});
  }
  static Kind kind_of(const Event& e) { return static_cast<Kind>(e.seq_kind & 0xff); }
  void schedule(uint32_t h);
  void transmit(uint32_t h);
  void send_from_nic(uint32_t h, uint32_t buf);
  // A packet that crossed port `via` reaches the switch at its far end (or is
  // lost with the link). Hosts are served in run(), which calls on_host.
  void arrive(uint32_t via, uint32_t buf);
  void forward(uint32_t sw, uint32_t buf);
  void enqueue(uint32_t port, uint32_t buf);
  void start_tx(Port& p, uint32_t port, uint32_t buf);
  void port_free(uint32_t port);
  void drop_port(uint32_t port);
  uint32_t choose_uplink(const Node& n, const Pkt& pkt) const;
  bool reachable_down(uint32_t node, uint32_t dst) const;
  bool reachable(uint32_t node, uint32_t dst, int depth) const;
  uint32_t trimmed_len(uint32_t buf) const;
  uint32_t edge_of(uint32_t h) const { return ports_[nodes_[h].first_port].peer; }
  // Serialization plus propagation of a `bytes` payload over the src->dst path.
  Duration one_way(uint32_t bytes, uint32_t src, uint32_t dst) const;
  double bottleneck_bps(uint32_t src, uint32_t dst) const;
  bool mark_ecn(uint32_t depth);
  Duration ser(uint32_t len, double bits_per_sec) const {
    return serialization_time(len + config_.link.wire_overhead, bits_per_sec);
  }

  uint32_t alloc_buf();
  uint8_t* buf_data(uint32_t b) {
    return chunks_[b / kChunk].get() + static_cast<size_t>(b % kChunk) * buf_size_;
  }
  void free_buf(uint32_t b) { free_bufs_.push_back(b); }

  FabricConfig config_;
  double uplink_rate_gbps_ = 0;
  uint32_t n_hosts_ = 0;
  std::vector<std::unique_ptr<ses::Transport>> hosts_;
  int64_t delay_ns_ = 0;
  // One hop's delay: delay_ns_ plus the jitter draw (no draw when zero, so
  // runs without jitter keep the RNG sequence, and RED's marks, unchanged).
  int64_t hop_delay_ns() { return jitter_ns_ == 0 ? delay_ns_ : delay_ns_ + static_cast<int64_t>(rng_.below(jitter_ns_ + 1)); }
  uint64_t jitter_ns_ = 0;
  std::vector<Node> nodes_;
  std::vector<Port> ports_;
  std::vector<uint32_t> ring_;  // every port's hi ring then data ring
  uint32_t hi_cap_ = 0, data_cap_ = 0;
  std::vector<TimePoint> nic_free_;
  std::vector<TimePoint> wake_at_;
  std::vector<uint64_t> stalled_at_;  // activity() when a poll gave nothing
  std::vector<int64_t> due_at_;       // the instant a due deadline was last re-woken for
  std::vector<uint32_t> due_count_;   // and how many times
  static constexpr uint32_t kDueRetries = 3;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t seq_ = 0;
  TimePoint now_;
  Rng rng_;
  bool any_unrouted_ = false;

  static constexpr uint32_t kChunk = 256;  // buffers per allocation
  uint32_t buf_size_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> chunks_;
  uint32_t bufs_ = 0;
  std::vector<uint32_t> free_bufs_;
  std::vector<Pkt> pkts_;

  static constexpr uint32_t kBurst = 4;
  TxPacket slots_[kBurst];
  uint32_t slot_bufs_[kBurst];

  std::vector<std::function<void()>> calls_;
  std::vector<uint32_t> free_calls_;
  std::vector<Sampler> samplers_;
  uint32_t background_ = 0;  // queued kSample events: they alone do not keep a run going
  std::function<void()> progress_;
  uint64_t progress_events_ = 0, next_progress_event_ = ~uint64_t{0};
  Duration progress_every_;
  int64_t next_progress_t_ = INT64_MAX;
  FabricStats stats_;
};

}  // namespace shoal::sim
