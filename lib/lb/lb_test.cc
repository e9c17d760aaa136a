// Tests for lib/lb: the registry, the three builtin policies, and a crude
// failed-link simulation comparing spray with adaptive.
//
// Everything is driven through PathSelector, the way a PDC will use it, with
// explicit `now` values and seeded Rngs; failures print their seed.
#include "lib/lb/lb.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "lib/lb/policies.h"

namespace shoal::lb {
namespace {

// A counters block per selector, as each PDC pool has one for its PDCs.
LbCounters* fresh_counters() {
  static std::deque<LbCounters> blocks;
  return &blocks.emplace_back();
}

TimePoint at_us(double us) { return TimePoint::from_ns(static_cast<int64_t>(us * 1000)); }

const LbOps& ops_named(const char* name) {
  auto r = find_lb(name);
  EXPECT_TRUE(r.ok()) << r.status();
  return **r;
}

bool in_set(const LbParams& p, uint16_t e) {
  return e >= p.entropy_base && uint32_t{e} < uint32_t{p.entropy_base} + p.entropy_count;
}

// ---------------------------------------------------------------- registry

void noop_init(LbState&, const LbParams&, uint64_t) {}
uint16_t const_choose(LbState&, TimePoint, Rng&, bool) { return 4242; }
void noop_ack(LbState&, uint16_t, Duration, bool, TimePoint) {}
void noop_event(LbState&, uint16_t, TimePoint) {}

LbOps complete_ops(const char* name) {
  return LbOps{.name = name,
               .state_size = 4,
               .init = noop_init,
               .choose_entropy = const_choose,
               .on_ack = noop_ack,
               .on_loss = noop_event,
               .on_trim = noop_event,
               .on_timeout = noop_event};
}

TEST(LbRegistryTest, FindsBuiltins) {
  for (const char* name : {"ecmp", "spray", "adaptive"}) {
    auto r = find_lb(name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_STREQ((*r)->name, name);
    EXPECT_LE((*r)->state_size, kLbStateBytes);
  }
  EXPECT_EQ(find_lb("no-such-policy").status().code(), absl::StatusCode::kNotFound);
  const auto names = lb_names();
  ASSERT_GE(names.size(), 3u);
  EXPECT_EQ(names[0], "ecmp");
  EXPECT_EQ(names[1], "spray");
  EXPECT_EQ(names[2], "adaptive");
}

TEST(LbRegistryTest, RefusesDuplicateNames) {
  EXPECT_EQ(register_lb(complete_ops("adaptive")).code(), absl::StatusCode::kAlreadyExists);

  std::string name = "test_dup_policy";
  ASSERT_TRUE(register_lb(complete_ops(name.c_str())).ok());
  EXPECT_EQ(register_lb(complete_ops("test_dup_policy")).code(), absl::StatusCode::kAlreadyExists);
  // The registry copied the name: changing the caller's string changes nothing.
  name = "something_else";
  auto r = find_lb("test_dup_policy");
  ASSERT_TRUE(r.ok()) << r.status();
  LbParams p;
  PathSelector sel;
  sel.init(**r, p, 1, fresh_counters());
  Rng rng(1);
  EXPECT_EQ(sel.choose_entropy(TimePoint::zero(), rng), 4242);
  EXPECT_EQ(find_lb("something_else").status().code(), absl::StatusCode::kNotFound);
}

TEST(LbRegistryTest, RefusesMissingHooksAndBadSizes) {
  using Field = void (*)(LbOps&);
  const std::vector<std::pair<const char*, Field>> breakers = {
      {"test_no_init", [](LbOps& o) { o.init = nullptr; }},
      {"test_no_choose", [](LbOps& o) { o.choose_entropy = nullptr; }},
      {"test_no_ack", [](LbOps& o) { o.on_ack = nullptr; }},
      {"test_no_loss", [](LbOps& o) { o.on_loss = nullptr; }},
      {"test_no_trim", [](LbOps& o) { o.on_trim = nullptr; }},
      {"test_no_timeout", [](LbOps& o) { o.on_timeout = nullptr; }},
      {"test_too_big", [](LbOps& o) { o.state_size = kLbStateBytes + 1; }},
  };
  for (const auto& [name, breaker] : breakers) {
    LbOps ops = complete_ops(name);
    breaker(ops);
    EXPECT_EQ(register_lb(ops).code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(find_lb(name).status().code(), absl::StatusCode::kNotFound) << name;
  }
  EXPECT_EQ(register_lb(complete_ops(nullptr)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(register_lb(complete_ops("")).code(), absl::StatusCode::kInvalidArgument);
}

TEST(LbParamsTest, Validates) {
  EXPECT_TRUE(validate_lb_params(LbParams{}).ok());
  auto bad = [](auto mutate) {
    LbParams p;
    mutate(p);
    return validate_lb_params(p).code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(bad([](LbParams& p) { p.entropy_count = 0; }), kInvalid);
  EXPECT_EQ(bad([](LbParams& p) { p.entropy_count = 300; }), kInvalid);
  EXPECT_EQ(bad([](LbParams& p) { p.entropy_base = 65400; }), kInvalid);  // 65400 + 256 > 65536
  EXPECT_EQ(bad([](LbParams& p) { p.slow_rtt_factor = 0.9; }), kInvalid);
  EXPECT_EQ(bad([](LbParams& p) { p.quarantine_min = Duration::zero(); }), kInvalid);
  EXPECT_EQ(bad([](LbParams& p) { p.quarantine_max = Duration::seconds(2); }), kInvalid);
  EXPECT_EQ(bad([](LbParams& p) { p.probe_interval = Duration::zero(); }), kInvalid);
  EXPECT_TRUE(validate_lb_params(LbParams{.entropy_base = 0xFF00, .entropy_count = 256}).ok());
  EXPECT_TRUE(validate_lb_params(LbParams{.entropy_base = 1, .entropy_count = 1}).ok());
}

TEST(LbStateTest, SizesStaySmall) {
  EXPECT_EQ(kEcmpOps.state_size, 2u);
  EXPECT_EQ(kSprayOps.state_size, 12u);
  EXPECT_EQ(kAdaptiveOps.state_size, 108u);
  // What a PDC embeds, whatever N is: the ops, params and counters pointers
  // and the policy's slot.
  EXPECT_LE(sizeof(PathSelector), 136u);
}

// ---------------------------------------------------------------- ecmp

TEST(EcmpTest, AlwaysTheSameEntropyWhateverTheFeedback) {
  LbParams p;
  PathSelector sel;
  sel.init(kEcmpOps, p, 77, fresh_counters());
  Rng rng(5);
  const uint16_t e = sel.choose_entropy(at_us(0), rng);
  EXPECT_TRUE(in_set(p, e));
  for (int i = 1; i < 1000; ++i) {
    const TimePoint now = at_us(i);
    ASSERT_EQ(sel.choose_entropy(now, rng), e) << i;
    if (i % 3 == 0) sel.on_loss(e, now);
    if (i % 7 == 0) sel.on_timeout(e, now);
    if (i % 5 == 0) sel.on_ack(e, Duration::micros(50), true, now);
  }
  EXPECT_EQ(sel.counters().choices, 1000u);
}

TEST(EcmpTest, PdcSeedsSpreadOverTheSet) {
  LbParams p;
  std::vector<int> hits(p.entropy_count, 0);
  constexpr int kPdcs = 4096;  // 16 per entropy on average
  Rng rng(1);
  for (uint64_t seed = 0; seed < kPdcs; ++seed) {
    PathSelector sel;
    sel.init(kEcmpOps, p, seed, fresh_counters());
    const uint16_t e = sel.choose_entropy(TimePoint::zero(), rng);
    ASSERT_TRUE(in_set(p, e)) << e;
    ++hits[e - p.entropy_base];
  }
  const int used =
      static_cast<int>(std::count_if(hits.begin(), hits.end(), [](int h) { return h > 0; }));
  EXPECT_EQ(used, p.entropy_count);  // P(some entropy unused) ~ 256 * e^-16
  EXPECT_LE(*std::max_element(hits.begin(), hits.end()), 48);

  // Consecutive PDC seeds (typical ids) do not map to one entropy, and the
  // global seed reshuffles the mapping.
  LbParams q = p;
  q.seed = 12345;
  int same = 0;
  for (uint64_t seed = 0; seed < 256; ++seed) {
    PathSelector a, b;
    a.init(kEcmpOps, p, seed, fresh_counters());
    b.init(kEcmpOps, q, seed, fresh_counters());
    same += a.choose_entropy(TimePoint::zero(), rng) == b.choose_entropy(TimePoint::zero(), rng);
  }
  EXPECT_LT(same, 16);
}

// ---------------------------------------------------------------- spray

TEST(SprayTest, RoundRobinVisitsAllNInNCalls) {
  for (uint16_t n : {1, 2, 8, 256, 4096}) {
    for (uint64_t pdc = 0; pdc < 20; ++pdc) {
      LbParams p;
      p.entropy_base = 20000;
      p.entropy_count = n;
      PathSelector sel;
      sel.init(kSprayOps, p, pdc, fresh_counters());
      Rng rng(pdc);
      for (int round = 0; round < 3; ++round) {
        std::set<uint16_t> seen;
        for (int i = 0; i < n; ++i) {
          const uint16_t e = sel.choose_entropy(at_us(i), rng);
          ASSERT_TRUE(in_set(p, e)) << "n=" << n << " e=" << e;
          seen.insert(e);
        }
        ASSERT_EQ(seen.size(), n) << "n=" << n << " pdc=" << pdc << " round=" << round;
      }
    }
  }
}

TEST(SprayTest, RoundRobinWalksDifferAcrossPdcs) {
  LbParams p;
  std::set<std::pair<uint16_t, uint16_t>> starts;
  Rng rng(1);
  for (uint64_t pdc = 0; pdc < 64; ++pdc) {
    PathSelector sel;
    sel.init(kSprayOps, p, pdc, fresh_counters());
    const uint16_t a = sel.choose_entropy(TimePoint::zero(), rng);
    const uint16_t b = sel.choose_entropy(TimePoint::zero(), rng);
    starts.insert({a, b});
  }
  // Offsets and strides come from the PDC seed: PDCs do not march in lockstep.
  EXPECT_GE(starts.size(), 60u);
}

TEST(SprayTest, RandomCoversTheSetUniformly) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << "seed=" << seed);
    LbParams p;
    p.spray_mode = SprayMode::kRandom;
    PathSelector sel;
    sel.init(kSprayOps, p, seed, fresh_counters());
    Rng rng(seed);
    constexpr int kPerBucket = 200;
    const int n = p.entropy_count;
    std::vector<int> hits(n, 0);
    bool window_all_distinct = true;
    for (int w = 0; w < kPerBucket; ++w) {
      std::set<uint16_t> window;
      for (int i = 0; i < n; ++i) {
        const uint16_t e = sel.choose_entropy(TimePoint::zero(), rng);
        ASSERT_TRUE(in_set(p, e)) << e;
        ++hits[e - p.entropy_base];
        window.insert(e);
      }
      window_all_distinct &= window.size() == static_cast<size_t>(n);
    }
    double chi2 = 0;
    for (int h : hits)
      chi2 += (h - kPerBucket) * (h - kPerBucket) / static_cast<double>(kPerBucket);
    // 255 degrees of freedom: mean 255, sd ~22.6. Loose: 6 sd.
    EXPECT_LT(chi2, 255 + 6 * std::sqrt(2.0 * 255)) << chi2;
    // Random draws repeat within N calls (round-robin would not).
    EXPECT_FALSE(window_all_distinct);
  }
}

TEST(SprayTest, IgnoresFeedback) {
  LbParams p;
  PathSelector a, b;
  a.init(kSprayOps, p, 9, fresh_counters());
  b.init(kSprayOps, p, 9, fresh_counters());
  Rng ra(3), rb(3);
  for (int i = 0; i < 1000; ++i) {
    const uint16_t e = a.choose_entropy(at_us(i), ra);
    ASSERT_EQ(e, b.choose_entropy(at_us(i), rb));
    a.on_loss(e, at_us(i));
    a.on_timeout(e, at_us(i));
    a.on_ack(e, Duration::micros(2), i % 2, at_us(i));
  }
}

// ---------------------------------------------------------------- adaptive

class AdaptiveTest : public testing::Test {
 protected:
  void SetUp() override { init(256); }
  void init(uint16_t n) {
    p_ = LbParams{};
    p_.entropy_count = n;
    ASSERT_TRUE(validate_lb_params(p_).ok());
    sel_.init(kAdaptiveOps, p_, 31, fresh_counters());
  }
  uint16_t choose(TimePoint now) {
    const uint16_t e = sel_.choose_entropy(now, rng_);
    EXPECT_TRUE(in_set(p_, e)) << e;
    return e;
  }
  void ack_clean(uint16_t e, TimePoint now) { sel_.on_ack(e, Duration::micros(2), false, now); }

  LbParams p_;
  PathSelector sel_;
  Rng rng_{17};
};

TEST_F(AdaptiveTest, ExploresFreshEntropiesWhenNothingCameBack) {
  std::set<uint16_t> seen;
  for (int i = 0; i < 256; ++i) seen.insert(choose(at_us(i)));
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(sel_.counters().explored, 256u);
  EXPECT_EQ(sel_.counters().recycled, 0u);
}

TEST_F(AdaptiveTest, RecyclesCleanAcksInFifoOrder) {
  const uint16_t e1 = choose(at_us(0)), e2 = choose(at_us(0)), e3 = choose(at_us(0));
  ack_clean(e2, at_us(2));
  ack_clean(e1, at_us(2));
  ack_clean(e3, at_us(2));
  EXPECT_EQ(choose(at_us(3)), e2);
  EXPECT_EQ(choose(at_us(3)), e1);
  EXPECT_EQ(choose(at_us(3)), e3);
  const uint16_t fresh = choose(at_us(3));
  EXPECT_NE(fresh, e1);
  EXPECT_NE(fresh, e2);
  EXPECT_NE(fresh, e3);
  EXPECT_EQ(sel_.counters().recycled, 3u);
  EXPECT_EQ(sel_.counters().explored, 4u);
}

TEST_F(AdaptiveTest, RecyclesOnlyWhatAnAckNamed) {
  // With replies echoing the named packet's entropy, only that entropy
  // proved the way back; packets an ACK covers without naming (no RTT
  // sample) proved only the way out and are not recycled.
  const uint16_t named = choose(at_us(0)), covered = choose(at_us(0));
  sel_.on_ack(covered, Duration::zero(), false, at_us(2));
  ack_clean(named, at_us(2));
  EXPECT_EQ(choose(at_us(3)), named);
  EXPECT_EQ(sel_.counters().recycled, 1u);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(sel_.counters().recycled, 1u + 0 * choose(at_us(3)));
}

TEST_F(AdaptiveTest, DoesNotRecycleCeMarkedOrSlow) {
  const uint16_t good = choose(at_us(0)), ce = choose(at_us(0)), slow = choose(at_us(0)),
                 ok_rtt = choose(at_us(0));
  ack_clean(good, at_us(2));                                        // min RTT 2 us
  sel_.on_ack(ce, Duration::micros(2), /*ecn_ce=*/true, at_us(2));  // marked
  sel_.on_ack(slow, Duration::micros(4), false, at_us(4));          // 2x min RTT
  sel_.on_ack(ok_rtt, Duration::nanos(2900), false, at_us(3));      // 1.45x: still fine
  EXPECT_EQ(choose(at_us(5)), good);
  EXPECT_EQ(choose(at_us(5)), ok_rtt);
  for (int i = 0; i < 100; ++i) {
    const uint16_t e = choose(at_us(5));
    ASSERT_NE(e, ce) << i;
    ASSERT_NE(e, slow) << i;
  }
  EXPECT_EQ(sel_.counters().not_recycled, 2u);
}

TEST_F(AdaptiveTest, QuarantinesTimedOutEntropyThenProbesAndReinstates) {
  init(16);  // a small set, so exploration wraps around it many times
  const uint16_t bad = choose(at_us(0));
  sel_.on_timeout(bad, at_us(10));  // quarantined until 10 + 50 us (no RTT sample yet)
  EXPECT_EQ(sel_.counters().quarantined, 1u);
  for (int i = 0; i < 200; ++i) ASSERT_NE(choose(at_us(10 + i * 0.2)), bad) << i;
  ASSERT_NE(choose(at_us(59.5)), bad);

  // Quarantine over: exactly one probe, then nothing until its verdict.
  EXPECT_EQ(choose(at_us(60.5)), bad);
  EXPECT_EQ(sel_.counters().probes, 1u);
  for (int i = 0; i < 100; ++i) ASSERT_NE(choose(at_us(61)), bad) << i;

  ack_clean(bad, at_us(63));  // the probe came back clean
  EXPECT_EQ(sel_.counters().reinstated, 1u);
  EXPECT_EQ(choose(at_us(63)), bad);  // and is recycled like any good entropy
}

TEST_F(AdaptiveTest, ARetransmissionIsNeverAProbe) {
  // A packet resent only on each RTO (the last one in flight) must not be
  // spent probing paths that failed: it would be lost on one after another.
  init(16);
  const uint16_t bad = choose(at_us(0));
  sel_.on_timeout(bad, at_us(10));  // quarantined until 60 us
  for (int i = 0; i < 50; ++i) {
    ASSERT_NE(sel_.choose_entropy(at_us(61 + i), rng_, /*retransmission=*/true), bad) << i;
  }
  EXPECT_EQ(sel_.counters().probes, 0u);
  // New data probes it as before.
  EXPECT_EQ(choose(at_us(120)), bad);
  EXPECT_EQ(sel_.counters().probes, 1u);
}

TEST_F(AdaptiveTest, FailedProbeDoublesQuarantine) {
  init(16);
  const uint16_t bad = choose(at_us(0));
  sel_.on_loss(bad, at_us(0));
  EXPECT_EQ(choose(at_us(51)), bad);  // probe after 50 us
  sel_.on_loss(bad, at_us(53));       // probe lost: 100 us now
  EXPECT_EQ(sel_.counters().quarantined, 2u);
  for (int i = 0; i < 100; ++i) ASSERT_NE(choose(at_us(53 + i)), bad) << i;  // up to 152 us
  EXPECT_EQ(choose(at_us(154)), bad);
  sel_.on_timeout(bad, at_us(160));  // lost again: 200 us
  for (int i = 0; i < 100; ++i) ASSERT_NE(choose(at_us(160 + 1.95 * i)), bad) << i;
  EXPECT_EQ(choose(at_us(361)), bad);
  EXPECT_EQ(sel_.counters().probes, 3u);
}

TEST_F(AdaptiveTest, ProbeWithoutVerdictIsRepeatedAfterProbeInterval) {
  init(16);
  const uint16_t bad = choose(at_us(0));
  sel_.on_timeout(bad, at_us(0));
  EXPECT_EQ(choose(at_us(51)), bad);
  for (int i = 0; i < 40; ++i) ASSERT_NE(choose(at_us(51 + i)), bad) << i;
  EXPECT_EQ(choose(at_us(102)), bad);  // probe_interval (50 us) passed without feedback
  EXPECT_EQ(sel_.counters().probes, 2u);
}

TEST_F(AdaptiveTest, QuarantineScalesWithMinRtt) {
  init(16);
  const uint16_t a = choose(at_us(0)), bad = choose(at_us(0));
  sel_.on_ack(a, Duration::micros(10), false, at_us(10));  // min RTT 10 us: 16 x 10 = 160 us
  sel_.on_loss(bad, at_us(10));
  for (int i = 0; i < 150; ++i) ASSERT_NE(choose(at_us(10 + i)), bad) << i;
  EXPECT_EQ(choose(at_us(171)), bad);
}

TEST_F(AdaptiveTest, LateFeedbackDuringQuarantineChangesNothing) {
  init(16);
  const uint16_t bad = choose(at_us(0));
  sel_.on_timeout(bad, at_us(5));
  // Older packets on the same entropy: an ACK does not reinstate it, another
  // loss does not extend the quarantine.
  ack_clean(bad, at_us(6));
  sel_.on_loss(bad, at_us(7));
  EXPECT_EQ(sel_.counters().reinstated, 0u);
  EXPECT_EQ(sel_.counters().quarantined, 1u);
  for (int i = 0; i < 50; ++i) ASSERT_NE(choose(at_us(6 + i)), bad) << i;
  EXPECT_EQ(choose(at_us(56)), bad);  // still 50 us from the first timeout
}

TEST_F(AdaptiveTest, LossPurgesTheRecycleCache) {
  const uint16_t e = choose(at_us(0));
  ack_clean(e, at_us(2));     // one packet on e came back...
  sel_.on_loss(e, at_us(3));  // ...another was lost: e must not be reused
  EXPECT_NE(choose(at_us(3)), e);
  EXPECT_EQ(sel_.counters().recycled, 0u);
}

TEST_F(AdaptiveTest, ExplorationSkipsQuarantinedEntropies) {
  init(16);
  std::vector<uint16_t> first;
  for (int i = 0; i < 4; ++i) first.push_back(choose(at_us(0)));
  for (uint16_t e : first) sel_.on_timeout(e, at_us(1));
  std::set<uint16_t> seen;
  for (int i = 0; i < 36; ++i) {
    const uint16_t e = choose(at_us(2));
    ASSERT_EQ(std::count(first.begin(), first.end(), e), 0) << i;
    seen.insert(e);
  }
  EXPECT_EQ(seen.size(), 12u);  // the other 12 are all still used
}

TEST_F(AdaptiveTest, TrimmedProbeReinstatesWithoutRecycling) {
  init(16);
  const uint16_t bad = choose(at_us(0));
  sel_.on_loss(bad, at_us(0));
  EXPECT_EQ(choose(at_us(51)), bad);
  sel_.on_trim(bad, at_us(53));
  EXPECT_EQ(sel_.counters().reinstated, 1u);
  EXPECT_NE(choose(at_us(53)), bad);  // congested path: not recycled
}

TEST_F(AdaptiveTest, IgnoresFeedbackOutsideTheSet) {
  const uint16_t outside_low = p_.entropy_base - 1;
  const uint16_t outside_high = p_.entropy_base + p_.entropy_count;
  sel_.on_loss(outside_low, at_us(0));
  sel_.on_timeout(outside_high, at_us(0));
  sel_.on_ack(outside_high, Duration::nanos(1), false, at_us(0));
  sel_.on_trim(outside_low, at_us(0));
  EXPECT_EQ(sel_.counters().quarantined, 0u);
  for (int i = 0; i < 10; ++i) choose(at_us(1));
  EXPECT_EQ(sel_.counters().recycled, 0u);
}

TEST_F(AdaptiveTest, FullQuarantineEvictsTheEntryClosestToRelease) {
  init(32);
  std::vector<uint16_t> lost;
  for (int i = 0; i < kQuarantineSlots + 1; ++i) lost.push_back(choose(at_us(0)));
  // Lost one per microsecond: the first has the earliest release.
  for (int i = 0; i < kQuarantineSlots + 1; ++i) sel_.on_loss(lost[i], at_us(i));
  EXPECT_EQ(sel_.counters().quarantined, static_cast<uint64_t>(kQuarantineSlots + 1));
  // The evicted first entropy is usable again at once; the others are not.
  std::set<uint16_t> seen;
  for (int i = 0; i < 64; ++i) seen.insert(choose(at_us(10)));
  EXPECT_EQ(seen.count(lost[0]), 1u);
  for (int i = 1; i <= kQuarantineSlots; ++i) EXPECT_EQ(seen.count(lost[i]), 0u) << i;
}

// ---------------------------------------------------------------- failed link

// A fake fabric: one link in eight fails at packet kFailAt, and every entropy
// whose hash lands on it loses its packets from then on. The PDC sends one
// packet per 100 ns; an ACK returns after 2-2.8 us (2% CE-marked); a lost
// packet is reported by RACK after ~2 RTTs (80%) or by the RTO (100 us).
bool hits_failed_link(uint16_t entropy) { return mix64(entropy ^ 0x5bd1e995u) % 8 == 3; }

struct LinkFailureResult {
  double bad_fraction = 0;  // of packets sent after the measurement start
  size_t distinct = 0;      // entropies used after the measurement start
  std::string dump;
};

LinkFailureResult run_link_failure(const char* policy, uint64_t seed) {
  constexpr int kPackets = 12000, kFailAt = 2000, kMeasureFrom = 3000;  // 100 us after the failure
  constexpr int64_t kGapNs = 100, kBaseRttNs = 2000;
  enum Kind { kAck, kLoss, kTimeout };
  struct Event {
    int64_t t;
    uint16_t entropy;
    Kind kind;
    int64_t rtt_ns;
    bool ce;
    bool operator>(const Event& o) const { return t > o.t; }
  };
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events;

  LbParams p;
  p.seed = seed;
  PathSelector sel;
  sel.init(ops_named(policy), p, seed * 1000003 + 7, fresh_counters());
  Rng policy_rng(seed), net(seed ^ 0x9e3779b97f4a7c15ULL);

  int sent = 0, bad = 0;
  std::set<uint16_t> used;
  for (int i = 0; i < kPackets; ++i) {
    const int64_t now = i * kGapNs;
    while (!events.empty() && events.top().t <= now) {
      const Event ev = events.top();
      events.pop();
      const TimePoint t = TimePoint::from_ns(ev.t);
      switch (ev.kind) {
        case kAck:
          sel.on_ack(ev.entropy, Duration::nanos(ev.rtt_ns), ev.ce, t);
          break;
        case kLoss:
          sel.on_loss(ev.entropy, t);
          break;
        case kTimeout:
          sel.on_timeout(ev.entropy, t);
          break;
      }
    }
    const uint16_t e = sel.choose_entropy(TimePoint::from_ns(now), policy_rng);
    const bool lost = i >= kFailAt && hits_failed_link(e);
    if (i >= kMeasureFrom) {
      ++sent;
      bad += hits_failed_link(e);
      used.insert(e);
    }
    if (lost) {
      if (net.bernoulli(0.8)) {
        events.push(
            {now + 2 * kBaseRttNs + static_cast<int64_t>(net.below(1000)), e, kLoss, 0, false});
      } else {
        events.push({now + 100000, e, kTimeout, 0, false});
      }
    } else {
      const int64_t rtt = kBaseRttNs + static_cast<int64_t>(net.below(800));
      events.push({now + rtt, e, kAck, rtt, net.bernoulli(0.02)});
    }
  }
  return {static_cast<double>(bad) / sent, used.size(), sel.dump()};
}

TEST(LinkFailureTest, AdaptiveAbandonsTheFailedLinkSprayDoesNot) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed=" << seed);
    const LinkFailureResult spray = run_link_failure("spray", seed);
    const LinkFailureResult adaptive = run_link_failure("adaptive", seed);
    std::printf("seed %llu: bad fraction spray %.4f adaptive %.4f; distinct entropies %zu / %zu\n",
                static_cast<unsigned long long>(seed), spray.bad_fraction, adaptive.bad_fraction,
                spray.distinct, adaptive.distinct);
    std::printf("  %s\n", adaptive.dump.c_str());
    // Oblivious spraying keeps sending about 1/8 of the packets into the hole.
    EXPECT_GT(spray.bad_fraction, 0.08);
    EXPECT_LT(spray.bad_fraction, 0.17);
    // Adaptive moves off it within ~50 RTTs and keeps spraying over the rest.
    EXPECT_LT(adaptive.bad_fraction, 0.02);
    EXPECT_GE(adaptive.distinct, 16u);
  }
}

}  // namespace
}  // namespace shoal::lb
