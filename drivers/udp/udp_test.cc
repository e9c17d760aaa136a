// Tests of the udp:// driver on 127.0.0.1: bursts both ways, the port layout
// (entropy -> source port, source port -> the sender's listening port), ECN
// and DSCP through the TOS byte, the errors of open, several queues, the
// buffer ring running dry, and the recvmmsg/sendmmsg mode (io=mmsg).
//
// Every test binds port 0 (the driver picks a free block), so it runs beside
// the udp conformance suites. Every wait is bounded by a deadline; no test
// asserts a time.
#include "drivers/udp/udp.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/base/log.h"
#include "shoal/driver_sdk.h"
#include "shoal/verbs.h"

namespace shoal::udp {
namespace {

constexpr uint32_t kLocalhost = 0x7F000001;

// The driver's three ways of doing I/O: io_uring with the multishot
// receive, io_uring sends with recvmmsg receives, recvmmsg/sendmmsg.
struct Mode {
  IoMode io;
  RxMode rx = RxMode::kMultishot;
};

// Loopback, a free port, the I/O mode under test.
UdpOptions local_options(Mode m) {
  UdpOptions o;
  o.ipv4 = kLocalhost;
  o.port = 0;
  o.io = m.io;
  o.rx = m.rx;
  return o;
}

std::unique_ptr<UdpDriver> open_with(const UdpOptions& o, uint32_t queues) {
  auto d = UdpDriver::open(o, queues);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

std::unique_ptr<UdpDriver> open_ok(Mode m, uint32_t queues = 1, uint32_t entropies = 64,
                                   uint32_t rx_buffers = 1024) {
  UdpOptions o = local_options(m);
  o.entropies = entropies;
  o.rx_buffers = rx_buffers;
  return open_with(o, queues);
}

struct Sent {
  uint16_t entropy = 0;
  uint8_t dscp = 0;
  Ecn ecn = Ecn::kEct0;
};

// Sends one burst of packets from queue q of `d` to `to`; packet i carries
// its index in its first bytes and `len` bytes in all.
uint32_t send_burst(UdpDriver& d, uint32_t q, PeerAddr to, const std::vector<Sent>& pkts, uint32_t len = 100,
                    uint32_t first = 0) {
  std::vector<TxPacket> tx(pkts.size());
  const uint32_t lent = d.tx_alloc(q, tx);
  EXPECT_EQ(lent, pkts.size());
  for (uint32_t i = 0; i < lent; ++i) {
    EXPECT_GE(tx[i].capacity, d.caps().mtu_payload + kHeaderRoom);
    const uint32_t id = first + i;
    std::memset(tx[i].data, 0xA5, len);
    std::memcpy(tx[i].data, &id, sizeof(id));
    tx[i].len = len;
    tx[i].peer = to;
    tx[i].entropy = pkts[i].entropy;
    tx[i].dscp = pkts[i].dscp;
    tx[i].ecn = pkts[i].ecn;
  }
  return d.tx_burst(q, std::span<TxPacket>(tx.data(), lent));
}

struct Got {
  uint32_t id;
  uint32_t len;
  RxMeta meta;
};

// Receives until `want` packets came or a deadline passed; releases each
// burst unless `hold` (then the handles go into `held`).
std::vector<Got> recv_n(UdpDriver& d, uint32_t q, size_t want, bool hold = false,
                        std::vector<RxPacket>* held = nullptr) {
  std::vector<Got> got;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<RxPacket> rx(32);
  while (got.size() < want && std::chrono::steady_clock::now() < end) {
    const uint32_t n = d.rx_burst(q, rx);
    for (uint32_t i = 0; i < n; ++i) {
      Got g;
      std::memcpy(&g.id, rx[i].data.data(), sizeof(g.id));
      g.len = static_cast<uint32_t>(rx[i].data.size());
      g.meta = rx[i].meta;
      got.push_back(g);
      if (hold) held->push_back(rx[i]);
    }
    if (n && !hold) d.rx_release(q, std::span<RxPacket>(rx.data(), n));
    if (n == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return got;
}

class UdpBothModes : public ::testing::TestWithParam<Mode> {};

INSTANTIATE_TEST_SUITE_P(Io, UdpBothModes,
                         ::testing::Values(Mode{IoMode::kUring}, Mode{IoMode::kUring, RxMode::kRecvmmsg},
                                           Mode{IoMode::kMmsg}),
                         [](const auto& info) {
                           return info.param.io == IoMode::kMmsg           ? "mmsg"
                                  : info.param.rx == RxMode::kMultishot ? "uring"
                                                                         : "uring_recvmmsg";
                         });

TEST(UdpLayout, EntropyPortsMapBackToTheListeningPort) {
  for (uint32_t l = kPortBase; l < kPortBase + kPortStride; ++l) {
    EXPECT_EQ(listening_port_of(static_cast<uint16_t>(l)), l);
    for (uint32_t i = 0; i < kMaxEntropies; ++i) {
      const uint16_t s = entropy_port(static_cast<uint16_t>(l), i);
      EXPECT_GE(s, kPortBase + kPortStride);
      EXPECT_LT(s, 32768);  // below Linux's ephemeral range
      EXPECT_EQ(listening_port_of(s), l);
    }
  }
  EXPECT_EQ(listening_port_of(40000), 40000);  // a foreign sender is answered where it came from
  EXPECT_EQ(listening_port_of(53), 53);
}

TEST_P(UdpBothModes, BurstsBothWaysWithPeerAndEntropy) {
  auto a = open_ok(GetParam());
  auto b = open_ok(GetParam());
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->io_mode(), GetParam().io);
  EXPECT_EQ(a->multishot(), GetParam().io == IoMode::kUring && GetParam().rx == RxMode::kMultishot);
  EXPECT_NE(a->port(0), b->port(0));
  EXPECT_EQ(a->local_addr(0), PeerAddr{kLocalhost} << 16 | a->port(0));

  // 32 packets over 32 entropies; entropy e leaves through socket e % 64.
  std::vector<Sent> pkts(32);
  for (uint32_t i = 0; i < pkts.size(); ++i) pkts[i].entropy = static_cast<uint16_t>(0xC000 + 3 * i);
  ASSERT_EQ(send_burst(*a, 0, b->local_addr(0), pkts, 1000), 32u);
  auto got = recv_n(*b, 0, 32);
  ASSERT_EQ(got.size(), 32u);
  std::set<uint16_t> ports;
  std::set<uint32_t> ids;
  for (const Got& g : got) {
    ASSERT_LT(g.id, 32u);
    ids.insert(g.id);
    EXPECT_EQ(g.len, 1000u);
    EXPECT_EQ(g.meta.peer, a->local_addr(0));  // the listening port, not the source port
    EXPECT_EQ(g.meta.entropy, entropy_port(a->port(0), pkts[g.id].entropy % 64));
    ports.insert(g.meta.entropy);
  }
  EXPECT_EQ(ids.size(), 32u);
  EXPECT_EQ(ports.size(), 32u);  // distinct entropies -> distinct source ports

  // The reply goes to where RxMeta.peer says.
  std::vector<Sent> reply(5);
  ASSERT_EQ(send_burst(*b, 0, got[0].meta.peer, reply), 5u);
  auto back = recv_n(*a, 0, 5);
  ASSERT_EQ(back.size(), 5u);
  for (const Got& g : back) EXPECT_EQ(g.meta.peer, b->local_addr(0));

  EXPECT_EQ(a->counters().tx_packets, 32u);
  EXPECT_EQ(b->counters().rx_packets, 32u);
  EXPECT_EQ(a->counters().bad_buffers + b->counters().bad_buffers, 0u);
}

TEST_P(UdpBothModes, EntropiesWrapModuloN) {
  auto a = open_ok(GetParam(), 1, 4);
  auto b = open_ok(GetParam());
  ASSERT_TRUE(a && b);
  std::vector<Sent> pkts(8);
  for (uint32_t i = 0; i < 8; ++i) pkts[i].entropy = static_cast<uint16_t>(i);
  ASSERT_EQ(send_burst(*a, 0, b->local_addr(0), pkts), 8u);
  auto got = recv_n(*b, 0, 8);
  ASSERT_EQ(got.size(), 8u);
  std::set<uint16_t> ports;
  for (const Got& g : got) {
    EXPECT_EQ(g.meta.entropy, entropy_port(a->port(0), g.id % 4));
    ports.insert(g.meta.entropy);
  }
  EXPECT_EQ(ports.size(), 4u);
}

TEST_P(UdpBothModes, EcnAndDscpRoundTrip) {
  auto a = open_ok(GetParam());
  auto b = open_ok(GetParam());
  ASSERT_TRUE(a && b);
  const std::vector<Sent> pkts = {{1, 0, Ecn::kEct0}, {2, 0, Ecn::kCe},     {3, 0, Ecn::kNotEct},
                                  {4, 0, Ecn::kEct1}, {5, 46, Ecn::kEct0}, {6, 10, Ecn::kCe}};
  ASSERT_EQ(send_burst(*a, 0, b->local_addr(0), pkts), pkts.size());
  auto got = recv_n(*b, 0, pkts.size());
  ASSERT_EQ(got.size(), pkts.size());
  for (const Got& g : got) EXPECT_EQ(g.meta.ecn, pkts[g.id].ecn) << "packet " << g.id;
}

TEST_P(UdpBothModes, SeveralQueuesEachWithItsPorts) {
  auto a = open_ok(GetParam(), 3, 8);
  auto b = open_ok(GetParam(), 3, 8);
  ASSERT_TRUE(a && b);
  for (uint32_t q = 0; q < 3; ++q) {
    EXPECT_EQ(a->local_addr(q), a->local_addr(0) + q);  // driver_sdk.h's rule
    EXPECT_EQ(a->port(q), a->port(0) + q);
  }
  // Every queue of a to every queue of b.
  for (uint32_t qa = 0; qa < 3; ++qa)
    for (uint32_t qb = 0; qb < 3; ++qb) {
      std::vector<Sent> pkts(4);
      for (uint32_t i = 0; i < 4; ++i) pkts[i].entropy = static_cast<uint16_t>(i + qa);
      ASSERT_EQ(send_burst(*a, qa, b->local_addr(qb), pkts, 64, 100 * qa), 4u);
      auto got = recv_n(*b, qb, 4);
      ASSERT_EQ(got.size(), 4u);
      for (const Got& g : got) {
        EXPECT_EQ(g.meta.peer, a->local_addr(qa));
        EXPECT_EQ(g.id / 100, qa);
        EXPECT_EQ(listening_port_of(g.meta.entropy), a->port(qa));
      }
    }
  // Nothing strayed into another queue.
  std::vector<RxPacket> rx(32);
  for (uint32_t q = 0; q < 3; ++q) EXPECT_EQ(b->rx_burst(q, rx), 0u);
}

// The receiver keeps every buffer: the kernel runs out, the datagrams wait
// in the socket, and they come once buffers go back.
TEST_P(UdpBothModes, ReceiveBuffersRunDryAndRecover) {
  auto a = open_ok(GetParam());
  auto b = open_ok(GetParam(), 1, 64, 64);
  ASSERT_TRUE(a && b);
  std::vector<RxPacket> held;
  uint32_t sent = 0;
  for (int burst = 0; burst < 5; ++burst) {
    std::vector<Sent> pkts(20);
    sent += send_burst(*a, 0, b->local_addr(0), pkts, 200, sent);
  }
  ASSERT_EQ(sent, 100u);
  auto first = recv_n(*b, 0, 64, /*hold=*/true, &held);
  EXPECT_EQ(first.size(), 64u);
  // Every buffer is held: nothing more comes, however often we ask.
  std::vector<RxPacket> rx(32);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(b->rx_burst(0, rx), 0u);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  b->rx_release(0, held);
  auto rest = recv_n(*b, 0, 36);
  EXPECT_EQ(rest.size(), 36u);
  std::set<uint32_t> ids;
  for (const Got& g : first) ids.insert(g.id);
  for (const Got& g : rest) ids.insert(g.id);
  EXPECT_EQ(ids.size(), 100u);
  if (b->multishot()) {
    EXPECT_GE(b->counters().rx_rearms, 2u);  // armed, ran dry, armed again
  }
  // A buffer given back twice is refused and counted.
  b->rx_release(0, std::span<RxPacket>(held.data(), 1));
  EXPECT_EQ(b->counters().bad_buffers, 1u);
}

TEST_P(UdpBothModes, TxBuffersAreLentOnceAndComeBack) {
  auto a = open_ok(GetParam());
  auto b = open_ok(GetParam());
  ASSERT_TRUE(a && b);
  std::vector<TxPacket> tx(32);
  ASSERT_EQ(a->tx_alloc(0, tx), 32u);
  tx[0].len = 10;
  tx[0].peer = b->local_addr(0);
  tx[1].len = 10;
  tx[1].peer = 0;  // not an address: dropped and counted
  tx[2].len = 100000;  // beyond the capacity
  EXPECT_EQ(a->tx_burst(0, tx), 1u);
  EXPECT_EQ(a->counters().tx_dropped, 1u);
  EXPECT_EQ(a->counters().bad_buffers, 1u);
  EXPECT_EQ(a->tx_burst(0, std::span<TxPacket>(tx.data(), 1)), 0u);  // already returned
  EXPECT_EQ(a->counters().bad_buffers, 2u);
  // Every slot comes back: the pool lends all of them again.
  std::vector<TxPacket> all(kTxSlots + 8);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  uint32_t lent = 0;
  while ((lent = a->tx_alloc(0, all)) < kTxSlots && std::chrono::steady_clock::now() < end) {
    for (uint32_t i = 0; i < lent; ++i) all[i].len = 0;
    a->tx_burst(0, std::span<TxPacket>(all.data(), lent));
  }
  EXPECT_EQ(lent, kTxSlots);
  for (uint32_t i = 0; i < lent; ++i) all[i].len = 0;
  a->tx_burst(0, std::span<TxPacket>(all.data(), lent));
  EXPECT_EQ(recv_n(*b, 0, 1).size(), 1u);
}

// One burst of packets with their own lengths, entropies and ECN; packet i
// carries first + i in its first bytes and a byte pattern of its id after.
struct Pkt {
  uint32_t len;
  uint16_t entropy = 7;
  Ecn ecn = Ecn::kEct0;
};
uint32_t send_mixed(UdpDriver& d, PeerAddr to, const std::vector<Pkt>& pkts, uint32_t first = 0) {
  std::vector<TxPacket> tx(pkts.size());
  EXPECT_EQ(d.tx_alloc(0, tx), pkts.size());
  for (uint32_t i = 0; i < pkts.size(); ++i) {
    const uint32_t id = first + i;
    std::memset(tx[i].data, static_cast<int>(id & 0xFF), pkts[i].len);
    std::memcpy(tx[i].data, &id, sizeof(id));
    tx[i].len = pkts[i].len;
    tx[i].peer = to;
    tx[i].entropy = pkts[i].entropy;
    tx[i].ecn = pkts[i].ecn;
  }
  return d.tx_burst(0, tx);
}

// Receives `want` packets and checks each against what was sent: length,
// content, ECN, source port. Returns the ids in arrival order.
std::vector<uint32_t> recv_checked(UdpDriver& d, const UdpDriver& from, const std::vector<Pkt>& sent,
                                   uint32_t first = 0) {
  std::vector<uint32_t> order;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<RxPacket> rx(32);
  while (order.size() < sent.size() && std::chrono::steady_clock::now() < end) {
    const uint32_t n = d.rx_burst(0, rx);
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t id;
      std::memcpy(&id, rx[i].data.data(), sizeof(id));
      EXPECT_GE(id, first);
      EXPECT_LT(id - first, sent.size());
      if (id < first || id - first >= sent.size()) continue;
      const Pkt& p = sent[id - first];
      EXPECT_EQ(rx[i].data.size(), p.len) << "packet " << id;
      bool intact = true;
      for (size_t k = sizeof(id); k < rx[i].data.size(); ++k) intact &= rx[i].data[k] == (id & 0xFF);
      EXPECT_TRUE(intact) << "packet " << id;
      EXPECT_EQ(rx[i].meta.ecn, p.ecn) << "packet " << id;
      EXPECT_EQ(rx[i].meta.entropy, entropy_port(from.port(0), p.entropy % from.options().entropies));
      EXPECT_EQ(rx[i].meta.peer, from.local_addr(0));
      order.push_back(id);
    }
    if (n) d.rx_release(0, std::span<RxPacket>(rx.data(), n));
    if (n == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return order;
}

std::unique_ptr<UdpDriver> open_gso(Mode m, bool gso, uint32_t mtu = 4096) {
  UdpOptions o = local_options(m);
  o.gso = gso;
  o.mtu = mtu;
  return open_with(o, 1);
}

// Runs of packets with one socket, destination, TOS and length go out as one
// GSO send each, and arrive as the datagrams separate sends would have made.
TEST_P(UdpBothModes, GsoSendsArriveAsSeparateDatagrams) {
  auto a = open_gso(GetParam(), true);
  auto b = open_gso(GetParam(), true);
  ASSERT_TRUE(a && b);
  std::vector<Pkt> pkts(32, Pkt{200});
  ASSERT_EQ(send_mixed(*a, b->local_addr(0), pkts), 32u);
  const auto order = recv_checked(*b, *a, pkts);
  ASSERT_EQ(order.size(), 32u);
  for (uint32_t i = 0; i < 32; ++i) EXPECT_EQ(order[i], i);  // one socket, one path: in order
  EXPECT_EQ(a->counters().tx_gso_sends, 1u);
  EXPECT_EQ(a->counters().tx_packets, 32u);
  EXPECT_EQ(b->counters().rx_packets, 32u);
  EXPECT_EQ(a->counters().tx_errors + a->counters().gso_refused, 0u);
}

// A run ends where the socket, the TOS or the length changes, or after a
// shorter packet; every packet still arrives whole, with its own ECN.
TEST_P(UdpBothModes, GsoRunsBreakWhereSocketTosOrLengthChange) {
  auto a = open_gso(GetParam(), true);
  auto b = open_gso(GetParam(), true);
  ASSERT_TRUE(a && b);
  const std::vector<Pkt> pkts = {
      {1000}, {1000}, {1000}, {400},            // one send: the last may be shorter
      {1000}, {1000},                           // a new run after the shorter one
      {1000, 8}, {1000, 8},                     // another socket
      {1000, 8, Ecn::kCe}, {1000, 8, Ecn::kCe}, // another TOS
      {1200, 8, Ecn::kCe},                      // longer than the run: alone
      {64, 9}};                                 // alone
  ASSERT_EQ(send_mixed(*a, b->local_addr(0), pkts), pkts.size());
  const auto order = recv_checked(*b, *a, pkts);
  EXPECT_EQ(order.size(), pkts.size());
  EXPECT_EQ(a->counters().tx_gso_sends, 4u);
  EXPECT_EQ(a->counters().tx_packets, pkts.size());
}

// Full-size packets: a send stops below the largest UDP payload (65507
// bytes), so 32 packets of 4224 bytes take three sends (15 + 15 + 2).
TEST_P(UdpBothModes, GsoSendStaysUnderTheDatagramLimit) {
  auto a = open_gso(GetParam(), true);
  auto b = open_gso(GetParam(), true);
  ASSERT_TRUE(a && b);
  const uint32_t full = a->caps().mtu_payload + kHeaderRoom;
  std::vector<Pkt> pkts(32, Pkt{full});
  ASSERT_EQ(send_mixed(*a, b->local_addr(0), pkts), 32u);
  EXPECT_EQ(recv_checked(*b, *a, pkts).size(), 32u);
  EXPECT_EQ(a->counters().tx_gso_sends, (32 + 65507 / full - 1) / (65507 / full));
  EXPECT_EQ(a->counters().tx_errors, 0u);
}

TEST_P(UdpBothModes, GsoOffSendsOnePacketPerSend) {
  auto a = open_gso(GetParam(), false);
  auto b = open_gso(GetParam(), true);
  ASSERT_TRUE(a && b);
  std::vector<Pkt> pkts(16, Pkt{300});
  ASSERT_EQ(send_mixed(*a, b->local_addr(0), pkts), 16u);
  EXPECT_EQ(recv_checked(*b, *a, pkts).size(), 16u);
  EXPECT_EQ(a->counters().tx_gso_sends, 0u);
}

TEST(Udp, UringSenderAndMmsgReceiverInteroperate) {
  auto a = open_ok({IoMode::kUring});
  auto b = open_ok({IoMode::kMmsg});
  ASSERT_TRUE(a && b);
  std::vector<Sent> pkts(10);
  for (uint32_t i = 0; i < 10; ++i) pkts[i] = {static_cast<uint16_t>(i), 0, Ecn::kCe};
  ASSERT_EQ(send_burst(*a, 0, b->local_addr(0), pkts), 10u);
  auto got = recv_n(*b, 0, 10);
  ASSERT_EQ(got.size(), 10u);
  for (const Got& g : got) {
    EXPECT_EQ(g.meta.peer, a->local_addr(0));
    EXPECT_EQ(g.meta.ecn, Ecn::kCe);
  }
}

std::string* g_log = nullptr;
void capture(LogComponent, LogLevel, std::string_view line) { g_log->append(line); }

// A kernel that refuses io_uring (EPERM: io_uring_disabled, seccomp): the
// driver says so once and runs on recvmmsg/sendmmsg.
TEST(Udp, RefusedIoUringFallsBackToMmsgAndSaysSo) {
  std::string log;
  g_log = &log;
  Log::set_sink(capture);
  refuse_uring_for_testing(true);
  auto a = open_ok({IoMode::kUring});
  refuse_uring_for_testing(false);
  Log::set_sink(nullptr);
  auto b = open_ok({IoMode::kUring});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->io_mode(), IoMode::kMmsg);
  EXPECT_EQ(b->io_mode(), IoMode::kUring);
  EXPECT_NE(log.find("io_uring unavailable"), std::string::npos) << log;
  EXPECT_NE(log.find("recvmmsg/sendmmsg"), std::string::npos) << log;
  std::vector<Sent> pkts(8);
  for (uint32_t i = 0; i < 8; ++i) pkts[i] = {static_cast<uint16_t>(i), 0, Ecn::kCe};
  ASSERT_EQ(send_burst(*a, 0, b->local_addr(0), pkts), 8u);
  ASSERT_EQ(send_burst(*b, 0, a->local_addr(0), pkts), 8u);
  for (UdpDriver* d : {a.get(), b.get()}) {
    auto got = recv_n(*d, 0, 8);
    ASSERT_EQ(got.size(), 8u);
    for (const Got& g : got) EXPECT_EQ(g.meta.ecn, Ecn::kCe);
  }
}

TEST(Udp, BusyPortIsAlreadyExists) {
  auto a = open_ok({IoMode::kUring});
  ASSERT_TRUE(a);
  UdpOptions o;
  o.ipv4 = kLocalhost;
  o.port = a->port(0);
  auto b = UdpDriver::open(o, 1);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists) << b.status();
  EXPECT_NE(b.status().message().find(absl::StrCat("127.0.0.1:", a->port(0))), std::string_view::npos)
      << b.status();
  // Through the C API: EADDRINUSE.
  shoal_context* ctx = nullptr;
  const std::string uri = absl::StrCat("udp://127.0.0.1:", a->port(0));
  EXPECT_EQ(shoal_open(uri.c_str(), nullptr, &ctx), EADDRINUSE) << shoal_last_error();
  // A block whose second queue's port is taken fails as a whole.
  if (a->port(0) > kPortBase) {
    o.port = static_cast<uint16_t>(a->port(0) - 1);
    auto c = UdpDriver::open(o, 2);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kAlreadyExists) << c.status();
  }
}

TEST(Udp, NonLocalAddressIsFailedPrecondition) {
  UdpOptions o;
  o.ipv4 = 0xC0000201;  // 192.0.2.1, TEST-NET-1: never a local address
  o.port = 0;
  auto d = UdpDriver::open(o, 1);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition) << d.status();
  EXPECT_NE(d.status().message().find("192.0.2.1"), std::string_view::npos);
  shoal_context* ctx = nullptr;
  EXPECT_EQ(shoal_open("udp://192.0.2.1", nullptr, &ctx), EADDRNOTAVAIL) << shoal_last_error();
}

TEST(Udp, OpenDriverUris) {
  auto d = open_driver("udp://127.0.0.1:0?entropies=8&mtu=1024&io=mmsg&rx_buffers=128&sockbuf=65536&gso=0&rx=recvmmsg", 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->caps().name, "udp");
  EXPECT_EQ((*d)->caps().mtu_payload, 1024u);
  EXPECT_EQ((*d)->caps().queues, 2u);
  auto* u = static_cast<UdpDriver*>(d->get());
  EXPECT_EQ(u->io_mode(), IoMode::kMmsg);
  EXPECT_EQ(u->options().entropies, 8u);
  EXPECT_FALSE(u->options().gso);
  EXPECT_EQ(u->options().rx, RxMode::kRecvmmsg);
  EXPECT_FALSE(u->multishot());
  EXPECT_NE(u->dump().find("mmsg"), std::string::npos);

  struct Case {
    const char* uri;
    absl::StatusCode code;
    const char* names;
  };
  const Case cases[] = {
      {"udp://", absl::StatusCode::kInvalidArgument, "IPv4"},
      {"udp://localhost", absl::StatusCode::kInvalidArgument, "IPv4"},
      {"udp://0.0.0.0", absl::StatusCode::kInvalidArgument, "unicast"},
      {"udp://224.0.0.1", absl::StatusCode::kInvalidArgument, "unicast"},
      {"udp://127.0.0.1:99999", absl::StatusCode::kInvalidArgument, "99999"},
      {"udp://127.0.0.1:9000", absl::StatusCode::kInvalidArgument, "window"},
      {"udp://127.0.0.1:5048?entropies=4", absl::StatusCode::kInvalidArgument, "5048..5049"},  // 2 queues
      {"udp://127.0.0.1:0?entropies=0", absl::StatusCode::kInvalidArgument, "entropies 0"},
      {"udp://127.0.0.1:0?entropies=65", absl::StatusCode::kInvalidArgument, "entropies 65"},
      {"udp://127.0.0.1:0?io=dpdk", absl::StatusCode::kInvalidArgument, "io=\"dpdk\""},
      {"udp://127.0.0.1:0?mtu=100", absl::StatusCode::kInvalidArgument, "mtu 100"},
      {"udp://127.0.0.1:0?rx_buffers=100", absl::StatusCode::kInvalidArgument, "rx_buffers 100"},
      {"udp://127.0.0.1:0?mtu=1024&mtu=2048", absl::StatusCode::kInvalidArgument, "given twice"},
      {"udp://127.0.0.1:0?loss=0.1", absl::StatusCode::kInvalidArgument, "\"loss\""},
      {"udp://127.0.0.1:0?entropies", absl::StatusCode::kInvalidArgument, "no value"},
      {"udp://127.0.0.1:0?gso=yes", absl::StatusCode::kInvalidArgument, "gso=\"yes\""},
      {"udp://127.0.0.1:0?rx=uring", absl::StatusCode::kInvalidArgument, "rx=\"uring\""},
  };
  for (const Case& c : cases) {
    auto e = open_driver(c.uri, 2);
    ASSERT_FALSE(e.ok()) << c.uri;
    EXPECT_EQ(e.status().code(), c.code) << c.uri << ": " << e.status();
    EXPECT_NE(e.status().message().find(c.names), std::string_view::npos) << c.uri << ": " << e.status();
  }
}

TEST(Udp, AddressText) {
  auto d = open_ok({IoMode::kMmsg}, 1, 1);
  ASSERT_TRUE(d);
  auto a = d->parse_addr("10.1.2.3:4800");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, PeerAddr{0x0A010203} << 16 | 4800);
  EXPECT_EQ(d->format_addr(*a), "10.1.2.3:4800");
  auto b = d->parse_addr("10.1.2.3");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b & 0xFFFF, kPortBase);
  for (const char* bad : {"", "sim:1", "10.1.2.3:", "10.1.2.3:0", "10.1.2.3:70000", "10.1.2:1", "0.0.0.0:1"})
    EXPECT_EQ(d->parse_addr(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_EQ(d->format_addr(d->local_addr(0)), absl::StrCat("127.0.0.1:", d->port(0)));
}

}  // namespace
}  // namespace shoal::udp
