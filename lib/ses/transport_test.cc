// Transport (SES over PDS) tests: two transports joined by a hand-driven
// wire, so each test decides which datagram arrives, when, and in what order.
#include "lib/ses/transport.h"

#include "drivers/sim/direct.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <vector>

namespace shoal::ses {
namespace {

struct Datagram {
  std::vector<uint8_t> bytes;
  PeerAddr from;
  int to;
};

class Pair {
 public:
  explicit Pair(TransportConfig cfg = TransportConfig()) {
    hosts_[0] = std::make_unique<Transport>(cfg, 1, 11);
    hosts_[1] = std::make_unique<Transport>(cfg, 2, 22);
  }
  Transport& h(int i) { return *hosts_[i]; }

  // Moves everything each host wants to send into `wire` (not delivered yet).
  void collect() {
    for (int i = 0; i < 2; ++i) {
      while (link_.poll(*hosts_[i], now, [&](std::span<const uint8_t> dg, const TxPacket&) {
        wire.push_back(Datagram{std::vector<uint8_t>(dg.begin(), dg.end()), static_cast<PeerAddr>(i + 1), 1 - i});
      }) == link_.burst()) {
      }
    }
  }
  void deliver(const Datagram& d) {
    RxMeta meta;
    meta.peer = d.from;
    hosts_[d.to]->on_datagram(d.bytes, meta, now);
  }
  // Runs until quiet: collect, deliver everything (through `filter`, which
  // may drop), advance time to the next deadline when nothing moves.
  void run(Duration limit, const std::function<bool(const Datagram&)>& keep = nullptr) {
    const TimePoint end = now + limit;
    while (now < end) {
      collect();
      if (wire.empty()) {
        const TimePoint d = min_time(h(0).next_deadline(), h(1).next_deadline());
        if (d.is_max() || d > end) return;
        now = max_time(now, d);
        for (int i = 0; i < 2; ++i)
          if (h(i).next_deadline() <= now) h(i).on_timeout(now);
        continue;
      }
      std::deque<Datagram> batch;
      batch.swap(wire);
      for (auto& d : batch)
        if (!keep || keep(d)) deliver(d);
      now += Duration::micros(1);
    }
  }
  std::vector<Completion> completions(int i) {
    std::vector<Completion> out;
    Completion wc[16];
    uint32_t n;
    while ((n = h(i).poll_completions(wc, 16)) > 0) out.insert(out.end(), wc, wc + n);
    return out;
  }

  TimePoint now = TimePoint::zero() + Duration::micros(10);
  std::deque<Datagram> wire;

 private:
  std::unique_ptr<Transport> hosts_[2];
  sim::DirectLink link_{16};
};

TransportConfig small_mtu() {
  TransportConfig c;
  c.mtu_payload = 256;
  return c;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

SendRequest send_to(const std::vector<uint8_t>& data, uint64_t wr_id, DeliveryMode mode = DeliveryMode::kRud) {
  SendRequest r;
  r.peer = 2;
  r.data = data;
  r.wr_id = wr_id;
  r.mode = mode;
  return r;
}

TEST(Transport, SegmentsAndPlacesOutOfOrderPackets) {
  Pair p(small_mtu());
  const auto msg = pattern(1000, 3);  // 4 packets of <= 256 B
  std::vector<uint8_t> rbuf(1000, 0);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 77).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 5)).ok());
  p.collect();
  ASSERT_EQ(p.wire.size(), 4u);
  // Deliver the data packets in reverse order.
  std::deque<Datagram> data;
  data.swap(p.wire);
  for (auto it = data.rbegin(); it != data.rend(); ++it) p.deliver(*it);
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].wr_id, 77u);
  EXPECT_EQ(rc[0].byte_len, 1000u);
  EXPECT_EQ(rbuf, msg);
  p.run(Duration::millis(1));
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 5u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
}

TEST(Transport, RudCompletesOutOfOrderRodInOrder) {
  for (DeliveryMode mode : {DeliveryMode::kRud, DeliveryMode::kRod}) {
    Pair p(small_mtu());
    const auto big = pattern(700, 1), small = pattern(10, 2);
    std::vector<uint8_t> r0(700), r1(700);
    ASSERT_TRUE(p.h(1).post_recv(0, r0, 100).ok());
    ASSERT_TRUE(p.h(1).post_recv(0, r1, 101).ok());
    ASSERT_TRUE(p.h(0).post_send(send_to(big, 1, mode)).ok());    // 3 packets
    ASSERT_TRUE(p.h(0).post_send(send_to(small, 2, mode)).ok());  // 1 packet
    p.collect();
    ASSERT_EQ(p.wire.size(), 4u);
    // The small message's packet overtakes the big one's.
    std::deque<Datagram> data;
    data.swap(p.wire);
    p.deliver(data[3]);
    for (int i = 0; i < 3; ++i) p.deliver(data[i]);
    p.run(Duration::millis(5));
    auto rc = p.completions(1);
    ASSERT_EQ(rc.size(), 2u) << pds::to_string(mode);
    if (mode == DeliveryMode::kRud) {
      // RUD: the small message completed first, in the first posted buffer.
      EXPECT_EQ(rc[0].byte_len, 10u);
      EXPECT_EQ(rc[1].byte_len, 700u);
    } else {
      // ROD: completions follow message order; buffers were taken in
      // arrival order (the small message arrived first and took buffer 100).
      EXPECT_EQ(rc[0].byte_len, 700u);
      EXPECT_EQ(rc[0].wr_id, 101u);
      EXPECT_EQ(rc[1].byte_len, 10u);
      EXPECT_EQ(rc[1].wr_id, 100u);
      EXPECT_EQ(r1, big);
    }
  }
}

TEST(Transport, RodWaitingMessageNeverTakesTheLastBuffer) {
  Pair p(small_mtu());
  const auto a = pattern(300, 1), b = pattern(20, 2);
  std::vector<uint8_t> r0(300), r1(300);
  ASSERT_TRUE(p.h(1).post_recv(0, r0, 1).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(a, 1, DeliveryMode::kRod)).ok());  // 2 packets
  ASSERT_TRUE(p.h(0).post_send(send_to(b, 2, DeliveryMode::kRod)).ok());  // 1 packet
  p.collect();
  ASSERT_EQ(p.wire.size(), 3u);
  std::deque<Datagram> data;
  data.swap(p.wire);
  p.deliver(data[2]);  // message b first: it must not take the only buffer
  EXPECT_EQ(p.h(1).counters().rx_rnr, 1u);
  p.deliver(data[0]);
  p.deliver(data[1]);
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].byte_len, 300u);
  EXPECT_EQ(r0, a);
  ASSERT_TRUE(p.h(1).post_recv(0, r1, 2).ok());
  p.run(Duration::millis(5));  // b is retransmitted and lands now
  rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].byte_len, 20u);
}

TEST(Transport, ReceiveBufferTooSmallIsLocLenErrAndUntouched) {
  Pair p(small_mtu());
  const auto msg = pattern(600, 9);
  std::vector<uint8_t> guard(1000, 0xEE);
  ASSERT_TRUE(p.h(1).post_recv(0, std::span<uint8_t>(guard.data(), 100), 1).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  p.run(Duration::millis(1));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kLocLenErr);
  for (uint8_t b : guard) ASSERT_EQ(b, 0xEE);
  // The sender learns it too, as from an RC QP's NAK: REM_INV_REQ_ERR.
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRemInvReqErr);
  EXPECT_GT(p.h(1).counters().rx_too_long, 0u);
}

