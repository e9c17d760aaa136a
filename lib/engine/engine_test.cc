// Engine tests over an in-memory two-queue driver: library mode (the test
// thread polls), threaded mode (rings and control calls), idle backoff,
// loss recovered with the real clock, and the driver's MTU honoured.
#include "lib/engine/engine.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace shoal::engine {
namespace {

// Queue 0 (address 1) and queue 1 (address 2) are wired to each other.
// Test-only: it allocates per packet and locks per burst.
class PipeDriver : public Driver {
 public:
  explicit PipeDriver(uint32_t mtu = 4096, double loss = 0) : loss_(loss), rng_(3) {
    caps_.name = "pipe";
    caps_.mtu_payload = mtu;
    caps_.max_burst = 16;
    caps_.queues = 2;
    for (auto& q : tx_bufs_) q.assign(16, std::vector<uint8_t>(mtu + 256));
    for (auto& f : free_)
      for (uint32_t i = 16; i-- > 0;) f.push_back(i);
  }
  const DriverCaps& caps() const override { return caps_; }
  PeerAddr local_addr(uint32_t q) const override { return q + 1; }
  absl::StatusOr<PeerAddr> parse_addr(std::string_view t) const override {
    if (t == "1" || t == "2") return static_cast<PeerAddr>(t[0] - '0');
    return absl::InvalidArgumentError("no such pipe end");
  }
  std::string format_addr(PeerAddr a) const override { return std::to_string(a); }
  uint32_t rx_burst(uint32_t q, std::span<RxPacket> pkts) override {
    std::lock_guard<std::mutex> l(mu_);
    uint32_t n = 0;
    while (n < pkts.size() && !inbox_[q].empty()) {
      held_[q].push_back(std::move(inbox_[q].front()));
      inbox_[q].pop_front();
      pkts[n].data = held_[q].back().bytes;
      pkts[n].meta = held_[q].back().meta;
      ++n;
    }
    return n;
  }
  void rx_release(uint32_t q, std::span<RxPacket> pkts) override {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < pkts.size(); ++i) held_[q].pop_front();
  }
  // Lends buffers from a free list, as a NIC's queue would: a buffer lent
  // and not yet given back through tx_burst is not lent again.
  uint32_t tx_alloc(uint32_t q, std::span<TxPacket> slots) override {
    std::lock_guard<std::mutex> l(mu_);
    const uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(slots.size()), static_cast<uint32_t>(free_[q].size()));
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t b = free_[q].back();
      free_[q].pop_back();
      slots[i] = TxPacket();
      slots[i].data = tx_bufs_[q][b].data();
      slots[i].capacity = static_cast<uint32_t>(tx_bufs_[q][b].size());
    }
    lent_total_[q] += n;
    return n;
  }
  uint32_t tx_burst(uint32_t q, std::span<TxPacket> pkts) override {
    std::lock_guard<std::mutex> l(mu_);
    uint32_t sent = 0;
    std::string burst;
    for (const TxPacket& p : pkts) {
      for (uint32_t b = 0; b < tx_bufs_[q].size(); ++b)
        if (tx_bufs_[q][b].data() == p.data) free_[q].push_back(b);
      if (p.len == 0) continue;
      burst += p.control ? 'c' : 'r';
      EXPECT_LE(p.len, caps_.mtu_payload + 128) << "packet larger than the driver's MTU allows";
      max_len_ = std::max(max_len_, p.len);
      ++sent;
      if (rng_.bernoulli(loss_)) continue;
      Held h;
      h.bytes.assign(p.data, p.data + p.len);
      h.meta.peer = q + 1;
      inbox_[1 - q].push_back(std::move(h));
    }
    if (!burst.empty()) bursts_[q].push_back(burst);
    return sent;
  }
  uint32_t max_len() const { return max_len_; }
  // Buffers lent by tx_alloc so far, and lent now (not yet back).
  uint64_t lent_total(uint32_t q) const { return lent_total_[q]; }
  uint32_t lent_now(uint32_t q) const { return 16 - static_cast<uint32_t>(free_[q].size()); }
  // Queue q's bursts so far, one string each: 'r' a request, 'c' a control
  // packet (ACK, NACK, CTRL), in the order handed to the driver.
  std::vector<std::string> take_bursts(uint32_t q) {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(bursts_[q], {});
  }

 private:
  struct Held {
    std::vector<uint8_t> bytes;
    RxMeta meta;
  };
  DriverCaps caps_;
  double loss_;
  Rng rng_;
  std::mutex mu_;
  std::deque<Held> inbox_[2], held_[2];
  std::vector<std::vector<uint8_t>> tx_bufs_[2];
  std::vector<std::string> bursts_[2];
  std::vector<uint32_t> free_[2];
  uint64_t lent_total_[2] = {0, 0};
  uint32_t max_len_ = 0;
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i);
  return v;
}

