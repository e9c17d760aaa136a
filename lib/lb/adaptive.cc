// lib/lb adaptive: spraying that learns which entropies work. The recycling
// half is REPS ("Recycled Entropy Packet Spraying"); quarantine and probing
// are added so that a failed link is abandoned within a few round trips.
//
// choose_entropy, in order of preference:
//   1. a probe: a quarantined entropy whose quarantine ended (one packet per
//      probe_interval until a verdict comes back), but never for a
//      retransmission: a probe fails if the path is still dead, and a
//      packet that is resent only on each RTO would then probe, and be
//      lost on, one dead path after another until the PDC gives up;
//   2. the oldest entropy in the recycle cache (FIFO): its last packet came
//      back ACKed, without CE, and not slow;
//   3. a fresh entropy from the spray sequence, skipping quarantined ones.
// Feedback:
//   clean ACK            -> entropy enters the recycle cache;
//   CE / slow ACK / trim -> entropy is not recycled (congestion, not failure);
//   loss / timeout       -> entropy is quarantined (purged from the cache);
//   probe ACK or trim    -> reinstated (the path delivers again);
//   probe loss/timeout   -> quarantined again for twice as long.
// Feedback for a quarantined entropy that is not being probed is ignored: it
// concerns packets sent before the quarantine began.
//
// Invariants: a quarantined entropy is never in the recycle cache; it is
// chosen only as a probe, at most once per probe_interval; q_count <= 8 and
// ring_count <= 16; no allocation, no clock reads.
#include <algorithm>
#include <limits>

#include "lib/lb/policies.h"

