// StarSim tests: the unloaded round trip a lone message takes (0-RTT open +
// AR), FIFO queueing at the switch port under incast, determinism.
#include "drivers/sim/star.h"

#include <gtest/gtest.h>

#include <vector>

namespace shoal::sim {
namespace {

ses::TransportConfig small_host(uint32_t) {
  ses::TransportConfig c;
  c.max_send_msgs = 256;
  c.max_recv_msgs = 1024;
  c.max_qps = 8;
  c.pool.max_pdcs = 64;
  return c;
}

struct Incast {
  std::vector<TimePoint> sender_done;  // per host, when its send completed
  uint64_t received = 0;
  TimePoint end;
  uint64_t events = 0;
};

// Hosts 1..n-1 each send `size` bytes to host 0 at t = 0.
Incast incast(uint32_t n, uint32_t size, uint64_t seed = 1) {
  StarSim sim(n, small_host, StarLinkConfig(), seed);
  std::vector<uint8_t> payload(size, 7), rbuf(size * n);
  for (uint32_t i = 0; i < n; ++i) EXPECT_TRUE(sim.host(0).post_recv(0, {rbuf.data() + i * size, size}, i).ok());
  Incast r;
  r.sender_done.assign(n, TimePoint::max());
  for (uint32_t h = 1; h < n; ++h) {
    ses::SendRequest req;
    req.peer = StarSim::address(0);
    req.data = payload;
    EXPECT_TRUE(sim.host(h).post_send(req).ok());
    sim.touch(h);
  }
  ses::Completion wc[16];
  const bool ok = sim.run(
      [&](uint32_t h) {
        uint32_t k;
        while ((k = sim.host(h).poll_completions(wc, 16)) > 0) {
          for (uint32_t i = 0; i < k; ++i) {
            EXPECT_EQ(wc[i].status, ses::WcStatus::kSuccess);
            if (h == 0) ++r.received; else r.sender_done[h] = sim.now();
          }
        }
      },
      [&] { return r.received == n - 1 && std::count(r.sender_done.begin() + 1, r.sender_done.end(), TimePoint::max()) == 0; },
      TimePoint::zero() + Duration::millis(100));
  EXPECT_TRUE(ok);
  r.end = sim.now();
  r.events = sim.stats().events;
  return r;
}

TEST(StarSim, LoneMessageCompletesInOneUnloadedRoundTrip) {
  const Incast r = incast(2, 1000);
  StarSim ref(2, small_host, StarLinkConfig(), 1);
  const uint32_t request = 12 + 44 + 1000 + 4, ack = 32 + 4;
  // 0-RTT open and an immediate ACK (the message is the last queued unit).
  EXPECT_EQ(r.sender_done[1] - TimePoint::zero(), ref.unloaded_rtt(request, ack));
}

TEST(StarSim, IncastQueuesFifoAtTheReceiversPort) {
  const uint32_t n = 17, size = 4000;
  const Incast r = incast(n, size);
  EXPECT_EQ(r.received, n - 1);
  // The receiver's port carries 16 x ~4 KB at 100 Gb/s: the last sender
  // cannot finish before that has drained, and not much later.
  const double port_ns = (n - 1) * (size + 12 + 44 + 4 + 66) * 8 / 100.0;
  const TimePoint last = *std::max_element(r.sender_done.begin() + 1, r.sender_done.end());
  EXPECT_GE(static_cast<double>(last.ns()), port_ns);
  EXPECT_LE(static_cast<double>(last.ns()), port_ns + 6000);
}

TEST(StarSim, SameSeedSameRun) {
  const Incast a = incast(9, 3000, 5), b = incast(9, 3000, 5);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.end, b.end);
  EXPECT_EQ(a.sender_done, b.sender_done);
}

}  // namespace
}  // namespace shoal::sim
