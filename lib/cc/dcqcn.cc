// lib/cc dcqcn: see dcqcn.h for the algorithm, its defaults and invariants.
#include "lib/cc/dcqcn.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace shoal::cc {
namespace {

static_assert(sizeof(DcqcnState) <= kCcPrivBytes, "DcqcnState must fit CcState::priv");

void publish(CcState& s, const DcqcnState& d) {
  s.pacing_rate = static_cast<uint64_t>(std::llround(d.rc));
}

// One rate-increase event (the caller has counted it in T or B).
void increase(DcqcnState& d, const CcParams& p) {
  const DcqcnParams& q = p.dcqcn;
  const uint32_t hi = std::max(d.timer_events, d.byte_events);
  const uint32_t lo = std::min(d.timer_events, d.byte_events);
  if (hi <= q.fast_recovery_steps) {
    // Fast recovery: halve the distance to the rate before the cut.
  } else if (lo > q.fast_recovery_steps) {
    d.rt += static_cast<double>(lo - q.fast_recovery_steps) * q.rate_hai;
  } else {
    d.rt += q.rate_ai;
  }
  d.rt = std::min(d.rt, p.link_rate);
  d.rc = std::clamp((d.rt + d.rc) / 2, q.min_rate, p.link_rate);
}

// Applies every timer event due by `now` (alpha decay, timer increases).
void advance(DcqcnState& d, const CcParams& p, TimePoint now) {
  const DcqcnParams& q = p.dcqcn;
  if (d.next_alpha <= now) {
    // Closed form: idle periods can be long and each decay is the same.
    const int64_t n = (now - d.next_alpha).ns() / q.alpha_timer.ns() + 1;
    d.alpha *= std::pow(1 - q.g, static_cast<double>(n));
    d.next_alpha += q.alpha_timer * n;
  }
  while (d.next_increase <= now) {
    if (d.rc >= p.link_rate) {
      // At line rate an increase changes nothing: skip the events, so an
      // idle flow costs no loop, and keep the timer's phase.
      const int64_t n = (now - d.next_increase).ns() / q.increase_timer.ns() + 1;
      d.next_increase += q.increase_timer * n;
      break;
    }
    ++d.timer_events;
    increase(d, p);
    d.next_increase += q.increase_timer;
  }
}

// `share` in (0, 1]: the part of the paper's cut to apply.
void cut(DcqcnState& d, const CcParams& p, TimePoint now, double share) {
  const DcqcnParams& q = p.dcqcn;
  d.rt = d.rc;
  d.rc = std::max(d.rc * (1 - share * d.alpha / 2), q.min_rate);
  d.alpha = (1 - q.g) * d.alpha + q.g;
  d.last_cut = now;
  d.has_cut = true;
  ++d.cuts;
  // A cut restarts every clock: alpha decays only after a quiet period, and
  // the increase stages start over.
  d.next_alpha = now + q.alpha_timer;
  d.next_increase = now + q.increase_timer;
  d.bytes_since_event = 0;
  d.timer_events = 0;
  d.byte_events = 0;
}

// Counts an ACK's packets into the marked-fraction epochs; an epoch lasts
// one cnp_interval.
void count_marks(DcqcnState& d, const CcParams& p, const AckSample& a) {
  const Duration epoch = p.dcqcn.cnp_interval;
  if (a.now - d.epoch_start >= epoch) {
    const bool adjacent = a.now - d.epoch_start < epoch * 2;
    d.acked_prev = adjacent ? d.acked_now : 0;
    d.ce_prev = adjacent ? d.ce_now : 0;
    d.acked_now = d.ce_now = 0;
    d.epoch_start = a.now;
  }
  auto add = [](uint16_t& c, uint32_t n) { c = static_cast<uint16_t>(std::min<uint32_t>(c + n, 0xffff)); };
  add(d.acked_now, a.acked_packets);
  add(d.ce_now, a.ce_packets);
}

// The share of the paper's cut an ECN notification applies.
double mark_share(const DcqcnState& d, const CcParams& p) {
  if (!p.dcqcn.mark_scaled_cut) return 1.0;
  const uint32_t acked = uint32_t{d.acked_now} + d.acked_prev;
  const uint32_t ce = uint32_t{d.ce_now} + d.ce_prev;
  if (acked == 0 || ce >= acked) return 1.0;
  return static_cast<double>(ce) / acked;  // once per notification, not per ACK
}

// A congestion notification: cut unless one happened within cnp_interval.
void notify(CcState& s, const CcParams& p, TimePoint now, double share) {
  DcqcnState& d = cc_priv<DcqcnState>(s);
  advance(d, p, now);
  if (!d.has_cut || now - d.last_cut >= p.dcqcn.cnp_interval) cut(d, p, now, share);
  publish(s, d);
}

void dcqcn_init(CcState& s, const CcParams& p, TimePoint now) {
  DcqcnState& d = cc_priv_init<DcqcnState>(s);
  d.rc = d.rt = p.link_rate;
  d.alpha = p.dcqcn.initial_alpha;
  d.next_alpha = now + p.dcqcn.alpha_timer;
  d.next_increase = now + p.dcqcn.increase_timer;
  d.epoch_start = now;
  const double cap = p.dcqcn.cwnd_bdp_factor * static_cast<double>(p.bdp_bytes());
  s.cwnd_bytes = std::max<uint64_t>(static_cast<uint64_t>(cap), p.mtu);
  s.credit_bytes = 0;
  s.credit_limited = false;
  publish(s, d);
}

void dcqcn_on_ack(CcState& s, const CcParams& p, const AckSample& a) {
  DcqcnState& d = cc_priv<DcqcnState>(s);
  if (p.dcqcn.mark_scaled_cut) count_marks(d, p, a);  // the paper's cut needs no counts
  if (a.ce_packets > 0) {
    d.last_ce = a.now;
    d.has_ce = true;
    notify(s, p, a.now, mark_share(d, p));
    return;
  }
  advance(d, p, a.now);
  publish(s, d);
}

void dcqcn_on_loss(CcState& s, const CcParams& p, const LossSample& l) {
  const DcqcnState& d = cc_priv<DcqcnState>(s);
  const bool marked_lately = d.has_ce && l.now - d.last_ce <= p.dcqcn.cnp_interval;
  if (marked_lately || p.dcqcn.cut_on_any_loss) notify(s, p, l.now, 1.0);
}
void dcqcn_on_timeout(CcState& s, const CcParams& p, const TimeoutSample& t) {
  notify(s, p, t.now, 1.0);
}
void dcqcn_on_trim(CcState& s, const CcParams& p, const TrimSample& t) { notify(s, p, t.now, 1.0); }

void dcqcn_on_send(CcState& s, const CcParams& p, uint32_t bytes, TimePoint now) {
  DcqcnState& d = cc_priv<DcqcnState>(s);
  advance(d, p, now);
  d.bytes_since_event += bytes;
  while (d.bytes_since_event >= p.dcqcn.byte_counter) {
    d.bytes_since_event -= p.dcqcn.byte_counter;
    ++d.byte_events;
    increase(d, p);
  }
  publish(s, d);
}

void dcqcn_on_timer(CcState& s, const CcParams& p, TimePoint now) {
  DcqcnState& d = cc_priv<DcqcnState>(s);
  advance(d, p, now);
  publish(s, d);
}

TimePoint dcqcn_next_timer(const CcState& s, const CcParams& p) {
  const DcqcnState& d = cc_priv<DcqcnState>(s);
  return d.rc < p.link_rate ? d.next_increase : TimePoint::max();
}

std::string dcqcn_dump(const CcState& s, const CcParams&) {
  const DcqcnState& d = cc_priv<DcqcnState>(s);
  return absl::StrFormat("rc_gbps=%.3f rt_gbps=%.3f alpha=%.4f T=%u B=%u cuts=%u", d.rc * 8e-9,
                         d.rt * 8e-9, d.alpha, d.timer_events, d.byte_events, d.cuts);
}

}  // namespace

const CcOps kDcqcnOps = {
    .name = "dcqcn",
    .init = dcqcn_init,
    .on_ack = dcqcn_on_ack,
    .on_loss = dcqcn_on_loss,
    .on_timeout = dcqcn_on_timeout,
    .on_trim = dcqcn_on_trim,
    .on_send = dcqcn_on_send,
    .on_timer = dcqcn_on_timer,
    .next_timer = dcqcn_next_timer,
    .dump = dcqcn_dump,
};

}  // namespace shoal::cc
