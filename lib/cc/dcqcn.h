// lib/cc dcqcn: rate-based congestion control after DCQCN (Zhu et al.,
// SIGCOMM 2015), the RoCEv2 reaction point.
//
// Idea: switches mark ECN (CE); the receiver echoes CE counts in its ACKs,
// which stand in for CNPs. On a congestion notification, at most one per
// cnp_interval: target Rt = Rc, current Rc *= (1 - alpha/2), and
// alpha = (1-g) alpha + g; the increase stages restart. alpha decays,
// alpha = (1-g) alpha, once per alpha_timer that passes without a cut. The rate
// recovers on increase events, from a timer (increase_timer) and from a byte
// counter (byte_counter bytes sent); with T timer and B byte-counter events
// since the last cut, an event is
//   fast recovery   while max(T, B) <= F:   Rc = (Rt + Rc) / 2
//   hyper increase  when min(T, B) > F:     Rt += (min(T,B) - F) * R_HAI, then as above
//   additive        otherwise:              Rt += R_AI, then as above
// Rates are clamped to [min_rate, link_rate]; a new flow starts at line rate
// with alpha = initial_alpha.
//
// Output: pacing_rate = Rc, and cwnd_bytes = cwnd_bdp_factor * BDP, a cap
// that never binds at line rate, so the PDC is rate-driven.
// Trims and RTOs count as congestion notifications too (one cut, same
// cnp_interval limit), and so does a loss if a CE came back within the last
// cnp_interval: a queue that overflows marks packets on its way up, so a loss
// without marks is a failed path or corruption, which retransmission and path
// selection handle (cut_on_any_loss restores cutting on every loss).
//
// Timers: next_timer() is the next rate-increase event while Rc is below
// line rate (nothing otherwise); alpha decay needs no wake-up since it changes
// no output until the next cut. Every hook first catches up on all timer
// events due by `now`, so a PDC that fires on_timer late, or never, still
// gets them (the next hook applies them).
//
// Defaults (DcqcnParams in cc_sdk.h): g = 1/256, cnp_interval = 50 us,
// alpha_timer = increase_timer = 55 us, byte_counter = 10 MB, F = 5,
// R_AI = 40 Mb/s, R_HAI = 400 Mb/s (10 x R_AI), min_rate = 10 Mb/s,
// cwnd cap = 2 BDP. All configurable.
//
// Limits (measured; they follow from the paper's algorithm and defaults). A cut
// before alpha has decayed halves Rc, and g = 1/256 per alpha_timer keeps
// alpha near 1 for milliseconds, so every cut of a short flow halves it;
// recovery then takes increase_timer steps (the byte counter is too coarse to
// fire within a few MB). A sprayed flow crosses many queues and any mark on
// any of them is a notification, so under step marking a 2 MB flow at 100 Gb/s
// is halved about twice. Faster recovery (e.g. a 32 KB byte counter) fixes
// that but lets recovery outrun the 50 us cut spacing in a large incast,
// which then overflows; NIC-style settings (4 us between cuts and CNPs, 1 us
// alpha period) cut sprayed flows far too often.
//
// mark_scaled_cut (off by default): an ECN notification applies the marked
// share f of the paper's cut, Rc *= 1 - f * alpha / 2, where f is the
// fraction of packets ACKed CE-marked in the current and previous
// cnp_interval epochs (losses, trims and RTOs still cut in full). Why: a
// sprayed flow's one mark says one of its many paths queued, not that its
// rate is twice too high. Measured (k=8, seed 13, shoal-sim --cc-param
// dcqcn.mark_scaled_cut=true): spray permutation 59.4 -> 69.4 Gb/s at the
// default step K = 7, 77.5 at --ecn-k 12 (FCT max/p50 1.14); but incast
// stays at ~86 Gb/s and the link-failure recovery measure rises from 75 to
// 480-720 us, so the paper's cut stays the default.
//
// Invariants: min_rate <= Rc <= link_rate; Rc <= Rt <= link_rate after an
// increase event; 0 < alpha <= 1; pacing_rate == round(Rc).
#pragma once

#include <cstdint>

#include "include/shoal/cc_sdk.h"

namespace shoal::cc {

extern const CcOps kDcqcnOps;  // name "dcqcn"

// Private per-PDC state (in CcState::priv). Exposed for tests and dump().
struct DcqcnState {
  double rc = 0;  // current rate, bytes/s
  double rt = 0;  // target rate, bytes/s
  double alpha = 0;
  TimePoint last_cut;
  TimePoint next_alpha;            // next alpha decay
  TimePoint next_increase;         // next timer increase event
  uint64_t bytes_since_event = 0;  // byte counter progress
  uint32_t timer_events = 0;       // T: timer events since the last cut
  uint32_t byte_events = 0;        // B: byte-counter events since the last cut
  TimePoint last_ce;  // latest ACK that echoed CE
  uint32_t cuts = 0;
  bool has_cut = false;
  bool has_ce = false;
  // Marked fraction (mark_scaled_cut): packets ACKed and CE-marked in the
  // current epoch (since epoch_start) and the one before; saturating.
  uint16_t acked_now = 0, ce_now = 0, acked_prev = 0, ce_prev = 0;
  TimePoint epoch_start;
};

}  // namespace shoal::cc