TEST(Transport, TooLongSendRefusedAgainWithoutTakingAnotherBuffer) {
  // The receiver's refusals are lost for a while, so the sender resends the
  // refused packets: they must be refused again, not land in the next
  // buffer, which then serves the next message.
  Pair p(small_mtu());
  const auto big = pattern(600, 3);
  const auto fits = pattern(80, 4);
  std::vector<uint8_t> small(100, 0xEE), next(1000, 0xEE);
  ASSERT_TRUE(p.h(1).post_recv(0, small, 1).ok());
  ASSERT_TRUE(p.h(1).post_recv(0, next, 2).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(big, 1)).ok());
  const TimePoint heal = p.now + Duration::micros(1500);
  // 20 ms: past the pool's idle close, so the PDC that saw only refusals
  // must also close cleanly before the next message can go.
  p.run(Duration::millis(20), [&](const Datagram& d) { return d.to == 1 || p.now >= heal; });
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRemInvReqErr);
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kLocLenErr);
  for (uint8_t b : next) ASSERT_EQ(b, 0xEE);
  ASSERT_TRUE(p.h(0).post_send(send_to(fits, 1)).ok());
  p.run(Duration::millis(5));
  rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 2u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_TRUE(std::equal(fits.begin(), fits.end(), next.begin()));
}

TEST(Transport, NoReceivePostedIsRetriedUntilOneIs) {
  Pair p(small_mtu());
  const auto msg = pattern(50, 4);
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  p.run(Duration::micros(300));
  EXPECT_GT(p.h(1).counters().rx_rnr, 0u);
  EXPECT_TRUE(p.completions(1).empty());
  std::vector<uint8_t> rbuf(50);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 9).ok());
  p.run(Duration::millis(5));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rbuf, msg);
}

TEST(Transport, VanishedPeerFailsWithRetryExceeded) {
  Pair p(small_mtu());
  const auto msg = pattern(900, 4);
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 2)).ok());
  // Nothing ever reaches host 1.
  p.run(Duration::seconds(2), [](const Datagram& d) { return d.to != 1; });
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 2u);
  for (const auto& c : sc) EXPECT_EQ(c.status, WcStatus::kRetryExcErr);
  EXPECT_EQ(p.h(0).counters().pdcs_failed, 1u);
  EXPECT_EQ(p.h(0).pdcs_open(), 0u);
  // A new send opens a fresh PDC.
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 3)).ok());
  EXPECT_EQ(p.h(0).pdcs_open(), 1u);
}

TEST(Transport, ZeroByteAndImmediate) {
  Pair p;
  std::vector<uint8_t> empty, rbuf(16);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 1).ok());
  SendRequest r = send_to(empty, 7);
  r.has_imm = true;
  r.imm = 0xDEADBEEFCAFEull;
  ASSERT_TRUE(p.h(0).post_send(r).ok());
  p.run(Duration::millis(1));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].byte_len, 0u);
  EXPECT_TRUE(rc[0].has_imm);
  EXPECT_EQ(rc[0].imm, 0xDEADBEEFCAFEull);
  EXPECT_EQ(rc[0].peer, 1u);
}

TEST(Transport, UudIsOnePacketBestEffort) {
  Pair p(small_mtu());
  const auto msg = pattern(200, 5), big = pattern(300, 5);
  std::vector<uint8_t> rbuf(256);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 1).ok());
  EXPECT_EQ(p.h(0).post_send(send_to(big, 1, DeliveryMode::kUud)).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 2, DeliveryMode::kUud)).ok());
  p.run(Duration::millis(1));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(std::vector<uint8_t>(rbuf.begin(), rbuf.begin() + 200), msg);
  EXPECT_EQ(p.h(0).pdcs_open(), 0u);  // no PDC for UUD
  // A UUD packet lost is simply gone: the sender completed on transmit.
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 3, DeliveryMode::kUud)).ok());
  p.run(Duration::millis(1), [](const Datagram&) { return false; });
  auto sc = p.completions(0);
  EXPECT_EQ(sc.size(), 2u);
}

TEST(Transport, MalformedDatagramsAreCountedAndDropped) {
  Pair p(small_mtu());
  RxMeta meta;
  meta.peer = 1;
  std::vector<uint8_t> junk(40, 0x5A);
  p.h(1).on_datagram(junk, meta, p.now);
  p.h(1).on_datagram(std::span<const uint8_t>(junk.data(), 1), meta, p.now);
  uint64_t errors = 0;
  for (uint64_t e : p.h(1).counters().rx_wire_errors) errors += e;
  EXPECT_EQ(errors, 2u);
  EXPECT_EQ(p.h(1).pdcs_open(), 0u);
  // A valid request whose payload bits flip is caught by the CRC.
  const auto msg = pattern(100, 1);
  std::vector<uint8_t> rbuf(100);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 1).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  p.collect();
  ASSERT_EQ(p.wire.size(), 1u);
  Datagram d = p.wire.front();
  p.wire.clear();
  d.bytes[70] ^= 0x10;
  const int kCrc = static_cast<int>(wire::WireError::kBadChecksum);
  const uint64_t crc_before = p.h(1).counters().rx_wire_errors[kCrc];
  p.deliver(d);
  EXPECT_EQ(p.h(1).counters().rx_wire_errors[kCrc], crc_before + 1);
  EXPECT_TRUE(p.completions(1).empty());
  // The sender's retransmission then delivers it intact.
  p.run(Duration::millis(5));
  EXPECT_EQ(p.completions(1).size(), 1u);
  EXPECT_EQ(rbuf, msg);
}

TEST(Transport, TrimmedPacketIsNackedAndResentButNeverOpensAPdc) {
  Pair p(small_mtu());
  const auto msg = pattern(700, 3);  // 3 packets
  std::vector<uint8_t> rbuf(700);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 1).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  p.collect();
  ASSERT_EQ(p.wire.size(), 3u);
  std::deque<Datagram> data;
  data.swap(p.wire);
  RxMeta trimmed;
  trimmed.peer = 1;
  trimmed.trimmed = true;
  // The first packet (SYN) arrives trimmed: it finds no PDC and opens none.
  Datagram cut = data[0];
  cut.bytes.resize(wire::kRequestSize + wire::kSesRequestSize);
  p.h(1).on_datagram(cut.bytes, trimmed, p.now);
  EXPECT_EQ(p.h(1).pdcs_open(), 0u);
  EXPECT_EQ(p.h(1).counters().rx_no_pdc, 1u);
  // The second arrives whole and opens it; the third arrives trimmed: NACKed.
  p.deliver(data[1]);
  ASSERT_EQ(p.h(1).pdcs_open(), 1u);
  Datagram cut3 = data[2];
  cut3.bytes.resize(wire::kRequestSize + 10);
  p.h(1).on_datagram(cut3.bytes, trimmed, p.now);
  EXPECT_EQ(p.h(1).counters().rx_trimmed, 2u);
  p.run(Duration::millis(5));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rbuf, msg);
  EXPECT_GE(p.h(1).pds_counters().nacks_sent, 1u);
}

TEST(Transport, IdlePdcsCloseAndReopenWithZeroRtt) {
  TransportConfig c = small_mtu();
  c.pool.idle_shrink = Duration::micros(20);
  c.pool.idle_close = Duration::micros(200);
  c.pool.close_linger = Duration::micros(100);
  Pair p(c);
  const auto msg = pattern(600, 1);
  std::vector<uint8_t> rbuf(600);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 1).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  p.run(Duration::micros(100));
  EXPECT_EQ(p.completions(1).size(), 1u);
  EXPECT_EQ(p.h(0).pdcs_open(), 1u);
  EXPECT_EQ(p.h(1).pdcs_open(), 1u);
  // Idle long enough: shrunk, then closed by the initiator, the target lingers and frees.
  p.run(Duration::millis(2));
  EXPECT_GE(p.h(0).pool().counters().shrunk, 1u);
  EXPECT_EQ(p.h(0).pool().counters().closed_idle, 1u);
  EXPECT_EQ(p.h(0).pdcs_open(), 0u);
  EXPECT_EQ(p.h(1).pdcs_open(), 0u);
  EXPECT_TRUE(p.h(0).next_deadline().is_max());
  // The next message opens a fresh PDC with 0 RTT and is delivered.
  std::fill(rbuf.begin(), rbuf.end(), 0);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 2).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 2)).ok());
  p.run(Duration::micros(100));
  ASSERT_EQ(p.completions(1).size(), 1u);
  EXPECT_EQ(rbuf, msg);
  EXPECT_EQ(p.h(0).pool().counters().opened, 2u);
  EXPECT_EQ(p.h(1).pool().counters().accepted, 2u);
}

