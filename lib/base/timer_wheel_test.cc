// Tests for TimerWheel: targeted cases (rounding, past and far-future
// deadlines, capacity, re-entrant arm/rearm/cancel from fire()) and a seeded
// randomized comparison against a std::multimap reference model.
#include "lib/base/timer_wheel.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "lib/base/rng.h"
#include "lib/base/time.h"

namespace shoal {
namespace {

TimePoint Us(double us) { return TimePoint::from_ns(static_cast<int64_t>(us * 1000)); }

using Fired = std::vector<std::pair<uint32_t, uint64_t>>;

size_t AdvanceInto(TimerWheel& w, TimePoint now, Fired* fired) {
  return w.advance(now, [&](uint32_t h, uint64_t cookie) { fired->push_back({h, cookie}); });
}

TEST(TimerWheelTest, FiresInDeadlineOrderAcrossLevels) {
  TimerWheel w(16);
  // One per level and a few in one slot; armed out of order.
  const double deadlines[] = {5000000, 3, 70, 3, 300000, 64, 4096, 1, 262144};
  for (size_t i = 0; i < std::size(deadlines); ++i) ASSERT_NE(w.arm(Us(deadlines[i]), i), kNoIndex);
  EXPECT_EQ(w.size(), std::size(deadlines));
  EXPECT_EQ(w.next_deadline(), Us(1));
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(10000000), &fired), std::size(deadlines));
  double last = 0;
  for (const auto& [h, cookie] : fired) {
    EXPECT_GE(deadlines[cookie], last);
    last = deadlines[cookie];
  }
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(w.next_deadline(), TimePoint::max());
  EXPECT_TRUE(w.check());
}

TEST(TimerWheelTest, NeverEarlyAtMostOneTickLate) {
  TimerWheel w(4);
  const uint32_t h = w.arm(Us(10.5), 7);
  EXPECT_EQ(w.deadline(h), Us(11));  // rounded up to the tick
  EXPECT_EQ(w.next_deadline(), Us(11));
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(10.499), &fired), 0u);
  EXPECT_EQ(AdvanceInto(w, Us(10.999), &fired), 0u);
  EXPECT_TRUE(w.armed(h));
  EXPECT_EQ(AdvanceInto(w, Us(11), &fired), 1u);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], std::make_pair(h, uint64_t{7}));
  EXPECT_FALSE(w.armed(h));
}

TEST(TimerWheelTest, ExactTickDeadlineFiresAtThatTick) {
  TimerWheel w(4, Duration::micros(10), Us(3));  // ticks at 3, 13, 23, ... us
  w.arm(Us(23), 1);
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(22.999), &fired), 0u);
  EXPECT_EQ(AdvanceInto(w, Us(23), &fired), 1u);
}

TEST(TimerWheelTest, PastDeadlineFiresAtNextAdvanceEvenAtSameNow) {
  TimerWheel w(4);
  Fired fired;
  AdvanceInto(w, Us(100), &fired);
  const uint32_t h = w.arm(Us(50), 1);
  EXPECT_EQ(w.next_deadline(), Us(100));  // due at the wheel's current tick
  EXPECT_EQ(w.deadline(h), Us(100));
  EXPECT_EQ(AdvanceInto(w, Us(100), &fired), 1u);
  // Before `start` counts as due at once too.
  TimerWheel v(4, Duration::micros(1), Us(1000));
  v.arm(Us(1), 2);
  EXPECT_EQ(v.next_deadline(), Us(1000));
  EXPECT_EQ(AdvanceInto(v, Us(999), &fired), 0u);  // before start: nothing
  EXPECT_EQ(AdvanceInto(v, Us(1000), &fired), 1u);
}

TEST(TimerWheelTest, TimeGoingBackwardsFiresNothing) {
  TimerWheel w(4);
  Fired fired;
  AdvanceInto(w, Us(100), &fired);
  w.arm(Us(101), 1);
  EXPECT_EQ(AdvanceInto(w, Us(50), &fired), 0u);
  EXPECT_EQ(AdvanceInto(w, Us(101), &fired), 1u);
}

TEST(TimerWheelTest, RearmAndCancel) {
  TimerWheel w(4);
  const uint32_t a = w.arm(Us(10), 1);
  const uint32_t b = w.arm(Us(20), 2);
  w.rearm(a, Us(30));
  EXPECT_EQ(w.next_deadline(), Us(20));
  w.cancel(b);
  EXPECT_FALSE(w.armed(b));
  EXPECT_EQ(w.next_deadline(), Us(30));
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(29), &fired), 0u);
  EXPECT_EQ(AdvanceInto(w, Us(30), &fired), 1u);
  EXPECT_EQ(fired[0].second, 1u);
}

