// lib/pool: the PDC pool of one engine.
//
// Transport state grows with peers, not endpoints: every QP on an engine
// that talks to a peer with a given traffic class and delivery mode shares
// one PDC (SRD/UET's answer to per-QP connection state on RDMA NICs). The
// pool maps (peer, tc, mode) to a PDC, opens one on first use with 0 RTT,
// and accepts the ones peers open towards it. It also bounds them:
//  - an idle PDC (nothing outstanding, nothing queued) first gives back its
//    window memory (Pdc::shrink) after `idle_shrink`, and the initiator
//    closes it (CTRL CLOSE) after `idle_close`;
//  - at `max_pdcs`, opening a new PDC evicts the least recently used idle
//    initiator PDC (closing it); until a slot frees, acquire() returns 0 and
//    the caller queues the work (NO_PDC_AVAIL-style backpressure: work waits,
//    it never fails for lack of a PDC);
//  - a target keeps a closed PDC for `close_linger` so that a retransmitted
//    CLOSE is answered, then frees it.
//
// Its PDCs share one pds::PdcShared (the spray generator and the
// path-selection counters, lb_counters()), so per-PDC state stays small.
//
// Invariants: ids are 1..max_pdcs (0 means "none"); an id is in at most one
// of the idle lists; a PDC is findable by its key exactly while it is open.
// Thread: the engine's.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "lib/base/index_list.h"
#include "lib/base/rng.h"
#include "lib/base/time.h"
#include "lib/pds/pdc.h"

namespace shoal::pool {

struct PoolConfig {
  uint32_t max_pdcs = 1024;
  Duration idle_shrink = Duration::micros(100);
  Duration idle_close = Duration::millis(10);
  Duration close_linger = Duration::millis(2);
  uint16_t entropy_base = 0xC000;
};

struct PoolCounters {
  uint64_t opened = 0;
  uint64_t accepted = 0;
  uint64_t closed_idle = 0;     // closed by the idle timer
  uint64_t evicted = 0;         // closed to make room at max_pdcs
  uint64_t freed = 0;
  uint64_t failed = 0;
  uint64_t shrunk = 0;
  uint64_t acquire_waits = 0;   // acquire() found no room
  uint64_t accept_refused = 0;  // a SYN found no room
};

class PdcPool {
 public:
  PdcPool(const PoolConfig& config, const pds::PdsConfig& pds_config, pds::PdsUpper* upper, uint64_t seed);
  PdcPool(const PdcPool&) = delete;
  PdcPool& operator=(const PdcPool&) = delete;

  // The initiator PDC for (peer, tc, mode), opened now if needed. Returns 0
  // when max_pdcs are open and none is idle (an eviction may be under way):
  // the caller queues the work and asks again after a PDC is freed.
  uint16_t acquire(PeerAddr peer, uint8_t tc, pds::DeliveryMode mode, TimePoint now);
  // The target PDC for a SYN from `peer` (its initiator id in syn.spdcid),
  // created if new. 0 when the pool is full (the initiator retries).
  uint16_t accept(PeerAddr peer, const wire::RequestHeader& syn, pds::DeliveryMode mode, TimePoint now);
  // An already accepted PDC (0 if none): trimmed SYNs may find, never create.
  uint16_t find_accepted(PeerAddr peer, uint16_t remote_id) const;

  pds::Pdc* get(uint16_t id) { return id && id < entries_.size() ? entries_[id].pdc.get() : nullptr; }
  bool initiator(uint16_t id) const { return entries_[id].initiator; }

  // The owner reports after each event on a PDC whether it is now idle
  // (nothing outstanding or queued at either half); the pool starts or stops
  // its idle clock and frees PDCs that failed or closed.
  // Returns true if the PDC was freed (the id is no longer valid).
  bool after_event(uint16_t id, bool idle, TimePoint now);

  // Idle shrink/close and linger expiry. Calls freed(id) for every PDC it
  // frees so that the owner can drop its per-PDC state.
  TimePoint next_deadline() const;
  template <typename Freed>
  void on_timeout(TimePoint now, Freed&& freed);

  // Frees a PDC now (after abort()/failure handling by the owner).
  void release(uint16_t id);

  // PDCs the pool asked to close (idle close, eviction) must get to send
  // their CLOSE: the owner drains these ids into its transmit list.
  template <typename F>
  void drain_woken(F&& f) {
    for (uint16_t id : woken_) f(id);
    woken_.clear();
  }

