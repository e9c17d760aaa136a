// lib/cc swift: delay-based AIMD after Swift (Kumar et al., SIGCOMM 2020).
//
// Idea: keep the measured RTT near a target delay. Below target the window
// grows additively (ai packets per RTT; for a sub-packet window ai per ACKed
// packet, so it climbs back quickly); above target it shrinks multiplicatively
// in proportion to how far the delay overshoots, by
// max(1 - beta * (rtt - target) / rtt, 1 - max_mdf), at most once per RTT.
// The target is
//   base_target + hop_scale * hops + flow_scaling(cwnd)
// where flow scaling, fs_range * (1/sqrt(cwnd) - 1/sqrt(fs_max_cwnd)) /
// (1/sqrt(fs_min_cwnd) - 1/sqrt(fs_max_cwnd)) clamped to [0, fs_range], gives
// small windows (many competing flows, e.g. incast) more queueing headroom so
// that flows converge to fairness. Windows below one packet are enforced by
// pacing: pacing_rate = cwnd_bytes / srtt, i.e. one packet every srtt / cwnd.
// Trims cut by max_mdf at most once per RTT, and so does a loss (fast
// retransmission) while srtt is at or above base_target (or before any
// sample, or when no sample came for four srtts: the delay signal is
// gone, e.g. every ACKed packet was a resend); a loss without that standing
// queue is not congestion (a failed path, corruption, reordering) and changes
// nothing unless cut_on_any_loss;
// retx_reset_threshold consecutive RTOs reset the window to min_cwnd, fewer
// cut by max_mdf (once per RTT).
//
// Defaults (a 100 Gb/s, ~10 us fabric; see SwiftParams in cc_sdk.h):
//   base_target  = base_rtt * 1.25: a quarter RTT of standing queue (~31 KB
//                  at 100G/10us) keeps the link busy without deep buffers;
//   hop_scale    = 1 us per hop, applied only when hops are known (AckSample
//                  or CcParams), since base_rtt already covers the usual path;
//   fs_range     = 5 * base_target, fs_min_cwnd = 0.1, fs_max_cwnd = 100 pkts;
//   ai = 1 pkt/RTT, beta = 0.8, max_mdf = 0.5 (the paper's shape);
//   min_cwnd = 0.001 pkt, max_cwnd = 4 BDP, initial cwnd = 1 BDP (line rate),
//   retx_reset_threshold = 5.
// A loss the PDC later finds spurious (the packet arrived without being
// resent: spraying reordered it) restores the window the loss cut took, unless
// a delay-based cut or a timeout came in between (those stand on their own).
// An ACK without an RTT sample (retransmitted data, Karn) never cuts and, at
// or above one packet, changes nothing but the timeout count; below one
// packet it grows the window by ai when the last smoothed delay (base RTT
// before any sample) is below target, so that a window reset to min_cwnd,
// resending only retransmissions, climbs back.
//
// Invariants: min_cwnd <= cwnd <= max_cwnd (packets, fractional);
// cwnd_bytes = max(1, cwnd * mtu); pacing_rate > 0 iff cwnd < 1;
// decreases by ACK delay, loss, trim or timeout happen at most once per srtt
// (except the consecutive-timeout reset).
#pragma once

#include <cstdint>

#include "include/shoal/cc_sdk.h"

namespace shoal::cc {

extern const CcOps kSwiftOps;  // name "swift"

// Private per-PDC state (in CcState::priv). Exposed for tests and dump().
struct SwiftState {
  double cwnd = 0;      // packets
  double max_cwnd = 0;  // resolved from params
  double fs_alpha = 0;  // flow scaling = fs_alpha / sqrt(cwnd) - fs_beta (ns)
  double fs_beta = 0;
  Duration base_target;  // resolved from params
  Duration fs_range;
  Duration srtt;  // EWMA (1/8) of RTT samples; zero until the first
  TimePoint last_sample;  // the latest ACK that carried an RTT sample
  TimePoint last_decrease;
  double undo_cwnd = 0;  // the window before the last loss cut; 0 = nothing to undo
  uint32_t consecutive_timeouts = 0;
  bool decreased = false;  // whether last_decrease is meaningful
};

// The target delay Swift compares RTT samples with, for this PDC's current
// window and `hops` (0 = CcParams::hops).
Duration swift_target_delay(const CcState& s, const CcParams& p, uint32_t hops);

}  // namespace shoal::cc