TEST(TimerWheelTest, RearmFromFireForPastTimeFiresInSameAdvance) {
  TimerWheel w(4);
  const uint32_t h = w.arm(Us(10), 1);
  int calls = 0;
  const size_t n = w.advance(Us(1000), [&](uint32_t fh, uint64_t) {
    ++calls;
    EXPECT_FALSE(w.armed(fh));
    if (calls == 1) w.rearm(fh, Us(500));   // later, but <= now
    if (calls == 2) w.rearm(fh, Us(5));     // earlier than the tick being fired
    if (calls == 3) w.rearm(fh, Us(2000));  // beyond now: waits
  });
  EXPECT_EQ(n, 3u);
  EXPECT_TRUE(w.armed(h));
  EXPECT_EQ(w.next_deadline(), Us(2000));
}

TEST(TimerWheelTest, CancelFromFire) {
  TimerWheel w(8);
  // Same tick, and a later one; the first to fire cancels the other two.
  const uint32_t a = w.arm(Us(10), 1);
  const uint32_t b = w.arm(Us(10), 2);
  const uint32_t c = w.arm(Us(40), 3);
  Fired fired;
  w.advance(Us(100), [&](uint32_t h, uint64_t cookie) {
    fired.push_back({h, cookie});
    for (uint32_t other : {a, b, c})
      if (other != h && w.armed(other)) w.cancel(other);
  });
  EXPECT_EQ(fired.size(), 1u);
  EXPECT_TRUE(w.empty());
  EXPECT_TRUE(w.check());
  // All three handles are free again.
  for (int i = 0; i < 8; ++i) EXPECT_NE(w.arm(Us(200), 10 + i), kNoIndex);
  EXPECT_EQ(w.arm(Us(200), 99), kNoIndex);
}

TEST(TimerWheelTest, CancelSelfAndArmInFireReusesHandleSafely) {
  TimerWheel w(1);
  const uint32_t h = w.arm(Us(10), 1);
  uint32_t again = kNoIndex;
  w.advance(Us(10), [&](uint32_t fh, uint64_t) {
    w.cancel(fh);              // releases the only handle...
    again = w.arm(Us(20), 2);  // ...which the new timer reuses
  });
  EXPECT_EQ(again, h);
  EXPECT_TRUE(w.armed(again));  // not released behind the new owner's back
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(20), &fired), 1u);
  EXPECT_EQ(fired[0].second, 2u);
}

TEST(TimerWheelTest, CapacityExhaustion) {
  TimerWheel w(3);
  uint32_t h[3];
  for (int i = 0; i < 3; ++i) ASSERT_NE(h[i] = w.arm(Us(10 + i), i), kNoIndex);
  EXPECT_EQ(w.arm(Us(5), 9), kNoIndex);
  w.cancel(h[1]);
  EXPECT_NE(w.arm(Us(5), 9), kNoIndex);
  EXPECT_EQ(w.arm(Us(5), 9), kNoIndex);
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(10), &fired), 2u);  // the 5 us one and the 10 us one
  EXPECT_NE(w.arm(Us(5), 9), kNoIndex);           // fired handles are free again
  EXPECT_NE(w.arm(Us(5), 9), kNoIndex);
  EXPECT_EQ(w.arm(Us(5), 9), kNoIndex);
  TimerWheel none(0);
  EXPECT_EQ(none.arm(Us(1), 1), kNoIndex);
}

