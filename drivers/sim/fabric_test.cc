// FabricSim tests: topology sizes and hop counts, the unloaded round trip of a
// lone message per path length, per-flow ECMP (same entropy, same path; many
// entropies, every uplink; no polarization between tiers), drop-tail vs
// trimming under incast with the transport still delivering everything, ECN
// step and RED marking, link failure before and after routing converges,
// queue sampling, determinism. Every run is seeded; failures print the seed.
#include "drivers/sim/fabric.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <numeric>
#include <set>
#include <vector>

namespace shoal::sim {
namespace {

ses::TransportConfig small_host(uint32_t) {
  ses::TransportConfig c;
  c.max_send_msgs = 256;
  c.max_recv_msgs = 1024;
  c.max_qps = 4;
  c.pool.max_pdcs = 64;
  return c;
}

FabricConfig fat_tree(uint32_t k, uint64_t seed = 13) {
  FabricConfig c;
  c.topology = Topology::kFatTree;
  c.k = k;
  c.seed = seed;
  return c;
}

TEST(FabricSim, FatTreeSizesAndHops) {
  for (uint32_t k : {4u, 8u}) {
    FabricSim sim(fat_tree(k), small_host);
    EXPECT_EQ(sim.hosts(), k * k * k / 4) << "k=" << k;
    EXPECT_EQ(sim.switches(), k * k + k * k / 4) << "k=" << k;
    // Each host one port, every switch k ports.
    EXPECT_EQ(sim.ports(), sim.hosts() + sim.switches() * k) << "k=" << k;
    EXPECT_EQ(sim.edge_uplinks().size(), k * k / 2 * k / 2);
    EXPECT_EQ(sim.agg_uplinks().size(), k * k / 2 * k / 2);
    EXPECT_DOUBLE_EQ(sim.oversubscription(), 1.0);
  }
  FabricSim sim(fat_tree(8), small_host);
  EXPECT_EQ(sim.hops(0, 0), 0u);
  EXPECT_EQ(sim.hops(0, 3), 2u);  // one edge holds hosts 0..3
  EXPECT_EQ(sim.hops(0, 4), 4u);  // same pod (hosts 0..15)
  EXPECT_EQ(sim.hops(0, 15), 4u);
  EXPECT_EQ(sim.hops(0, 16), 6u);  // next pod
  EXPECT_EQ(sim.hops(127, 0), 6u);
  // Every link joins the nodes it claims to, in both directions.
  for (uint32_t p = 0; p < sim.ports(); ++p) {
    ASSERT_NE(sim.reverse(p), ~0u) << sim.port_name(p);
    EXPECT_EQ(sim.reverse(sim.reverse(p)), p);
    EXPECT_EQ(sim.port_peer(p), sim.port_owner(sim.reverse(p)));
  }
  EXPECT_EQ(sim.port_name(sim.host_uplink(5)), "h5:p0->edge1");
  EXPECT_EQ(sim.port_name(sim.core_link(0)), "agg0:p4->core0");
}

TEST(FabricSim, LeafSpineSizesHopsAndOversubscription) {
  FabricConfig c;
  c.topology = Topology::kLeafSpine;
  c.leaves = 4;
  c.hosts_per_leaf = 8;
  c.spines = 2;
  c.uplink_rate_gbps = 100;
  FabricSim sim(c, small_host);
  EXPECT_EQ(sim.hosts(), 32u);
  EXPECT_EQ(sim.switches(), 6u);
  EXPECT_EQ(sim.hops(0, 7), 2u);
  EXPECT_EQ(sim.hops(0, 8), 4u);
  EXPECT_DOUBLE_EQ(sim.oversubscription(), 4.0);  // 8 x 100 down, 2 x 100 up
  EXPECT_EQ(sim.edge_uplinks().size(), 8u);
  EXPECT_TRUE(sim.agg_uplinks().empty());
  EXPECT_EQ(sim.port_name(sim.core_link(1)), "leaf0:p9->spine1");
  // Without an explicit uplink rate, the ratio sets it.
  c.uplink_rate_gbps = 0;
  c.oversubscription = 2.0;
  FabricSim sim2(c, small_host);
  EXPECT_DOUBLE_EQ(sim2.port_rate_gbps(sim2.core_link(0)), 200.0);
  EXPECT_DOUBLE_EQ(sim2.oversubscription(), 2.0);
}

TEST(FabricSim, LargeFatTreeBuilds) {
  FabricSim sim(fat_tree(16), small_host);
  EXPECT_EQ(sim.hosts(), 1024u);
  EXPECT_EQ(sim.switches(), 320u);
  EXPECT_EQ(sim.hops(0, 1023), 6u);
}

// ---- traffic helpers --------------------------------------------------------------

struct Result {
  uint64_t received = 0, sent = 0, errors = 0;
  TimePoint end;
  std::vector<TimePoint> sender_done;
  FabricStats stats;
  std::vector<uint64_t> port_bytes;
  bool ok = false;
};

// Each of `senders` sends `size` bytes to `dst` at t = 0 (messages of at most
// `msg` bytes); runs until all is delivered and acknowledged.
Result send_all(FabricSim& sim, const std::vector<uint32_t>& senders, uint32_t dst, uint32_t size,
                uint32_t msg = 1 << 20,
                TimePoint limit = TimePoint::zero() + Duration::seconds(1)) {
  const uint32_t per = (size + msg - 1) / msg;
  const uint32_t total = per * static_cast<uint32_t>(senders.size());
  std::vector<uint8_t> payload(size, 7);
  std::vector<uint8_t> rbuf(static_cast<size_t>(msg) * total);
  for (uint32_t i = 0; i < total; ++i) {
    EXPECT_TRUE(
        sim.host(dst).post_recv(0, {rbuf.data() + static_cast<size_t>(i) * msg, msg}, i).ok());
  }
  Result r;
  r.sender_done.assign(sim.hosts(), TimePoint::max());
  std::vector<uint32_t> left(sim.hosts(), 0);
  for (uint32_t h : senders) {
    for (uint32_t off = 0; off < size; off += msg) {
      ses::SendRequest req;
      req.peer = FabricSim::address(dst);
      req.data = {payload.data() + off, std::min(msg, size - off)};
      EXPECT_TRUE(sim.host(h).post_send(req).ok());
      ++left[h];
    }
    sim.touch(h);
  }
  ses::Completion wc[32];
  r.ok = sim.run(
      [&](uint32_t h) {
        uint32_t k;
        while ((k = sim.host(h).poll_completions(wc, 32)) > 0) {
          for (uint32_t i = 0; i < k; ++i) {
            if (wc[i].status != ses::WcStatus::kSuccess) ++r.errors;
            if (h == dst) {
              ++r.received;
            } else {
              ++r.sent;
              if (--left[h] == 0) r.sender_done[h] = sim.now();
            }
          }
        }
      },
      [&] { return r.received == total && r.sent == total; }, limit);
  r.end = sim.now();
  r.stats = sim.stats();
  for (uint32_t p = 0; p < sim.ports(); ++p) r.port_bytes.push_back(sim.port_stats(p).bytes);
  return r;
}

TEST(FabricSim, LoneMessageTakesTheUnloadedRoundTripOfItsPath) {
  const uint32_t request = 12 + 44 + 1000 + 4, ack = 32 + 4;
  for (uint32_t dst : {1u, 5u, 100u}) {  // 2, 4 and 6 hops from host 0 in k=8
    FabricSim sim(fat_tree(8), small_host);
    const Result r = send_all(sim, {0}, dst, 1000);
    ASSERT_TRUE(r.ok) << "dst " << dst;
    EXPECT_EQ(r.errors, 0u);
    EXPECT_EQ(r.sender_done[0] - TimePoint::zero(), sim.unloaded_rtt(request, ack, 0, dst))
        << "dst " << dst;
    EXPECT_EQ(sim.ideal_fct(1000, 0, dst), sim.unloaded_rtt(request, ack, 0, dst));
  }
  // 6 hops of 1 us each way at least.
  FabricSim sim(fat_tree(8), small_host);
  EXPECT_GE(sim.unloaded_rtt(request, ack, 0, 100), Duration::micros(12));
  EXPECT_EQ(sim.unloaded_rtt(request, ack, 0, 100) - sim.unloaded_rtt(request, ack, 0, 5),
            sim.unloaded_rtt(request, ack, 0, 5) - sim.unloaded_rtt(request, ack, 0, 1));
}

TEST(FabricSim, JitterAddsUpToItsBoundPerHopAndIsSeeded) {
  // 6 hops each way (host 0 -> 100 in k=8): a lone message's round trip
  // grows by 0..12 jitter bounds, differs between seeds, and repeats for one.
  const uint32_t request = 12 + 44 + 1000 + 4, ack = 32 + 4;
  auto rtt = [&](Duration jitter, uint64_t seed) {
    FabricConfig c = fat_tree(8);
    c.link.jitter = jitter;
    c.seed = seed;
    FabricSim sim(c, small_host);
    const Result r = send_all(sim, {0}, 100, 1000);
    EXPECT_TRUE(r.ok);
    return r.sender_done[0] - TimePoint::zero();
  };
  FabricSim plain(fat_tree(8), small_host);
  const Duration unloaded = plain.unloaded_rtt(request, ack, 0, 100);
  EXPECT_EQ(rtt(Duration::zero(), 1), unloaded);
  std::set<int64_t> seen;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const Duration d = rtt(Duration::nanos(50), seed);
    EXPECT_GE(d, unloaded);
    EXPECT_LE(d, unloaded + Duration::nanos(12 * 50));
    EXPECT_EQ(d, rtt(Duration::nanos(50), seed)) << "seed " << seed;
    seen.insert(d.ns());
  }
  EXPECT_GT(seen.size(), 4u) << "the jitter draws differ between seeds";
}

TEST(FabricSim, LeafSpineLoneMessageCrossesFasterUplinks) {
  FabricConfig c;
  c.topology = Topology::kLeafSpine;
  c.leaves = 2;
  c.hosts_per_leaf = 8;
  c.spines = 2;
  c.oversubscription = 2.0;  // uplinks at 200 Gb/s
  FabricSim sim(c, small_host);
  const Result r = send_all(sim, {0}, 9, 1000);
  ASSERT_TRUE(r.ok);
  const uint32_t request = 12 + 44 + 1000 + 4, ack = 32 + 4;
  EXPECT_EQ(r.sender_done[0] - TimePoint::zero(), sim.unloaded_rtt(request, ack, 0, 9));
  EXPECT_LT(sim.unloaded_rtt(request, ack, 0, 9),
            FabricSim(fat_tree(4), small_host).unloaded_rtt(request, ack, 0, 4));
}

TEST(FabricSim, IdealFctIsAPipelineAtTheBottleneck) {
  FabricSim sim(fat_tree(4), small_host);
  // A 64 KiB message over one pod: measured on an idle fabric it takes
  // about the ideal (the ACK may leave a little later than the last packet).
  const Result r = send_all(sim, {0}, 2, 64 * 1024);
  ASSERT_TRUE(r.ok);
  const Duration ideal = sim.ideal_fct(64 * 1024, 0, 2);
  const Duration took = r.sender_done[0] - TimePoint::zero();
  EXPECT_GE(took, ideal);
  EXPECT_LE(took, ideal + Duration::micros(6));
}

// Raw datagrams from host 0 to a host in another pod, one per entropy in
// `entropies`, spaced so that no queue builds.
void inject_spread(FabricSim& sim, uint32_t src, uint32_t dst,
                   const std::vector<uint16_t>& entropies, TimePoint start) {
  static uint8_t junk[512] = {};
  for (size_t i = 0; i < entropies.size(); ++i) {
    const uint16_t e = entropies[i];
    sim.call_at(start + Duration::nanos(100 * static_cast<int64_t>(i)), [&sim, src, dst, e] {
      TxPacket p;
      p.data = junk;
      p.len = 500;
      p.peer = FabricSim::address(dst);
      p.entropy = e;
      sim.inject(src, p);
    });
  }
}

uint32_t links_used(const FabricSim& sim, const std::vector<uint32_t>& links) {
  uint32_t n = 0;
  for (uint32_t p : links) n += sim.port_stats(p).packets > 0;
  return n;
}

bool run_out(FabricSim& sim) {
  return sim.run([](uint32_t) {}, [] { return false; }, TimePoint::zero() + Duration::millis(50)) ||
         true;
}

TEST(FabricSim, SameEntropySamePathManyEntropiesEveryPath) {
  const uint32_t k = 8, half = k / 2;
  {
    FabricSim sim(fat_tree(k), small_host);
    inject_spread(sim, 0, 100, std::vector<uint16_t>(200, 0xC123), TimePoint::zero());
    run_out(sim);
    EXPECT_EQ(sim.stats().delivered, 200u);
    // One edge uplink and one aggregation->core link carried all 200.
    EXPECT_EQ(links_used(sim, sim.edge_uplinks()), 1u);
    EXPECT_EQ(links_used(sim, sim.agg_uplinks()), 1u);
    // Hence the most unbalanced spread over edge 0's uplinks.
    std::vector<uint32_t> edge0;
    for (uint32_t i = 0; i < half; ++i)
      edge0.push_back(sim.port_id(sim.port_peer(sim.host_uplink(0)), half + i));
    EXPECT_TRUE(std::isinf(sim.imbalance(edge0, sim.now() - TimePoint::zero()).max_over_min));
  }
  {
    FabricSim sim(fat_tree(k), small_host);
    std::vector<uint16_t> entropies(2000);
    std::iota(entropies.begin(), entropies.end(), uint16_t{0xC000});
    inject_spread(sim, 0, 100, entropies, TimePoint::zero());
    run_out(sim);
    EXPECT_EQ(sim.stats().delivered, 2000u);
    EXPECT_EQ(sim.stats().drops, 0u);
    // Every uplink of edge 0, and every aggregation->core link of pod 0
    // (16): had the two tiers hashed alike, each aggregation switch would only
    // see flows of one residue and use one core (polarization).
    EXPECT_EQ(links_used(sim, sim.edge_uplinks()), half);
    EXPECT_EQ(links_used(sim, sim.agg_uplinks()), half * half);
    std::vector<uint32_t> edge0;
    for (uint32_t i = 0; i < half; ++i)
      edge0.push_back(sim.port_id(sim.port_peer(sim.host_uplink(0)), half + i));
    const LinkImbalance im = sim.imbalance(edge0, sim.now() - TimePoint::zero());
    EXPECT_LT(im.max_over_min, 1.3);
    EXPECT_LT(im.cv, 0.15);
    EXPECT_GT(im.mean_util, 0);
  }
}

TEST(FabricSim, IncastDropTailDropsAndTheTransportRecovers) {
  FabricConfig c = fat_tree(4, 21);
  c.queue.limit_packets = 8;
  FabricSim sim(c, small_host);
  const std::vector<uint32_t> senders = {1, 2, 3, 4, 5, 8, 12, 15};
  const Result r = send_all(sim, senders, 0, 64 * 1024);
  ASSERT_TRUE(r.ok) << "seed 21";
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.received, senders.size());
  EXPECT_GT(r.stats.drops, 0u);
  EXPECT_EQ(r.stats.trims, 0u);
  // The receiver's port is where they drop, and its queue filled up.
  const uint32_t last_hop = sim.reverse(sim.host_uplink(0));
  EXPECT_GT(sim.port_stats(last_hop).drops, 0u);
  EXPECT_EQ(sim.port_stats(last_hop).max_depth_packets, 8u);
  uint64_t retx = 0;
  for (uint32_t h : senders) retx += sim.host(h).pds_counters().retransmits;
  EXPECT_GT(retx, 0u);
}