TEST(Transport, WorkPostedAsAnIdlePdcIsClosingWaitsForAFreshOne) {
  // The race a wall-clock engine hit: the pool decides to close an idle PDC
  // and, before its CLOSE leaves, the application posts to the same peer.
  // The work must neither be queued on the closing PDC (it would never be
  // sent) nor lost when that PDC is freed.
  TransportConfig c = small_mtu();
  c.pool.idle_shrink = Duration::micros(5);
  c.pool.idle_close = Duration::micros(10);
  c.pool.close_linger = Duration::micros(20);
  Pair p(c);
  const auto m1 = pattern(100, 1), m2 = pattern(100, 2);
  std::vector<uint8_t> r1(100), r2(100);
  ASSERT_TRUE(p.h(1).post_recv(0, r1, 1).ok());
  ASSERT_TRUE(p.h(1).post_recv(0, r2, 2).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(m1, 1)).ok());
  p.run(Duration::micros(5));
  ASSERT_EQ(p.completions(1).size(), 1u);
  ASSERT_EQ(p.completions(0).size(), 1u);
  // The idle clocks run out: shrink, then close (only requested so far).
  p.now += Duration::micros(40);
  p.h(0).on_timeout(p.now);
  p.now += Duration::micros(40);
  p.h(0).on_timeout(p.now);
  ASSERT_EQ(p.h(0).pool().counters().closed_idle, 1u);
  ASSERT_TRUE(p.h(0).post_send(send_to(m2, 2)).ok());  // before the CLOSE went out
  p.run(Duration::millis(2));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(r2, m2);
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(p.h(0).pool().counters().opened, 2u);  // a fresh PDC carried it
}

TEST(Transport, AtThePdcBoundWorkWaitsForAnEvictionAndThenCompletes) {
  TransportConfig c = small_mtu();
  c.pool.max_pdcs = 1;  // one PDC at the sender: every traffic class shares the bound
  c.pool.close_linger = Duration::micros(50);
  Pair p(c);
  const auto msg = pattern(300, 2);
  std::vector<uint8_t> r0(300), r1(300);
  ASSERT_TRUE(p.h(1).post_recv(0, r0, 10).ok());
  ASSERT_TRUE(p.h(1).post_recv(0, r1, 11).ok());
  SendRequest a = send_to(msg, 1), b = send_to(msg, 2);
  b.tc = 1;  // another (peer, tc, mode): needs a second PDC
  ASSERT_TRUE(p.h(0).post_send(a).ok());
  ASSERT_TRUE(p.h(0).post_send(b).ok());  // accepted, waits: no failure for lack of a PDC
  EXPECT_EQ(p.h(0).counters().msgs_waited_for_pdc, 1u);
  p.run(Duration::millis(20));
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 2u);
  for (const auto& wc : sc) EXPECT_EQ(wc.status, WcStatus::kSuccess);
  EXPECT_EQ(p.completions(1).size(), 2u);
  EXPECT_EQ(p.h(0).pool().counters().evicted, 1u);
  EXPECT_EQ(p.h(0).pool().counters().opened, 2u);
}

TEST(Transport, QpsAreCreatedSmallGrowTheirRingAndFlushOnDestroy) {
  TransportConfig c = small_mtu();
  c.max_qps = 4;
  c.recv_queue_depth = 64;
  Pair p(c);
  auto qp = p.h(1).create_qp(DeliveryMode::kRud);
  ASSERT_TRUE(qp.ok());
  EXPECT_NE(*qp, 0);
  EXPECT_LE(p.h(1).qp_state_bytes(*qp), 64u);  // no receive ring until a receive is posted
  std::vector<uint8_t> buf(64 * 8);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(p.h(1).post_recv(*qp, {buf.data(), 8}, 100 + i).ok());
  EXPECT_LE(p.h(1).qp_state_bytes(*qp), 64u + 64 * 24);  // grew to 64 entries (24 B each), not more
  for (int i = 40; i < 64; ++i) ASSERT_TRUE(p.h(1).post_recv(*qp, {buf.data(), 8}, 100 + i).ok());
  EXPECT_EQ(p.h(1).post_recv(*qp, {buf.data(), 8}, 999).code(), absl::StatusCode::kResourceExhausted);
  // A message to this QP lands in its first posted buffer.
  const auto msg = pattern(8, 4);
  SendRequest r = send_to(msg, 1);
  r.dst_qp = *qp;
  ASSERT_TRUE(p.h(0).post_send(r).ok());
  p.run(Duration::millis(1));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 100u);
  EXPECT_EQ(rc[0].qp, *qp);
  // Destroy: the 63 receives left end with WR_FLUSH_ERR, in order.
  ASSERT_TRUE(p.h(1).destroy_qp(*qp).ok());
  rc = p.completions(1);
  ASSERT_EQ(rc.size(), 63u);
  for (size_t i = 0; i < rc.size(); ++i) {
    EXPECT_EQ(rc[i].status, WcStatus::kWrFlushErr);
    EXPECT_EQ(rc[i].wr_id, 101 + i);
  }
  EXPECT_EQ(p.h(1).post_recv(*qp, {buf.data(), 8}, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.h(1).destroy_qp(*qp).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.h(1).destroy_qp(0).code(), absl::StatusCode::kInvalidArgument);
  // max_qps bounds creation (QP 0 counts).
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(p.h(1).create_qp(DeliveryMode::kRud).ok());
  EXPECT_EQ(p.h(1).create_qp(DeliveryMode::kRud).status().code(), absl::StatusCode::kResourceExhausted);
}

SendRequest write_to(const std::vector<uint8_t>& data, uint64_t wr_id, uint64_t rkey, uint64_t addr,
                     DeliveryMode mode = DeliveryMode::kRud) {
  SendRequest r = send_to(data, wr_id, mode);
  r.op = SendOp::kWrite;
  r.rkey = rkey;
  r.remote_addr = addr;
  return r;
}

TEST(Transport, WritePlacesEveryPacketAtItsAddressAndCompletesAtTheInitiatorOnly) {
  Pair p(small_mtu());
  std::vector<uint8_t> region(4096, 0);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteWrite);
  ASSERT_TRUE(rkey.ok());
  const auto msg = pattern(1000, 5);  // 4 packets
  const uint64_t addr = reinterpret_cast<uint64_t>(region.data()) + 100;
  ASSERT_TRUE(p.h(0).post_send(write_to(msg, 1, *rkey, addr)).ok());
  p.collect();
  std::deque<Datagram> data;
  data.swap(p.wire);
  for (auto it = data.rbegin(); it != data.rend(); ++it) p.deliver(*it);  // any order
  p.run(Duration::millis(1));
  EXPECT_TRUE(std::equal(msg.begin(), msg.end(), region.begin() + 100));
  for (size_t i = 0; i < 100; ++i) ASSERT_EQ(region[i], 0);
  for (size_t i = 1100; i < region.size(); ++i) ASSERT_EQ(region[i], 0);
  EXPECT_TRUE(p.completions(1).empty());  // a plain WRITE completes only at the initiator
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kWrite);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  // Zero-based regions take offsets.
  std::vector<uint8_t> zb(2000, 0);
  auto zkey = p.h(1).register_memory(zb.data(), zb.size(), kRemoteWrite | kZeroBased);
  ASSERT_TRUE(p.h(0).post_send(write_to(msg, 2, *zkey, 500)).ok());
  p.run(Duration::millis(1));
  EXPECT_TRUE(std::equal(msg.begin(), msg.end(), zb.begin() + 500));
}

