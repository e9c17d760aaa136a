// lib/cc eqds: the EQDS sender hooks and the receiver's CreditScheduler; see
// eqds.h for the protocol and its invariants.
#include "lib/cc/eqds.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace shoal::cc {
namespace {

static_assert(sizeof(EqdsSenderState) <= kCcPrivBytes, "EqdsSenderState must fit CcState::priv");

// Credit, not a window, limits an EQDS sender; this only keeps in-flight
// arithmetic far from overflow.
constexpr uint64_t kUnboundedCwnd = uint64_t{1} << 62;

void publish(CcState& s, const EqdsSenderState& e) {
  s.credit_bytes =
      static_cast<int64_t>(e.initial_window + e.granted_total) - static_cast<int64_t>(e.sent_total);
}

void eqds_init(CcState& s, const CcParams& p, TimePoint) {
  EqdsSenderState& e = cc_priv_init<EqdsSenderState>(s);
  e.initial_window = eqds_initial_window(p);
  s.cwnd_bytes = kUnboundedCwnd;
  s.pacing_rate = 0;  // the receiver paces its grants
  s.credit_limited = true;
  publish(s, e);
}

void eqds_on_send(CcState& s, const CcParams&, uint32_t bytes, TimePoint) {
  EqdsSenderState& e = cc_priv<EqdsSenderState>(s);
  e.sent_total += bytes;
  publish(s, e);
}

void eqds_on_credit(CcState& s, const CcParams&, const CreditSample& c) {
  EqdsSenderState& e = cc_priv<EqdsSenderState>(s);
  if (c.granted_total != 0) {
    // Cumulative: a stale (reordered) grant changes nothing, a later one
    // also covers grants that were lost.
    e.granted_total = std::max(e.granted_total, c.granted_total);
  } else {
    e.granted_total += c.credit_bytes;
  }
  publish(s, e);
}

// Trims, losses and timeouts return no budget: the receiver re-grants trimmed
// bytes itself, and lost bytes come back through the sender's request total.
void eqds_on_trim(CcState& s, const CcParams&, const TrimSample& t) {
  cc_priv<EqdsSenderState>(s).trimmed_bytes += t.trimmed_bytes;
}
void eqds_on_loss(CcState& s, const CcParams&, const LossSample& l) {
  cc_priv<EqdsSenderState>(s).lost_bytes += l.lost_bytes;
}
void eqds_on_timeout(CcState& s, const CcParams&, const TimeoutSample&) {
  ++cc_priv<EqdsSenderState>(s).timeouts;
}
void eqds_on_ack(CcState&, const CcParams&, const AckSample&) {}

std::string eqds_dump(const CcState& s, const CcParams&) {
  const EqdsSenderState& e = cc_priv<EqdsSenderState>(s);
  return absl::StrFormat("initial=%u sent=%u granted=%u trimmed=%u lost=%u rtos=%u",
                         e.initial_window, e.sent_total, e.granted_total, e.trimmed_bytes,
                         e.lost_bytes, e.timeouts);
}

}  // namespace

const CcOps kEqdsOps = {
    .name = "eqds",
    .flags = kCcFlagReceiverCredit,
    .init = eqds_init,
    .on_ack = eqds_on_ack,
    .on_loss = eqds_on_loss,
    .on_timeout = eqds_on_timeout,
    .on_trim = eqds_on_trim,
    .on_credit = eqds_on_credit,
    .on_send = eqds_on_send,
    .dump = eqds_dump,
};

uint64_t eqds_initial_window(const CcParams& p) {
  return p.eqds.initial_window_bytes != 0 ? p.eqds.initial_window_bytes : p.bdp_bytes();
}

uint64_t eqds_request_total(const CcState& s, uint64_t backlog_bytes) {
  const EqdsSenderState& e = cc_priv<EqdsSenderState>(s);
  const uint64_t wanted = e.sent_total + backlog_bytes;
  return wanted > e.initial_window ? wanted - e.initial_window : 0;
}

// ---- CreditScheduler ------------------------------------------------------------

CreditSchedulerConfig CreditSchedulerConfig::from(const CcParams& p) {
  CreditSchedulerConfig c;
  c.link_rate = p.link_rate;
  c.headroom = p.eqds.headroom;
  c.quantum = p.eqds.grant_quantum != 0 ? p.eqds.grant_quantum : p.mtu;
  c.max_burst_grants = p.eqds.max_burst_grants;
  return c;
}

CreditScheduler::CreditScheduler(const CreditSchedulerConfig& config)
    : config_(config),
      rate_(config.link_rate * (1 - config.headroom)),
      ns_per_byte_(1e9 / rate_),
      active_(LinksOf{&slots_}) {
  if (config_.quantum == 0) config_.quantum = 1;
  if (config_.max_burst_grants == 0) config_.max_burst_grants = 1;
}