TEST(FabricSim, IncastTrimmingCutsInsteadOfDropping) {
  FabricConfig c = fat_tree(4, 21);
  c.queue.limit_packets = 8;
  c.queue.full = FullPolicy::kTrim;
  FabricSim sim(c, small_host);
  const std::vector<uint32_t> senders = {1, 2, 3, 4, 5, 8, 12, 15};
  const Result r = send_all(sim, senders, 0, 64 * 1024);
  ASSERT_TRUE(r.ok) << "seed 21";
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.received, senders.size());
  EXPECT_GT(r.stats.trims, 0u);
  EXPECT_EQ(r.stats.drops, 0u);
  EXPECT_EQ(r.stats.header_drops, 0u);
  // Every trimmed header reached the receiver, which recognised it.
  EXPECT_EQ(sim.host(0).counters().rx_trimmed, r.stats.trims);
  uint64_t nacked = 0;
  for (uint32_t h : senders) nacked += sim.host(h).pds_counters().retransmits;
  EXPECT_GE(nacked, r.stats.trims);
}

TEST(FabricSim, HeaderQueueOverflowDropsHeaders) {
  FabricConfig c = fat_tree(4, 21);
  c.queue.limit_packets = 2;
  c.queue.header_limit_packets = 2;
  c.queue.full = FullPolicy::kTrim;
  FabricSim sim(c, small_host);
  const std::vector<uint32_t> senders = {1, 2, 3, 4, 5, 8, 12, 15};
  const Result r = send_all(sim, senders, 0, 64 * 1024);
  ASSERT_TRUE(r.ok) << "seed 21";
  EXPECT_GT(r.stats.trims, 0u);
  EXPECT_GT(r.stats.header_drops, 0u);
  EXPECT_EQ(r.received, senders.size());
}

