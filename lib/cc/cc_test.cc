// Tests for lib/cc: the registry, the contract helpers, the four algorithms
// (fixed, swift, dcqcn, eqds) and the EQDS receiver's CreditScheduler.
//
// Everything runs in virtual time: each test picks its `now` values. The
// algorithms are driven only through their CcOps hooks and observed through
// CcState's public outputs (plus the exposed private structs where the
// quantity under test, such as DCQCN's alpha, has no public output).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "include/shoal/cc_sdk.h"
#include "lib/base/rng.h"
#include "lib/cc/dcqcn.h"
#include "lib/cc/eqds.h"
#include "lib/cc/fixed.h"
#include "lib/cc/swift.h"

namespace shoal::cc {
namespace {

constexpr double kLinkRate = 100e9 / 8;  // 100 Gb/s in bytes/s
constexpr uint32_t kMtu = 4096;

CcParams default_params() {
  CcParams p;
  p.link_rate = kLinkRate;
  p.mtu = kMtu;
  p.base_rtt = Duration::micros(10);
  return p;
}

TimePoint at_us(double us) { return TimePoint::from_ns(static_cast<int64_t>(us * 1000)); }

// One PDC's CC: the ops looked up by name, the parameters, the state.
struct Cc {
  explicit Cc(const char* name, const CcParams& params = default_params(),
              TimePoint now = TimePoint::zero())
      : ops(find_cc(name)), p(params) {
    EXPECT_NE(ops, nullptr) << name;
    ops->init(s, p, now);
  }
  void ack(TimePoint now, Duration rtt, uint32_t pkts = 1, uint32_t ce = 0, uint32_t hops = 0) {
    AckSample a;
    a.now = now;
    a.acked_packets = pkts;
    a.acked_bytes = uint64_t{pkts} * p.mtu;
    a.ce_packets = ce;
    a.rtt = rtt;
    a.hops = hops;
    ops->on_ack(s, p, a);
  }
  void loss(TimePoint now, uint64_t bytes = kMtu) {
    ops->on_loss(s, p, LossSample{now, bytes, 1, 0});
  }
  void timeout(TimePoint now) { ops->on_timeout(s, p, TimeoutSample{now, 0}); }
  void spurious(TimePoint now, uint64_t bytes = kMtu) {
    cc_on_spurious_loss(*ops, s, p, SpuriousLossSample{now, bytes, 1});
  }
  void trim(TimePoint now, uint64_t bytes = kMtu) {
    cc_on_trim(*ops, s, p, TrimSample{now, bytes, 1});
  }
  void send(TimePoint now, uint32_t bytes = kMtu) { cc_on_send(*ops, s, p, bytes, now); }
  void credit(TimePoint now, uint64_t bytes, uint64_t total = 0) {
    cc_on_credit(*ops, s, p, CreditSample{now, bytes, total});
  }
  void timer(TimePoint now) { cc_on_timer(*ops, s, p, now); }

  const CcOps* ops;
  CcParams p;
  CcState s;
};

// ---- registry and contract ----------------------------------------------------

void noop_init(CcState&, const CcParams&, TimePoint) {}
void noop_ack(CcState&, const CcParams&, const AckSample&) {}
void noop_loss(CcState&, const CcParams&, const LossSample&) {}
void noop_timeout(CcState&, const CcParams&, const TimeoutSample&) {}
void noop_timer(CcState&, const CcParams&, TimePoint) {}

CcOps complete_ops(const char* name) {
  CcOps o;
  o.name = name;
  o.init = noop_init;
  o.on_ack = noop_ack;
  o.on_loss = noop_loss;
  o.on_timeout = noop_timeout;
  return o;
}

TEST(CcRegistryTest, FindsBuiltins) {
  for (const char* name : {"fixed", "swift", "dcqcn", "eqds"}) {
    const CcOps* o = find_cc(name);
    ASSERT_NE(o, nullptr) << name;
    EXPECT_STREQ(o->name, name);
    EXPECT_NE(o->init, nullptr);
  }
  EXPECT_EQ(find_cc("cubic"), nullptr);
  EXPECT_EQ(find_cc(""), nullptr);
  const std::vector<std::string_view> names = cc_names();
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(names[0], "fixed");
  EXPECT_EQ(names[1], "swift");
  EXPECT_EQ(names[2], "dcqcn");
  EXPECT_EQ(names[3], "eqds");
  // Only EQDS needs the receiver's credit scheduler.
  EXPECT_TRUE(find_cc("eqds")->flags & kCcFlagReceiverCredit);
  EXPECT_FALSE(find_cc("swift")->flags & kCcFlagReceiverCredit);
}

TEST(CcRegistryTest, RegistersNewAndRefusesDuplicates) {
  ASSERT_TRUE(register_cc(complete_ops("test_dup")).ok());
  const CcOps* found = find_cc("test_dup");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->on_ack, &noop_ack);

