#include "lib/pool/pool.h"
#include "lib/base/counters.h"

namespace shoal::pool {

PdcPool::PdcPool(const PoolConfig& config, const pds::PdsConfig& pds_config, pds::PdsUpper* upper,
                 uint64_t seed)
    : config_(config),
      pds_config_(pds_config),
      upper_(upper),
      rng_(seed),
      shared_{Rng(seed ^ 0x1b5eed), lb::LbCounters{}},
      entries_(config.max_pdcs + 1),
      fresh_(EntryLinks{&entries_}),
      shrunk_(EntryLinks{&entries_}),
      linger_(EntryLinks{&entries_}) {
  free_ids_.reserve(config.max_pdcs);
  woken_.reserve(64);
  for (uint32_t id = config.max_pdcs; id >= 1; --id) free_ids_.push_back(static_cast<uint16_t>(id));
  by_initiator_key_.reserve(config.max_pdcs);
  by_accepted_key_.reserve(config.max_pdcs);
}

uint16_t PdcPool::create(const pds::PdcParams& params, uint64_t key, bool initiator, TimePoint now) {
  const uint16_t id = free_ids_.back();
  free_ids_.pop_back();
  pds::PdcParams p = params;
  p.local_id = id;
  // The PDC's own entropy (its ACK/NACK/CTRL; lib/lb chooses its requests'),
  // spread over source ports.
  p.entropy = static_cast<uint16_t>(config_.entropy_base | (id & 0x3fff));
  p.shared = &shared_;
  p.now = now;
  p.start_psn = Psn(static_cast<uint32_t>(rng_.next_u64()));
  Entry& e = entries_[id];
  e.pdc = std::make_unique<pds::Pdc>(pds_config_, upper_, p);
  e.key = key;
  e.initiator = initiator;
  e.idle = Idle::kBusy;
  e.evicting = false;
  (initiator ? by_initiator_key_ : by_accepted_key_).emplace(key, id);
  return id;
}

uint16_t PdcPool::acquire(PeerAddr peer, uint8_t tc, pds::DeliveryMode mode, TimePoint now) {
  const uint64_t key = initiator_key(peer, tc, mode);
  auto it = by_initiator_key_.find(key);
  if (it != by_initiator_key_.end()) {
    // A PDC on its way out (idle close, eviction) takes no new work: the
    // work waits for it to go and then opens a fresh one.
    if (!entries_[it->second].pdc->accepting()) {
      ++counters_.acquire_waits;
      return 0;
    }
    return it->second;
  }
  if (free_ids_.empty()) {
    ++counters_.acquire_waits;
    if (closing_ == 0) evict_one();
    return 0;
  }
  pds::PdcParams p;
  p.peer = peer;
  p.mode = mode;
  ++counters_.opened;
  return create(p, key, /*initiator=*/true, now);
}

uint16_t PdcPool::accept(PeerAddr peer, const wire::RequestHeader& syn, pds::DeliveryMode mode, TimePoint now) {
  const uint64_t key = accepted_key(peer, syn.spdcid);
  auto it = by_accepted_key_.find(key);
  if (it != by_accepted_key_.end()) {
    const uint16_t old = it->second;
    if (entries_[old].pdc->state() == pds::PdcState::kOpen) return old;
    // The initiator closed that PDC and now reuses its id for a new one.
    release(old);
  }
  if (free_ids_.empty()) {
    ++counters_.accept_refused;
    if (closing_ == 0) evict_one();
    return 0;
  }
  pds::PdcParams p;
  p.peer = peer;
  p.mode = mode;
  p.accepted = true;
  p.remote_id = syn.spdcid;
  p.remote_start_psn = Psn(syn.psn) - wire::syn_psn_offset(syn.dpdcid);
  ++counters_.accepted;
  return create(p, key, /*initiator=*/false, now);
}

uint16_t PdcPool::find_accepted(PeerAddr peer, uint16_t remote_id) const {
  auto it = by_accepted_key_.find(accepted_key(peer, remote_id));
  return it == by_accepted_key_.end() ? 0 : it->second;
}

void PdcPool::set_idle(uint16_t id, Idle s, TimePoint now) {
  Entry& e = entries_[id];
  if (e.idle == s) return;
  if (e.idle != Idle::kBusy) list_of(e.idle).remove(id);
  e.idle = s;
  if (s != Idle::kBusy) {
    e.since = now;
    list_of(s).push_back(id);
  }
}

bool PdcPool::after_event(uint16_t id, bool idle, TimePoint now) {
  Entry& e = entries_[id];
  switch (e.pdc->state()) {
    case pds::PdcState::kClosed:
      if (e.initiator) {
        release(id);
        return true;
      }
      // A target lingers to answer a retransmitted CLOSE.
      if (e.idle != Idle::kLinger) set_idle(id, Idle::kLinger, now);
      return false;
    case pds::PdcState::kFailed:
      return false;  // the owner fails the work, then calls release()
    case pds::PdcState::kClosing:
      return false;
    case pds::PdcState::kOpen:
      if (idle) {
        if (e.idle == Idle::kBusy) set_idle(id, Idle::kFresh, now);
      } else if (e.idle == Idle::kFresh || e.idle == Idle::kShrunk) {
        set_idle(id, Idle::kBusy, now);
      }
      return false;
  }
  return false;
}

bool PdcPool::evict_one() {
  // The least recently used idle initiator PDC: shrunk ones are older.
  for (List* l : {&shrunk_, &fresh_}) {
    for (uint32_t i = l->front(); i != kNoIndex; i = l->next(i)) {
      Entry& e = entries_[i];
      if (!e.initiator) continue;
      l->remove(i);
      e.idle = Idle::kBusy;
      e.pdc->close();
      e.evicting = true;
      woken_.push_back(static_cast<uint16_t>(i));
      ++closing_;
      ++counters_.evicted;
      return true;
    }
  }
  return false;
}

void PdcPool::release(uint16_t id) {
  Entry& e = entries_[id];
  if (!e.pdc) return;
  if (e.idle != Idle::kBusy) list_of(e.idle).remove(id);
  e.idle = Idle::kBusy;
  auto& map = e.initiator ? by_initiator_key_ : by_accepted_key_;
  auto it = map.find(e.key);
  if (it != map.end() && it->second == id) map.erase(it);
  if (e.pdc->state() == pds::PdcState::kFailed) ++counters_.failed;
  add_counters(freed_pdc_counters_, e.pdc->counters());
  if (e.evicting) --closing_;
  e.evicting = false;
  e.pdc.reset();
  free_ids_.push_back(id);
  ++counters_.freed;
}

TimePoint PdcPool::next_deadline() const {
  TimePoint t = TimePoint::max();
  if (!fresh_.empty()) t = min_time(t, entries_[fresh_.front()].since + config_.idle_shrink);
  if (!shrunk_.empty()) t = min_time(t, entries_[shrunk_.front()].since + config_.idle_close);
  if (!linger_.empty()) t = min_time(t, entries_[linger_.front()].since + config_.close_linger);
  return t;
}

size_t PdcPool::state_bytes() const {
  size_t bytes = 0;
  for (const Entry& e : entries_)
    if (e.pdc) bytes += e.pdc->memory_bytes() + kBookkeepingBytesPerPdc;
  return bytes;
}

}  // namespace shoal::pool