TEST(Transport, WriteWithImmTakesAReceiveAndCompletesThere) {
  Pair p(small_mtu());
  std::vector<uint8_t> region(2048, 0), unused(16);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteWrite | kZeroBased);
  ASSERT_TRUE(p.h(1).post_recv(0, unused, 77).ok());
  const auto msg = pattern(700, 6);
  SendRequest r = write_to(msg, 3, *rkey, 0);
  r.has_imm = true;
  r.imm = 0xABCD;
  ASSERT_TRUE(p.h(0).post_send(r).ok());
  p.run(Duration::millis(1));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].opcode, WcOpcode::kRecvRdmaWithImm);
  EXPECT_EQ(rc[0].wr_id, 77u);
  EXPECT_EQ(rc[0].byte_len, 700u);
  EXPECT_TRUE(rc[0].has_imm);
  EXPECT_EQ(rc[0].imm, 0xABCDu);
  EXPECT_TRUE(std::equal(msg.begin(), msg.end(), region.begin()));
  for (uint8_t b : unused) EXPECT_EQ(b, 0);  // the receive buffer gets no bytes
}

TEST(Transport, WriteOutsideItsRightsWritesNothingAndFailsAtTheInitiator) {
  TransportConfig c = small_mtu();
  c.pds.max_transmissions = 4;
  c.pds.min_rto = Duration::micros(20);
  c.pds.max_rto = Duration::micros(200);
  Pair p(c);
  std::vector<uint8_t> region(1024, 0x11), ro(1024, 0x22);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteWrite | kZeroBased);
  auto rokey = p.h(1).register_memory(ro.data(), ro.size(), kRemoteRead | kZeroBased);
  const auto msg = pattern(600, 7);
  ASSERT_TRUE(p.h(0).post_send(write_to(msg, 1, *rkey + 1, 0)).ok());  // no such key
  ASSERT_TRUE(p.h(0).post_send(write_to(msg, 2, *rkey, 600)).ok());    // runs past the end
  ASSERT_TRUE(p.h(0).post_send(write_to(msg, 3, *rokey, 0)).ok());     // no REMOTE_WRITE right
  p.run(Duration::millis(50));
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 3u);
  for (const auto& wc : sc) EXPECT_EQ(wc.status, WcStatus::kRemAccessErr) << wc.wr_id;
  for (uint8_t b : region) ASSERT_EQ(b, 0x11);
  for (uint8_t b : ro) ASSERT_EQ(b, 0x22);
  EXPECT_GT(p.h(1).counters().rx_access_denied, 0u);
  EXPECT_TRUE(p.h(1).deregister_memory(*rkey).ok());
  EXPECT_EQ(p.h(1).deregister_memory(*rkey).code(), absl::StatusCode::kNotFound);
}

TEST(Transport, RejectionsSurviveLossAndTheStreamGoesOn) {
  // A refused WRITE in the middle of a stream, with its NACKs lost twice:
  // it still ends in REM_ACCESS_ERR (a retransmission is refused again,
  // never acknowledged), and the messages after it arrive (the sender's
  // clear PSN closes the hole it leaves at the target).
  Pair p(small_mtu());
  std::vector<uint8_t> region(256, 0), rbufs(64 * 20);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteWrite | kZeroBased);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(p.h(1).post_recv(0, {rbufs.data() + 64 * i, 64}, i).ok());
  const auto m = pattern(64, 3), w = pattern(200, 4);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(p.h(0).post_send(send_to(m, 100 + i)).ok());
  ASSERT_TRUE(p.h(0).post_send(write_to(w, 7, *rkey + 1, 0)).ok());
  for (int i = 10; i < 20; ++i) ASSERT_TRUE(p.h(0).post_send(send_to(m, 100 + i)).ok());
  int nacks_dropped = 0;
  p.run(Duration::millis(20), [&](const Datagram& d) {
    wire::Packet pkt;
    if (d.to == 0 && wire::parse_datagram(d.bytes, pkt) == wire::WireError::kOk &&
        pkt.prologue.type == wire::PdsType::kNack && nacks_dropped < 2) {
      ++nacks_dropped;
      return false;
    }
    return true;
  });
  EXPECT_EQ(nacks_dropped, 2);
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 21u);
  for (const auto& wc : sc) {
    EXPECT_EQ(wc.status, wc.wr_id == 7 ? WcStatus::kRemAccessErr : WcStatus::kSuccess) << wc.wr_id;
  }
  EXPECT_EQ(p.completions(1).size(), 20u);
  for (uint8_t b : region) ASSERT_EQ(b, 0);
  // The stream keeps going on the same PDC afterwards; the next request
  // carries a clear PSN past the hole, and the target closes it.
  std::vector<uint8_t> more(64);
  ASSERT_TRUE(p.h(1).post_recv(0, more, 99).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(m, 200)).ok());
  p.run(Duration::millis(2));
  EXPECT_EQ(p.completions(1).size(), 1u);
  EXPECT_EQ(more, m);
  EXPECT_EQ(p.h(1).pds_counters().cleared_psns, 1u);
}

TEST(Transport, NoReceiveEverPostedEndsInRnrRetryExceeded) {
  Pair p(small_mtu());
  const auto m = pattern(64, 5);
  ASSERT_TRUE(p.h(0).post_send(send_to(m, 1)).ok());
  p.run(Duration::millis(100));
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRnrRetryExcErr);
  EXPECT_GE(p.h(0).pds_counters().rnr_nacks_received, 7u);
  EXPECT_EQ(p.h(0).counters().pdcs_failed, 0u);  // the peer is alive: the PDC stays
}

TEST(Transport, SendToAQpThatDoesNotExistIsRemInvReqErr) {
  Pair p(small_mtu());
  const auto m = pattern(64, 5);
  SendRequest r = send_to(m, 1);
  r.dst_qp = 17;  // never created at the target
  ASSERT_TRUE(p.h(0).post_send(r).ok());
  p.run(Duration::millis(5));
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRemInvReqErr);
}

SendRequest read_from(std::vector<uint8_t>& sink, uint64_t wr_id, uint64_t rkey, uint64_t addr,
                      DeliveryMode mode = DeliveryMode::kRud) {
  SendRequest r = send_to(sink, wr_id, mode);
  r.op = SendOp::kRead;
  r.rkey = rkey;
  r.remote_addr = addr;
  return r;
}

TEST(Transport, ReadBringsTheBytesBackAndCompletesOnlyWhenAllLanded) {
  Pair p(small_mtu());
  std::vector<uint8_t> region = pattern(3000, 8);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteRead);
  std::vector<uint8_t> sink(1000, 0);
  const uint64_t addr = reinterpret_cast<uint64_t>(region.data()) + 500;
  ASSERT_TRUE(p.h(0).post_send(read_from(sink, 4, *rkey, addr)).ok());
  // Lose two of the response packets once: they come again.
  int dropped = 0;
  p.run(Duration::millis(5), [&](const Datagram& d) {
    wire::Packet pkt;
    if (d.to == 0 && dropped < 2 && wire::parse_datagram(d.bytes, pkt) == wire::WireError::kOk &&
        pkt.has_ses_response) {
      ++dropped;
      return false;
    }
    return true;
  });
  EXPECT_EQ(dropped, 2);
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kRead);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[0].wr_id, 4u);
  EXPECT_TRUE(std::equal(sink.begin(), sink.end(), region.begin() + 500));
  EXPECT_TRUE(p.completions(1).empty());  // nothing to see at the target
  EXPECT_EQ(p.h(1).counters().reads_served, 1u);
  // Zero-based, and a zero-length READ.
  auto zkey = p.h(1).register_memory(region.data(), region.size(), kRemoteRead | kZeroBased);
  std::vector<uint8_t> sink2(100, 0), none;
  ASSERT_TRUE(p.h(0).post_send(read_from(sink2, 5, *zkey, 2900)).ok());
  ASSERT_TRUE(p.h(0).post_send(read_from(none, 6, *zkey, 0)).ok());
  p.run(Duration::millis(5));
  sc = p.completions(0);
  ASSERT_EQ(sc.size(), 2u);
  for (const auto& wc : sc) EXPECT_EQ(wc.status, WcStatus::kSuccess);
  EXPECT_TRUE(std::equal(sink2.begin(), sink2.end(), region.begin() + 2900));
}