TEST(TimerWheelTest, FarFutureTimers) {
  TimerWheel w(8);
  const Duration day = Duration::seconds(86400);
  const TimePoint t1 = TimePoint::zero() + day + Duration::nanos(1);             // top levels
  const TimePoint t100 = TimePoint::zero() + day * 100;                          // overflow list
  const TimePoint t146y = TimePoint::from_ns((int64_t{1} << 62) / 1000 * 1000);  // ~146 y
  const uint32_t far = w.arm(t1, 1);
  const uint32_t farther = w.arm(t100, 2);
  const uint32_t farthest = w.arm(t146y, 3);
  const uint32_t never = w.arm(TimePoint::max(), 4);
  EXPECT_EQ(w.next_deadline(), TimePoint::zero() + day + Duration::micros(1));
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, TimePoint::zero() + day, &fired), 0u);
  EXPECT_EQ(AdvanceInto(w, TimePoint::zero() + day + Duration::micros(1), &fired), 1u);
  EXPECT_FALSE(w.armed(far));
  EXPECT_EQ(w.next_deadline(), t100);
  EXPECT_EQ(AdvanceInto(w, t100 - Duration::nanos(1), &fired), 0u);
  EXPECT_TRUE(w.armed(farther));
  EXPECT_EQ(AdvanceInto(w, t100, &fired), 1u);
  EXPECT_EQ(w.next_deadline(), t146y);
  EXPECT_EQ(AdvanceInto(w, t146y - Duration::nanos(1), &fired), 0u);
  EXPECT_EQ(AdvanceInto(w, t146y, &fired), 1u);
  EXPECT_FALSE(w.armed(farthest));
  EXPECT_TRUE(w.armed(never));
  EXPECT_TRUE(w.check());
  // TimePoint::max() means "never": its tick boundary lies beyond max(), so
  // it never fires, and next_deadline() says max() although it is armed.
  EXPECT_EQ(w.next_deadline(), TimePoint::max());
  EXPECT_EQ(AdvanceInto(w, TimePoint::max(), &fired), 0u);
  EXPECT_TRUE(w.armed(never));
  w.cancel(never);
  EXPECT_TRUE(w.empty());
}

TEST(TimerWheelTest, NextDeadlineExactInsideHighLevelSlot) {
  TimerWheel w(8);
  w.arm(Us(1000000.5), 1);  // level 3
  w.arm(Us(1000020), 2);
  EXPECT_EQ(w.next_deadline(), Us(1000001));
  EXPECT_LE(w.next_deadline_bound(), w.next_deadline());
  Fired fired;
  EXPECT_EQ(AdvanceInto(w, Us(999999), &fired), 0u);
  EXPECT_EQ(w.next_deadline(), Us(1000001));
  EXPECT_EQ(AdvanceInto(w, w.next_deadline(), &fired), 1u);
  EXPECT_EQ(w.next_deadline(), Us(1000020));
}

// ---- Randomized comparison with a reference model.

struct Case {
  const char* name;
  int64_t tick_ns;
  int64_t start_ns;
  uint32_t capacity;
  uint64_t seed;
};

// Named, so gtest does not print the struct's padding bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " seed " << c.seed; }

class ModelTest : public ::testing::TestWithParam<Case> {};

// The reference: every armed timer with its effective tick, ordered by it.
class Model {
 public:
  Model(int64_t tick_ns, int64_t start_ns) : tick_(tick_ns), start_(start_ns) {}

  uint64_t ceil_tick(TimePoint t) const {
    if (t.ns() <= start_) return 0;
    const unsigned __int128 d = static_cast<__int128>(t.ns()) - start_;
    return static_cast<uint64_t>((d + tick_ - 1) / tick_);
  }
  uint64_t floor_tick(TimePoint t) const {
    return static_cast<uint64_t>((static_cast<__int128>(t.ns()) - start_) / tick_);
  }
  TimePoint time_of(uint64_t tick) const {
    const __int128 ns = static_cast<__int128>(start_) + static_cast<__int128>(tick) * tick_;
    return ns >= std::numeric_limits<int64_t>::max() ? TimePoint::max()
                                                     : TimePoint::from_ns(static_cast<int64_t>(ns));
  }

  struct Timer {
    uint64_t tick;
    TimePoint when;
    uint64_t cookie;
    std::multimap<uint64_t, uint32_t>::iterator it;
  };

  void add(uint32_t h, TimePoint when, uint64_t cookie) {
    ASSERT_EQ(live_.count(h), 0u) << "handle " << h << " handed out twice";
    const uint64_t tick = std::max(ceil_tick(when), cur);
    live_[h] = Timer{tick, when, cookie, by_tick_.emplace(tick, h)};
  }
  void remove(uint32_t h) {
    auto it = live_.find(h);
    ASSERT_NE(it, live_.end());
    by_tick_.erase(it->second.it);
    live_.erase(it);
  }
  const Timer* find(uint32_t h) const {
    auto it = live_.find(h);
    return it == live_.end() ? nullptr : &it->second;
  }
  size_t size() const { return live_.size(); }
  uint64_t min_tick() const { return by_tick_.empty() ? ~uint64_t{0} : by_tick_.begin()->first; }
  TimePoint next_deadline() const {
    return by_tick_.empty() ? TimePoint::max() : time_of(by_tick_.begin()->first);
  }
  uint32_t random_handle(Rng& rng) const {
    if (live_.empty()) return kNoIndex;
    // Walk from a random key: good enough spread, O(log n).
    auto it = live_.lower_bound(static_cast<uint32_t>(rng.next_u64()));
    if (it == live_.end()) it = live_.begin();
    return it->first;
  }