// Runs `step` until it returns true; fails instead of hanging.
void until(const std::function<bool()>& step, int max_iters = 20000000) {
  for (int i = 0; i < max_iters; ++i)
    if (step()) return;
  FAIL() << "did not finish";
}

TEST(Engine, LibraryModeMovesMessagesWithinTheDriversMtu) {
  PipeDriver drv(/*mtu=*/1024);
  EngineConfig cfg;  // asks for 4096 B payloads; the driver allows 1024
  Engine a(drv, 0, cfg, 1), b(drv, 1, cfg, 2);
  EXPECT_EQ(a.transport().config().mtu_payload, 1024u);
  const auto msg = pattern(10000, 1);
  std::vector<uint8_t> rbuf(10000);
  ASSERT_TRUE(b.transport().post_recv(0, rbuf, 7).ok());
  ses::SendRequest r;
  r.peer = b.local_addr();
  r.data = msg;
  r.wr_id = 9;
  ASSERT_TRUE(a.transport().post_send(r).ok());
  ses::Completion wc[4];
  int got_a = 0, got_b = 0;
  until([&] {
    a.poll();
    b.poll();
    got_a += a.transport().poll_completions(wc, 4);
    got_b += b.transport().poll_completions(wc, 4);
    return got_a == 1 && got_b == 1;
  });
  EXPECT_EQ(rbuf, msg);
  EXPECT_LE(drv.max_len(), 1024u + 12 + 44 + 4);
  EXPECT_GE(a.counters().tx_packets, 10u);
}

// Request/response: the ACK of a received message waits for the next poll,
// so the reply the application posts on its completion leaves in the same
// burst, ahead of the ACK.
TEST(Engine, ReplyAndAckLeaveInOneBurstReplyFirst) {
  PipeDriver drv;
  EngineConfig cfg;
  Engine a(drv, 0, cfg, 1), b(drv, 1, cfg, 2);
  std::vector<uint8_t> abuf(64), bbuf(64);
  ASSERT_TRUE(a.transport().post_recv(0, abuf, 1).ok());
  ASSERT_TRUE(b.transport().post_recv(0, bbuf, 2).ok());
  const auto ping = pattern(64, 3), pong = pattern(64, 4);
  ses::SendRequest r;
  r.peer = b.local_addr();
  r.data = ping;
  r.wr_id = 5;
  ASSERT_TRUE(a.transport().post_send(r).ok());
  TimePoint now = TimePoint::from_ns(1000);
  a.poll(now);
  EXPECT_EQ(drv.take_bursts(0), std::vector<std::string>{"r"});
  // b receives the ping; its ACK (asked for: a lone message) does not leave yet.
  b.poll(now);
  EXPECT_TRUE(drv.take_bursts(1).empty());
  ses::Completion wc[4];
  ASSERT_EQ(b.transport().poll_completions(wc, 4), 1u);
  EXPECT_EQ(wc[0].wr_id, 2u);
  EXPECT_EQ(bbuf, ping);
  r.peer = a.local_addr();
  r.data = pong;
  r.wr_id = 6;
  ASSERT_TRUE(b.transport().post_send(r).ok());
  b.poll(now);
  EXPECT_EQ(drv.take_bursts(1), std::vector<std::string>{"rc"});  // the pong, then the ACK
  // Without a reply the ACK still leaves, at the next poll.
  a.poll(now);
  EXPECT_TRUE(drv.take_bursts(0).empty());
  a.poll(now);
  EXPECT_EQ(drv.take_bursts(0), std::vector<std::string>{"c"});
  b.poll(now);
  int done_a = 0;
  until([&] {
    a.poll();
    b.poll();
    done_a += a.transport().poll_completions(wc, 4);
    return done_a == 2;  // the ping's send (ACKed) and the pong's receive
  });
  EXPECT_EQ(abuf, pong);
}