namespace shoal::lb {
namespace {

using State = AdaptiveState;

constexpr int kTickShift = 8;  // coarse tick = 256 ns; see policies.h

uint32_t to_tick(TimePoint t) {
  return static_cast<uint32_t>(static_cast<uint64_t>(t.ns()) >> kTickShift);
}
uint32_t to_ticks(Duration d) {
  // Round up, so a quarantine never ends early.
  const int64_t ns = std::max<int64_t>(d.ns(), 0);
  return static_cast<uint32_t>((ns + (int64_t{1} << kTickShift) - 1) >> kTickShift);
}

// Longest wait any entry can legitimately still have ahead of it. A deadline
// further ahead than that is an artifact of tick wrap-around.
int64_t max_wait_ticks(const LbParams& p) {
  return to_ticks(max_dur(p.quarantine_max, p.probe_interval)) + 1;
}

bool due(const LbParams& p, uint32_t deadline, uint32_t now_tick) {
  const int64_t ahead = static_cast<int32_t>(deadline - now_tick);
  return ahead <= 0 || ahead > max_wait_ticks(p);
}

// The quarantine for backoff `level`. The min RTT is the RTT scale of this
// PDC's paths; before any sample the floor alone applies.
Duration quarantine_for(const LbParams& p, const State& st, uint8_t level) {
  const Duration rtt_based = Duration::nanos(int64_t{st.min_rtt_ns}) * p.quarantine_rtts;
  const Duration base = max_dur(p.quarantine_min, rtt_based);
  if (base >= p.quarantine_max) return p.quarantine_max;
  // base < quarantine_max <= 1 s (validated) and level <= 20: no overflow.
  return min_dur(Duration::nanos(base.ns() << level), p.quarantine_max);
}

int q_find(const State& st, uint16_t e) {
  for (int i = 0; i < st.q_count; ++i)
    if (st.q_entropy[i] == e) return i;
  return -1;
}

bool probing(const State& st, int i) { return (st.q_probing >> i) & 1; }

void q_remove(State& st, int i) {
  // Move the last entry into the hole (order does not matter).
  const int last = st.q_count - 1;
  const bool last_probing = probing(st, last);
  st.q_entropy[i] = st.q_entropy[last];
  st.q_deadline[i] = st.q_deadline[last];
  st.q_level[i] = st.q_level[last];
  st.q_probing = static_cast<uint8_t>(st.q_probing & ~(1u << i));
  if (last_probing) st.q_probing = static_cast<uint8_t>(st.q_probing | (1u << i));
  st.q_probing = static_cast<uint8_t>(st.q_probing & ~(1u << last));
  st.q_count = static_cast<uint8_t>(last);
}

// Removes every copy of `e` from the recycle cache, keeping FIFO order. A copy
// can exist when two packets shared the entropy and one of them came back.
void ring_purge(State& st, uint16_t e) {
  int kept = 0;
  for (int k = 0; k < st.ring_count; ++k) {
    const uint16_t v = st.ring[(st.ring_head + k) % kRecycleSlots];
    if (v != e) st.ring[(st.ring_head + kept++) % kRecycleSlots] = v;
  }
  st.ring_count = static_cast<uint8_t>(kept);
}

// A full cache drops its oldest entry: the freshest evidence is worth more.
void ring_push(State& st, uint16_t e) {
  if (st.ring_count == kRecycleSlots) {
    st.ring_head = static_cast<uint8_t>((st.ring_head + 1) % kRecycleSlots);
    --st.ring_count;
  }
  st.ring[(st.ring_head + st.ring_count) % kRecycleSlots] = e;
  ++st.ring_count;
}

uint16_t ring_pop(State& st) {
  const uint16_t e = st.ring[st.ring_head];
  st.ring_head = static_cast<uint8_t>((st.ring_head + 1) % kRecycleSlots);
  --st.ring_count;
  return e;
}

void quarantine(LbState& s, State& st, uint16_t e, TimePoint now) {
  const LbParams& p = *s.params;
  int i = q_find(st, e);
  if (i >= 0) {
    if (!probing(st, i)) return;  // already waiting: a packet sent before the quarantine
    // The probe failed: the path is still broken, back off.
    st.q_level[i] = static_cast<uint8_t>(std::min<int>(st.q_level[i] + 1, kMaxQuarantineLevel));
    st.q_probing = static_cast<uint8_t>(st.q_probing & ~(1u << i));
  } else {
    ring_purge(st, e);
    if (st.q_count < kQuarantineSlots) {
      i = st.q_count++;
    } else {
      // Full: evict the entry closest to release (it would be back soonest).
      const uint32_t now_tick = to_tick(now);
      i = 0;
      int64_t best = std::numeric_limits<int64_t>::max();
      for (int k = 0; k < kQuarantineSlots; ++k) {
        const int64_t ahead = due(p, st.q_deadline[k], now_tick)
                                  ? -1
                                  : static_cast<int32_t>(st.q_deadline[k] - now_tick);
        if (ahead < best) best = ahead, i = k;
      }
      st.q_probing = static_cast<uint8_t>(st.q_probing & ~(1u << i));
    }
    st.q_entropy[i] = e;
    st.q_level[i] = 0;
  }
  st.q_deadline[i] = to_tick(now) + to_ticks(quarantine_for(p, st, st.q_level[i]));
  ++s.counters->quarantined;
}

void adaptive_init(LbState& s, const LbParams& p, uint64_t pdc_seed) {
  State& st = s.as<State>();
  st = State{};  // value-initialized: empty cache, empty quarantine, no RTT sample
  st.seq.init(p, pdc_hash(p, pdc_seed));
}

uint16_t adaptive_choose(LbState& s, TimePoint now, Rng& rng, bool retransmission) {
  State& st = s.as<State>();
  const LbParams& p = *s.params;
  ++s.counters->choices;

  if (st.q_count > 0 && !retransmission) {
    const uint32_t now_tick = to_tick(now);
    for (int i = 0; i < st.q_count; ++i) {
      // For a waiting entry the deadline ends its quarantine; for a probing
      // one it ends the wait for the probe's verdict.
      if (!due(p, st.q_deadline[i], now_tick)) continue;
      st.q_probing = static_cast<uint8_t>(st.q_probing | (1u << i));
      st.q_deadline[i] = now_tick + to_ticks(p.probe_interval);
      ++s.counters->probes;
      return st.q_entropy[i];
    }
  }

  if (st.ring_count > 0) {
    ++s.counters->recycled;
    return ring_pop(st);
  }

  // Explore. At most q_count of any q_count + 1 consecutive round-robin steps
  // are quarantined; random draws get as many tries. If everything is
  // quarantined (tiny sets) the last candidate goes anyway: a packet on a
  // doubtful path beats no packet.
  ++s.counters->explored;
  uint16_t e = st.seq.next(rng);
  for (int tries = 0; tries < st.q_count && q_find(st, e) >= 0; ++tries) e = st.seq.next(rng);
  return e;
}

void adaptive_ack(LbState& s, uint16_t e, Duration rtt, bool ecn_ce, TimePoint now) {
  State& st = s.as<State>();
  if (!st.seq.contains(e)) return;
  const LbParams& p = *s.params;

  // The min RTT never grows: a route change that lengthens every path makes
  // more ACKs look slow, which only means fewer recycles (spray-like
  // behaviour), never a wrong quarantine. A windowed min is future work.
  const int64_t rtt_ns = std::min<int64_t>(rtt.ns(), std::numeric_limits<uint32_t>::max());
  if (rtt_ns > 0 && (st.min_rtt_ns == 0 || rtt_ns < st.min_rtt_ns))
    st.min_rtt_ns = static_cast<uint32_t>(rtt_ns);

  const int i = q_find(st, e);
  if (i >= 0) {
    if (!probing(st, i)) return;  // sent before the quarantine; proves nothing now
    q_remove(st, i);
    ++s.counters->reinstated;
  }

  // Only the packet an ACK names (it carries the RTT sample) proved its
  // entropy both ways: the ACK came back on it. The others it covers only
  // proved the way out, and recycling one whose way back is dead sends the
  // tail of a flow, whose ACK then goes that way, into timeouts.
  if (rtt_ns <= 0) return;
  const bool slow =
      st.min_rtt_ns > 0 &&
      static_cast<double>(rtt_ns) > p.slow_rtt_factor * static_cast<double>(st.min_rtt_ns);
  if (ecn_ce || slow) {
    ++s.counters->not_recycled;
    return;
  }
  ring_push(st, e);
}

void adaptive_loss(LbState& s, uint16_t e, TimePoint now) {
  State& st = s.as<State>();
  if (!st.seq.contains(e)) return;
  quarantine(s, st, e, now);
}

// A trimmed packet reached a congested switch and its header reached the
// receiver: the path is alive but full. Not recycled (it left the cache when
// chosen); a probe that comes back trimmed still proves the path delivers.
void adaptive_trim(LbState& s, uint16_t e, TimePoint now) {
  State& st = s.as<State>();
  if (!st.seq.contains(e)) return;
  const int i = q_find(st, e);
  if (i >= 0 && probing(st, i)) {
    q_remove(st, i);
    ++s.counters->reinstated;
  }
  ++s.counters->not_recycled;
}

}  // namespace

const LbOps kAdaptiveOps = {
    .name = "adaptive",
    .state_size = sizeof(AdaptiveState),
    .init = adaptive_init,
    .choose_entropy = adaptive_choose,
    .on_ack = adaptive_ack,
    .on_loss = adaptive_loss,
    .on_trim = adaptive_trim,
    .on_timeout = adaptive_loss,
};

}  // namespace shoal::lb