  uint64_t cur = 0;  // the wheel's current tick as the model sees it
  int64_t tick_;
  int64_t start_;

 private:
  std::map<uint32_t, Timer> live_;
  std::multimap<uint64_t, uint32_t> by_tick_;
};

TimePoint RandomDeadline(Rng& rng, TimePoint now, int64_t tick) {
  const uint64_t r = rng.below(1000);
  int64_t ticks;
  if (r < 100) {
    ticks = -static_cast<int64_t>(rng.below(2000));  // in the past
  } else if (r < 500) {
    ticks = static_cast<int64_t>(rng.below(64));
  } else if (r < 800) {
    ticks = static_cast<int64_t>(rng.below(1 << 18));
  } else if (r < 950) {
    ticks = static_cast<int64_t>(rng.below(1ull << 30));
  } else if (r < 995) {
    ticks = static_cast<int64_t>(rng.below(1ull << 46));  // beyond the top level
  } else {
    return TimePoint::max();
  }
  const __int128 ns = static_cast<__int128>(now.ns()) + static_cast<__int128>(ticks) * tick +
                      static_cast<int64_t>(rng.below(static_cast<uint64_t>(tick)));
  if (ns >= std::numeric_limits<int64_t>::max()) return TimePoint::max();
  return TimePoint::from_ns(static_cast<int64_t>(ns));
}