TEST(FabricSim, EcnStepMarksAboveK) {
  const std::vector<uint32_t> senders = {1, 2, 3, 4, 5, 8};
  for (uint32_t k_mark : {4u, 1000u}) {
    FabricConfig c = fat_tree(4, 5);
    c.queue.limit_packets = 200;
    c.queue.ecn = EcnMode::kStep;
    c.queue.ecn_k = k_mark;
    FabricSim sim(c, small_host);
    const uint32_t last_hop = sim.reverse(sim.host_uplink(0));
    const uint32_t sampler = sim.sample_queue(last_hop, Duration::nanos(500));
    const Result r = send_all(sim, senders, 0, 64 * 1024);
    ASSERT_TRUE(r.ok) << "seed 5";
    EXPECT_EQ(r.stats.drops, 0u);
    const QueueSummary q = sim.summarize(sampler);
    EXPECT_GT(q.max_packets, k_mark == 4 ? 4u : 0u);
    EXPECT_LE(q.max_packets, sim.port_stats(last_hop).max_depth_packets);
    EXPECT_LE(q.p99_packets, q.max_packets);
    EXPECT_GT(sim.samples(sampler).size(), 10u);
    if (k_mark == 4) {
      EXPECT_GT(r.stats.ecn_marks, 0u);
      EXPECT_GT(sim.port_stats(last_hop).ecn_marks, 0u);
      // Step marking: only a port that held more than K packets marked.
      for (uint32_t p = 0; p < sim.ports(); ++p) {
        if (sim.port_stats(p).ecn_marks > 0) {
          EXPECT_GT(sim.port_stats(p).max_depth_packets, k_mark) << sim.port_name(p);
        }
      }
      // Packets that found >= 4 ahead of them: at most the packets beyond the 4th of every burst.
      EXPECT_LT(r.stats.ecn_marks, sim.port_stats(last_hop).packets);
    } else {
      EXPECT_EQ(r.stats.ecn_marks, 0u);
    }
  }
}

