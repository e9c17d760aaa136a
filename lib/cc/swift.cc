// lib/cc swift: see swift.h for the algorithm, its defaults and invariants.
#include "lib/cc/swift.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace shoal::cc {
namespace {

// A loss counts as congestion, whatever srtt says, once no RTT sample came
// for this many srtts (see swift_on_loss).
constexpr int64_t kBlindSrtts = 4;

static_assert(sizeof(SwiftState) <= kCcPrivBytes, "SwiftState must fit CcState::priv");

double mtu_of(const CcParams& p, uint32_t sample_mtu) {
  return sample_mtu != 0 ? sample_mtu : p.mtu;
}

// The RTT the once-per-RTT rules use: smoothed, or the configured base
// before the first sample.
Duration rtt_of(const SwiftState& w, const CcParams& p) {
  return w.srtt > Duration::zero() ? w.srtt : p.base_rtt;
}

bool can_decrease(const SwiftState& w, const CcParams& p, TimePoint now) {
  return !w.decreased || now - w.last_decrease >= rtt_of(w, p);
}

void decrease_to(SwiftState& w, double factor, TimePoint now) {
  w.cwnd *= factor;
  w.last_decrease = now;
  w.decreased = true;
}

// Clamps the window and publishes the PDC-visible decision.
void publish(CcState& s, SwiftState& w, const CcParams& p, double mtu) {
  w.cwnd = std::clamp(w.cwnd, p.swift.min_cwnd, w.max_cwnd);
  const double bytes = w.cwnd * mtu;
  s.cwnd_bytes = bytes < 1 ? 1 : static_cast<uint64_t>(bytes);
  if (w.cwnd < 1) {
    // One packet per srtt / cwnd: rate = cwnd bytes per srtt.
    const double rate = bytes / rtt_of(w, p).sec();
    s.pacing_rate = rate < 1 ? 1 : static_cast<uint64_t>(rate);
  } else {
    s.pacing_rate = 0;
  }
}

Duration target_delay(const SwiftState& w, const CcParams& p, uint32_t hops) {
  if (hops == 0) hops = p.hops;
  double fs = w.fs_alpha / std::sqrt(w.cwnd) - w.fs_beta;
  fs = std::clamp(fs, 0.0, static_cast<double>(w.fs_range.ns()));
  return w.base_target + p.swift.hop_scale * static_cast<int64_t>(hops) +
         Duration::nanos(static_cast<int64_t>(fs));
}

void swift_init(CcState& s, const CcParams& p, TimePoint now) {
  SwiftState& w = cc_priv_init<SwiftState>(s);
  const SwiftParams& q = p.swift;
  const double bdp_pkts = static_cast<double>(p.bdp_bytes()) / p.mtu;
  w.max_cwnd = q.max_cwnd != 0 ? q.max_cwnd : std::max(4 * bdp_pkts, q.min_cwnd);
  w.cwnd = q.init_cwnd != 0 ? q.init_cwnd : bdp_pkts;
  w.base_target = q.base_target != Duration::zero() ? q.base_target : p.base_rtt + p.base_rtt / 4;
  w.fs_range = Duration::nanos(static_cast<int64_t>(q.fs_range_factor * w.base_target.ns()));
  // fs(c) = range * (1/sqrt(c) - 1/sqrt(max)) / (1/sqrt(min) - 1/sqrt(max))
  //       = alpha / sqrt(c) - beta, precomputed so an ACK costs one sqrt.
  const double span = 1 / std::sqrt(q.fs_min_cwnd) - 1 / std::sqrt(q.fs_max_cwnd);
  w.fs_alpha = static_cast<double>(w.fs_range.ns()) / span;
  w.fs_beta = w.fs_alpha / std::sqrt(q.fs_max_cwnd);
  w.srtt = Duration::zero();
  w.last_decrease = now;
  w.decreased = false;
  w.consecutive_timeouts = 0;
  s.credit_bytes = 0;
  s.credit_limited = false;
  publish(s, w, p, p.mtu);
}

void swift_on_ack(CcState& s, const CcParams& p, const AckSample& a) {
  SwiftState& w = cc_priv<SwiftState>(s);
  const double mtu = mtu_of(p, a.mtu);
  w.consecutive_timeouts = 0;
  const double acked = a.acked_bytes != 0 ? static_cast<double>(a.acked_bytes) / mtu
                                          : static_cast<double>(a.acked_packets);
  if (a.rtt <= Duration::zero()) {
    // No fresh delay (Karn: the ACK names a retransmission): no cut, and no
    // growth at or above a packet. Below one packet, grow as if the ACK
    // carried the last smoothed delay (the base RTT before any sample) when
    // that was below target: after timeouts a flow resends only
    // retransmissions, whose ACKs never carry a sample, so a window the
    // timeouts reset to min_cwnd stayed at one packet per ~1000 RTTs
    // (incast: 18 ms between packets, one flow 780 ms). Growing above a
    // packet on such ACKs too was tried: it fed a full queue (incast k=8
    // steady goodput 93 -> 52 Gb/s).
    if (w.cwnd < 1 && rtt_of(w, p) < target_delay(w, p, a.hops)) {
      w.cwnd += p.swift.ai * acked;
      publish(s, w, p, mtu);
    }
    return;
  }
  w.srtt = w.srtt == Duration::zero() ? a.rtt : w.srtt + (a.rtt - w.srtt) / 8;
  w.last_sample = a.now;

  const Duration target = target_delay(w, p, a.hops);
  if (a.rtt < target) {
    // ai per RTT: a whole window of ACKs adds ai. Below one packet a window
    // is less than one ACK per RTT, so each ACK adds ai outright.
    w.cwnd += w.cwnd >= 1 ? p.swift.ai * acked / w.cwnd : p.swift.ai * acked;
  } else if (can_decrease(w, p, a.now)) {
    const double over =
        static_cast<double>((a.rtt - target).ns()) / static_cast<double>(a.rtt.ns());
    decrease_to(w, std::max(1 - p.swift.beta * over, 1 - p.swift.max_mdf), a.now);
    w.undo_cwnd = 0;
  }
  publish(s, w, p, mtu);
}

void swift_on_loss(CcState& s, const CcParams& p, const LossSample& l) {
  SwiftState& w = cc_priv<SwiftState>(s);
  w.consecutive_timeouts = 0;
  // Delay is Swift's congestion signal, and a queue fills before it drops:
  // a loss while srtt is below the base target (no standing queue) is a
  // failed path, corruption or reordering taken for loss, which
  // retransmission and path selection handle. Cutting for each one slowed
  // every flow that shared a dead path to a third of its rate (link-failure
  // scenario). The base target, not the full one: flow scaling can allow
  // more queueing than a shallow buffer holds (incast: ~90 us against a
  // 35-packet queue's 12 us), and then no delay would ever count.
  // A stale srtt says nothing either way: a flow whose every ACKed packet
  // was a resend (Karn) got no sample for milliseconds, kept a window of 44
  // packets it had at 16 us srtt into a full incast queue, lost ~97% of
  // what it sent and failed its flow after 64 sends of one PSN (incast k=8,
  // seed 13). With the delay signal gone, a loss counts.
  const bool delay_blind =
      w.srtt != Duration::zero() && l.now - w.last_sample >= w.srtt * kBlindSrtts;
  const bool congested = w.srtt == Duration::zero() || w.srtt >= w.base_target || delay_blind;
  if ((congested || p.swift.cut_on_any_loss) && can_decrease(w, p, l.now)) {
    w.undo_cwnd = w.cwnd;
    decrease_to(w, 1 - p.swift.max_mdf, l.now);
  }
  publish(s, w, p, p.mtu);
}

void swift_on_spurious_loss(CcState& s, const CcParams& p, const SpuriousLossSample&) {
  SwiftState& w = cc_priv<SwiftState>(s);
  if (w.undo_cwnd > w.cwnd) w.cwnd = w.undo_cwnd;
  w.undo_cwnd = 0;
  publish(s, w, p, p.mtu);
}

void swift_on_trim(CcState& s, const CcParams& p, const TrimSample& t) {
  // A trim is a buffer overflow reported without a loss: same reaction.
  SwiftState& w = cc_priv<SwiftState>(s);
  if (can_decrease(w, p, t.now)) decrease_to(w, 1 - p.swift.max_mdf, t.now);
  publish(s, w, p, p.mtu);
}

void swift_on_timeout(CcState& s, const CcParams& p, const TimeoutSample& t) {
  SwiftState& w = cc_priv<SwiftState>(s);
  w.undo_cwnd = 0;
  if (++w.consecutive_timeouts >= p.swift.retx_reset_threshold) {
    w.cwnd = p.swift.min_cwnd;
    w.last_decrease = t.now;
    w.decreased = true;
  } else if (can_decrease(w, p, t.now)) {
    decrease_to(w, 1 - p.swift.max_mdf, t.now);
  }
  publish(s, w, p, p.mtu);
}

std::string swift_dump(const CcState& s, const CcParams& p) {
  const SwiftState& w = cc_priv<SwiftState>(s);
  return absl::StrFormat("cwnd_pkts=%.3f srtt_us=%.2f target_us=%.2f rto_streak=%u", w.cwnd,
                         w.srtt.us(), target_delay(w, p, 0).us(), w.consecutive_timeouts);
}

}  // namespace

Duration swift_target_delay(const CcState& s, const CcParams& p, uint32_t hops) {
  return target_delay(cc_priv<SwiftState>(s), p, hops);
}

const CcOps kSwiftOps = {
    .name = "swift",
    .init = swift_init,
    .on_ack = swift_on_ack,
    .on_loss = swift_on_loss,
    .on_timeout = swift_on_timeout,
    .on_trim = swift_on_trim,
    .on_spurious_loss = swift_on_spurious_loss,
    .dump = swift_dump,
};

}  // namespace shoal::cc
