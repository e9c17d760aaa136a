// Unit tests for lib/base: time, PSNs, the ring bitmap, the index list, the
// log histogram, the RNG, byte order, the status macros and the logger.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/base/counters.h"
#include "lib/base/bitmap.h"
#include "lib/base/bytes.h"
#include "lib/base/histogram.h"
#include "lib/base/index_list.h"
#include "lib/base/log.h"
#include "lib/base/psn.h"
#include "lib/base/rng.h"
#include "lib/base/slab.h"
#include "lib/base/status.h"
#include "lib/base/time.h"

namespace shoal {
namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

// ---------------------------------------------------------------- time.h

TEST(DurationTest, ConstructorsAndUnits) {
  EXPECT_EQ(Duration::nanos(7).ns(), 7);
  EXPECT_EQ(Duration::micros(3).ns(), 3'000);
  EXPECT_EQ(Duration::millis(2).ns(), 2'000'000);
  EXPECT_EQ(Duration::seconds(5).ns(), 5'000'000'000);
  EXPECT_EQ(Duration::micros_f(1.5).ns(), 1'500);
  EXPECT_EQ(Duration::zero().ns(), 0);
  EXPECT_EQ(Duration().ns(), 0);
  EXPECT_EQ(Duration::max().ns(), kI64Max);
  EXPECT_DOUBLE_EQ(Duration::nanos(2'500).us(), 2.5);
  EXPECT_DOUBLE_EQ(Duration::millis(250).sec(), 0.25);
}

TEST(DurationTest, Arithmetic) {
  Duration a = Duration::micros(10), b = Duration::nanos(250);
  EXPECT_EQ((a + b).ns(), 10'250);
  EXPECT_EQ((a - b).ns(), 9'750);
  EXPECT_EQ((b - a).ns(), -9'750);
  EXPECT_EQ((b * 4).ns(), 1'000);
  EXPECT_EQ((a / 3).ns(), 3'333);
  Duration c = a;
  c += b;
  EXPECT_EQ(c.ns(), 10'250);
  c -= a;
  EXPECT_EQ(c, b);
  EXPECT_LT(b, a);
  EXPECT_GT(a, b);
  EXPECT_EQ(min_dur(a, b), b);
  EXPECT_EQ(max_dur(a, b), a);
  static_assert(Duration::micros(1) + Duration::nanos(1) == Duration::nanos(1'001));
}

TEST(TimePointTest, Arithmetic) {
  TimePoint t = TimePoint::from_ns(1'000);
  EXPECT_EQ((t + Duration::nanos(500)).ns(), 1'500);
  EXPECT_EQ((t - Duration::nanos(300)).ns(), 700);
  EXPECT_EQ((t + Duration::nanos(-300)).ns(), 700);
  EXPECT_EQ(TimePoint::from_ns(1'500) - t, Duration::nanos(500));
  EXPECT_EQ(t - TimePoint::from_ns(1'500), Duration::nanos(-500));
  TimePoint u = t;
  u += Duration::micros(2);
  EXPECT_EQ(u.ns(), 3'000);
  EXPECT_LT(t, u);
  EXPECT_EQ(min_time(t, u), t);
  EXPECT_EQ(max_time(t, u), u);
  EXPECT_EQ(TimePoint().ns(), 0);
  EXPECT_EQ(TimePoint::zero().ns(), 0);
  EXPECT_DOUBLE_EQ(TimePoint::from_ns(1'500).us(), 1.5);
  EXPECT_DOUBLE_EQ(TimePoint::from_ns(2'000'000'000).sec(), 2.0);
  EXPECT_FALSE(t.is_max());
  EXPECT_TRUE(TimePoint::max().is_max());
}

TEST(TimePointTest, MaxPlusDurationSaturates) {
  EXPECT_TRUE((TimePoint::max() + Duration::nanos(1)).is_max());
  EXPECT_TRUE((TimePoint::max() + Duration::seconds(3600)).is_max());
  EXPECT_TRUE((TimePoint::max() + Duration::max()).is_max());
  EXPECT_TRUE((TimePoint::max() + Duration::zero()).is_max());
  // Close to max: the sum would overflow, so it saturates.
  EXPECT_TRUE((TimePoint::from_ns(kI64Max - 10) + Duration::nanos(11)).is_max());
  EXPECT_TRUE((TimePoint::from_ns(kI64Max - 10) + Duration::nanos(10)).is_max());
  EXPECT_EQ((TimePoint::from_ns(kI64Max - 10) + Duration::nanos(9)).ns(), kI64Max - 1);
  EXPECT_TRUE((TimePoint::from_ns(1) + Duration::max()).is_max());
  TimePoint t = TimePoint::max();
  t += Duration::millis(5);
  EXPECT_TRUE(t.is_max());
  // "Never" stays later than any finite deadline.
  EXPECT_GT(TimePoint::max() + Duration::nanos(1), TimePoint::from_ns(kI64Max - 1));
  EXPECT_EQ(min_time(TimePoint::max() + Duration::micros(1), TimePoint::from_ns(5)).ns(), 5);
  static_assert((TimePoint::max() + Duration::nanos(1)).is_max());
}

TEST(TimeTest, SerializationTimeRoundsUp) {
  // 4096 B * 8 / 400 Gb/s = 81.92 ns -> 82.
  EXPECT_EQ(serialization_time(4096, 400e9).ns(), 82);
  // Exact results are not bumped.
  EXPECT_EQ(serialization_time(1500, 100e9).ns(), 120);
  EXPECT_EQ(serialization_time(1, 1e9).ns(), 8);
  EXPECT_EQ(serialization_time(1000, 8e9).ns(), 1'000);
  EXPECT_EQ(serialization_time(0, 400e9).ns(), 0);
  // 8/3 = 2.67 -> 3; 512/25 = 20.48 -> 21; 64*8/400 = 1.28 -> 2.
  EXPECT_EQ(serialization_time(1, 3e9).ns(), 3);
  EXPECT_EQ(serialization_time(64, 25e9).ns(), 21);
  EXPECT_EQ(serialization_time(64, 400e9).ns(), 2);
  // 9000 B jumbo at 200 Gb/s = 360 ns exactly.
  EXPECT_EQ(serialization_time(9000, 200e9).ns(), 360);
  // Never rounds down, never adds more than one ns, over a sweep.
  for (uint64_t bytes = 1; bytes <= 10'000; bytes += 37) {
    for (double bps : {10e9, 25e9, 100e9, 200e9, 400e9, 800e9}) {
      const double exact = static_cast<double>(bytes) * 8e9 / bps;
      const int64_t got = serialization_time(bytes, bps).ns();
      EXPECT_GE(static_cast<double>(got), exact) << bytes << " B @ " << bps;
      EXPECT_LT(static_cast<double>(got), exact + 1.0) << bytes << " B @ " << bps;
    }
  }
}

// ----------------------------------------------------------------- psn.h

TEST(PsnTest, CompareAcrossWrap) {
  const Psn last(0xFFFFFFFFu), zero(0);
  EXPECT_LT(last, zero);
  EXPECT_LE(last, zero);
  EXPECT_GT(zero, last);
  EXPECT_GE(zero, last);
  EXPECT_FALSE(zero < last);
  EXPECT_FALSE(last > zero);
  EXPECT_EQ(zero - last, 1);
  EXPECT_EQ(last - zero, -1);
  EXPECT_EQ(Psn(0x10) - Psn(0xFFFFFFF0u), 0x20);
  EXPECT_EQ(Psn(0xFFFFFFF0u) - Psn(0x10), -0x20);
  EXPECT_EQ(max_psn(last, zero), zero);
  EXPECT_EQ(max_psn(zero, last), zero);
  EXPECT_LE(zero, zero);
  EXPECT_GE(zero, zero);
  EXPECT_FALSE(zero < zero);
}

TEST(PsnTest, ArithmeticWraps) {
  Psn p(0xFFFFFFFEu);
  ++p;
  EXPECT_EQ(p.value(), 0xFFFFFFFFu);
  ++p;
  EXPECT_EQ(p.value(), 0u);
  EXPECT_EQ((Psn(0xFFFFFFF0u) + 0x20).value(), 0x10u);
  EXPECT_EQ((Psn(5) - 10).value(), 0xFFFFFFFBu);
  EXPECT_EQ((Psn(5) + int64_t{-10}).value(), 0xFFFFFFFBu);
  Psn q(0xFFFFFF00u);
  q += 0x200;
  EXPECT_EQ(q.value(), 0x100u);
  EXPECT_EQ(Psn().value(), 0u);
}

TEST(PsnTest, DistanceSignAroundManyBases) {
  for (uint32_t base : {0u, 1u, 0x7FFFFFF0u, 0x80000000u, 0xFFFFFF00u, 0xFFFFFFFFu}) {
    const Psn b(base);
    for (int64_t k = 1; k <= 70'000; k += 7) {
      const Psn ahead = b + k, behind = b - k;
      ASSERT_EQ(ahead - b, k) << base << "+" << k;
      ASSERT_EQ(behind - b, -k) << base << "-" << k;
      ASSERT_TRUE(ahead > b && b < ahead && behind < b && b > behind) << base << " k=" << k;
      ASSERT_TRUE(behind < ahead) << base << " k=" << k;
    }
  }
  // The edge of the comparable range: 2^31 - 1 apart is still "after".
  EXPECT_EQ(Psn(0x7FFFFFFFu) - Psn(0), 0x7FFFFFFF);
  EXPECT_GT(Psn(0x7FFFFFFFu), Psn(0));
}

// -------------------------------------------------------------- bitmap.h

TEST(RingBitmapTest, SetTestClearWithWrap) {
  RingBitmap bm(256);
  EXPECT_EQ(bm.capacity(), 256u);
  EXPECT_EQ(bm.memory_bytes(), 32u);
  for (uint32_t i = 0; i < 256; ++i) EXPECT_FALSE(bm.test(i));
  bm.set(255);
  EXPECT_TRUE(bm.test(255));
  EXPECT_TRUE(bm.test(511));          // aliases 255
  EXPECT_TRUE(bm.test(0xFFFFFFFFu));  // aliases 255
  EXPECT_FALSE(bm.test(254));
  EXPECT_FALSE(bm.test(0));
  bm.set(256);  // aliases 0
  EXPECT_TRUE(bm.test(0));
  bm.set(64 + 256 * 3);  // aliases 64
  EXPECT_TRUE(bm.test(64));
  EXPECT_FALSE(bm.test(63));
  EXPECT_FALSE(bm.test(65));
  bm.clear(0xFFFFFFFFu);
  EXPECT_FALSE(bm.test(255));
  EXPECT_TRUE(bm.test(0));
  bm.clear(512);
  EXPECT_FALSE(bm.test(0));
  EXPECT_TRUE(bm.test(64));
  bm.reset(128);
  EXPECT_EQ(bm.capacity(), 128u);
  EXPECT_FALSE(bm.test(64));
}

TEST(RingBitmapTest, Extract64AlignedUnalignedAndWrapping) {
  RingBitmap bm(256);
  for (uint32_t p : {0u, 3u, 63u, 64u, 130u, 250u, 255u}) bm.set(p);
  // Aligned.
  EXPECT_EQ(bm.extract64(0), (uint64_t{1} << 0) | (uint64_t{1} << 3) | (uint64_t{1} << 63));
  EXPECT_EQ(bm.extract64(64), uint64_t{1} << 0);
  // Unaligned within the ring: positions 3..66.
  EXPECT_EQ(bm.extract64(3), (uint64_t{1} << 0) | (uint64_t{1} << 60) | (uint64_t{1} << 61));
  // Unaligned, wrapping from the last word to the first: 250..255,0..57.
  EXPECT_EQ(bm.extract64(250),
            (uint64_t{1} << 0) | (uint64_t{1} << 5) | (uint64_t{1} << 6) | (uint64_t{1} << 9));
  // Same through an aliased position.
  EXPECT_EQ(bm.extract64(250 + 256 * 7), bm.extract64(250));
  // Aligned at the last word: 192..255.
  EXPECT_EQ(bm.extract64(192), (uint64_t{1} << 58) | (uint64_t{1} << 63));

  // A single-word ring wraps onto itself.
  RingBitmap one(64);
  one.set(0);
  one.set(60);
  EXPECT_EQ(one.extract64(60), (uint64_t{1} << 0) | (uint64_t{1} << 4));
  EXPECT_EQ(one.extract64(0), (uint64_t{1} << 0) | (uint64_t{1} << 60));
}

TEST(RingBitmapTest, CountRunAndClearRange) {
  RingBitmap bm(256);
  for (uint32_t p = 200; p < 200 + 150; ++p) bm.set(p);  // 200..255, 0..93
  EXPECT_EQ(bm.count_run(200, 256), 150u);
  EXPECT_EQ(bm.count_run(200, 100), 100u);
  EXPECT_EQ(bm.count_run(200, 0), 0u);
  EXPECT_EQ(bm.count_run(256 + 10, 256), 84u);  // 10..93
  EXPECT_EQ(bm.count_run(199, 256), 0u);
  EXPECT_EQ(bm.count_run(94, 256), 0u);
  bm.clear_range(250, 20);  // 250..255, 0..13
  EXPECT_EQ(bm.count_run(200, 256), 50u);
  EXPECT_TRUE(bm.test(249));
  for (uint32_t p = 250; p < 270; ++p) EXPECT_FALSE(bm.test(p)) << p;
  EXPECT_TRUE(bm.test(14));
  EXPECT_EQ(bm.count_run(14, 256), 80u);
  // Full ring, full run, full clear.
  for (uint32_t p = 0; p < 256; ++p) bm.set(p);
  EXPECT_EQ(bm.count_run(77, 256), 256u);
  bm.clear_range(77, 256);
  for (uint32_t p = 0; p < 256; ++p) EXPECT_FALSE(bm.test(p)) << p;
}

// Drives RingBitmap and a naive std::vector<bool> through the same seeded
// random operations and compares every observation.
void RunBitmapModel(uint32_t cap, uint64_t seed, int ops) {
  RingBitmap bm(cap);
  std::vector<bool> model(cap, false);
  std::mt19937_64 gen(seed);
  auto rnd = [&](uint64_t n) { return static_cast<uint32_t>(gen() % n); };
  auto naive_extract = [&](uint32_t pos) {
    uint64_t v = 0;
    for (uint32_t i = 0; i < 64; ++i)
      if (model[(pos + i) % cap]) v |= uint64_t{1} << i;
    return v;
  };
  auto naive_run = [&](uint32_t pos, uint32_t limit) {
    uint32_t n = 0;
    while (n < limit && n < cap && model[(pos + n) % cap]) ++n;
    return n;
  };
  for (int op = 0; op < ops; ++op) {
    // Positions span the full 32-bit space so aliasing is exercised.
    const uint32_t pos = static_cast<uint32_t>(gen());
    switch (rnd(7)) {
      case 0:
      case 1: {  // set a run, to make long runs of ones likely
        const uint32_t n = 1 + rnd(std::min<uint32_t>(cap, 150));
        for (uint32_t i = 0; i < n; ++i) {
          bm.set(pos + i);
          model[(pos + i) % cap] = true;
        }
        break;
      }
      case 2:
        bm.clear(pos);
        model[pos % cap] = false;
        break;
      case 3: {
        const uint32_t n = rnd(cap + 1);
        bm.clear_range(pos, n);
        for (uint32_t i = 0; i < n; ++i) model[(pos + i) % cap] = false;
        break;
      }
      case 4:
        ASSERT_EQ(bm.test(pos), model[pos % cap]) << "op " << op << " pos " << pos;
        break;
      case 5:
        ASSERT_EQ(bm.extract64(pos), naive_extract(pos % cap))
            << "op " << op << " pos " << pos << " (mod " << pos % cap << ")";
        break;
      case 6: {
        const uint32_t limit = rnd(cap + 1);
        ASSERT_EQ(bm.count_run(pos, limit), naive_run(pos % cap, limit))
            << "op " << op << " pos " << pos << " limit " << limit;
        break;
      }
    }
  }
  // Final full comparison, including every extract64 offset.
  for (uint32_t p = 0; p < cap; ++p) {
    ASSERT_EQ(bm.test(p), model[p]) << p;
    ASSERT_EQ(bm.extract64(p), naive_extract(p)) << p;
  }
}

TEST(RingBitmapTest, MatchesNaiveModel) {
  for (uint32_t cap : {64u, 128u, 512u, 4096u}) {
    for (uint64_t seed : {1u, 2u, 12345u}) {
      SCOPED_TRACE(testing::Message() << "cap=" << cap << " seed=" << seed);
      RunBitmapModel(cap, seed, 20'000);
      if (HasFatalFailure()) return;
    }
  }
}

// ---------------------------------------------------------- index_list.h

struct Slot {
  IndexLinks links;
  int payload = 0;
};

struct SlotLinks {
  Slot* slots = nullptr;
  IndexLinks& operator()(uint32_t i) const { return slots[i].links; }
};

using SlotList = IndexList<SlotLinks>;

std::vector<uint32_t> Walk(SlotList& l) {
  std::vector<uint32_t> out;
  for (uint32_t i = l.front(); i != kNoIndex; i = l.next(i)) {
    out.push_back(i);
    if (out.size() > 1000) break;  // cycle guard
  }
  return out;
}

std::vector<uint32_t> WalkBack(SlotList& l, Slot* slots) {
  std::vector<uint32_t> out;
  for (uint32_t i = l.back(); i != kNoIndex; i = slots[i].links.prev) {
    out.push_back(i);
    if (out.size() > 1000) break;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

TEST(IndexListTest, PushRemovePopOrder) {
  std::array<Slot, 8> slots{};
  SlotList l(SlotLinks{slots.data()});
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.size(), 0u);
  EXPECT_EQ(l.front(), kNoIndex);
  EXPECT_EQ(l.back(), kNoIndex);
  EXPECT_EQ(l.pop_front(), kNoIndex);

  for (uint32_t i : {5u, 2u, 7u, 0u, 3u}) l.push_back(i);
  EXPECT_FALSE(l.empty());
  EXPECT_EQ(l.size(), 5u);
  EXPECT_EQ(l.front(), 5u);
  EXPECT_EQ(l.back(), 3u);
  EXPECT_EQ(Walk(l), (std::vector<uint32_t>{5, 2, 7, 0, 3}));
  EXPECT_EQ(WalkBack(l, slots.data()), (std::vector<uint32_t>{5, 2, 7, 0, 3}));
  for (uint32_t i : {5u, 2u, 7u, 0u, 3u}) EXPECT_TRUE(slots[i].links.linked()) << i;
  for (uint32_t i : {1u, 4u, 6u}) EXPECT_FALSE(slots[i].links.linked()) << i;

  l.remove(7);  // middle
  EXPECT_FALSE(slots[7].links.linked());
  EXPECT_EQ(Walk(l), (std::vector<uint32_t>{5, 2, 0, 3}));
  EXPECT_EQ(WalkBack(l, slots.data()), (std::vector<uint32_t>{5, 2, 0, 3}));
  l.remove(5);  // head
  EXPECT_EQ(l.front(), 2u);
  l.remove(3);  // tail
  EXPECT_EQ(l.back(), 0u);
  EXPECT_EQ(Walk(l), (std::vector<uint32_t>{2, 0}));
  EXPECT_EQ(WalkBack(l, slots.data()), (std::vector<uint32_t>{2, 0}));
  EXPECT_EQ(l.size(), 2u);

  // A removed slot can be re-linked, at the back.
  l.push_back(5);
  l.push_back(7);
  EXPECT_EQ(Walk(l), (std::vector<uint32_t>{2, 0, 5, 7}));

  EXPECT_EQ(l.pop_front(), 2u);
  EXPECT_FALSE(slots[2].links.linked());
  EXPECT_EQ(l.pop_front(), 0u);
  EXPECT_EQ(l.pop_front(), 5u);
  EXPECT_EQ(l.front(), 7u);
  EXPECT_EQ(l.back(), 7u);
  EXPECT_EQ(l.pop_front(), 7u);
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.size(), 0u);
  EXPECT_EQ(l.front(), kNoIndex);
  EXPECT_EQ(l.back(), kNoIndex);
  EXPECT_EQ(l.pop_front(), kNoIndex);
  // The last removal leaves the slot fully unlinked.
  EXPECT_EQ(slots[7].links.prev, kNoIndex);
  EXPECT_EQ(slots[7].links.next, kNoIndex);
}

TEST(IndexListTest, MatchesStdListModel) {
  constexpr uint32_t kSlots = 64;
  std::array<Slot, kSlots> slots{};
  SlotList l(SlotLinks{slots.data()});
  std::list<uint32_t> model;
  std::mt19937_64 gen(99);
  for (int op = 0; op < 20'000; ++op) {
    const uint32_t i = static_cast<uint32_t>(gen() % kSlots);
    const int what = static_cast<int>(gen() % 3);
    if (what == 0) {
      if (!slots[i].links.linked()) {
        l.push_back(i);
        model.push_back(i);
      }
    } else if (what == 1) {
      if (slots[i].links.linked()) {
        l.remove(i);
        model.remove(i);
      }
    } else {
      const uint32_t got = l.pop_front();
      if (model.empty()) {
        ASSERT_EQ(got, kNoIndex);
      } else {
        ASSERT_EQ(got, model.front());
        model.pop_front();
      }
    }
    ASSERT_EQ(l.size(), model.size());
    ASSERT_EQ(l.empty(), model.empty());
    if (op % 97 == 0) {
      const std::vector<uint32_t> want(model.begin(), model.end());
      ASSERT_EQ(Walk(l), want) << "op " << op;
      ASSERT_EQ(WalkBack(l, slots.data()), want) << "op " << op;
      for (uint32_t s = 0; s < kSlots; ++s)
        ASSERT_EQ(slots[s].links.linked(), std::find(want.begin(), want.end(), s) != want.end());
    }
  }
}

// ----------------------------------------------------------- histogram.h

uint64_t ExactPercentile(const std::vector<uint64_t>& sorted, double q) {
  return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
}

TEST(LogHistogramTest, Empty) {
  LogHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.percentile(1.0), 0u);
}

TEST(LogHistogramTest, SmallValuesAreExact) {
  LogHistogram h;
  for (uint64_t v = 0; v < 64; ++v) h.add(v);
  EXPECT_EQ(h.count(), 64u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 63u);
  EXPECT_DOUBLE_EQ(h.mean(), 31.5);
  EXPECT_EQ(h.percentile(0.0), 0u);
  EXPECT_EQ(h.percentile(1.0), 63u);
  // Below 2*kSub every bucket holds one value.
  std::vector<uint64_t> sorted(64);
  for (uint64_t v = 0; v < 64; ++v) sorted[v] = v;
  for (double q = 0.0; q <= 1.0; q += 0.01) EXPECT_EQ(h.percentile(q), ExactPercentile(sorted, q)) << q;
}

TEST(LogHistogramTest, PercentilesWithinFourPercent) {
  std::mt19937_64 gen(2024);
  std::vector<uint64_t> samples;
  LogHistogram h;
  uint64_t mn = ~uint64_t{0}, mx = 0;
  long double sum = 0;
  for (int i = 0; i < 200'000; ++i) {
    // Log-uniform over [1, 2^40): exercises many octaves.
    const double e = std::uniform_real_distribution<double>(0.0, 40.0)(gen);
    const uint64_t v = static_cast<uint64_t>(std::exp2(e));
    samples.push_back(v);
    h.add(v);
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    sum += v;
  }
  std::sort(samples.begin(), samples.end());
  EXPECT_EQ(h.count(), samples.size());
  EXPECT_EQ(h.min(), mn);
  EXPECT_EQ(h.max(), mx);
  EXPECT_NEAR(h.mean(), static_cast<double>(sum / samples.size()), 1e-6 * h.mean());
  for (double q : {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
    const double exact = static_cast<double>(ExactPercentile(samples, q));
    const double got = static_cast<double>(h.percentile(q));
    EXPECT_NEAR(got, exact, 0.04 * exact) << "q=" << q;
    // The reported value is its bucket's upper edge: never below the truth.
    EXPECT_GE(got, exact) << "q=" << q;
  }
  EXPECT_EQ(h.percentile(1.0), mx);
  EXPECT_EQ(h.percentile(0.0), ExactPercentile(samples, 0.0));  // small values are exact
}

TEST(LogHistogramTest, WeightedAddAndExtremes) {
  LogHistogram h;
  h.add(1000, 3);
  h.add(10, 1);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.max(), 1000u);
  EXPECT_DOUBLE_EQ(h.mean(), 3010.0 / 4);
  EXPECT_EQ(h.percentile(0.0), 10u);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.5)), 1000.0, 40.0);
  EXPECT_EQ(h.percentile(1.0), 1000u);

  // The top bucket is addressable and the answer is capped by max.
  LogHistogram big;
  big.add(~uint64_t{0});
  big.add(uint64_t{1} << 63);
  EXPECT_EQ(big.max(), ~uint64_t{0});
  EXPECT_EQ(big.min(), uint64_t{1} << 63);
  EXPECT_EQ(big.percentile(1.0), ~uint64_t{0});
  const double p0 = static_cast<double>(big.percentile(0.0));
  EXPECT_NEAR(p0, std::ldexp(1.0, 63), 0.04 * std::ldexp(1.0, 63));
}

TEST(LogHistogramTest, Merge) {
  std::mt19937_64 gen(7);
  LogHistogram a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    const uint64_t v = 100 + gen() % 1'000'000;
    ((i % 3 == 0) ? a : b).add(v);
    all.add(v);
  }
  a.add(5);  // global min in a
  all.add(5);
  b.add(5'000'000);  // global max in b
  all.add(5'000'000);

  LogHistogram m = a;
  m.merge(b);
  EXPECT_EQ(m.count(), all.count());
  EXPECT_EQ(m.min(), 5u);
  EXPECT_EQ(m.max(), 5'000'000u);
  EXPECT_DOUBLE_EQ(m.mean(), all.mean());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 1.0}) EXPECT_EQ(m.percentile(q), all.percentile(q)) << q;

  // Merge the other way round: min from the argument.
  LogHistogram m2 = b;
  m2.merge(a);
  EXPECT_EQ(m2.min(), 5u);
  EXPECT_EQ(m2.max(), 5'000'000u);

  // Into an empty histogram, min/max come from the other one.
  LogHistogram e;
  e.merge(b);
  EXPECT_EQ(e.count(), b.count());
  EXPECT_EQ(e.min(), b.min());
  EXPECT_EQ(e.max(), b.max());
  // Merging an empty one changes nothing (in particular not min to 0).
  LogHistogram before = a;
  a.merge(LogHistogram());
  EXPECT_EQ(a.count(), before.count());
  EXPECT_EQ(a.min(), before.min());
  EXPECT_EQ(a.max(), before.max());
  EXPECT_EQ(a.percentile(0.5), before.percentile(0.5));
}

// ----------------------------------------------------------------- rng.h

// Reference xoshiro256** seeded by SplitMix64, written from Vigna's published
// code, to pin the sequence the simulator's reproducibility depends on.
struct RefXoshiro {
  uint64_t s[4];
  explicit RefXoshiro(uint64_t seed) {
    for (auto& w : s) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

TEST(RngTest, MatchesReferenceXoshiro256StarStar) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{42}, ~uint64_t{0}}) {
    Rng r(seed);
    RefXoshiro ref(seed);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(r.next_u64(), ref.next()) << "seed " << seed << " i " << i;
  }
  // SplitMix64's first output from state 0 is a published constant.
  RefXoshiro z(0);
  EXPECT_EQ(z.s[0], 0xe220a8397b1dcdafULL);
}

TEST(RngTest, DeterministicPerSeed) {
  Rng a(42), b(42), c(43);
  int same_ac = 0;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t va = a.next_u64();
    ASSERT_EQ(va, b.next_u64()) << i;
    if (va == c.next_u64()) ++same_ac;
  }
  EXPECT_EQ(same_ac, 0);
  // reseed restarts the sequence.
  Rng d(7);
  const uint64_t first = d.next_u64();
  d.next_u64();
  d.reseed(7);
  EXPECT_EQ(d.next_u64(), first);
  // Default seed is 1.
  Rng def, one(1);
  EXPECT_EQ(def.next_u64(), one.next_u64());
}

TEST(RngTest, Uniform01InRange) {
  Rng r(5);
  double sum = 0, lo = 1, hi = 0;
  constexpr int kN = 200'000;
  for (int i = 0; i < kN; ++i) {
    const double u = r.uniform01();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_NEAR(sum / kN, 0.5, 0.005);
  EXPECT_LT(lo, 0.001);
  EXPECT_GT(hi, 0.999);
}

TEST(RngTest, Bernoulli) {
  Rng r(11);
  for (int i = 0; i < 100'000; ++i) {
    ASSERT_FALSE(r.bernoulli(0.0));
    ASSERT_FALSE(r.bernoulli(-0.5));
    ASSERT_TRUE(r.bernoulli(1.0));
  }
  // p <= 0 does not consume a draw: the sequence is unchanged.
  Rng x(3), y(3);
  for (int i = 0; i < 100; ++i) x.bernoulli(0.0);
  EXPECT_EQ(x.next_u64(), y.next_u64());
  int hits = 0;
  constexpr int kN = 200'000;
  for (int i = 0; i < kN; ++i) hits += r.bernoulli(0.25);
  EXPECT_NEAR(static_cast<double>(hits) / kN, 0.25, 0.005);
}

TEST(RngTest, BelowIsInRangeAndRoughlyUniform) {
  Rng r(17);
  for (uint64_t n : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7}, uint64_t{1000},
                     uint64_t{1} << 40, ~uint64_t{0}}) {
    for (int i = 0; i < 10'000; ++i) ASSERT_LT(r.below(n), n) << n;
  }
  for (int i = 0; i < 100; ++i) ASSERT_EQ(r.below(1), 0u);

  constexpr int kBins = 10, kN = 100'000;
  std::array<int, kBins> counts{};
  for (int i = 0; i < kN; ++i) ++counts[r.below(kBins)];
  const double expected = static_cast<double>(kN) / kBins;
  double chi2 = 0;
  for (int c : counts) chi2 += (c - expected) * (c - expected) / expected;
  // 9 degrees of freedom: P(chi2 > 40) is about 1e-5.
  EXPECT_LT(chi2, 40.0);
  for (int c : counts) EXPECT_GT(c, 0);

  // Large n: the top and bottom halves are both reached about equally.
  int upper = 0;
  const uint64_t big = (uint64_t{1} << 63) + 12345;
  for (int i = 0; i < 10'000; ++i) upper += r.below(big) >= big / 2;
  EXPECT_NEAR(upper, 5'000, 300);
}

// --------------------------------------------------------------- bytes.h

TEST(BytesTest, ExactByteOrder) {
  uint8_t buf[12];
  std::fill(std::begin(buf), std::end(buf), 0xEE);
  store_be16(buf + 1, 0x1234);
  EXPECT_EQ(buf[0], 0xEE);
  EXPECT_EQ(buf[1], 0x12);
  EXPECT_EQ(buf[2], 0x34);
  EXPECT_EQ(buf[3], 0xEE);

  std::fill(std::begin(buf), std::end(buf), 0xEE);
  store_be32(buf + 1, 0x01020304u);
  EXPECT_EQ(buf[0], 0xEE);
  EXPECT_EQ(buf[1], 0x01);
  EXPECT_EQ(buf[2], 0x02);
  EXPECT_EQ(buf[3], 0x03);
  EXPECT_EQ(buf[4], 0x04);
  EXPECT_EQ(buf[5], 0xEE);

  std::fill(std::begin(buf), std::end(buf), 0xEE);
  store_be64(buf + 3, 0x0102030405060708ULL);
  EXPECT_EQ(buf[2], 0xEE);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(buf[3 + i], i + 1) << i;
  EXPECT_EQ(buf[11], 0xEE);

  const uint8_t in[8] = {0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x23, 0x45, 0x67};
  EXPECT_EQ(load_be16(in), 0xDEADu);
  EXPECT_EQ(load_be16(in + 1), 0xADBEu);
  EXPECT_EQ(load_be32(in), 0xDEADBEEFu);
  EXPECT_EQ(load_be32(in + 3), 0xEF012345u);
  EXPECT_EQ(load_be64(in), 0xDEADBEEF01234567ULL);
}

TEST(BytesTest, RoundTrips) {
  std::mt19937_64 gen(1);
  uint8_t buf[16];
  for (int i = 0; i < 10'000; ++i) {
    const uint64_t v = gen();
    const size_t off = static_cast<size_t>(gen() % 8);
    store_be16(buf + off, static_cast<uint16_t>(v));
    ASSERT_EQ(load_be16(buf + off), static_cast<uint16_t>(v));
    store_be32(buf + off, static_cast<uint32_t>(v));
    ASSERT_EQ(load_be32(buf + off), static_cast<uint32_t>(v));
    store_be64(buf + off, v);
    ASSERT_EQ(load_be64(buf + off), v);
    // Most significant byte first.
    ASSERT_EQ(buf[off], static_cast<uint8_t>(v >> 56));
    ASSERT_EQ(buf[off + 7], static_cast<uint8_t>(v));
  }
}

// -------------------------------------------------------------- status.h

int g_evaluations = 0;

absl::Status MaybeFail(bool fail) {
  ++g_evaluations;
  return fail ? absl::InvalidArgumentError("bad thing") : absl::OkStatus();
}

absl::Status Chain(bool fail_first, bool fail_second, int* reached) {
  RETURN_IF_ERROR(MaybeFail(fail_first));
  *reached = 1;
  RETURN_IF_ERROR(MaybeFail(fail_second));
  *reached = 2;
  return absl::OkStatus();
}

absl::StatusOr<int> Half(int x) {
  ++g_evaluations;
  if (x % 2) return absl::OutOfRangeError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::StatusOr<std::unique_ptr<int>> MakeBox(int v) {
  if (v < 0) return absl::NotFoundError("negative");
  return std::make_unique<int>(v);
}

absl::Status UseBox(int v, int* out) {
  std::unique_ptr<int> box;
  ASSIGN_OR_RETURN(box, MakeBox(v));  // assign to an existing, move-only lhs
  *out = *box;
  return absl::OkStatus();
}

TEST(StatusTest, ReturnIfErrorPropagates) {
  int reached = 0;
  g_evaluations = 0;
  EXPECT_TRUE(Chain(false, false, &reached).ok());
  EXPECT_EQ(reached, 2);
  EXPECT_EQ(g_evaluations, 2);  // each expression evaluated once

  reached = 0;
  absl::Status s = Chain(true, false, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "bad thing");
  EXPECT_EQ(reached, 0);

  reached = 0;
  s = Chain(false, true, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reached, 1);
}

TEST(StatusTest, AssignOrReturnPropagates) {
  g_evaluations = 0;
  absl::StatusOr<int> q = Quarter(12);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, 3);
  EXPECT_EQ(g_evaluations, 2);

  q = Quarter(7);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(q.status().message(), "odd");
  q = Quarter(6);  // 6/2 = 3 is odd: fails at the second step
  EXPECT_EQ(q.status().code(), absl::StatusCode::kOutOfRange);

  int out = 0;
  EXPECT_TRUE(UseBox(9, &out).ok());
  EXPECT_EQ(out, 9);
  out = 0;
  absl::Status s = UseBox(-1, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(out, 0);
}

// ----------------------------------------------------------------- log.h

constexpr LogLevel kAllLevels[] = {LogLevel::kError, LogLevel::kWarn, LogLevel::kInfo,
                                   LogLevel::kDebug, LogLevel::kTrace};

// Snapshot of what is enabled, to check "leaves levels unchanged".
std::vector<bool> EnabledSnapshot() {
  std::vector<bool> out;
  for (int c = 0; c < static_cast<int>(LogComponent::kCount); ++c)
    for (LogLevel l : kAllLevels) out.push_back(Log::enabled(static_cast<LogComponent>(c), l));
  return out;
}

struct Captured {
  LogComponent comp;
  LogLevel level;
  std::string line;
};
std::vector<Captured>* g_captured = nullptr;

void CaptureSink(LogComponent c, LogLevel l, std::string_view line) {
  if (g_captured) g_captured->push_back({c, l, std::string(line)});
}

class LogTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Log::configure("warn"));
    g_captured = &captured_;
  }
  void TearDown() override {
    Log::set_sink(nullptr);
    g_captured = nullptr;
    Log::configure("warn");
  }
  std::vector<Captured> captured_;
};

TEST_F(LogTest, BareLevelSetsEveryComponent) {
  ASSERT_TRUE(Log::configure("warn"));
  for (int c = 0; c < static_cast<int>(LogComponent::kCount); ++c) {
    const auto comp = static_cast<LogComponent>(c);
    EXPECT_TRUE(Log::enabled(comp, LogLevel::kError)) << c;
    EXPECT_TRUE(Log::enabled(comp, LogLevel::kWarn)) << c;
    EXPECT_FALSE(Log::enabled(comp, LogLevel::kInfo)) << c;
  }
  ASSERT_TRUE(Log::configure("trace"));
  for (int c = 0; c < static_cast<int>(LogComponent::kCount); ++c)
    EXPECT_TRUE(Log::enabled(static_cast<LogComponent>(c), LogLevel::kTrace)) << c;
  ASSERT_TRUE(Log::configure("off"));
  for (int c = 0; c < static_cast<int>(LogComponent::kCount); ++c)
    EXPECT_FALSE(Log::enabled(static_cast<LogComponent>(c), LogLevel::kError)) << c;
}

TEST_F(LogTest, PerComponentSpec) {
  ASSERT_TRUE(Log::configure("pds=debug,sim=info"));
  EXPECT_TRUE(Log::enabled(LogComponent::kPds, LogLevel::kDebug));
  EXPECT_FALSE(Log::enabled(LogComponent::kPds, LogLevel::kTrace));
  EXPECT_TRUE(Log::enabled(LogComponent::kSim, LogLevel::kInfo));
  EXPECT_FALSE(Log::enabled(LogComponent::kSim, LogLevel::kDebug));
  // Others keep the previous level (warn).
  EXPECT_TRUE(Log::enabled(LogComponent::kSes, LogLevel::kWarn));
  EXPECT_FALSE(Log::enabled(LogComponent::kSes, LogLevel::kInfo));
  EXPECT_FALSE(Log::enabled(LogComponent::kBase, LogLevel::kInfo));
  // A bare level then an override, applied left to right.
  ASSERT_TRUE(Log::configure("error,lb=trace"));
  EXPECT_TRUE(Log::enabled(LogComponent::kLb, LogLevel::kTrace));
  EXPECT_FALSE(Log::enabled(LogComponent::kPds, LogLevel::kWarn));
  EXPECT_TRUE(Log::enabled(LogComponent::kPds, LogLevel::kError));
  // set_level / set_all.
  Log::set_level(LogComponent::kCc, LogLevel::kInfo);
  EXPECT_TRUE(Log::enabled(LogComponent::kCc, LogLevel::kInfo));
  Log::set_all(LogLevel::kOff);
  EXPECT_FALSE(Log::enabled(LogComponent::kCc, LogLevel::kError));
}

TEST_F(LogTest, MalformedSpecsChangeNothing) {
  ASSERT_TRUE(Log::configure("pds=debug,sim=info"));
  const std::vector<bool> before = EnabledSnapshot();
  for (const char* bad : {"pds=loud", "nosuch=info", "loud", "pds=debug,nosuch=info",
                          "sim=trace,pds=loud", "trace,pds=", "=debug", "PDS=debug",
                          "pds=debug,,sim=info"}) {
    EXPECT_FALSE(Log::configure(bad)) << bad;
    EXPECT_EQ(EnabledSnapshot(), before) << "after rejecting \"" << bad << "\"";
  }
  EXPECT_TRUE(Log::enabled(LogComponent::kPds, LogLevel::kDebug));
  EXPECT_FALSE(Log::enabled(LogComponent::kSim, LogLevel::kTrace));
}

TEST_F(LogTest, ComponentNames) {
  EXPECT_STREQ(Log::component_name(LogComponent::kBase), "base");
  EXPECT_STREQ(Log::component_name(LogComponent::kPds), "pds");
  EXPECT_STREQ(Log::component_name(LogComponent::kLb), "lb");
  EXPECT_STREQ(Log::component_name(LogComponent::kEngine), "engine");
  EXPECT_STREQ(Log::component_name(LogComponent::kSim), "sim");
  EXPECT_STREQ(Log::component_name(LogComponent::kApp), "app");
}

int CountedArg(int* n) {
  ++*n;
  return 42;
}

TEST_F(LogTest, CustomSinkReceivesFormattedLines) {
  Log::set_sink(CaptureSink);
  ASSERT_TRUE(Log::configure("warn,pds=debug"));
  SHOAL_LOG(kPds, kWarn, "pdc %d lost %s after %.1f us", 7, "psn", 2.5);
  SHOAL_LOG(kPds, kDebug, "debug %u", 3u);
  SHOAL_LOG(kSes, kError, "plain");

  // Disabled: not delivered and arguments not evaluated.
  int evaluated = 0;
  SHOAL_LOG(kSes, kInfo, "hidden %d", CountedArg(&evaluated));
  SHOAL_LOG(kPds, kTrace, "hidden %d", CountedArg(&evaluated));
  EXPECT_EQ(evaluated, 0);

  ASSERT_EQ(captured_.size(), 3u);
  EXPECT_EQ(captured_[0].comp, LogComponent::kPds);
  EXPECT_EQ(captured_[0].level, LogLevel::kWarn);
  EXPECT_EQ(captured_[0].line, "pdc 7 lost psn after 2.5 us");
  EXPECT_EQ(captured_[1].comp, LogComponent::kPds);
  EXPECT_EQ(captured_[1].level, LogLevel::kDebug);
  EXPECT_EQ(captured_[1].line, "debug 3");
  EXPECT_EQ(captured_[2].comp, LogComponent::kSes);
  EXPECT_EQ(captured_[2].level, LogLevel::kError);
  EXPECT_EQ(captured_[2].line, "plain");

  // Resetting to the default sink stops delivery here.
  Log::set_sink(nullptr);
  SHOAL_LOG(kPds, kError, "to stderr %d", CountedArg(&evaluated));
  EXPECT_EQ(evaluated, 1);
  EXPECT_EQ(captured_.size(), 3u);
}

TEST(RingBitmap, GrowKeepsTheWindowStartingAtFrom) {
  for (uint32_t from : {0u, 37u, 60u, 0xFFFFFFF0u}) {
    RingBitmap b(64);
    std::vector<uint32_t> set_pos = {from, from + 1, from + 13, from + 63};
    for (uint32_t p : set_pos) b.set(p);
    b.grow(256, from);
    EXPECT_EQ(b.capacity(), 256u);
    for (uint32_t i = 0; i < 256; ++i) {
      const bool want = std::find(set_pos.begin(), set_pos.end(), from + i) != set_pos.end();
      EXPECT_EQ(b.test(from + i), want) << "from " << from << " +" << i;
    }
    b.set(from + 200);
    EXPECT_TRUE(b.test(from + 200));
    EXPECT_FALSE(b.test(from + 199));
  }
}

// ---- Slab ---------------------------------------------------------------------

TEST(Slab, HandsOutEachIndexOnceAndReportsFull) {
  Slab<uint64_t> slab(100);
  std::vector<bool> out(100, false);
  for (int i = 0; i < 100; ++i) {
    const uint32_t k = slab.alloc();
    ASSERT_LT(k, 100u);
    ASSERT_FALSE(out[k]) << "index " << k << " handed out twice";
    out[k] = true;
    slab[k] = k * 3;
  }
  EXPECT_TRUE(slab.full());
  EXPECT_EQ(slab.alloc(), kNoIndex);
  EXPECT_EQ(slab.in_use(), 100u);
  slab.free(42);
  slab.free(7);
  EXPECT_EQ(slab.in_use(), 98u);
  // Freed indices come back (last freed first), with their old bytes intact.
  EXPECT_EQ(slab.alloc(), 7u);
  EXPECT_EQ(slab.alloc(), 42u);
  EXPECT_EQ(slab[42], 126u);
  EXPECT_EQ(slab.alloc(), kNoIndex);
}

TEST(Slab, RandomAllocFreeMatchesAModel) {
  Slab<int> slab(64);
  std::vector<uint32_t> held;
  Rng rng(9);
  for (int step = 0; step < 20000; ++step) {
    if (!held.empty() && (rng.bernoulli(0.5) || slab.full())) {
      const size_t j = rng.below(held.size());
      slab.free(held[j]);
      held[j] = held.back();
      held.pop_back();
    } else {
      const uint32_t k = slab.alloc();
      ASSERT_NE(k, kNoIndex);
      ASSERT_EQ(std::count(held.begin(), held.end(), k), 0);
      held.push_back(k);
    }
    ASSERT_EQ(slab.in_use(), held.size());
  }
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

struct TwoCounters {
  uint64_t a = 0;
  uint64_t b = 0;
};

TEST(Counters, AddCountersSumsEveryField) {
  TwoCounters total{1, 2};
  add_counters(total, TwoCounters{10, 20});
  add_counters(total, TwoCounters{100, 0});
  EXPECT_EQ(total.a, 111u);
  EXPECT_EQ(total.b, 22u);
}

}  // namespace
}  // namespace shoal