TEST(FabricSim, RedMarksProbabilistically) {
  FabricConfig c = fat_tree(4, 5);
  c.queue.limit_packets = 200;
  c.queue.ecn = EcnMode::kRed;
  c.queue.red_kmin = 2;
  c.queue.red_kmax = 40;
  c.queue.red_pmax = 0.5;
  FabricSim sim(c, small_host);
  const Result r = send_all(sim, {1, 2, 3, 4, 5, 8}, 0, 64 * 1024);
  ASSERT_TRUE(r.ok) << "seed 5";
  EXPECT_GT(r.stats.ecn_marks, 0u);
  EXPECT_LT(r.stats.ecn_marks, sim.port_stats(sim.reverse(sim.host_uplink(0))).packets / 2);
}

TEST(FabricSim, FailedLinkDropsWhatHashesOntoIt) {
  const uint32_t k = 4;
  std::vector<uint16_t> entropies(400);
  std::iota(entropies.begin(), entropies.end(), uint16_t{0xC000});
  const TimePoint fail_at = TimePoint::zero() + Duration::micros(100);
  for (bool converge : {false, true}) {
    FabricConfig c = fat_tree(k, 3);
    if (converge) c.reroute_delay = Duration::micros(10);
    FabricSim sim(c, small_host);
    const uint32_t link = sim.port_id(sim.port_peer(sim.host_uplink(0)), k / 2);  // edge0 -> agg0
    sim.fail_link(link, fail_at);
    inject_spread(sim, 0, 12, entropies, TimePoint::zero());  // 40 us of packets before the failure
    run_out(sim);
    ASSERT_EQ(sim.stats().delivered, entropies.size());
    ASSERT_EQ(sim.stats().down_drops, 0u);
    const uint64_t hashed_there = sim.port_stats(link).packets;
    ASSERT_GT(hashed_there, 0u);
    EXPECT_FALSE(sim.link_up(link));
    EXPECT_FALSE(sim.link_up(sim.reverse(link)));
    // The same flows again after the failure (and after convergence).
    inject_spread(sim, 0, 12, entropies, sim.now() + Duration::micros(50));
    run_out(sim);
    if (converge) {
      EXPECT_EQ(sim.stats().down_drops, 0u);
      EXPECT_EQ(sim.stats().delivered, 2 * entropies.size());
      EXPECT_EQ(sim.port_stats(link).packets, hashed_there);
    } else {
      EXPECT_EQ(sim.stats().down_drops, hashed_there);
      EXPECT_EQ(sim.port_stats(link).down_drops, hashed_there);
      EXPECT_EQ(sim.stats().delivered, 2 * entropies.size() - hashed_there);
    }
  }
}

