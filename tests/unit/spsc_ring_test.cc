// Tests for SpscRing: single-thread semantics (empty, full, wrap-around,
// partial bursts) and a two-thread stress that pushes 10 million sequence
// numbers through a 1024-slot ring and checks order and completeness.
//
// The second thread comes from std::async and idle sides call
// sched_yield(). The test lives in tests/unit, not beside the ring in
// lib/base, because the I/O-free core's directories hold no threads at all.
#include "lib/base/spsc_ring.h"

#include <sched.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <future>
#include <vector>

#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(SpscRingTest, EmptyAndFull) {
  SpscRing<uint64_t> r(8);
  EXPECT_EQ(r.capacity(), 8u);
  EXPECT_EQ(r.size_approx(), 0u);
  EXPECT_TRUE(r.empty_approx());
  uint64_t x = 0;
  EXPECT_FALSE(r.dequeue(&x));
  for (uint64_t i = 0; i < 8; ++i) EXPECT_TRUE(r.enqueue(i));
  EXPECT_EQ(r.size_approx(), 8u);  // all slots usable
  EXPECT_FALSE(r.enqueue(99));
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(r.dequeue(&x));
    EXPECT_EQ(x, i);
  }
  EXPECT_FALSE(r.dequeue(&x));
  EXPECT_EQ(r.size_approx(), 0u);
}

TEST(SpscRingTest, CapacityOne) {
  SpscRing<uint32_t> r(1);
  EXPECT_TRUE(r.enqueue(5));
  EXPECT_FALSE(r.enqueue(6));
  uint32_t x = 0;
  EXPECT_TRUE(r.dequeue(&x));
  EXPECT_EQ(x, 5u);
  EXPECT_TRUE(r.enqueue(7));
}

TEST(SpscRingTest, BurstsArePartiallyAccepted) {
  SpscRing<uint32_t> r(16);
  std::array<uint32_t, 32> in{}, out{};
  for (uint32_t i = 0; i < in.size(); ++i) in[i] = 100 + i;
  EXPECT_EQ(r.enqueue_burst(in.data(), 10), 10u);
  EXPECT_EQ(r.enqueue_burst(in.data() + 10, 10), 6u);  // only 6 fit
  EXPECT_EQ(r.enqueue_burst(in.data() + 16, 1), 0u);
  EXPECT_EQ(r.dequeue_burst(out.data(), 4), 4u);
  EXPECT_EQ(r.dequeue_burst(out.data() + 4, 32), 12u);  // only 12 there
  for (uint32_t i = 0; i < 16; ++i) EXPECT_EQ(out[i], 100 + i);
  EXPECT_EQ(r.dequeue_burst(out.data(), 32), 0u);
  EXPECT_EQ(r.enqueue_burst(in.data(), 0), 0u);
  EXPECT_EQ(r.dequeue_burst(out.data(), 0), 0u);
}

struct Item {
  uint64_t seq;
  uint32_t a;
  uint16_t b;
  uint8_t c[6];
};

TEST(SpscRingTest, WrapsAroundManyTimesWithStructs) {
  SpscRing<Item> r(8);
  uint64_t next_in = 0, next_out = 0;
  std::array<Item, 7> buf{};
  // Odd burst sizes so every slot boundary is split at some point, and the
  // 32-bit counters are exercised well past the array size.
  for (int round = 0; round < 10000; ++round) {
    const uint32_t want = 1 + static_cast<uint32_t>(round % 7);
    for (uint32_t i = 0; i < want; ++i)
      buf[i] = Item{next_in + i, static_cast<uint32_t>(next_in + i) * 3, 7, {1, 2, 3, 4, 5, 6}};
    const uint32_t put = r.enqueue_burst(buf.data(), want);
    next_in += put;
    EXPECT_LE(r.size_approx(), 8u);
    const uint32_t take = 1 + static_cast<uint32_t>((round * 5) % 7);
    const uint32_t got = r.dequeue_burst(buf.data(), take);
    for (uint32_t i = 0; i < got; ++i) {
      ASSERT_EQ(buf[i].seq, next_out);
      ASSERT_EQ(buf[i].a, static_cast<uint32_t>(next_out) * 3);
      ASSERT_EQ(buf[i].c[5], 6);
      ++next_out;
    }
    EXPECT_EQ(r.size_approx(), next_in - next_out);
  }
  EXPECT_GT(next_out, 20000u);
}

TEST(SpscRingTest, TwoThreadsTenMillionInOrder) {
  constexpr uint64_t kItems = 10'000'000;
  constexpr uint32_t kBurst = 32;
  SpscRing<uint64_t> r(1024);

  // Consumer on another thread; the test thread produces.
  auto consumer = std::async(std::launch::async, [&r] {
    std::array<uint64_t, kBurst> buf;
    uint64_t expect = 0, bad = 0, empty_polls = 0;
    while (expect < kItems) {
      // Vary the burst size so consumer and producer bursts do not align.
      const uint32_t want = 1 + static_cast<uint32_t>(expect % kBurst);
      const uint32_t got = r.dequeue_burst(buf.data(), want);
      if (got == 0) {
        ++empty_polls;
        sched_yield();  // two busy threads on two loaded cores: let others run
        continue;
      }
      for (uint32_t i = 0; i < got; ++i) bad += buf[i] != expect++;
    }
    return std::array<uint64_t, 2>{bad, empty_polls};
  });

  std::array<uint64_t, kBurst> buf;
  uint64_t next = 0, full_polls = 0;
  while (next < kItems) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kBurst, kItems - next));
    for (uint32_t i = 0; i < n; ++i) buf[i] = next + i;
    const uint32_t put = r.enqueue_burst(buf.data(), n);
    if (put == 0) {
      ++full_polls;
      sched_yield();
    }
    next += put;
  }
  const auto [bad, empty_polls] = consumer.get();
  EXPECT_EQ(bad, 0u) << "items out of order or corrupted";
  EXPECT_EQ(r.size_approx(), 0u);
  uint64_t x;
  EXPECT_FALSE(r.dequeue(&x));
  std::printf("[ info ] full polls %llu, empty polls %llu\n",
              static_cast<unsigned long long>(full_polls),
              static_cast<unsigned long long>(empty_polls));
}

}  // namespace
}  // namespace shoal
