// PairSim tests: determinism by seed, the chaos knobs doing what they say,
// and exactly-once delivery through the real transport under that chaos.
#include "drivers/sim/pair.h"

#include <gtest/gtest.h>

#include <vector>

namespace shoal::sim {
namespace {

struct RunStats {
  uint64_t delivered = 0, duplicates = 0, bad = 0, send_errors = 0, events = 0;
  int64_t end_ns = 0;
  LinkStats link0;
};

// Streams `n` messages of `size` bytes from host 0 to host 1, each tagged by
// its index in the immediate data and filled with a pattern of that index.
RunStats stream(uint64_t seed, const LinkConfig& link, int n, size_t size,
                pds::DeliveryMode mode = pds::DeliveryMode::kRud) {
  ses::TransportConfig cfg;
  cfg.mtu_payload = 1024;
  PairSim sim(cfg, link, seed);
  std::vector<std::vector<uint8_t>> payloads(n), rbufs(64, std::vector<uint8_t>(size));
  for (int i = 0; i < n; ++i) payloads[i].assign(size, static_cast<uint8_t>(i * 31 + 7));
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(sim.host(1).post_recv(0, rbufs[i], i).ok());
  std::vector<int> seen(n, 0);
  RunStats s;
  int posted = 0, done = 0;
  ses::Completion wc[32];
  auto step = [&] {
    uint32_t k;
    while ((k = sim.host(0).poll_completions(wc, 32)) > 0)
      for (uint32_t i = 0; i < k; ++i) {
        ++done;
        s.send_errors += wc[i].status != ses::WcStatus::kSuccess;
      }
    while (posted < n && posted - done < 32) {
      ses::SendRequest r;
      r.peer = PairSim::address(1);
      r.data = payloads[posted];
      r.has_imm = true;
      r.imm = posted;
      r.mode = mode;
      r.wr_id = posted;
      if (!sim.host(0).post_send(r).ok()) break;
      ++posted;
    }
    while ((k = sim.host(1).poll_completions(wc, 32)) > 0)
      for (uint32_t i = 0; i < k; ++i) {
        const auto& c = wc[i];
        auto& buf = rbufs[c.wr_id];
        if (c.status != ses::WcStatus::kSuccess || c.imm >= static_cast<uint64_t>(n) || buf != payloads[c.imm]) ++s.bad;
        else if (seen[c.imm]++) ++s.duplicates;
        else ++s.delivered;
        EXPECT_TRUE(sim.host(1).post_recv(0, buf, c.wr_id).ok());
      }
    return done == n && s.delivered + s.bad >= static_cast<uint64_t>(n);
  };
  EXPECT_TRUE(sim.run(step, TimePoint::zero() + Duration::seconds(10))) << "seed " << seed;
  s.events = sim.events();
  s.end_ns = sim.now().ns();
  s.link0 = sim.link_stats(0);
  return s;
}

LinkConfig chaos() {
  LinkConfig l;
  l.loss = 0.05;
  l.reorder = 0.2;
  l.dup = 0.05;
  l.corrupt = 0.01;
  return l;
}

TEST(PairSim, SameSeedSameRunDifferentSeedDifferentRun) {
  const RunStats a = stream(3, chaos(), 300, 3000);
  const RunStats b = stream(3, chaos(), 300, 3000);
  const RunStats c = stream(4, chaos(), 300, 3000);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.end_ns, b.end_ns);
  EXPECT_EQ(a.link0.dropped, b.link0.dropped);
  EXPECT_NE(a.end_ns, c.end_ns);
}

TEST(PairSim, ChaosRatesMatchTheirProbabilities) {
  const RunStats s = stream(5, chaos(), 2000, 1024);
  const double pkts = static_cast<double>(s.link0.packets);
  ASSERT_GT(pkts, 2000);
  EXPECT_NEAR(s.link0.dropped / pkts, 0.05, 0.015);
  EXPECT_NEAR(s.link0.reordered / pkts, 0.2 * 0.95, 0.03);
  EXPECT_NEAR(s.link0.duplicated / pkts, 0.05 * 0.95, 0.015);
  EXPECT_NEAR(s.link0.corrupted / pkts, 0.01 * 0.95 * 1.05, 0.006);
}

TEST(PairSim, ExactlyOnceIntactUnderChaosBothModes) {
  for (auto mode : {pds::DeliveryMode::kRud, pds::DeliveryMode::kRod}) {
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      const RunStats s = stream(seed, chaos(), 400, 2500, mode);
      EXPECT_EQ(s.delivered, 400u) << "seed " << seed << " mode " << pds::to_string(mode);
      EXPECT_EQ(s.duplicates, 0u) << "seed " << seed;
      EXPECT_EQ(s.bad, 0u) << "seed " << seed;
      EXPECT_EQ(s.send_errors, 0u) << "seed " << seed;
    }
  }
}

TEST(PairSim, LinkRateBoundsTheRun) {
  // 1000 x 1024 B at 10 Gb/s cannot finish before its serialization time.
  LinkConfig l;
  l.rate_gbps = 10;
  const RunStats s = stream(1, l, 1000, 1024);
  const double wire_ns = 1000.0 * (1024 + 12 + 44 + 4 + 66) * 8 / 10.0;
  EXPECT_GE(static_cast<double>(s.end_ns), wire_ns);
  EXPECT_LE(static_cast<double>(s.end_ns), wire_ns * 1.3);
}

}  // namespace
}  // namespace shoal::sim