TEST(FabricSim, DownstreamFailureConvergesAroundTheCore) {
  // A failed aggregation->core link also cuts core -> that pod: once routing
  // converges, other pods stop sending through that core to this pod.
  FabricConfig c = fat_tree(4, 3);
  c.reroute_delay = Duration::micros(10);
  FabricSim sim(c, small_host);
  const uint32_t link = sim.core_link(0);  // agg0 (pod 0) -> core0
  sim.fail_link(link, TimePoint::zero());
  std::vector<uint16_t> entropies(400);
  std::iota(entropies.begin(), entropies.end(), uint16_t{0xC000});
  inject_spread(sim, 12, 0, entropies, TimePoint::zero() + Duration::micros(20));  // pod 3 -> pod 0
  run_out(sim);
  EXPECT_EQ(sim.stats().down_drops, 0u);
  EXPECT_EQ(sim.stats().delivered, entropies.size());
}

TEST(FabricSim, TransportDeliversAcrossAFailedCoreLink) {
  // Half of pod 0's core links fail mid-transfer. A PDC keeps one entropy
  // until lib/lb varies it: a flow hashed onto a dead link only gets through
  // once routing converges; then everything must arrive.
  FabricConfig c = fat_tree(4, 9);
  c.reroute_delay = Duration::micros(200);
  FabricSim sim(c, small_host);
  sim.fail_link(sim.core_link(0), TimePoint::zero() + Duration::micros(5));  // agg0 -> core0
  sim.fail_link(sim.core_link(3), TimePoint::zero() + Duration::micros(5));  // agg1 -> core3
  const Result r = send_all(sim, {0, 1, 2, 3}, 12, 256 * 1024, 64 * 1024);
  ASSERT_TRUE(r.ok) << "seed 9: received " << r.received << " sent " << r.sent << " by "
                    << r.end.us() << " us";
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.stats.down_drops, 0u);  // some flow did hash onto a dead link
}