TEST(Transport, ReadOutsideItsRightsIsRemAccessErrAndTouchesNothing) {
  Pair p(small_mtu());
  std::vector<uint8_t> region(1000, 9);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteRead | kZeroBased);
  auto wkey = p.h(1).register_memory(region.data(), region.size(), kRemoteWrite | kZeroBased);
  std::vector<uint8_t> a(200, 0), b(200, 0), c(200, 0);
  ASSERT_TRUE(p.h(0).post_send(read_from(a, 1, *rkey, 900)).ok());   // past the end
  ASSERT_TRUE(p.h(0).post_send(read_from(b, 2, *wkey, 0)).ok());     // no READ right
  ASSERT_TRUE(p.h(0).post_send(read_from(c, 3, *rkey + 2, 0)).ok()); // no such key
  p.run(Duration::millis(5));
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 3u);
  for (const auto& wc : sc) EXPECT_EQ(wc.status, WcStatus::kRemAccessErr) << wc.wr_id;
  for (auto* v : {&a, &b, &c})
    for (uint8_t x : *v) ASSERT_EQ(x, 0);
}

TEST(Transport, ReadOnUudIsRefusedAtPost) {
  Pair p(small_mtu());
  std::vector<uint8_t> sink(10);
  EXPECT_EQ(p.h(0).post_send(read_from(sink, 1, 1, 0, DeliveryMode::kUud)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Transport, RodKeepsWritesAndSendsInOneOrder) {
  Pair p(small_mtu());
  std::vector<uint8_t> region(512, 0), rbuf(64);
  auto rkey = p.h(1).register_memory(region.data(), region.size(), kRemoteWrite | kZeroBased);
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf, 9).ok());
  const auto w = pattern(300, 1), m = pattern(64, 2);
  ASSERT_TRUE(p.h(0).post_send(write_to(w, 1, *rkey, 0, DeliveryMode::kRod)).ok());  // 2 packets
  ASSERT_TRUE(p.h(0).post_send(send_to(m, 2, DeliveryMode::kRod)).ok());
  p.collect();
  ASSERT_EQ(p.wire.size(), 3u);
  std::deque<Datagram> data;
  data.swap(p.wire);
  p.deliver(data[2]);  // the SEND first: it must wait for the WRITE before it
  EXPECT_TRUE(p.completions(1).empty());
  p.deliver(data[0]);
  p.deliver(data[1]);
  p.run(Duration::millis(2));
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 1u);  // the SEND; the WRITE itself completes only at the initiator
  EXPECT_EQ(rc[0].wr_id, 9u);
  EXPECT_TRUE(std::equal(w.begin(), w.end(), region.begin()));
  EXPECT_EQ(rbuf, m);
}

TEST(Transport, BadArgumentsReturnDocumentedErrors) {
  Pair p;
  std::vector<uint8_t> buf(8);
  EXPECT_EQ(p.h(1).post_recv(4000, buf, 1).code(), absl::StatusCode::kInvalidArgument);
  SendRequest r = send_to(buf, 1);
  r.dst_qp = 5000;
  EXPECT_EQ(p.h(0).post_send(r).code(), absl::StatusCode::kInvalidArgument);
  TransportConfig c;
  c.max_send_msgs = 2;
  Pair q(c);
  EXPECT_TRUE(q.h(0).post_send(send_to(buf, 1)).ok());
  EXPECT_TRUE(q.h(0).post_send(send_to(buf, 2)).ok());
  EXPECT_EQ(q.h(0).post_send(send_to(buf, 3)).code(), absl::StatusCode::kResourceExhausted);
}

// ===========================================================================
// EQDS: receiver credit over the transport
// ===========================================================================

// Three transports (hosts 0, 1 send to host 2) joined by a wire with a fixed
// one-way delay and no rate: only credit limits what the senders put on it.
// `fate` may drop or trim any datagram.
class Trio {
 public:
  enum Fate { kDeliver, kDrop, kTrim };
  explicit Trio(const TransportConfig& cfg) {
    for (int i = 0; i < 3; ++i) hosts_[i] = std::make_unique<Transport>(cfg, i + 1, 100 + i);
  }
  Transport& h(int i) { return *hosts_[i]; }

  void collect() {
    for (int i = 0; i < 3; ++i) {
      while (link_.poll(*hosts_[i], now, [&](std::span<const uint8_t> dg, const TxPacket& tx) {
        Wire w{std::vector<uint8_t>(dg.begin(), dg.end()), i, static_cast<int>(tx.peer) - 1, false, tx.entropy};
        if (on_send) on_send(w, tx);
        const Fate f = fate ? fate(w) : kDeliver;
        if (f == kDrop) return;
        if (f == kTrim) {
          w.bytes.resize(wire::kCcRequestSize + wire::kSesRequestSize);  // headers only, no trailer
          w.trimmed = true;
        }
        wire_.emplace(std::make_pair((now + delay).ns(), seq_++), std::move(w));
      }) == link_.burst()) {
      }
    }
  }
  // Runs until done() or nothing is left before `limit`.
  bool run(const std::function<bool()>& done, Duration limit) {
    const TimePoint end = now + limit;
    for (int guard = 0; guard < 10000000; ++guard) {
      collect();
      if (done()) return true;
      TimePoint t = wire_.empty() ? TimePoint::max() : TimePoint::from_ns(wire_.begin()->first.first);
      for (int i = 0; i < 3; ++i) t = min_time(t, hosts_[i]->next_deadline());
      if (t.is_max() || t > end) return done();
      now = max_time(now, t);
      while (!wire_.empty() && wire_.begin()->first.first <= now.ns()) {
        const Wire w = wire_.begin()->second;
        wire_.erase(wire_.begin());
        RxMeta meta;
        meta.peer = static_cast<PeerAddr>(w.from + 1);
        meta.trimmed = w.trimmed;
        meta.entropy = w.entropy;
        if (on_deliver) on_deliver(w);
        hosts_[w.to]->on_datagram(w.bytes, meta, now);
      }
      for (int i = 0; i < 3; ++i)
        if (hosts_[i]->next_deadline() <= now) hosts_[i]->on_timeout(now);
    }
    return done();
  }

  struct Wire {
    std::vector<uint8_t> bytes;
    int from, to;
    bool trimmed;
    uint16_t entropy;
  };
  static wire::Packet parse(const Wire& w) {
    wire::Packet pkt;
    if (w.trimmed) {
      EXPECT_EQ(wire::parse_trimmed(w.bytes, pkt), wire::WireError::kOk);
    } else {
      EXPECT_EQ(wire::parse_datagram(w.bytes, pkt), wire::WireError::kOk);
    }
    return pkt;
  }
  static bool is_data(const wire::Packet& p) {
    return p.prologue.type == wire::PdsType::kRudCcReq || p.prologue.type == wire::PdsType::kRudReq;
  }
  static bool is_ctrl(const wire::Packet& p, wire::CtrlType t) {
    return p.prologue.type == wire::PdsType::kCtrl && p.ctrl.ctrl_type() == t;
  }

  TimePoint now = TimePoint::zero() + Duration::micros(1);
  Duration delay = Duration::micros(2);
  std::function<Fate(const Wire&)> fate;
  std::function<void(const Wire&, const TxPacket&)> on_send;
  std::function<void(const Wire&)> on_deliver;

 private:
  std::unique_ptr<Transport> hosts_[3];
  std::map<std::pair<int64_t, uint64_t>, Wire> wire_;
  uint64_t seq_ = 0;
  sim::DirectLink link_{16};
};

TransportConfig eqds_config() {
  TransportConfig c;
  c.pds.cc = "eqds";
  // One BDP of 100 Gb/s x 10 us: 125 kB unsolicited, then credit.
  c.pds.cc_params.link_rate = 100e9 / 8;
  c.pds.cc_params.base_rtt = Duration::micros(10);
  return c;
}

// The sender PDC of host `h` (its only initiator PDC).
const pds::Pdc* sender_pdc(Transport& t) {
  const pds::Pdc* found = nullptr;
  t.pool().for_each([&](uint16_t id, const pds::Pdc& pdc) {
    if (t.pool().initiator(id)) found = &pdc;
  });
  return found;
}