  uint32_t open() const { return static_cast<uint32_t>(entries_.size() - 1 - free_ids_.size()); }
  uint32_t capacity() const { return config_.max_pdcs; }
  // Memory of the open PDCs (objects and their windows) plus the pool's
  // bookkeeping per PDC; divided by open() it is the per-PDC state.
  size_t state_bytes() const;
  static constexpr size_t kBookkeepingBytesPerPdc = 64;  // entry + two map slots, rounded up
  const PoolCounters& counters() const { return counters_; }
  // PDS counters of every PDC this pool has freed (so totals never go back).
  const pds::PdsCounters& freed_pdc_counters() const { return freed_pdc_counters_; }
  const PoolConfig& config() const { return config_; }
  // Path-selection counters of every PDC of this pool (kept here, not per PDC).
  const lb::LbCounters& lb_counters() const { return shared_.lb_counters; }
  template <typename F>
  void for_each(F&& f) const {
    for (uint16_t id = 1; id < entries_.size(); ++id)
      if (entries_[id].pdc) f(id, *entries_[id].pdc);
  }

 private:
  enum class Idle : uint8_t { kBusy = 0, kFresh, kShrunk, kLinger };
  struct Entry {
    std::unique_ptr<pds::Pdc> pdc;
    uint64_t key = 0;
    bool initiator = false;
    Idle idle = Idle::kBusy;
    TimePoint since;  // idle since / lingering since
    bool evicting = false;
    IndexLinks links;
  };
  struct EntryLinks {
    std::vector<Entry>* entries = nullptr;
    IndexLinks& operator()(uint32_t i) const { return (*entries)[i].links; }
  };
  using List = IndexList<EntryLinks>;

  static uint64_t initiator_key(PeerAddr peer, uint8_t tc, pds::DeliveryMode mode) {
    return (peer << 8) | (uint64_t{tc} << 2) | static_cast<uint64_t>(mode);
  }
  static uint64_t accepted_key(PeerAddr peer, uint16_t remote_id) { return (peer << 16) | remote_id; }

  uint16_t create(const pds::PdcParams& params, uint64_t key, bool initiator, TimePoint now);
  List& list_of(Idle s) { return s == Idle::kFresh ? fresh_ : s == Idle::kShrunk ? shrunk_ : linger_; }
  void set_idle(uint16_t id, Idle s, TimePoint now);
  bool evict_one();

  PoolConfig config_;
  const pds::PdsConfig& pds_config_;
  pds::PdsUpper* upper_;
  Rng rng_;
  pds::PdcShared shared_;
  std::vector<Entry> entries_;  // index = id; 0 unused
  std::vector<uint16_t> free_ids_;
  absl::flat_hash_map<uint64_t, uint16_t> by_initiator_key_;
  absl::flat_hash_map<uint64_t, uint16_t> by_accepted_key_;
  List fresh_, shrunk_, linger_;  // each ordered by `since`, oldest first
  uint32_t closing_ = 0;          // evictions under way
  std::vector<uint16_t> woken_;
  PoolCounters counters_;
  pds::PdsCounters freed_pdc_counters_;
};

template <typename Freed>
void PdcPool::on_timeout(TimePoint now, Freed&& freed) {
  while (!fresh_.empty() && entries_[fresh_.front()].since + config_.idle_shrink <= now) {
    const uint16_t id = static_cast<uint16_t>(fresh_.front());
    entries_[id].pdc->shrink();
    ++counters_.shrunk;
    fresh_.remove(id);
    entries_[id].idle = Idle::kShrunk;
    shrunk_.push_back(id);  // keeps `since` order: fresh_ was in that order
  }
  while (!shrunk_.empty() && entries_[shrunk_.front()].since + config_.idle_close <= now) {
    const uint16_t id = static_cast<uint16_t>(shrunk_.front());
    Entry& e = entries_[id];
    shrunk_.remove(id);
    e.idle = Idle::kBusy;
    if (e.initiator) {
      e.pdc->close();  // completes through the CLOSE handshake
      woken_.push_back(id);
      ++counters_.closed_idle;
    }
    // A target waits for its initiator's CLOSE; it stays out of the lists
    // until its next event says it is idle again.
  }
  while (!linger_.empty() && entries_[linger_.front()].since + config_.close_linger <= now) {
    const uint16_t id = static_cast<uint16_t>(linger_.front());
    release(id);
    freed(id);
  }
}

}  // namespace shoal::pool
