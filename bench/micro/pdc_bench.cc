// Google Benchmark of the PDS/SES hot path as a whole: messages posted,
// segmented, encoded, decoded, placed, acknowledged with ACK_CC (SACK
// processing included) and completed between two transports. The codecs
// alone are in wire_bench; the stable cost figure is callgrind's count of
// instructions per message (docs/results/core.md).
#include <benchmark/benchmark.h>

#include <vector>

#include "drivers/sim/direct.h"
#include "lib/ses/transport.h"

namespace shoal {
namespace {

// Messages of `size` bytes, `window` at a time, through two transports.
void BM_MessageRound(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  ses::TransportConfig cfg;
  ses::Transport a(cfg, 1, 1), b(cfg, 2, 2);
  std::vector<uint8_t> payload(size, 0x5a), rbuf(size * 1024);
  for (int i = 0; i < 1024; ++i) (void)b.post_recv(0, {rbuf.data() + i * size, size}, i);
  sim::DirectLink pump(32);
  ses::Completion wc[64];
  TimePoint now = TimePoint::zero();
  uint64_t done = 0;
  for (auto _ : state) {
    for (int k = 0; k < 32; ++k) {
      ses::SendRequest r;
      r.peer = 2;
      r.data = payload;
      (void)a.post_send(r);
    }
    pump.pump(a, b, 1, now);
    pump.pump(b, a, 2, now);
    now += Duration::micros(5);
    if (a.next_deadline() <= now) a.on_timeout(now);
    if (b.next_deadline() <= now) b.on_timeout(now);
    pump.pump(b, a, 2, now);
    uint32_t n;
    while ((n = a.poll_completions(wc, 64)) > 0) done += n;
    while ((n = b.poll_completions(wc, 64)) > 0)
      for (uint32_t i = 0; i < n; ++i) (void)b.post_recv(0, {rbuf.data() + wc[i].wr_id * size, size}, wc[i].wr_id);
  }
  state.SetItemsProcessed(static_cast<int64_t>(done));
}
BENCHMARK(BM_MessageRound)->Arg(64)->Arg(4096);

}  // namespace
}  // namespace shoal

BENCHMARK_MAIN();