TEST(TransportEqds, ConfigNamesAreValidated) {
  TransportConfig c = eqds_config();
  EXPECT_TRUE(Transport::validate(c).ok());
  c.pds.cc = "cubic";
  EXPECT_EQ(Transport::validate(c).code(), absl::StatusCode::kInvalidArgument);
  c = eqds_config();
  c.pds.lb = "random-walk";
  EXPECT_FALSE(Transport::validate(c).ok());
  // Only a receiver-credit CC gets a scheduler.
  Transport fixed(TransportConfig(), 1, 1), eqds(eqds_config(), 2, 2);
  EXPECT_EQ(fixed.credit_scheduler(), nullptr);
  EXPECT_NE(eqds.credit_scheduler(), nullptr);
}

TEST(TransportEqds, TwoSendersBeyondTheInitialWindowCompleteOnCredit) {
  const TransportConfig cfg = eqds_config();
  Trio t(cfg);
  const uint64_t initial = cc::eqds_initial_window(cfg.pds.cc_params);
  constexpr size_t kBig = 1 << 20, kSmall = 300000;
  const auto big0 = pattern(kBig, 1), big1 = pattern(kBig, 2), small0 = pattern(kSmall, 3), small1 = pattern(kSmall, 4);
  std::vector<std::vector<uint8_t>> rbufs(4, std::vector<uint8_t>(kBig));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(t.h(2).post_recv(0, rbufs[i], i).ok());
  for (int s = 0; s < 2; ++s) {
    SendRequest r;
    r.peer = 3;
    r.data = s == 0 ? big0 : big1;
    r.wr_id = 10 + s;
    ASSERT_TRUE(t.h(s).post_send(r).ok());
    r.data = s == 0 ? small0 : small1;
    r.wr_id = 20 + s;
    ASSERT_TRUE(t.h(s).post_send(r).ok());
  }
  // Data each sender put on the wire before the first CREDIT reached it, and
  // credit never overdrawn at any step.
  uint64_t before_credit[2] = {0, 0};
  bool credited[2] = {false, false};
  t.on_send = [&](const Trio::Wire& w, const TxPacket& tx) {
    const wire::Packet p = Trio::parse(w);
    if (w.from < 2 && Trio::is_data(p)) {
      EXPECT_EQ(p.prologue.type, wire::PdsType::kRudCcReq);
      EXPECT_EQ(p.request.req_cc_state, tx.len);  // what the sender charged
      if (!credited[w.from]) before_credit[w.from] += tx.len;
    }
  };
  t.on_deliver = [&](const Trio::Wire& w) {
    if (w.to < 2 && Trio::is_ctrl(Trio::parse(w), wire::CtrlType::kCredit)) credited[w.to] = true;
  };
  std::vector<Completion> rx, tx[2];
  auto finished = [&] {
    Completion wc[8];
    uint32_t n;
    for (int s = 0; s < 2; ++s) {
      if (const pds::Pdc* pdc = sender_pdc(t.h(s))) EXPECT_GE(pdc->cc_state().credit_bytes, 0);
      while ((n = t.h(s).poll_completions(wc, 8)) > 0) tx[s].insert(tx[s].end(), wc, wc + n);
    }
    while ((n = t.h(2).poll_completions(wc, 8)) > 0) rx.insert(rx.end(), wc, wc + n);
    return rx.size() == 4 && tx[0].size() == 2 && tx[1].size() == 2;
  };
  const TimePoint start = t.now;
  ASSERT_TRUE(t.run(finished, Duration::millis(20)));
  for (const Completion& c : rx) {
    ASSERT_EQ(c.status, WcStatus::kSuccess);
    const std::vector<uint8_t>& want = c.peer == 1 ? (c.byte_len == kBig ? big0 : small0)
                                                   : (c.byte_len == kBig ? big1 : small1);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), rbufs[c.wr_id].begin())) << c.wr_id;
  }
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(tx[s][0].status, WcStatus::kSuccess);
    EXPECT_EQ(tx[s][1].status, WcStatus::kSuccess);
    // The unsolicited window went at once; everything else waited for credit.
    EXPECT_GT(before_credit[s], initial - 5000);
    EXPECT_LE(before_credit[s], initial);
    const pds::PdsCounters& c = sender_pdc(t.h(s))->counters();
    EXPECT_GT(c.credit_reqs_sent, 0u);
    EXPECT_GT(c.credits_received, 100u);
    EXPECT_GT(c.credit_blocked, 0u);
  }
  // The receiver granted both, at its line rate less the headroom: 2.6 MB
  // beyond the two unsolicited windows take at least their time at 98 Gb/s.
  const cc::CreditScheduler& sched = *t.h(2).credit_scheduler();
  EXPECT_GT(sched.counters().granted_bytes, 2 * (kBig + kSmall) - 2 * initial);
  EXPECT_GT(t.h(2).counters().credits_sent, 100u);
  const double granted_s = static_cast<double>(sched.counters().granted_bytes) / sched.grant_rate();
  EXPECT_GE((t.now - start).sec(), granted_s);
}

TEST(TransportEqds, TrimmedPacketIsRegrantedAndResent) {
  const TransportConfig cfg = eqds_config();
  Trio t(cfg);
  const auto msg = pattern(400000, 5);  // beyond the initial window: credit in play
  std::vector<uint8_t> rbuf(msg.size());
  ASSERT_TRUE(t.h(2).post_recv(0, rbuf, 1).ok());
  SendRequest r;
  r.peer = 3;
  r.data = msg;
  ASSERT_TRUE(t.h(0).post_send(r).ok());
  // Trim the 40th data packet (sent on credit, after the unsolicited window).
  int data_seen = 0;
  uint32_t trimmed_psn = 0, trimmed_len = 0;
  int resent = 0;
  t.fate = [&](const Trio::Wire& w) {
    const wire::Packet p = Trio::parse(w);
    if (w.from != 0 || !Trio::is_data(p)) return Trio::kDeliver;
    if (trimmed_len != 0 && p.request.psn == trimmed_psn) ++resent;
    if (++data_seen != 40) return Trio::kDeliver;
    trimmed_psn = p.request.psn;
    trimmed_len = p.request.req_cc_state;
    return Trio::kTrim;
  };
  bool complete = false;
  ASSERT_TRUE(t.run([&] {
    Completion wc[2];
    complete |= t.h(2).poll_completions(wc, 2) == 1;
    return complete;
  }, Duration::millis(20)));
  EXPECT_EQ(rbuf, msg);
  ASSERT_NE(trimmed_len, 0u);
  // The receiver took the trimmed header's charged length as demand at once
  // (not the few bytes that survived), NACKed, and the sender resent it once.
  EXPECT_EQ(t.h(2).credit_scheduler()->counters().trimmed_bytes, trimmed_len);
  EXPECT_EQ(t.h(2).pds_counters().nacks_sent, 1u);
  EXPECT_EQ(resent, 1);
  const pds::PdsCounters& c = sender_pdc(t.h(0))->counters();
  EXPECT_EQ(c.retransmits, 1u);
  EXPECT_EQ(c.rto_fires, 0u);
}

// Incast: every packet of the unsolicited window is trimmed, the SYN ones
// included, so the target never creates our PDC (a trimmed header may not)
// and ignores our CREDIT_REQs. Without credit the sender could never resend:
// until the target answers, one packet may go uncredited per RTO.
TEST(TransportEqds, WholeTrimmedFirstWindowStillOpensThePdc) {
  const TransportConfig cfg = eqds_config();
  Trio t(cfg);
  const uint64_t initial = cc::eqds_initial_window(cfg.pds.cc_params);
  const auto msg = pattern(300000, 7);
  std::vector<uint8_t> rbuf(msg.size());
  ASSERT_TRUE(t.h(2).post_recv(0, rbuf, 1).ok());
  SendRequest r;
  r.peer = 3;
  r.data = msg;
  ASSERT_TRUE(t.h(0).post_send(r).ok());
  uint64_t first_window = 0;
  int trimmed = 0;
  t.fate = [&](const Trio::Wire& w) {
    const wire::Packet p = Trio::parse(w);
    if (w.from != 0 || !Trio::is_data(p) || (p.request.prologue.flags & wire::kReqFlagRetx)) return Trio::kDeliver;
    if (first_window >= initial) return Trio::kDeliver;
    first_window += p.request.req_cc_state;
    ++trimmed;
    return Trio::kTrim;
  };
  bool complete = false;
  ASSERT_TRUE(t.run([&] {
    Completion wc[2];
    complete |= t.h(2).poll_completions(wc, 2) == 1;
    return complete;
  }, Duration::millis(50)));
  EXPECT_EQ(rbuf, msg);
  EXPECT_GT(trimmed, 20);
  EXPECT_GE(sender_pdc(t.h(0))->counters().rto_fires, 1u);
}