void CreditScheduler::reserve(size_t senders) {
  slots_.reserve(senders);
  free_.reserve(senders);
  index_.reserve(senders);
}

uint32_t CreditScheduler::slot_for(uint32_t id) {
  auto [it, inserted] = index_.try_emplace(id, kNoIndex);
  if (!inserted) return it->second;
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    free_.reserve(slots_.size());  // so that remove() never allocates
  }
  slots_[slot] = Sender{};
  slots_[slot].id = id;
  slots_[slot].in_use = true;
  it->second = slot;
  return slot;
}

void CreditScheduler::activate(uint32_t slot, TimePoint now) {
  Sender& s = slots_[slot];
  if (s.links.linked() || s.requested <= s.granted) return;
  if (active_.empty()) {
    // Waking from idle: grant now, but bank no credit from the idle time.
    next_grant_ns_ = std::max(next_grant_ns_, static_cast<double>(now.ns()));
  }
  active_.push_back(slot);
}

void CreditScheduler::on_request(uint32_t id, uint64_t requested_total, TimePoint now) {
  ++counters_.requests;
  const uint32_t slot = slot_for(id);
  Sender& s = slots_[slot];
  if (requested_total <= s.requested) {
    ++counters_.stale_requests;
    return;
  }
  s.requested = requested_total;
  activate(slot, now);
}

void CreditScheduler::on_data_arrived(uint32_t id, uint32_t bytes, bool trimmed, TimePoint now) {
  counters_.arrived_bytes += bytes;
  auto it = index_.find(id);
  if (it == index_.end() && !trimmed)
    return;  // unsolicited data of an unknown sender: no demand yet
  const uint32_t slot = it != index_.end() ? it->second : slot_for(id);
  Sender& s = slots_[slot];
  s.arrived += bytes;
  if (trimmed) {
    // Anticipate the retransmission the sender will ask credit for: its
    // request total counts the same bytes, so this is not granted twice.
    counters_.trimmed_bytes += bytes;
    s.requested += bytes;
    activate(slot, now);
  }
}

size_t CreditScheduler::poll(TimePoint now, std::span<CreditGrant> out) {
  if (active_.empty() || out.empty()) return 0;
  const double now_ns = static_cast<double>(now.ns());
  // A late poll catches up on at most max_burst_grants quanta.
  const double burst_ns =
      static_cast<double>(config_.max_burst_grants) * config_.quantum * ns_per_byte_;
  next_grant_ns_ = std::max(next_grant_ns_, now_ns - burst_ns);
  size_t n = 0;
  while (n < out.size() && !active_.empty() && next_grant_ns_ <= now_ns) {
    const uint32_t slot = active_.pop_front();
    Sender& s = slots_[slot];
    const uint64_t bytes = std::min<uint64_t>(config_.quantum, s.requested - s.granted);
    s.granted += bytes;
    out[n++] = CreditGrant{s.id, static_cast<uint32_t>(bytes), s.granted};
    ++counters_.grants;
    counters_.granted_bytes += bytes;
    next_grant_ns_ += static_cast<double>(bytes) * ns_per_byte_;
    if (s.requested > s.granted) active_.push_back(slot);  // round robin: to the back
  }
  return n;
}

TimePoint CreditScheduler::next_deadline() const {
  if (active_.empty()) return TimePoint::max();
  return TimePoint::from_ns(static_cast<int64_t>(std::ceil(next_grant_ns_)));
}

void CreditScheduler::remove(uint32_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  const uint32_t slot = it->second;
  if (slots_[slot].links.linked()) active_.remove(slot);
  slots_[slot].in_use = false;
  index_.erase(it);
  free_.push_back(slot);  // capacity reserved when the slot was made (or by reserve())
}

uint64_t CreditScheduler::demand(uint32_t id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return 0;
  const Sender& s = slots_[it->second];
  return s.requested - s.granted;
}

uint64_t CreditScheduler::granted_total(uint32_t id) const {
  auto it = index_.find(id);
  return it == index_.end() ? 0 : slots_[it->second].granted;
}

std::string CreditScheduler::dump() const {
  std::string out = absl::StrFormat(
      "credit_scheduler rate_gbps=%.3f quantum=%u senders=%u active=%u grants=%u granted=%u "
      "arrived=%u trimmed=%u requests=%u stale=%u",
      rate_ * 8e-9, config_.quantum, index_.size(), active_.size(), counters_.grants,
      counters_.granted_bytes, counters_.arrived_bytes, counters_.trimmed_bytes, counters_.requests,
      counters_.stale_requests);
  for (const Sender& s : slots_) {
    if (!s.in_use) continue;
    absl::StrAppendFormat(&out, "\n  id=%u requested=%u granted=%u arrived=%u%s", s.id, s.requested,
                          s.granted, s.arrived, s.links.linked() ? " active" : "");
  }
  return out;
}

}  // namespace shoal::cc