TEST(Engine, BuffersTheCoreDidNotFillStayLentAcrossPolls) {
  // Request/response sends one packet per poll. The engine keeps the
  // buffers it did not fill and borrows only what it used: returning a
  // whole burst of unused buffers every time cost ~3,000 instructions per
  // round trip (callgrind). It gives them all back when it goes.
  PipeDriver drv;
  EngineConfig cfg;
  {
    Engine a(drv, 0, cfg, 1), b(drv, 1, cfg, 2);
    std::vector<uint8_t> rbuf(64);
    const auto msg = pattern(64, 5);
    constexpr int kMessages = 20;
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(b.transport().post_recv(0, rbuf, 100 + i).ok());
    TimePoint now = TimePoint::from_ns(1000);
    ses::Completion wc[4];
    for (int i = 0; i < kMessages; ++i) {
      ses::SendRequest r;
      r.peer = b.local_addr();
      r.data = msg;
      r.wr_id = static_cast<uint64_t>(i);
      ASSERT_TRUE(a.transport().post_send(r).ok());
      a.poll(now);
      b.poll(now);
      b.poll(now);
      a.poll(now);
      while (a.transport().poll_completions(wc, 4) > 0 || b.transport().poll_completions(wc, 4) > 0) {
      }
      now = now + Duration::micros(1);
    }
    // One burst's worth once, then one buffer per packet sent (requests
    // from a, ACKs from b): not a burst's worth per poll.
    EXPECT_LE(drv.lent_total(0), 16u + kMessages + 2);
    EXPECT_LE(drv.lent_total(1), 16u + kMessages + 2);
    EXPECT_GT(drv.lent_now(0), 0u);  // held between polls
  }
  EXPECT_EQ(drv.lent_now(0), 0u);  // and given back by the engine's destructor
  EXPECT_EQ(drv.lent_now(1), 0u);
}

TEST(Engine, LossIsRecoveredWithTheRealClock) {
  PipeDriver drv(4096, /*loss=*/0.05);
  EngineConfig cfg;
  Engine a(drv, 0, cfg, 1), b(drv, 1, cfg, 2);
  constexpr int kMsgs = 300;
  std::vector<std::vector<uint8_t>> msgs, rbufs(kMsgs, std::vector<uint8_t>(3000));
  for (int i = 0; i < kMsgs; ++i) {
    msgs.push_back(pattern(3000, static_cast<uint8_t>(i)));
    ASSERT_TRUE(b.transport().post_recv(0, rbufs[i], i).ok());
  }
  for (int i = 0; i < kMsgs; ++i) {
    ses::SendRequest r;
    r.peer = 2;
    r.data = msgs[i];
    r.wr_id = i;
    r.has_imm = true;
    r.imm = i;
    ASSERT_TRUE(a.transport().post_send(r).ok());
  }
  ses::Completion wc[32];
  int sent = 0, recvd = 0;
  until([&] {
    a.poll();
    b.poll();
    uint32_t n;
    while ((n = a.transport().poll_completions(wc, 32)) > 0) {
      for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(wc[i].status, ses::WcStatus::kSuccess);
      sent += n;
    }
    while ((n = b.transport().poll_completions(wc, 32)) > 0) {
      for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(rbufs[wc[i].wr_id], msgs[wc[i].imm]);
      recvd += n;
    }
    return sent == kMsgs && recvd == kMsgs;
  });
  EXPECT_GT(a.transport().pds_counters().retransmits, 0u);
}