TEST(TransportEqds, LostCreditsAndRequestsAreRepaired) {
  const TransportConfig cfg = eqds_config();
  Trio t(cfg);
  const auto msg = pattern(600000, 6);
  std::vector<uint8_t> rbuf(msg.size());
  ASSERT_TRUE(t.h(2).post_recv(0, rbuf, 1).ok());
  SendRequest r;
  r.peer = 3;
  r.data = msg;
  ASSERT_TRUE(t.h(0).post_send(r).ok());
  // The first two CREDIT_REQs and every third CREDIT vanish (later grants
  // carry the total, so they repair those), and so does the last CREDIT:
  // nothing follows it, so only the sender's request repeated on its RTO
  // clock, answered with the grant total again, gets the message done.
  const uint64_t packets = (msg.size() + cfg.mtu_payload - 1) / cfg.mtu_payload;
  const uint64_t charged = msg.size() + packets * (wire::kCcRequestSize + wire::kSesRequestSize + wire::kTrailerSize);
  const uint64_t final_total = charged - cc::eqds_initial_window(cfg.pds.cc_params);
  int reqs = 0, credits = 0;
  bool last_dropped = false;
  t.fate = [&](const Trio::Wire& w) {
    const wire::Packet p = Trio::parse(w);
    if (Trio::is_ctrl(p, wire::CtrlType::kCreditReq) && ++reqs <= 2) return Trio::kDrop;
    if (Trio::is_ctrl(p, wire::CtrlType::kCredit)) {
      if (p.ctrl.payload == final_total && !last_dropped) {
        last_dropped = true;
        return Trio::kDrop;
      }
      if (++credits % 3 == 0) return Trio::kDrop;
    }
    return Trio::kDeliver;
  };
  bool complete = false;
  ASSERT_TRUE(t.run([&] {
    Completion wc[2];
    complete |= t.h(2).poll_completions(wc, 2) == 1;
    return complete;
  }, Duration::millis(50)));
  EXPECT_EQ(rbuf, msg);
  EXPECT_TRUE(last_dropped);
  EXPECT_GT(sender_pdc(t.h(0))->counters().credit_reqs_sent, 2u);
  EXPECT_GE(t.h(2).counters().credit_repeats, 1u);
}

}  // namespace
}  // namespace shoal::ses

namespace shoal::ses {
namespace {

TEST(Transport, DestroyingAQpFlushesItsUnstartedSendsAndLeavesNoHoleInRodOrder) {
  Pair p(small_mtu());
  auto qa = p.h(0).create_qp(DeliveryMode::kRod);
  auto qb = p.h(0).create_qp(DeliveryMode::kRod);
  ASSERT_TRUE(qa.ok() && qb.ok());
  const auto big = pattern(256 * 8, 1), small = pattern(40, 2);
  std::vector<std::vector<uint8_t>> rx(8, std::vector<uint8_t>(4096));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(p.h(1).post_recv(0, rx[i], 100 + i).ok());
  SendRequest r = send_to(big, 1, DeliveryMode::kRod);
  r.src_qp = *qa;
  ASSERT_TRUE(p.h(0).post_send(r).ok());
  // Let the first message start, then queue three more behind it.
  p.collect();
  for (int i = 0; i < 3; ++i) {
    SendRequest q = send_to(small, 10 + i, DeliveryMode::kRod);
    q.src_qp = *qa;
    ASSERT_TRUE(p.h(0).post_send(q).ok());
  }
  ASSERT_TRUE(p.h(0).destroy_qp(*qa).ok());
  auto sc = p.completions(0);
  ASSERT_EQ(sc.size(), 3u);  // the three that had not started, at once
  for (const auto& c : sc) {
    EXPECT_EQ(c.status, WcStatus::kWrFlushErr);
    EXPECT_GE(c.wr_id, 10u);
  }
  EXPECT_EQ(p.h(0).counters().sends_flushed, 3u);
  // A message of another QP on the same ROD PDC follows the one that had
  // started: no hole in the order, so both complete.
  SendRequest q = send_to(small, 20, DeliveryMode::kRod);
  q.src_qp = *qb;
  ASSERT_TRUE(p.h(0).post_send(q).ok());
  p.run(Duration::millis(2));
  sc = p.completions(0);
  ASSERT_EQ(sc.size(), 2u);
  std::set<uint64_t> done;
  for (const auto& c : sc) {
    EXPECT_EQ(c.status, WcStatus::kSuccess);
    done.insert(c.wr_id);
  }
  EXPECT_EQ(done, (std::set<uint64_t>{1, 20}));
  // The receiver completes them in the PDC's order.
  auto rc = p.completions(1);
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(rc[0].byte_len, big.size());
  EXPECT_EQ(rc[1].byte_len, small.size());
}

}  // namespace
}  // namespace shoal::ses

namespace shoal::ses {
namespace {

// Budgets per message (a QP's retry_budget_us / rnr_budget_us): a message
// with a small budget ends early while one on the same PDC with the PDC's
// budget goes on.
TEST(Transport, AMessagesOwnRnrBudgetEndsItBeforeThePdcsBudget) {
  Pair p(small_mtu());
  const auto a = pattern(100, 1), b = pattern(100, 2);
  SendRequest quick = send_to(a, 1);
  quick.rnr_budget_us = 120;  // 50 + 100 us of RNR waits: two retries
  ASSERT_TRUE(p.h(0).post_send(quick).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(b, 2)).ok());  // the PDC's 7 retries
  std::vector<Completion> sc;
  const TimePoint start = p.now;
  while (sc.empty() && p.now < start + Duration::millis(50)) {
    const TimePoint until = p.now + Duration::micros(20);
    p.run(Duration::micros(20));
    p.now = max_time(p.now, until);  // run() stops early when nothing is due
    sc = p.completions(0);
  }
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRnrRetryExcErr);
  EXPECT_LT(p.now - start, Duration::millis(1));
  p.run(Duration::millis(50));
  sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kRnrRetryExcErr);
}

TEST(Transport, AMessagesOwnRetryBudgetEndsItWhileThePdcGoesOn) {
  Pair p(small_mtu());
  const auto a = pattern(100, 1), b = pattern(100, 2);
  std::vector<uint8_t> r0(200), r1(200);
  ASSERT_TRUE(p.h(1).post_recv(0, r0, 1).ok());
  ASSERT_TRUE(p.h(1).post_recv(0, r1, 2).ok());
  SendRequest warm = send_to(a, 9);
  ASSERT_TRUE(p.h(0).post_send(warm).ok());
  p.run(Duration::millis(1));
  ASSERT_EQ(p.completions(0).size(), 1u);
  // The target goes silent.
  SendRequest quick = send_to(a, 1);
  quick.retry_budget_us = 1000;
  ASSERT_TRUE(p.h(0).post_send(quick).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(b, 2)).ok());
  const TimePoint start = p.now;
  std::vector<Completion> sc;
  while (sc.empty() && p.now < start + Duration::seconds(2)) {
    const TimePoint until = p.now + Duration::micros(100);
    p.run(Duration::micros(100), [](const Datagram& d) { return d.to == 0; });
    p.now = max_time(p.now, until);  // run() stops early when nothing is due
    sc = p.completions(0);
  }
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRetryExcErr);
  EXPECT_LT(p.now - start, Duration::millis(10));
  EXPECT_GE(p.now - start, Duration::micros(1000));
  EXPECT_EQ(p.h(0).pdcs_open(), 1u);  // the PDC itself has not given up
  EXPECT_GT(p.h(0).pds_counters().unit_budget_failures, 0u);
  // The path heals: the other message still arrives, and the first one's
  // hole at the target is closed by the clear PSN.
  p.run(Duration::millis(400));
  sc = p.completions(0);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
}

