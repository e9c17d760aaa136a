// Micro benchmarks of the engine runtime's building blocks in lib/base: the
// timer wheel (arm + fire of 100k RTO-like timers; re-arm, the per-ACK
// operation) and the SPSC ring (burst of 32 in and out on one thread). Each
// has a same-run reference beside it (BENCHMARKS.md): a binary heap and an
// ordered multimap for the wheel, plain memcpy of the same bytes for the ring.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <queue>
#include <utility>
#include <vector>

#include "lib/base/rng.h"
#include "lib/base/spsc_ring.h"
#include "lib/base/time.h"
#include "lib/base/timer_wheel.h"

namespace shoal {
namespace {

constexpr int64_t kSpreadNs = 10'000'000;  // deadlines up to 10 ms out: RTO-like
constexpr int64_t kStepNs = 10'000;        // the engine polls timers every 10 us here

// Arms n timers at random deadlines in (now, now + 10 ms], then advances in
// 10 us steps until all fired. Reported per timer (items = timers).
void BM_TimerWheelArmFire(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  TimerWheel w(n);
  Rng rng(1);
  TimePoint now = TimePoint::zero();
  uint64_t fired = 0;
  for (auto _ : state) {
    for (uint32_t i = 0; i < n; ++i)
      w.arm(now + Duration::nanos(1 + static_cast<int64_t>(rng.below(kSpreadNs))), i);
    while (!w.empty()) {
      now += Duration::nanos(kStepNs);
      w.advance(now, [&](uint32_t, uint64_t cookie) { fired += cookie; });
    }
  }
  benchmark::DoNotOptimize(fired);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_TimerWheelArmFire)->Arg(100000)->Unit(benchmark::kMillisecond);

// Reference: the same workload on a binary heap of (deadline, cookie).
void BM_RefHeapArmFire(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  using Entry = std::pair<int64_t, uint64_t>;
  std::vector<Entry> storage;
  storage.reserve(n);
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap(std::greater<Entry>(),
                                                                           std::move(storage));
  Rng rng(1);
  int64_t now = 0;
  uint64_t fired = 0;
  for (auto _ : state) {
    for (uint32_t i = 0; i < n; ++i)
      heap.push({now + 1 + static_cast<int64_t>(rng.below(kSpreadNs)), i});
    while (!heap.empty()) {
      now += kStepNs;
      while (!heap.empty() && heap.top().first <= now) {
        fired += heap.top().second;
        heap.pop();
      }
    }
  }
  benchmark::DoNotOptimize(fired);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_RefHeapArmFire)->Arg(100000)->Unit(benchmark::kMillisecond);

// The ACK path: with n timers armed, push one (random) RTO out; time moves
// 10 us every 64 re-arms, so timers also cascade and some fire.
void BM_TimerWheelRearm(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  TimerWheel w(n);
  Rng rng(2);
  TimePoint now = TimePoint::zero();
  std::vector<uint32_t> handles(n);
  for (uint32_t i = 0; i < n; ++i)
    handles[i] = w.arm(now + Duration::nanos(1 + static_cast<int64_t>(rng.below(kSpreadNs))), i);
  auto refire = [&](uint32_t h, uint64_t) { w.rearm(h, now + Duration::nanos(kSpreadNs)); };
  uint64_t k = 0;
  for (auto _ : state) {
    const uint32_t h = handles[rng.below(n)];
    w.rearm(h,
            now + Duration::nanos(kSpreadNs / 2 + static_cast<int64_t>(rng.below(kSpreadNs / 2))));
    if ((++k & 63) == 0) {
      now += Duration::nanos(kStepNs);
      w.advance(now, refire);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TimerWheelRearm)->Arg(100000);

// Reference: re-arm as erase + insert in an ordered multimap keyed by deadline.
void BM_RefMultimapRearm(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  std::multimap<int64_t, uint32_t> timers;
  std::vector<std::multimap<int64_t, uint32_t>::iterator> its(n);
  Rng rng(2);
  int64_t now = 0;
  for (uint32_t i = 0; i < n; ++i)
    its[i] = timers.emplace(now + 1 + static_cast<int64_t>(rng.below(kSpreadNs)), i);
  uint64_t k = 0;
  for (auto _ : state) {
    const uint32_t i = static_cast<uint32_t>(rng.below(n));
    timers.erase(its[i]);
    its[i] =
        timers.emplace(now + kSpreadNs / 2 + static_cast<int64_t>(rng.below(kSpreadNs / 2)), i);
    if ((++k & 63) == 0) {
      now += kStepNs;
      while (timers.begin()->first <= now) {
        const uint32_t j = timers.begin()->second;
        timers.erase(timers.begin());
        its[j] = timers.emplace(now + kSpreadNs, j);
      }
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RefMultimapRearm)->Arg(100000);

// next_deadline() as an idle engine calls it: cached, so O(1).
void BM_TimerWheelNextDeadline(benchmark::State& state) {
  TimerWheel w(100000);
  Rng rng(3);
  for (uint32_t i = 0; i < 100000; ++i)
    w.arm(TimePoint::zero() + Duration::nanos(1 + static_cast<int64_t>(rng.below(kSpreadNs))), i);
  for (auto _ : state) benchmark::DoNotOptimize(w.next_deadline());
}
BENCHMARK(BM_TimerWheelNextDeadline);

struct Command {  // the size of a typical engine command: 32 bytes
  uint64_t op, a, b, c;
};

// One thread: enqueue a burst of 32 commands, dequeue them. Items = commands.
void BM_SpscBurst32(benchmark::State& state) {
  SpscRing<Command> ring(1024);
  Command in[32], out[32];
  for (uint64_t i = 0; i < 32; ++i) in[i] = {i, i, i, i};
  for (auto _ : state) {
    benchmark::DoNotOptimize(ring.enqueue_burst(in, 32));
    benchmark::DoNotOptimize(ring.dequeue_burst(out, 32));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 32);
}
BENCHMARK(BM_SpscBurst32);

// Reference: the copying floor, two memcpy of the same 32 commands through a
// buffer, no atomics.
void BM_RefMemcpyBurst32(benchmark::State& state) {
  std::vector<Command> slots(1024);
  Command in[32], out[32];
  for (uint64_t i = 0; i < 32; ++i) in[i] = {i, i, i, i};
  size_t pos = 0;
  for (auto _ : state) {
    std::memcpy(&slots[pos], in, sizeof(in));
    benchmark::ClobberMemory();
    std::memcpy(out, &slots[pos], sizeof(out));
    benchmark::ClobberMemory();
    pos = (pos + 32) & 1023;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 32);
}
BENCHMARK(BM_RefMemcpyBurst32);

}  // namespace
}  // namespace shoal

BENCHMARK_MAIN();