TEST(Engine, ThreadedModeRingsControlAndBackoff) {
  PipeDriver drv;
  EngineConfig cfg;
  cfg.max_sleep = Duration::micros(100);
  EngineThread ta(drv, 0, cfg, 1), tb(drv, 1, cfg, 2);
  // Control calls run on the engine thread and return their Status.
  uint16_t qp = 0;
  ASSERT_TRUE(tb.control([&](ses::Transport& t) {
                  auto q = t.create_qp(pds::DeliveryMode::kRud);
                  if (!q.ok()) return q.status();
                  qp = *q;
                  return absl::OkStatus();
                }).ok());
  EXPECT_NE(qp, 0);
  EXPECT_EQ(tb.control([](ses::Transport& t) { return t.destroy_qp(0); }).code(),
            absl::StatusCode::kInvalidArgument);
  constexpr int kMsgs = 2000;
  std::vector<uint8_t> payload = pattern(512, 3), rbuf(512 * kMsgs);
  for (int i = 0; i < kMsgs; ++i) {
    PostCommand c{};
    c.kind = PostCommand::kRecv;
    c.qp = qp;
    c.buf = rbuf.data() + i * 512;
    c.len = 512;
    c.wr_id = i;
    while (!tb.post(c)) std::this_thread::yield();
  }
  int posted = 0, sent = 0, recvd = 0;
  ses::Completion wc[64];
  until([&] {
    while (posted < kMsgs && posted - sent < 256) {
      PostCommand c{};
      c.kind = PostCommand::kSend;
      c.send.peer = 2;
      c.send.dst_qp = qp;
      c.send.data = payload;
      c.send.wr_id = posted;
      if (!ta.post(c)) break;
      ++posted;
    }
    uint32_t n;
    while ((n = ta.poll_completions(wc, 64)) > 0) sent += n;
    while ((n = tb.poll_completions(wc, 64)) > 0) {
      for (uint32_t i = 0; i < n; ++i) EXPECT_EQ(wc[i].status, ses::WcStatus::kSuccess);
      recvd += n;
    }
    if (sent < kMsgs || recvd < kMsgs) std::this_thread::yield();
    return sent == kMsgs && recvd == kMsgs;
  });
  EXPECT_EQ(ta.post_errors() + tb.post_errors(), 0u);
  for (int i = 0; i < kMsgs; i += 97) {
    EXPECT_EQ(std::vector<uint8_t>(rbuf.begin() + i * 512, rbuf.begin() + (i + 1) * 512), payload);
  }
  // Idle now: both threads back off into sleeps instead of spinning.
  const uint64_t before = ta.sleeps() + tb.sleeps();
  until([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return ta.sleeps() + tb.sleeps() > before + 10;
  }, 5000);
  // Work posted before a control call is applied before it: receives posted
  // to a QP and then its destruction flush, they are not refused.
  uint16_t q2 = 0;
  ASSERT_TRUE(tb.control([&](ses::Transport& t) {
                  auto q = t.create_qp(pds::DeliveryMode::kRud);
                  q2 = *q;
                  return q.status();
                }).ok());
  for (int i = 0; i < 3; ++i) {
    PostCommand c{};
    c.kind = PostCommand::kRecv;
    c.qp = q2;
    c.buf = rbuf.data();
    c.len = 8;
    c.wr_id = 500 + i;
    ASSERT_TRUE(tb.post(c));
  }
  ASSERT_TRUE(tb.control([&](ses::Transport& t) { return t.destroy_qp(q2); }).ok());
  int flushed = 0;
  until([&] {
    uint32_t n = tb.poll_completions(wc, 64);
    for (uint32_t i = 0; i < n; ++i) {
      EXPECT_EQ(wc[i].status, ses::WcStatus::kWrFlushErr) << wc[i].wr_id;
      ++flushed;
    }
    if (flushed < 3) std::this_thread::yield();
    return flushed == 3;
  });
  EXPECT_EQ(tb.post_errors(), 0u);
  // A post that the transport refuses still completes, with an error.
  PostCommand bad{};
  bad.kind = PostCommand::kRecv;
  bad.qp = 4000;  // no such QP
  bad.wr_id = 77;
  ASSERT_TRUE(tb.post(bad));
  until([&] {
    if (tb.poll_completions(wc, 1) == 1) {
      EXPECT_EQ(wc[0].wr_id, 77u);
      EXPECT_NE(wc[0].status, ses::WcStatus::kSuccess);
      return true;
    }
    std::this_thread::yield();
    return false;
  });
  EXPECT_EQ(tb.post_errors(), 1u);
}

}  // namespace
}  // namespace shoal::engine