TEST(FabricSim, ProgressHookFires) {
  FabricSim sim(fat_tree(4), small_host);
  uint32_t calls = 0;
  sim.set_progress([&] { ++calls; }, 1000);
  const Result r = send_all(sim, {1, 2, 3}, 0, 256 * 1024);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(calls, r.stats.events / 1000);
}

TEST(FabricSim, SameSeedSameRun) {
  auto once = [] {
    FabricConfig c = fat_tree(4, 77);
    c.queue.limit_packets = 6;
    c.queue.full = FullPolicy::kTrim;
    c.queue.ecn = EcnMode::kRed;
    c.queue.red_kmin = 1;
    c.queue.red_kmax = 6;
    c.queue.red_pmax = 0.5;
    FabricSim sim(c, small_host);
    return send_all(sim, {1, 2, 5, 9, 13, 14}, 0, 128 * 1024, 32 * 1024);
  };
  const Result a = once(), b = once();
  ASSERT_TRUE(a.ok) << "seed 77";
  EXPECT_EQ(a.end, b.end);
  EXPECT_EQ(a.sender_done, b.sender_done);
  EXPECT_EQ(a.stats.events, b.stats.events);
  EXPECT_EQ(a.stats.delivered, b.stats.delivered);
  EXPECT_EQ(a.stats.trims, b.stats.trims);
  EXPECT_EQ(a.stats.ecn_marks, b.stats.ecn_marks);
  EXPECT_EQ(a.stats.max_depth_bytes, b.stats.max_depth_bytes);
  EXPECT_EQ(a.port_bytes, b.port_bytes);
  EXPECT_GT(a.stats.trims, 0u);
  EXPECT_GT(a.stats.ecn_marks, 0u);
}