TEST_P(ModelTest, MatchesReferenceOver200kOperations) {
  const Case c = GetParam();
  SCOPED_TRACE(std::string("case ") + c.name + " seed " + std::to_string(c.seed));
  Rng rng(c.seed);
  TimerWheel w(c.capacity, Duration::nanos(c.tick_ns), TimePoint::from_ns(c.start_ns));
  Model m(c.tick_ns, c.start_ns);
  TimePoint now = TimePoint::from_ns(c.start_ns);
  uint64_t next_cookie = 1;
  uint64_t fires = 0, full = 0, far_fires = 0;
  // The wheel holds the handle of the timer being fired until fire() returns
  // (unless fire() re-arms or cancels it), so it counts against capacity.
  bool holding = false;
  constexpr int kOps = 200000;
  constexpr int64_t kNowLimit = int64_t{1} << 61;

  auto arm = [&](TimePoint when) {
    const uint32_t h = w.arm(when, next_cookie);
    if (m.size() + (holding ? 1 : 0) == c.capacity) {
      EXPECT_EQ(h, kNoIndex);
      ++full;
    } else {
      ASSERT_NE(h, kNoIndex);
      m.add(h, when, next_cookie);
    }
    ++next_cookie;
  };

  for (int op = 0; op < kOps; ++op) {
    // Alternate phases: balanced, then arm-heavy (to reach capacity).
    const bool fill = (op / 5000) % 2 == 1;
    uint64_t r = rng.below(100);
    if (fill && r >= 62) r = rng.below(100) < 80 ? 0 : r;
    if (r < 35) {
      arm(RandomDeadline(rng, now, c.tick_ns));
    } else if (r < 50) {
      const uint32_t h = m.random_handle(rng);
      if (h == kNoIndex) continue;
      const TimePoint when = RandomDeadline(rng, now, c.tick_ns);
      const uint64_t cookie = m.find(h)->cookie;
      w.rearm(h, when);
      m.remove(h);
      m.add(h, when, cookie);
    } else if (r < 62) {
      const uint32_t h = m.random_handle(rng);
      if (h == kNoIndex) continue;
      w.cancel(h);
      m.remove(h);
      EXPECT_FALSE(w.armed(h));
    } else {
      // Advance: mostly small steps, sometimes huge jumps.
      const uint64_t k = rng.below(100);
      int64_t step_ticks;
      if (k < 5)
        step_ticks = 0;
      else if (k < 60)
        step_ticks = static_cast<int64_t>(rng.below(8));
      else if (k < 85)
        step_ticks = static_cast<int64_t>(rng.below(5000));
      else if (k < 99 || rng.below(4) != 0)
        step_ticks = static_cast<int64_t>(rng.below(1 << 22));
      else
        step_ticks = static_cast<int64_t>(rng.below(1ull << 40));
      __int128 next = static_cast<__int128>(now.ns()) +
                      static_cast<__int128>(step_ticks) * c.tick_ns +
                      static_cast<int64_t>(rng.below(static_cast<uint64_t>(c.tick_ns)));
      if (next >= kNowLimit) next = now.ns() + c.tick_ns * 10;  // keep clear of overflow
      now = TimePoint::from_ns(static_cast<int64_t>(next));
      const uint64_t target = m.floor_tick(now);
      uint64_t last_tick = 0;
      size_t calls = 0;
      const size_t n = w.advance(now, [&](uint32_t h, uint64_t cookie) {
        ++calls;
        const Model::Timer* t = m.find(h);
        ASSERT_NE(t, nullptr) << "fired a timer that is not armed: " << h;
        EXPECT_EQ(t->cookie, cookie);
        EXPECT_FALSE(w.armed(h));
        EXPECT_LE(t->tick, target) << "fired before its tick";
        EXPECT_GE(t->tick, last_tick) << "out of order";
        EXPECT_LE(t->when, now) << "fired before its deadline";
        if (t->tick == m.ceil_tick(t->when) && !t->when.is_max()) {
          // Not clamped: its tick is the deadline rounded up, < one tick later.
          EXPECT_LT(m.time_of(t->tick) - t->when, Duration::nanos(c.tick_ns));
        }
        if (t->tick - m.cur > (uint64_t{1} << 30)) ++far_fires;
        last_tick = t->tick;
        m.cur = t->tick;
        m.remove(h);
        holding = true;
        ++fires;
        // Re-entrant work from fire().
        const uint64_t a = rng.below(100);
        if (a < 15) {
          // Rearm, often for a time already passed: must fire in this call.
          const TimePoint when = rng.below(2)
                                     ? now - Duration::nanos(static_cast<int64_t>(
                                                 rng.below(static_cast<uint64_t>(c.tick_ns) * 100)))
                                     : RandomDeadline(rng, now, c.tick_ns);
          w.rearm(h, when);
          m.add(h, when, cookie);
          holding = false;
        } else if (a < 25) {
          const uint32_t other = m.random_handle(rng);
          if (other != kNoIndex) {
            w.cancel(other);
            m.remove(other);
          }
        } else if (a < 35) {
          arm(RandomDeadline(rng, now, c.tick_ns));
        } else if (a < 40) {
          w.cancel(h);  // cancel of the firing timer itself: releases it
          holding = false;
        }
        if (a >= 40 && a < 50 && holding) {
          // Arm after giving the handle back, then make sure the new timer
          // keeps it when fire() returns.
          w.cancel(h);
          holding = false;
          arm(RandomDeadline(rng, now, c.tick_ns));
        }
        holding = false;
      });
      EXPECT_EQ(n, calls);
      if (target >= m.cur) m.cur = target;
      EXPECT_GT(m.min_tick(), target) << "a due timer did not fire by now=" << now.ns();
    }
    ASSERT_EQ(w.size(), m.size()) << "op " << op;
    ASSERT_EQ(w.next_deadline(), m.next_deadline()) << "op " << op;
    ASSERT_LE(w.next_deadline_bound(), w.next_deadline()) << "op " << op;
    if (op % 4096 == 0) {
      ASSERT_TRUE(w.check()) << "op " << op << " " << w.dump();
    }
    if (::testing::Test::HasFailure()) FAIL() << "stopping at op " << op;
  }
  ASSERT_TRUE(w.check());
  // Drain everything, including deadlines at TimePoint::max().
  // Deadlines within a tick of TimePoint::max() round up beyond it: "never".
  const uint64_t end = m.floor_tick(TimePoint::max());
  size_t drained = w.advance(TimePoint::max(), [&](uint32_t h, uint64_t cookie) {
    const Model::Timer* t = m.find(h);
    ASSERT_NE(t, nullptr);
    EXPECT_LE(t->tick, end);
    m.remove(h);
  });
  EXPECT_GT(m.min_tick(), end);
  EXPECT_EQ(w.size(), m.size());
  EXPECT_GT(drained, 0u);
  EXPECT_GT(fires, 10000u);
  if (c.capacity < 10000) {
    EXPECT_GT(full, 0u) << "capacity never reached";
  }
  RecordProperty("fires", static_cast<int>(fires));
  std::printf("[ %s ] fires=%llu arms_refused=%llu far_fires=%llu now=%lld %s\n", c.name,
              static_cast<unsigned long long>(fires), static_cast<unsigned long long>(full),
              static_cast<unsigned long long>(far_fires), static_cast<long long>(now.ns()),
              w.dump().c_str());
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest,
                         ::testing::Values(Case{"us_tick", 1000, 0, 512, 13},
                                           Case{"ns_tick_negative_start", 1, -123456789, 1000, 7},
                                           Case{"odd_tick_big", 7003, 1000000007, 100000, 42},
                                           Case{"small_capacity", 1000, 5, 64, 99}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace shoal