  absl::Status again = register_cc(complete_ops("test_dup"));
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  CcOps shadow = *find_cc("swift");  // a built-in's name is taken too
  EXPECT_EQ(register_cc(shadow).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(find_cc("swift")->init, kSwiftOps.init);
}

TEST(CcRegistryTest, RefusesMissingRequiredHooks) {
  using Hook = void (*)(CcOps&);
  const std::map<std::string, Hook> breakers = {
      {"no_name", [](CcOps& o) { o.name = nullptr; }},
      {"empty_name", [](CcOps& o) { o.name = ""; }},
      {"no_init", [](CcOps& o) { o.init = nullptr; }},
      {"no_ack", [](CcOps& o) { o.on_ack = nullptr; }},
      {"no_loss", [](CcOps& o) { o.on_loss = nullptr; }},
      {"no_timeout", [](CcOps& o) { o.on_timeout = nullptr; }},
      {"timer_without_next", [](CcOps& o) { o.on_timer = noop_timer; }},
  };
  for (const auto& [label, breaker] : breakers) {
    const std::string name = "test_missing_" + label;
    CcOps o = complete_ops(name.c_str());
    breaker(o);
    EXPECT_EQ(register_cc(o).code(), absl::StatusCode::kInvalidArgument) << label;
    EXPECT_EQ(find_cc(name), nullptr) << label;
  }
  // Optional hooks really are optional.
  EXPECT_TRUE(register_cc(complete_ops("test_minimal")).ok());
}

TEST(CcContractTest, StateLayoutAndWindowRule) {
  static_assert(sizeof(CcState) == 128);
  static_assert(alignof(CcState) == 64);
  CcState s;
  s.cwnd_bytes = 10000;
  EXPECT_TRUE(cc_window_allows(s, 0, kMtu));
  EXPECT_TRUE(cc_window_allows(s, 4096, kMtu));
  EXPECT_FALSE(cc_window_allows(s, 8192, kMtu));
  // A window below one packet still lets one packet out when nothing flies.
  s.cwnd_bytes = 10;
  EXPECT_TRUE(cc_window_allows(s, 0, kMtu));
  EXPECT_FALSE(cc_window_allows(s, 1, kMtu));
  // Credit is never overdrawn.
  s.cwnd_bytes = 1 << 20;
  s.credit_limited = true;
  s.credit_bytes = 4095;
  EXPECT_FALSE(cc_window_allows(s, 0, kMtu));
  s.credit_bytes = 4096;
  EXPECT_TRUE(cc_window_allows(s, 0, kMtu));
}

TEST(CcContractTest, ValidateParams) {
  EXPECT_TRUE(validate(default_params()).ok());
  CcParams p = default_params();
  p.swift.max_mdf = 1.0;
  EXPECT_EQ(validate(p).code(), absl::StatusCode::kInvalidArgument);
  p = default_params();
  p.link_rate = 0;
  EXPECT_EQ(validate(p).code(), absl::StatusCode::kInvalidArgument);
  p = default_params();
  p.dcqcn.g = 0;
  EXPECT_EQ(validate(p).code(), absl::StatusCode::kInvalidArgument);
  p = default_params();
  p.eqds.headroom = 1;
  EXPECT_EQ(validate(p).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CcParamsTest, SetsKnobsByNameInTheUnitsPeopleType) {
  CcParams p = default_params();
  EXPECT_TRUE(set_param(p, "dcqcn.g", "0.0625").ok());
  EXPECT_EQ(p.dcqcn.g, 0.0625);
  EXPECT_TRUE(set_param(p, "dcqcn.increase_timer_us=12.5").ok());
  EXPECT_EQ(p.dcqcn.increase_timer, Duration::nanos(12500));
  EXPECT_TRUE(set_param(p, "dcqcn.rate_ai_gbps", "0.4").ok());
  EXPECT_DOUBLE_EQ(p.dcqcn.rate_ai, 0.4e9 / 8);  // Gb/s in, bytes/s held
  EXPECT_TRUE(set_param(p, "dcqcn.mark_scaled_cut", "false").ok());
  EXPECT_FALSE(p.dcqcn.mark_scaled_cut);
  EXPECT_TRUE(set_param(p, "swift.retx_reset_threshold", "9").ok());
  EXPECT_EQ(p.swift.retx_reset_threshold, 9u);
  EXPECT_TRUE(set_param(p, "eqds.initial_window_bytes", "65536").ok());
  EXPECT_EQ(p.eqds.initial_window_bytes, 65536u);
  EXPECT_TRUE(set_param(p, "link_gbps", "400").ok());
  EXPECT_DOUBLE_EQ(p.link_rate, 400e9 / 8);
  // Every listed name can be set (the table drives both).
  for (std::string_view name : param_names()) {
    CcParams q = default_params();
    const bool is_bool = name.find("cut") != std::string_view::npos;
    EXPECT_TRUE(set_param(q, name, is_bool ? "true" : "1").ok()) << name;
  }
}

TEST(CcParamsTest, RefusesUnknownNamesAndBadValuesLeavingParamsAlone) {
  CcParams p = default_params();
  EXPECT_EQ(set_param(p, "dcqcn.gee", "1").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(set_param(p, "dcqcn.g", "fast").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set_param(p, "dcqcn.g", "nan").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set_param(p, "dcqcn.g", "0.5x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set_param(p, "swift.retx_reset_threshold", "-1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set_param(p, "mtu", "5000000000").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set_param(p, "dcqcn.mark_scaled_cut", "maybe").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(set_param(p, "dcqcn.g").code(), absl::StatusCode::kInvalidArgument);  // no '='
  EXPECT_EQ(set_param(p, "=1").code(), absl::StatusCode::kInvalidArgument);
  const CcParams d = default_params();
  EXPECT_EQ(p.dcqcn.g, d.dcqcn.g);
  EXPECT_EQ(p.mtu, d.mtu);
  EXPECT_EQ(p.swift.retx_reset_threshold, d.swift.retx_reset_threshold);
  EXPECT_EQ(p.dcqcn.mark_scaled_cut, d.dcqcn.mark_scaled_cut);
  // Range checks stay validate()'s: a parsed but impossible value is set,
  // then refused there.
  EXPECT_TRUE(set_param(p, "dcqcn.g", "2").ok());
  EXPECT_EQ(validate(p).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CcContractTest, DumpNamesAlgorithmAndState) {
  for (const char* name : {"fixed", "swift", "dcqcn", "eqds"}) {
    Cc cc(name);
    const std::string d = cc_dump(*cc.ops, cc.s, cc.p);
    EXPECT_NE(d.find(std::string("cc=") + name), std::string::npos) << d;
  }
}

// ---- fixed ---------------------------------------------------------------------------

TEST(FixedTest, WindowIsBdpByDefaultAndNeverChanges) {
  Cc cc("fixed");
  const uint64_t bdp = static_cast<uint64_t>(kLinkRate * 10e-6);  // 125000
  EXPECT_EQ(cc.s.cwnd_bytes, bdp);
  EXPECT_EQ(cc.s.pacing_rate, 0u);
  EXPECT_FALSE(cc.s.credit_limited);
  for (int i = 1; i <= 50; ++i) {
    const TimePoint now = at_us(i * 10);
    cc.ack(now, Duration::micros(i % 2 ? 5 : 500), 4, /*ce=*/i % 3);
    cc.loss(now);
    cc.timeout(now);
    cc.trim(now);
    cc.send(now);
    EXPECT_EQ(cc.s.cwnd_bytes, bdp);
    EXPECT_EQ(cc.s.pacing_rate, 0u);
  }
  EXPECT_EQ(cc_next_timer(*cc.ops, cc.s, cc.p), TimePoint::max());
}

TEST(FixedTest, ExplicitWindow) {
  CcParams p = default_params();
  p.fixed.window_bytes = 12345;
  Cc cc("fixed", p);
  EXPECT_EQ(cc.s.cwnd_bytes, 12345u);
}

// ---- swift ---------------------------------------------------------------------------

double swift_cwnd(const Cc& cc) { return cc_priv<SwiftState>(cc.s).cwnd; }

CcParams swift_params(double init_cwnd) {
  CcParams p = default_params();
  p.swift.init_cwnd = init_cwnd;
  return p;
}

TEST(SwiftTest, StartsAtOneBdpUnpaced) {
  Cc cc("swift");
  EXPECT_NEAR(swift_cwnd(cc), 125000.0 / kMtu, 1e-9);
  EXPECT_EQ(cc.s.cwnd_bytes, 125000u);
  EXPECT_EQ(cc.s.pacing_rate, 0u);
}

TEST(SwiftTest, AdditiveIncreaseBelowTarget) {
  Cc cc("swift", swift_params(10));
  const Duration target = swift_target_delay(cc.s, cc.p, 0);
  ASSERT_GT(target, Duration::micros(10));
  cc.ack(at_us(1), Duration::micros(10));
  EXPECT_NEAR(swift_cwnd(cc), 10 + 1.0 / 10, 1e-9);  // ai / cwnd per packet
  // A whole window of ACKs (10 packets) adds about ai (one packet) per RTT:
  // sum of 1/cwnd as cwnd grows from 10.1 to 11.05.
  const double before = swift_cwnd(cc);
  for (int i = 0; i < 10; ++i) cc.ack(at_us(2 + i), Duration::micros(10));
  EXPECT_NEAR(swift_cwnd(cc), before + 10 / 10.6, 0.01);
  EXPECT_EQ(cc.s.cwnd_bytes, static_cast<uint64_t>(swift_cwnd(cc) * kMtu));
}

TEST(SwiftTest, NoRttSampleNoChange) {
  Cc cc("swift", swift_params(10));
  cc.ack(at_us(1), Duration::zero());
  EXPECT_EQ(swift_cwnd(cc), 10);
}

TEST(SwiftTest, BelowOnePacketAcksWithoutSampleStillGrowTheWindow) {
  // After the timeouts reset it to min_cwnd a flow resends only
  // retransmissions, whose ACKs carry no sample: it must climb back, judged
  // on the last delay it knew.
  Cc cc("swift", swift_params(0.001));
  cc.ack(at_us(1), Duration::zero());
  EXPECT_NEAR(swift_cwnd(cc), 1.001, 1e-9);  // no sample yet: base RTT, below target
  EXPECT_EQ(cc.s.pacing_rate, 0u);
  // But not when the last delay it knew was above target.
  Cc hot("swift", swift_params(0.5));
  hot.ack(at_us(1), Duration::millis(1));  // cut to 0.25, srtt 1 ms
  const double w = swift_cwnd(hot);
  hot.ack(at_us(2), Duration::zero());
  EXPECT_EQ(swift_cwnd(hot), w);
}

TEST(SwiftTest, MultiplicativeDecreaseAboveTargetOncePerRtt) {
  Cc cc("swift", swift_params(20));
  const Duration rtt = Duration::micros(20);
  const Duration target = swift_target_delay(cc.s, cc.p, 0);
  ASSERT_LT(target, rtt);
  const double factor = 1 - 0.8 * static_cast<double>((rtt - target).ns()) / rtt.ns();
  ASSERT_GT(factor, 0.5);  // not bounded by max_mdf here
  cc.ack(at_us(100), rtt);
  const double after_first = swift_cwnd(cc);
  EXPECT_NEAR(after_first, 20 * factor, 1e-6);
  // Within one RTT (srtt = 20 us): no second cut, however high the delay.
  cc.ack(at_us(110), rtt);
  cc.ack(at_us(119), Duration::micros(25));  // srtt becomes 20.6 us
  EXPECT_EQ(swift_cwnd(cc), after_first);
  // An RTT later it may cut again.
  cc.ack(at_us(125), rtt);
  EXPECT_LT(swift_cwnd(cc), after_first);
}

TEST(SwiftTest, DecreaseBoundedByMaxMdf) {
  Cc cc("swift", swift_params(20));
  cc.ack(at_us(100), Duration::millis(1));  // 100x target: beta term would be < 0
  EXPECT_NEAR(swift_cwnd(cc), 10, 1e-9);
}

TEST(SwiftTest, LossAndTrimCutByMaxMdfOncePerRtt) {
  Cc cc("swift", swift_params(16));
  cc.loss(at_us(100));
  EXPECT_NEAR(swift_cwnd(cc), 8, 1e-9);
  cc.loss(at_us(105));
  cc.trim(at_us(106));
  EXPECT_NEAR(swift_cwnd(cc), 8, 1e-9);  // base_rtt (no sample yet) = 10 us not elapsed
  cc.trim(at_us(111));
  EXPECT_NEAR(swift_cwnd(cc), 4, 1e-9);
}

TEST(SwiftTest, LossCutsWhenNoRttSampleCameForFourSrtts) {
  // An srtt with no fresh sample behind it says nothing: a flow whose every
  // ACKed packet was a resend (Karn) kept its window into a full queue. Once
  // four srtts pass without a sample, a loss cuts though srtt is below target.
  Cc cc("swift", swift_params(16));
  const Duration srtt = (cc.p.base_rtt + cc.p.base_rtt / 4) / 2;  // half the base target
  cc.ack(at_us(10), srtt);
  const double before = swift_cwnd(cc);
  cc.ack(at_us(10 + 3 * srtt.us()), Duration::zero(), 4);  // ACKs without a sample (resends)
  cc.loss(at_us(10 + 3.9 * srtt.us()));
  EXPECT_EQ(swift_cwnd(cc), before) << "3.9 srtts after the sample: still fresh";
  cc.loss(at_us(10 + 4 * srtt.us()));
  EXPECT_NEAR(swift_cwnd(cc), before / 2, 1e-9) << "4 srtts: blind, the loss cuts by max_mdf";
  // A sample restores the delay signal: a loss right after it does not cut.
  Cc fresh("swift", swift_params(16));
  fresh.ack(at_us(10), srtt);
  fresh.ack(at_us(10 + 10 * srtt.us()), srtt);
  const double w = swift_cwnd(fresh);
  fresh.loss(at_us(10 + 11 * srtt.us()));
  EXPECT_EQ(swift_cwnd(fresh), w);
}

TEST(SwiftTest, LossBelowTargetDelayIsNotCongestion) {
  // Delay is the signal: a loss while srtt sits below the base target (no
  // standing queue: a dead path, corruption) leaves the window alone; above
  // it the loss cuts.
  Cc cc("swift", swift_params(16));
  const Duration target = cc.p.base_rtt + cc.p.base_rtt / 4;  // the base target by default
  cc.ack(at_us(10), target / 2);
  const double before = swift_cwnd(cc);
  cc.loss(at_us(20));  // within four srtts of the sample: the delay signal is fresh
  EXPECT_EQ(swift_cwnd(cc), before);
  for (int i = 0; i < 30; ++i) cc.ack(at_us(200 + i), target * 2);  // srtt climbs past target
  const double congested = swift_cwnd(cc);
  cc.loss(at_us(400));
  EXPECT_NEAR(swift_cwnd(cc), congested / 2, 1e-9);
  // A small window's flow-scaled target allows more delay than a shallow
  // queue can add; a standing queue above the base target still counts.
  Cc small("swift", swift_params(0.5));
  small.ack(at_us(10), target * 3 / 2);  // the first sample is srtt
  ASSERT_GT(swift_target_delay(small.s, small.p, 0), target * 3 / 2);
  const double w_small = swift_cwnd(small);
  small.loss(at_us(100));
  EXPECT_NEAR(swift_cwnd(small), w_small / 2, 1e-9);
  // cut_on_any_loss: the paper's behaviour, a cut whatever the delay.
  CcParams p = swift_params(16);
  p.swift.cut_on_any_loss = true;
  Cc any("swift", p);
  any.ack(at_us(10), target / 2);
  const double w = swift_cwnd(any);
  any.loss(at_us(100));
  EXPECT_NEAR(swift_cwnd(any), w / 2, 1e-9);
}

TEST(SwiftTest, SpuriousLossUndoesTheLossCut) {
  Cc cc("swift", swift_params(16));
  cc.loss(at_us(100));
  EXPECT_NEAR(swift_cwnd(cc), 8, 1e-9);
  cc.spurious(at_us(103));
  EXPECT_NEAR(swift_cwnd(cc), 16, 1e-9);
  EXPECT_EQ(cc.s.cwnd_bytes, 16u * kMtu);
  cc.spurious(at_us(104));  // nothing more to undo
  EXPECT_NEAR(swift_cwnd(cc), 16, 1e-9);
  // A delay-based cut after the loss stands: the loss cut is no longer undone.
  Cc d("swift", swift_params(16));
  d.loss(at_us(100));
  d.ack(at_us(200), Duration::micros(100));
  const double after_delay_cut = swift_cwnd(d);
  ASSERT_LT(after_delay_cut, 8);
  d.spurious(at_us(201));
  EXPECT_NEAR(swift_cwnd(d), after_delay_cut, 1e-9);
  // So does a timeout.
  Cc t("swift", swift_params(16));
  t.loss(at_us(100));
  t.timeout(at_us(300));
  const double after_timeout = swift_cwnd(t);
  t.spurious(at_us(301));
  EXPECT_NEAR(swift_cwnd(t), after_timeout, 1e-9);
}

TEST(SwiftTest, ConsecutiveTimeoutsResetToMinCwnd) {
  CcParams p = swift_params(16);
  Cc cc("swift", p);
  cc.timeout(at_us(100));
  EXPECT_NEAR(swift_cwnd(cc), 8, 1e-9);
  // An ACK breaks the streak; then threshold timeouts in a row reset.
  cc.ack(at_us(150), Duration::micros(10));
  const double after_ack = swift_cwnd(cc);
  for (uint32_t i = 1; i < p.swift.retx_reset_threshold; ++i) {
    cc.timeout(at_us(1000 + i));  // all within one RTT: no further cut
    EXPECT_NEAR(swift_cwnd(cc), after_ack * 0.5, 1e-9) << i;
  }
  cc.timeout(at_us(1010));
  EXPECT_EQ(swift_cwnd(cc), p.swift.min_cwnd);
  EXPECT_EQ(cc.s.cwnd_bytes, 4u);  // 0.001 * 4096
}

TEST(SwiftTest, ClampsToMinAndMax) {
  Cc cc("swift", swift_params(1));
  for (int i = 0; i < 100; ++i) cc.loss(at_us(100.0 * i));
  EXPECT_EQ(swift_cwnd(cc), cc.p.swift.min_cwnd);
  EXPECT_GE(cc.s.cwnd_bytes, 1u);
  // Growth stops at max_cwnd = 4 BDP.
  for (int i = 0; i < 20000; ++i) cc.ack(at_us(10000 + i), Duration::micros(5), 8);
  EXPECT_NEAR(swift_cwnd(cc), 4 * 125000.0 / kMtu, 1e-9);

  CcParams p = swift_params(2);
  p.swift.max_cwnd = 3;
  Cc capped("swift", p);
  for (int i = 0; i < 100; ++i) capped.ack(at_us(i), Duration::micros(5), 8);
  EXPECT_EQ(swift_cwnd(capped), 3);
}

TEST(SwiftTest, PacesBelowOnePacket) {
  Cc cc("swift", swift_params(2));
  EXPECT_EQ(cc.s.pacing_rate, 0u);
  cc.ack(at_us(1), Duration::micros(40));  // srtt = 40 us, cut
  cc.loss(at_us(100));                     // cut to below 1 packet
  const double cwnd = swift_cwnd(cc);
  ASSERT_LT(cwnd, 1);
  EXPECT_LT(cc.s.cwnd_bytes, kMtu);
  // One packet every srtt / cwnd: rate = cwnd * mtu / srtt.
  const double srtt = cc_priv<SwiftState>(cc.s).srtt.sec();
  EXPECT_NEAR(static_cast<double>(cc.s.pacing_rate), cwnd * kMtu / srtt, 1.0);
  // Below one packet each ACK (below target) adds ai outright, unpacing it.
  cc.ack(at_us(200), Duration::micros(10));
  EXPECT_GE(swift_cwnd(cc), 1);
  EXPECT_EQ(cc.s.pacing_rate, 0u);
}

TEST(SwiftTest, FlowScalingRaisesTargetForSmallWindows) {
  Cc small("swift", swift_params(0.5));
  Cc medium("swift", swift_params(10));
  Cc large("swift", swift_params(100));  // at fs_max_cwnd: no flow scaling
  const Duration base = default_params().base_rtt + default_params().base_rtt / 4;
  EXPECT_EQ(swift_target_delay(large.s, large.p, 0), base);
  EXPECT_GT(swift_target_delay(medium.s, medium.p, 0), base);
  EXPECT_GT(swift_target_delay(small.s, small.p, 0), swift_target_delay(medium.s, medium.p, 0));
  // At or below fs_min_cwnd the scaling saturates at fs_range = 5 * base target.
  Cc tiny("swift", swift_params(0.01));
  EXPECT_NEAR(swift_target_delay(tiny.s, tiny.p, 0).ns(), (base * 6).ns(), 2);
  // The same delay that cuts a large window grows a small one.
  const Duration rtt = base + Duration::micros(5);
  large.ack(at_us(1), rtt);
  small.ack(at_us(1), rtt);
  EXPECT_LT(swift_cwnd(large), 100);
  EXPECT_GT(swift_cwnd(small), 0.5);
}

TEST(SwiftTest, HopScalingRaisesTarget) {
  CcParams p = swift_params(100);  // no flow scaling at fs_max_cwnd
  Cc cc("swift", p);
  const Duration t0 = swift_target_delay(cc.s, cc.p, 0);
  EXPECT_EQ(swift_target_delay(cc.s, cc.p, 3) - t0, Duration::micros(3));
  p.hops = 2;  // the hint applies when the sample carries no hop count
  Cc hinted("swift", p);
  EXPECT_EQ(swift_target_delay(hinted.s, hinted.p, 0) - t0, Duration::micros(2));
  // An RTT 2 us over the zero-hop target is below the 3-hop target.
  cc.ack(at_us(1), t0 + Duration::micros(2), 1, 0, /*hops=*/3);
  EXPECT_GT(swift_cwnd(cc), 100);
}

// ---- dcqcn ---------------------------------------------------------------------------

const DcqcnState& dq(const Cc& cc) { return cc_priv<DcqcnState>(cc.s); }

TEST(DcqcnTest, StartsAtLineRateWithWindowCap) {
  Cc cc("dcqcn");
  EXPECT_EQ(cc.s.pacing_rate, static_cast<uint64_t>(kLinkRate));
  EXPECT_EQ(cc.s.cwnd_bytes, 250000u);  // 2 BDP
  EXPECT_EQ(dq(cc).alpha, 1.0);
  // At line rate there is nothing to increase: no timer needed.
  EXPECT_EQ(cc_next_timer(*cc.ops, cc.s, cc.p), TimePoint::max());
  cc.ack(at_us(1000), Duration::micros(10), 4);
  EXPECT_EQ(cc.s.pacing_rate, static_cast<uint64_t>(kLinkRate));
}

TEST(DcqcnTest, CutsOnCeWithAlphaUpdate) {
  CcParams p = default_params();
  p.dcqcn.initial_alpha = 0.5;
  Cc cc("dcqcn", p);
  const double g = 1.0 / 256;
  cc.ack(at_us(10), Duration::micros(10), 4, /*ce=*/1);
  EXPECT_DOUBLE_EQ(dq(cc).rt, kLinkRate);
  EXPECT_DOUBLE_EQ(dq(cc).rc, kLinkRate * 0.75);
  EXPECT_DOUBLE_EQ(dq(cc).alpha, 0.5 * (1 - g) + g);
  EXPECT_EQ(cc.s.pacing_rate, static_cast<uint64_t>(std::llround(kLinkRate * 0.75)));
  EXPECT_EQ(cc_next_timer(*cc.ops, cc.s, cc.p), at_us(10 + 55));
}

TEST(DcqcnTest, MarkScaledCutTakesTheMarkedShareOfThePapersCut) {
  // Off by default: the paper's cut halves at alpha = 1 on any mark.
  Cc paper("dcqcn");
  paper.ack(at_us(5), Duration::micros(10), 10);
  paper.ack(at_us(10), Duration::micros(10), 10, /*ce=*/2);
  EXPECT_DOUBLE_EQ(dq(paper).rc, kLinkRate * 0.5);
  // mark_scaled_cut: 2 of the 20 packets ACKed this epoch were marked, so
  // the cut is a tenth of the paper's: Rc *= 1 - 0.1 * alpha / 2.
  CcParams p = default_params();
  p.dcqcn.mark_scaled_cut = true;
  Cc scaled("dcqcn", p);
  scaled.ack(at_us(5), Duration::micros(10), 10);
  scaled.ack(at_us(10), Duration::micros(10), 10, 2);
  EXPECT_DOUBLE_EQ(dq(scaled).rc, kLinkRate * 0.95);
  EXPECT_DOUBLE_EQ(dq(scaled).rt, kLinkRate);
  // Counts older than the previous epoch are forgotten: 120 us later
  // (two 50 us epochs on) only the new ACK counts, all of it marked.
  scaled.timer(at_us(130));  // the timer events due by then (alpha decay, recovery)
  const double rc = dq(scaled).rc, alpha = dq(scaled).alpha;
  scaled.ack(at_us(130), Duration::micros(10), 4, 4);
  EXPECT_DOUBLE_EQ(dq(scaled).rc, rc * (1 - alpha / 2));
}

TEST(DcqcnTest, AtMostOneCutPerCnpInterval) {
  Cc cc("dcqcn");
  cc.ack(at_us(10), Duration::micros(10), 1, 1);
  const double rc = dq(cc).rc;
  const double alpha = dq(cc).alpha;
  cc.ack(at_us(30), Duration::micros(10), 1, 3);
  cc.loss(at_us(40));
  cc.ack(at_us(59.9), Duration::micros(10), 1, 1);
  EXPECT_EQ(dq(cc).rc, rc);
  EXPECT_EQ(dq(cc).alpha, alpha);
  EXPECT_EQ(dq(cc).cuts, 1u);
  cc.ack(at_us(60), Duration::micros(10), 1, 1);  // 50 us later
  EXPECT_EQ(dq(cc).cuts, 2u);
  EXPECT_DOUBLE_EQ(dq(cc).rc, rc * (1 - alpha / 2));
}

TEST(DcqcnTest, LossCutsOnlyRightAfterCeMarks) {
  // A queue that overflows marks on its way up: a loss with no CE within the
  // last cnp_interval (a dead path) is not a notification.
  Cc cc("dcqcn");
  cc.loss(at_us(10));
  EXPECT_EQ(dq(cc).cuts, 0u);
  EXPECT_EQ(cc.s.pacing_rate, static_cast<uint64_t>(kLinkRate));
  cc.ack(at_us(20), Duration::micros(10), 1, /*ce=*/1);  // cut 1
  cc.loss(at_us(80));                                    // CE 60 us ago: past cnp_interval
  EXPECT_EQ(dq(cc).cuts, 1u);
  cc.ack(at_us(100), Duration::micros(10), 1, 1);  // cut 2
  cc.ack(at_us(130), Duration::micros(10), 1, 1);  // within 50 us of cut 2: marked, no cut
  EXPECT_EQ(dq(cc).cuts, 2u);
  cc.loss(at_us(160));  // marked 30 us ago, last cut 60 us ago: a notification
  EXPECT_EQ(dq(cc).cuts, 3u);
  CcParams p = default_params();
  p.dcqcn.cut_on_any_loss = true;
  Cc any("dcqcn", p);
  any.loss(at_us(10));
  EXPECT_EQ(dq(any).cuts, 1u);
}

TEST(DcqcnTest, AlphaDecaysOnTimerWithoutCnp) {
  CcParams p = default_params();
  p.dcqcn.initial_alpha = 0.5;
  Cc cc("dcqcn", p);
  const double g = 1.0 / 256;
  cc.ack(at_us(0), Duration::micros(10), 1, 1);
  const double a0 = dq(cc).alpha;
  cc.timer(at_us(54));
  EXPECT_EQ(dq(cc).alpha, a0);
  cc.timer(at_us(55));
  EXPECT_DOUBLE_EQ(dq(cc).alpha, a0 * (1 - g));
  // Lazily: four more periods pass before the next hook.
  cc.ack(at_us(55 * 5 + 1), Duration::micros(10));
  EXPECT_NEAR(dq(cc).alpha, a0 * std::pow(1 - g, 5), 1e-12);
  // A cut restarts the alpha clock.
  cc.ack(at_us(300), Duration::micros(10), 1, 1);
  const double a1 = dq(cc).alpha;
  cc.timer(at_us(300 + 54));
  EXPECT_EQ(dq(cc).alpha, a1);
}

// Two cuts 50 us apart leave Rt below line rate, so increases are visible.
// Returns the time of the second cut.
TimePoint two_cuts(Cc& cc) {
  cc.ack(at_us(0), Duration::micros(10), 1, 1);
  cc.ack(at_us(50), Duration::micros(10), 1, 1);
  EXPECT_LT(dq(cc).rt, kLinkRate);
  return at_us(50);
}

TEST(DcqcnTest, TimerIncreasesFastRecoveryThenAdditive) {
  Cc cc("dcqcn");
  const TimePoint t0 = two_cuts(cc);
  const double rt = dq(cc).rt;
  double rc = dq(cc).rc;
  const Duration step = Duration::micros(55);
  for (int i = 1; i <= 5; ++i) {  // F = 5 fast-recovery events: Rt fixed
    EXPECT_EQ(cc_next_timer(*cc.ops, cc.s, cc.p), t0 + step * i);
    cc.timer(t0 + step * i);
    rc = (rt + rc) / 2;
    EXPECT_DOUBLE_EQ(dq(cc).rt, rt) << i;
    EXPECT_DOUBLE_EQ(dq(cc).rc, rc) << i;
  }
  double expect_rt = rt;
  for (int i = 6; i <= 12; ++i) {  // then additive, R_AI = 40 Mb/s; timer alone never hypers
    cc.timer(t0 + step * i);
    expect_rt += 40e6 / 8;
    rc = (expect_rt + rc) / 2;
    EXPECT_DOUBLE_EQ(dq(cc).rt, expect_rt) << i;
    EXPECT_DOUBLE_EQ(dq(cc).rc, rc) << i;
  }
  EXPECT_EQ(dq(cc).timer_events, 12u);
  EXPECT_EQ(cc.s.pacing_rate, static_cast<uint64_t>(std::llround(rc)));
}

TEST(DcqcnTest, LazyTimerEventsMatchExplicitOnes) {
  Cc lazy("dcqcn");
  Cc eager("dcqcn");
  const TimePoint t0 = two_cuts(lazy);
  two_cuts(eager);
  for (int i = 1; i <= 8; ++i) eager.timer(t0 + Duration::micros(55) * i);
  lazy.ack(t0 + Duration::micros(55 * 8 + 10), Duration::micros(10));
  EXPECT_EQ(lazy.s.pacing_rate, eager.s.pacing_rate);
  EXPECT_DOUBLE_EQ(dq(lazy).rt, dq(eager).rt);
  EXPECT_EQ(dq(lazy).timer_events, 8u);
}

TEST(DcqcnTest, ByteCounterIncreasesFastRecoveryThenAdditive) {
  CcParams p = default_params();
  p.dcqcn.byte_counter = 1 << 20;
  Cc cc("dcqcn", p);
  const TimePoint t0 = two_cuts(cc);
  const double rt = dq(cc).rt;
  double rc = dq(cc).rc;
  const TimePoint now = t0 + Duration::micros(1);  // no timer event in play
  cc.send(now, (1 << 20) - 1);
  EXPECT_DOUBLE_EQ(dq(cc).rc, rc);  // one byte short of an event
  cc.send(now, 1);
  rc = (rt + rc) / 2;
  EXPECT_DOUBLE_EQ(dq(cc).rc, rc);
  for (int i = 2; i <= 5; ++i) {
    cc.send(now, 1 << 20);
    rc = (rt + rc) / 2;
    EXPECT_DOUBLE_EQ(dq(cc).rt, rt) << i;
  }
  cc.send(now, 1 << 20);  // sixth: additive
  EXPECT_DOUBLE_EQ(dq(cc).rt, rt + 40e6 / 8);
  EXPECT_EQ(dq(cc).byte_events, 6u);
  EXPECT_EQ(dq(cc).timer_events, 0u);
}

TEST(DcqcnTest, HyperIncreaseWhenTimerAndByteCounterBothPastF) {
  CcParams p = default_params();
  p.dcqcn.byte_counter = 1 << 20;
  p.dcqcn.min_rate = 1e6;
  Cc cc("dcqcn", p);
  // Cut deep so that increases stay well below line rate.
  for (int i = 0; i < 8; ++i) cc.ack(at_us(50.0 * i), Duration::micros(10), 1, 1);
  const TimePoint t0 = at_us(350);
  const Duration step = Duration::micros(55);
  for (int i = 1; i <= 6; ++i) {  // T = B = 6: F passed on both counters
    cc.timer(t0 + step * i);
    cc.send(t0 + step * i, 1 << 20);
  }
  ASSERT_EQ(dq(cc).timer_events, 6u);
  ASSERT_EQ(dq(cc).byte_events, 6u);
  ASSERT_LT(dq(cc).rc, kLinkRate / 2);
  // Next timer event: T = 7, B = 6, min - F = 1 -> Rt += 1 * R_HAI.
  double rt = dq(cc).rt;
  cc.timer(t0 + step * 7);
  EXPECT_DOUBLE_EQ(dq(cc).rt, rt + 1 * 400e6 / 8);
  // Next byte event: B = 7 too, min - F = 2 -> Rt += 2 * R_HAI.
  rt = dq(cc).rt;
  cc.send(t0 + step * 7, 1 << 20);
  EXPECT_DOUBLE_EQ(dq(cc).rt, rt + 2 * 400e6 / 8);
}

TEST(DcqcnTest, ClampsToLineRateAndMinRate) {
  CcParams p = default_params();
  p.dcqcn.rate_ai = 1e9;  // big steps to reach line rate quickly
  Cc cc("dcqcn", p);
  two_cuts(cc);
  for (int i = 1; i <= 200; ++i) cc.timer(at_us(50 + 55.0 * i));
  EXPECT_EQ(dq(cc).rc, kLinkRate);
  EXPECT_EQ(dq(cc).rt, kLinkRate);
  EXPECT_EQ(cc.s.pacing_rate, static_cast<uint64_t>(kLinkRate));
  EXPECT_EQ(cc_next_timer(*cc.ops, cc.s, cc.p), TimePoint::max());

  Cc low("dcqcn");
  for (int i = 0; i < 2000; ++i) low.ack(at_us(50.0 * i), Duration::micros(10), 1, 1);
  EXPECT_EQ(dq(low).rc, low.p.dcqcn.min_rate);
  EXPECT_GE(low.s.pacing_rate, static_cast<uint64_t>(low.p.dcqcn.min_rate));
}

// ---- eqds sender -------------------------------------------------------------------

TEST(EqdsTest, InitialWindowThenBlockedUntilCredit) {
  Cc cc("eqds");
  const int64_t iw = 125000;  // one BDP
  EXPECT_EQ(eqds_initial_window(cc.p), static_cast<uint64_t>(iw));
  EXPECT_TRUE(cc.s.credit_limited);
  EXPECT_EQ(cc.s.credit_bytes, iw);
  EXPECT_EQ(cc.s.pacing_rate, 0u);
  uint64_t in_flight = 0;
  int sent = 0;
  while (cc_window_allows(cc.s, in_flight, kMtu)) {
    cc.send(at_us(1));
    in_flight += kMtu;
    ++sent;
  }
  EXPECT_EQ(sent, iw / kMtu);  // 30 full packets
  EXPECT_EQ(cc.s.credit_bytes, iw % kMtu);
  // ACKs, losses, trims and timeouts give no budget back.
  cc.ack(at_us(20), Duration::micros(10), 30);
  cc.loss(at_us(21));
  cc.trim(at_us(22));
  cc.timeout(at_us(500));
  EXPECT_FALSE(cc_window_allows(cc.s, 0, kMtu));
  cc.credit(at_us(600), kMtu);
  EXPECT_TRUE(cc_window_allows(cc.s, 0, kMtu));
  cc.send(at_us(601));  // a retransmission is charged like new data
  EXPECT_EQ(cc.s.credit_bytes, iw % kMtu);
  EXPECT_FALSE(cc_window_allows(cc.s, 0, kMtu));
}

TEST(EqdsTest, CumulativeGrantsRepairLossAndIgnoreStale) {
  CcParams p = default_params();
  p.eqds.initial_window_bytes = 8192;
  Cc cc("eqds", p);
  cc.send(at_us(0), 8192);
  EXPECT_EQ(cc.s.credit_bytes, 0);
  cc.credit(at_us(1), 4096, /*total=*/4096);
  // The grant with total 8192 is lost; the next (12288) covers it.
  cc.credit(at_us(3), 4096, 12288);
  EXPECT_EQ(cc.s.credit_bytes, 12288);
  cc.credit(at_us(4), 4096, 8192);  // the lost one, late: stale
  EXPECT_EQ(cc.s.credit_bytes, 12288);
}

TEST(EqdsTest, RequestTotalCountsBacklogBeyondInitialWindow) {
  CcParams p = default_params();
  p.eqds.initial_window_bytes = 8192;
  Cc cc("eqds", p);
  EXPECT_EQ(eqds_request_total(cc.s, 4096), 0u);  // fits the unsolicited window
  EXPECT_EQ(eqds_request_total(cc.s, 100000), 100000u - 8192);
  cc.send(at_us(0), 8192);
  // Sending moves bytes from backlog to sent: the total does not move.
  EXPECT_EQ(eqds_request_total(cc.s, 100000 - 8192), 100000u - 8192);
  // A retransmission grows the backlog, so the total.
  EXPECT_EQ(eqds_request_total(cc.s, 100000 - 8192 + 4096), 100000u - 8192 + 4096);
}

// ---- eqds receiver: CreditScheduler -------------------------------------------------

CreditSchedulerConfig sched_config() { return CreditSchedulerConfig::from(default_params()); }

TEST(CreditSchedulerTest, ConfigFromParams) {
  const CreditSchedulerConfig c = sched_config();
  EXPECT_EQ(c.link_rate, kLinkRate);
  EXPECT_EQ(c.quantum, kMtu);
  EXPECT_EQ(c.headroom, 0.02);
  CreditScheduler s(c);
  EXPECT_DOUBLE_EQ(s.grant_rate(), kLinkRate * 0.98);
  EXPECT_EQ(s.next_deadline(), TimePoint::max());
}

TEST(CreditSchedulerTest, PacesGrantsAtLineRateMinusHeadroom) {
  CreditScheduler s(sched_config());
  s.on_request(1, uint64_t{1} << 40, at_us(0));
  Rng rng(7);
  std::vector<CreditGrant> out(64);
  uint64_t granted = 0;
  TimePoint now = at_us(0);
  const TimePoint end = at_us(1000);
  while (now < end) {
    for (size_t n = s.poll(now, out); n > 0; n = s.poll(now, out))
      for (size_t i = 0; i < n; ++i) granted += out[i].bytes;
    // Poll at the deadline, or a bit late (up to 1 us), as an engine would.
    const TimePoint next = s.next_deadline();
    ASSERT_GT(next, now);
    now = next + Duration::nanos(static_cast<int64_t>(rng.below(1000)));
  }
  const double expected = kLinkRate * 0.98 * 1e-3;  // rate * T
  EXPECT_NEAR(static_cast<double>(granted), expected, expected * 0.005 + 2 * kMtu) << "seed 7";
}

TEST(CreditSchedulerTest, NoBurstAfterIdleAndBoundedCatchUp) {
  CreditScheduler s(sched_config());
  std::vector<CreditGrant> out(64);
  s.on_request(1, 1 << 20, at_us(5000));  // after a long idle
  EXPECT_EQ(s.poll(at_us(5000), out), 1u);
  EXPECT_EQ(s.poll(at_us(5000), out), 0u);
  EXPECT_GT(s.next_deadline(), at_us(5000));
  // Polled very late: at most max_burst_grants (+ the one due now) at once.
  EXPECT_LE(s.poll(at_us(6000), out), 5u);
}

TEST(CreditSchedulerTest, RoundRobinAcrossSenders) {
  CreditScheduler s(sched_config());
  constexpr uint32_t kSenders = 5;
  for (uint32_t id = 10; id < 10 + kSenders; ++id) s.on_request(id, 1 << 24, at_us(0));
  EXPECT_EQ(s.active_senders(), kSenders);
  std::vector<CreditGrant> out(1);
  std::vector<uint32_t> order;
  std::map<uint32_t, uint64_t> per_sender;
  TimePoint now = at_us(0);
  for (int i = 0; i < 1000; ++i) {
    while (s.poll(now, out) == 1) {
      order.push_back(out[0].id);
      per_sender[out[0].id] += out[0].bytes;
      EXPECT_EQ(out[0].granted_total, per_sender[out[0].id]);
    }
    now = s.next_deadline();
  }
  ASSERT_GE(order.size(), 1000u);
  for (size_t i = kSenders; i < order.size(); ++i) EXPECT_EQ(order[i], order[i - kSenders]) << i;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& [id, bytes] : per_sender) {
    lo = std::min(lo, bytes);
    hi = std::max(hi, bytes);
  }
  EXPECT_EQ(per_sender.size(), kSenders);
  EXPECT_LE(hi - lo, kMtu);
}

// Drains everything due until `until`; returns bytes granted per id.
std::map<uint32_t, uint64_t> drain(CreditScheduler& s, TimePoint until) {
  std::map<uint32_t, uint64_t> got;
  std::vector<CreditGrant> out(16);
  for (TimePoint now = at_us(0); now <= until && !s.next_deadline().is_max();) {
    now = max_time(now, s.next_deadline());
    if (now > until) break;
    const size_t n = s.poll(now, out);
    for (size_t i = 0; i < n; ++i) got[out[i].id] += out[i].bytes;
  }
  return got;
}

TEST(CreditSchedulerTest, StopsWhenDemandIsMet) {
  CreditScheduler s(sched_config());
  s.on_request(1, 10000, at_us(0));
  std::vector<CreditGrant> out(16);
  ASSERT_EQ(s.poll(at_us(0), out), 1u);
  EXPECT_EQ(out[0].bytes, kMtu);
  ASSERT_EQ(s.poll(at_us(1), out), 2u);
  EXPECT_EQ(out[0].bytes, kMtu);
  EXPECT_EQ(out[1].bytes, 10000u - 2 * kMtu);  // the remainder, not a full quantum
  EXPECT_EQ(out[1].granted_total, 10000u);
  EXPECT_EQ(s.demand(1), 0u);
  EXPECT_EQ(s.active_senders(), 0u);
  EXPECT_EQ(s.next_deadline(), TimePoint::max());
  EXPECT_EQ(s.poll(at_us(100), out), 0u);
  // A repeated or reordered (smaller) request adds nothing.
  s.on_request(1, 10000, at_us(101));
  s.on_request(1, 5000, at_us(102));
  EXPECT_EQ(s.demand(1), 0u);
  EXPECT_EQ(s.counters().stale_requests, 2u);
  // A larger total adds only the difference.
  s.on_request(1, 12000, at_us(103));
  EXPECT_EQ(s.demand(1), 2000u);
}

TEST(CreditSchedulerTest, ReGrantsTrimmedBytesOnce) {
  CreditScheduler s(sched_config());
  s.on_request(1, 8192, at_us(0));
  EXPECT_EQ(drain(s, at_us(100))[1], 8192u);
  s.on_data_arrived(1, kMtu, /*trimmed=*/false, at_us(101));
  s.on_data_arrived(1, kMtu, /*trimmed=*/true, at_us(102));
  EXPECT_EQ(s.demand(1), kMtu);
  EXPECT_EQ(s.granted_total(1), 8192u);
  EXPECT_EQ(drain(s, at_us(200))[1], kMtu);
  // The sender then asks for the retransmission too (its total grew by the
  // same bytes): already granted, nothing more.
  s.on_request(1, 8192 + kMtu, at_us(201));
  EXPECT_EQ(s.demand(1), 0u);
  // A trimmed unsolicited packet of an unknown sender creates its demand;
  // an untrimmed one does not.
  s.on_data_arrived(2, kMtu, false, at_us(300));
  EXPECT_FALSE(s.contains(2));
  s.on_data_arrived(3, kMtu, true, at_us(300));
  EXPECT_EQ(s.demand(3), kMtu);
  EXPECT_EQ(s.counters().trimmed_bytes, 2u * kMtu);
}

TEST(CreditSchedulerTest, RemoveStopsGrantsAndForgets) {
  CreditScheduler s(sched_config());
  s.on_request(1, 1 << 20, at_us(0));
  s.on_request(2, 1 << 20, at_us(0));
  s.remove(1);
  s.remove(99);  // unknown: ignored
  EXPECT_FALSE(s.contains(1));
  EXPECT_EQ(s.active_senders(), 1u);
  const auto got = drain(s, at_us(50));
  EXPECT_EQ(got.count(1), 0u);
  EXPECT_GT(got.at(2), 0u);
  // Back again, it starts from nothing (the slot is reused).
  s.on_request(1, 4096, at_us(60));
  EXPECT_EQ(s.granted_total(1), 0u);
  EXPECT_EQ(s.demand(1), 4096u);
  EXPECT_EQ(s.senders(), 2u);
  s.remove(2);
  s.remove(1);
  EXPECT_EQ(s.next_deadline(), TimePoint::max());
  EXPECT_NE(s.dump().find("senders=0"), std::string::npos) << s.dump();
}

// Sender and receiver together: a message larger than the initial window
// completes only through credit, including a trimmed packet's retransmission,
// and the receiver grants exactly what the sender needed beyond that window.
TEST(EqdsLoopTest, MessageCompletesThroughCreditWithATrim) {
  CcParams p = default_params();
  Cc tx("eqds", p);
  CreditScheduler rx(CreditSchedulerConfig::from(p));
  constexpr uint32_t kId = 42;
  uint64_t backlog = 1 << 20;  // 1 MiB message, in kMtu packets
  uint64_t delivered = 0;
  bool trimmed_one = false;
  uint64_t last_request = 0;
  std::vector<CreditGrant> out(8);
  TimePoint now = at_us(0);
  for (int step = 0; step < 100000 && delivered < (1 << 20); ++step) {
    // Sender: ask for credit when the total grows, send what credit allows.
    const uint64_t total = eqds_request_total(tx.s, backlog);
    if (total > last_request) {
      rx.on_request(kId, total, now);
      last_request = total;
    }
    while (backlog > 0 && cc_window_allows(tx.s, 0, kMtu)) {
      tx.send(now);
      backlog -= kMtu;
      if (!trimmed_one && delivered == 64 * kMtu) {
        trimmed_one = true;  // the switch trims it; the sender will resend it
        rx.on_data_arrived(kId, kMtu, true, now);
        tx.trim(now);
        backlog += kMtu;
      } else {
        rx.on_data_arrived(kId, kMtu, false, now);
        delivered += kMtu;
      }
    }
    // Receiver: grants reach the sender at once in this toy loop.
    now = max_time(now + Duration::nanos(100),
                   min_time(rx.next_deadline(), now + Duration::micros(1)));
    for (size_t n = rx.poll(now, out), i = 0; i < n; ++i)
      tx.credit(now, out[i].bytes, out[i].granted_total);
  }
  EXPECT_TRUE(trimmed_one);
  EXPECT_EQ(delivered, 1u << 20);
  EXPECT_EQ(backlog, 0u);
  // Granted: the message plus the retransmission, minus the unsolicited window
  // (rounded up to whole packets by the request that covered the tail).
  const uint64_t needed = (1 << 20) + kMtu - 125000;
  EXPECT_GE(rx.granted_total(kId), needed);
  EXPECT_LT(rx.granted_total(kId), needed + kMtu);
}

}  // namespace
}  // namespace shoal::cc