// Polls `t` for at most `n` packets through buffers of `buf` bytes each.
std::vector<TxPacket> poll_n(Transport& t, TimePoint now, uint32_t n, std::vector<std::vector<uint8_t>>& buf) {
  std::vector<TxPacket> slots(n);
  buf.assign(n, std::vector<uint8_t>(9000));
  for (uint32_t i = 0; i < n; ++i) {
    slots[i].data = buf[i].data();
    slots[i].capacity = static_cast<uint32_t>(buf[i].size());
  }
  TxBatch batch(slots.data(), n);
  slots.resize(t.poll_transmit(now, batch));
  return slots;
}

TEST(Transport, AnAckDueGoesOutBeforeDataEvenWhenEveryBatchCouldBeData) {
  // Host 1 sends a long message of its own (its sending PDC is first on the
  // active list) while it receives one from host 0. With one-packet
  // batches, its sender could fill every batch: the ACK host 0 waits for
  // must still leave first, or host 0 stalls until its RTO.
  Pair p(small_mtu());
  const auto from0 = pattern(8192, 1), from1 = pattern(8192, 2);
  std::vector<uint8_t> rbuf0(8192), rbuf1(8192);
  ASSERT_TRUE(p.h(0).post_recv(0, rbuf0, 70).ok());
  ASSERT_TRUE(p.h(1).post_recv(0, rbuf1, 71).ok());
  SendRequest back = send_to(from1, 2);
  back.peer = 1;
  ASSERT_TRUE(p.h(1).post_send(back).ok());
  ASSERT_TRUE(p.h(0).post_send(send_to(from0, 1)).ok());
  std::vector<std::vector<uint8_t>> buf;
  std::vector<TxPacket> first = poll_n(p.h(0), p.now, 2, buf);
  ASSERT_EQ(first.size(), 2u);
  // The second packet alone: a gap, which host 1 acknowledges at once.
  RxMeta meta;
  meta.peer = 1;
  p.h(1).on_datagram(std::span<const uint8_t>(first[1].data, first[1].len), meta, p.now);
  std::vector<TxPacket> out = poll_n(p.h(1), p.now, 1, buf);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].control);
  wire::Packet pkt;
  ASSERT_EQ(wire::parse_datagram(std::span<const uint8_t>(out[0].data, out[0].len), pkt), wire::WireError::kOk);
  EXPECT_EQ(pkt.prologue.type, wire::PdsType::kAckCc);
  // And the data goes on after it.
  out = poll_n(p.h(1), p.now, 1, buf);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].control);
}

TEST(Transport, PdcsWithDataTakeTurnsAcrossBatches) {
  // Host 0 sends to hosts 1 and 2; each batch has room for one packet, which
  // one PDC could take every time. Taking turns, the packets alternate.
  Trio t{TransportConfig()};
  std::vector<uint8_t> big = pattern(64 * 4096, 5);
  SendRequest to1 = send_to(big, 1), to2 = send_to(big, 2);
  to1.peer = 2;
  to2.peer = 3;
  ASSERT_TRUE(t.h(0).post_send(to1).ok());
  ASSERT_TRUE(t.h(0).post_send(to2).ok());
  std::vector<std::vector<uint8_t>> buf;
  std::vector<PeerAddr> order;
  for (int i = 0; i < 8; ++i) {
    std::vector<TxPacket> out = poll_n(t.h(0), t.now, 1, buf);
    ASSERT_EQ(out.size(), 1u);
    order.push_back(out[0].peer);
  }
  EXPECT_EQ(order, (std::vector<PeerAddr>{2, 3, 2, 3, 2, 3, 2, 3}));
}

TEST(TransportEqds, CreditIsRequestedRightAfterTheSynNotAfterTheInitialWindow) {
  // The unsolicited window is one BDP (about 30 packets here). Asked for
  // only after it, credit comes back a whole window late and the sender
  // idles; asked for with the first packet, grants meet the window's end.
  Pair p(eqds_config());
  const auto msg = pattern(1 << 20, 9);
  ASSERT_TRUE(p.h(0).post_send(send_to(msg, 1)).ok());
  std::vector<std::vector<uint8_t>> buf;
  int data_before_request = -1, data = 0;
  for (int poll = 0; poll < 4 && data_before_request < 0; ++poll) {
    for (const TxPacket& tx : poll_n(p.h(0), p.now, 4, buf)) {
      wire::Packet pkt;
      ASSERT_EQ(wire::parse_datagram(std::span<const uint8_t>(tx.data, tx.len), pkt), wire::WireError::kOk);
      if (pkt.prologue.type == wire::PdsType::kCtrl && pkt.ctrl.ctrl_type() == wire::CtrlType::kCreditReq) {
        data_before_request = data;
        break;
      }
      ++data;
    }
  }
  EXPECT_GE(data_before_request, 1);  // the SYN first: the target must know the PDC
  EXPECT_LE(data_before_request, 4);
}
TEST(TransportEqds, RepliesFollowTheEntropyOfTheLatestRequestOrCreditRequest) {
  // ACKs and CREDITs go back on the entropy the sender's path selection
  // chose for the latest request or CREDIT_REQ that arrived, so that a
  // sender steering around a dead path steers its replies too.
  TransportConfig cfg = eqds_config();
  cfg.pds.lb = "spray";
  Trio t(cfg);
  std::vector<uint8_t> rbuf(1 << 20);
  ASSERT_TRUE(t.h(1).post_recv(0, rbuf, 9).ok());
  const auto msg = pattern(1 << 20, 4);
  ASSERT_TRUE(t.h(0).post_send(send_to(msg, 1)).ok());
  int latest = -1, replies = 0, credits = 0, wrong = 0;
  std::set<uint16_t> reply_entropies;
  t.on_deliver = [&](const Trio::Wire& w) {
    if (w.from != 0 || w.to != 1) return;
    const wire::Packet pkt = Trio::parse(w);
    if (Trio::is_data(pkt) || Trio::is_ctrl(pkt, wire::CtrlType::kCreditReq)) latest = w.entropy;
  };
  t.on_send = [&](const Trio::Wire& w, const TxPacket& tx) {
    if (w.from != 1) return;
    const wire::Packet pkt = Trio::parse(w);
    const bool credit = Trio::is_ctrl(pkt, wire::CtrlType::kCredit);
    if (pkt.prologue.type != wire::PdsType::kAckCc && !credit) return;
    ++replies;
    credits += credit;
    wrong += tx.entropy != latest;
    reply_entropies.insert(tx.entropy);
  };
  // Lose every CREDIT for a while: the blocked sender repeats its
  // CREDIT_REQ with no data in between, and the answer must follow it.
  const TimePoint heal = t.now + Duration::micros(600);
  t.fate = [&](const Trio::Wire& w) {
    return w.from == 1 && t.now < heal && Trio::is_ctrl(Trio::parse(w), wire::CtrlType::kCredit) ? Trio::kDrop
                                                                                             : Trio::kDeliver;
  };
  std::vector<Completion> done;
  auto finished = [&] {
    Completion wc[8];
    uint32_t n;
    while ((n = t.h(0).poll_completions(wc, 8)) > 0) done.insert(done.end(), wc, wc + n);
    return !done.empty();
  };
  ASSERT_TRUE(t.run(finished, Duration::millis(50)));
  EXPECT_EQ(done[0].status, WcStatus::kSuccess);
  EXPECT_GT(credits, 10);
  EXPECT_GT(t.h(1).counters().credit_repeats, 0u);
  EXPECT_EQ(wrong, 0) << "of " << replies << " replies";
  EXPECT_GT(reply_entropies.size(), 4u);  // sprayed, not one fixed entropy
}

}  // namespace
}  // namespace shoal::ses