// Not a test: a k=8 (or SHOAL_FABRIC_K) permutation, each host sending 2 MB
// to host (i + hosts/2) % hosts, timed with the wall clock for a throughput
// figure. Run with --gtest_also_run_disabled_tests.
TEST(FabricSim, DISABLED_PermutationThroughput) {
  const char* env = std::getenv("SHOAL_FABRIC_K");
  const uint32_t k = env ? static_cast<uint32_t>(std::atoi(env)) : 8;
  FabricSim sim(fat_tree(k), small_host);
  const uint32_t n = sim.hosts(), size = 2 << 20, msg = 64 * 1024;
  const uint32_t per = size / msg;
  std::vector<uint8_t> payload(size, 1);
  std::vector<std::vector<uint8_t>> rbuf(n);
  for (uint32_t h = 0; h < n; ++h) {
    rbuf[h].resize(size);
    for (uint32_t i = 0; i < per; ++i)
      ASSERT_TRUE(sim.host(h).post_recv(0, {rbuf[h].data() + i * msg, msg}, i).ok());
  }
  for (uint32_t h = 0; h < n; ++h) {
    for (uint32_t i = 0; i < per; ++i) {
      ses::SendRequest req;
      req.peer = FabricSim::address((h + n / 2) % n);
      req.data = {payload.data() + i * msg, msg};
      ASSERT_TRUE(sim.host(h).post_send(req).ok());
    }
    sim.touch(h);
  }
  uint64_t done = 0;
  std::vector<TimePoint> fct(n);
  ses::Completion wc[64];
  sim.set_progress(
      [&] {
        std::fprintf(stderr, "  t=%.0f us events=%llu done=%llu\n", sim.now().us(),
                     static_cast<unsigned long long>(sim.stats().events),
                     static_cast<unsigned long long>(done));
      },
      0, Duration::micros(500));
  const std::clock_t c0 = std::clock();
  const bool ok = sim.run(
      [&](uint32_t h) {
        uint32_t m;
        while ((m = sim.host(h).poll_completions(wc, 64)) > 0) {
          for (uint32_t i = 0; i < m; ++i) {
            ++done;
            if (wc[i].opcode == ses::WcOpcode::kSend) fct[h] = sim.now();
          }
        }
      },
      [&] { return done == 2ull * n * per; }, TimePoint::zero() + Duration::seconds(2));
  const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  EXPECT_TRUE(ok);
  std::sort(fct.begin(), fct.end());
  const FabricStats& s = sim.stats();
  std::printf(
      "k=%u hosts=%u virtual=%.1f us fct p50=%.1f max=%.1f ideal=%.1f us events=%llu cpu=%.2f s "
      "events/s=%.0f delivered=%llu drops=%llu\n",
      k, n, sim.now().us(), fct[n / 2].us(), fct[n - 1].us(), sim.ideal_fct(size, 0, n / 2).us(),
      static_cast<unsigned long long>(s.events), cpu, s.events / cpu,
      static_cast<unsigned long long>(s.delivered), static_cast<unsigned long long>(s.drops));
}

}  // namespace
}  // namespace shoal::sim
