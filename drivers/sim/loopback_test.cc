// LoopbackDriver / LoopbackFabric / open_driver tests: exact bytes and
// metadata both ways, addresses, URI errors, every drop counter, the loss
// and ECN knobs, fabric isolation, the tx buffer bound, and one sender thread
// against one receiver thread.
#include "drivers/sim/loopback.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace shoal::sim {
namespace {

std::unique_ptr<LoopbackDriver> open_sim(const std::string& fabric, uint32_t queues = 1,
                                         const LoopbackOptions& o = {}) {
  auto d = LoopbackDriver::open(LoopbackFabric::get(fabric), queues, o);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(d).value() : nullptr;
}

struct Out {
  std::vector<uint8_t> bytes;
  uint16_t entropy = 0;
  bool control = false;
  Ecn ecn = Ecn::kEct0;
};

// Sends `pkts` from queue q to `to` in bursts of max_burst; returns how many
// tx_burst reported sent.
uint32_t send(Driver& d, uint32_t q, PeerAddr to, const std::vector<Out>& pkts) {
  uint32_t sent = 0;
  TxPacket slots[LoopbackDriver::kMaxBurst];
  for (size_t i = 0; i < pkts.size();) {
    const uint32_t want = static_cast<uint32_t>(std::min<size_t>(32, pkts.size() - i));
    const uint32_t got = d.tx_alloc(q, std::span(slots, want));
    EXPECT_EQ(got, want);
    for (uint32_t k = 0; k < got; ++k, ++i) {
      const Out& o = pkts[i];
      EXPECT_LE(o.bytes.size(), slots[k].capacity);
      std::memcpy(slots[k].data, o.bytes.data(), o.bytes.size());
      slots[k].len = static_cast<uint32_t>(o.bytes.size());
      slots[k].peer = to;
      slots[k].entropy = o.entropy;
      slots[k].control = o.control;
      slots[k].ecn = o.ecn;
    }
    sent += d.tx_burst(q, std::span(slots, got));
  }
  return sent;
}

struct In {
  std::vector<uint8_t> bytes;
  RxMeta meta;
};

// Drains queue q completely (bursts of `burst`), releasing every burst.
std::vector<In> drain(Driver& d, uint32_t q, uint32_t burst = 32) {
  std::vector<In> out;
  RxPacket pkts[32];
  uint32_t n;
  while ((n = d.rx_burst(q, std::span(pkts, burst))) > 0) {
    for (uint32_t i = 0; i < n; ++i)
      out.push_back({std::vector<uint8_t>(pkts[i].data.begin(), pkts[i].data.end()), pkts[i].meta});
    d.rx_release(q, std::span(pkts, n));
  }
  return out;
}

std::vector<Out> pattern(int n, uint8_t tag, size_t base_len = 100) {
  std::vector<Out> v(n);
  for (int i = 0; i < n; ++i) {
    v[i].bytes.resize(base_len + i * 7 % 900);
    for (size_t b = 0; b < v[i].bytes.size(); ++b)
      v[i].bytes[b] = static_cast<uint8_t>(tag + i * 13 + b);
    v[i].entropy = static_cast<uint16_t>(49152 + i);
  }
  return v;
}

TEST(Loopback, AddressesStartAtOneInAttachOrder) {
  auto a = open_sim("addr-order", 2);
  auto b = open_sim("addr-order", 3);
  EXPECT_EQ(a->local_addr(0), 1u);
  EXPECT_EQ(a->local_addr(1), 2u);
  EXPECT_EQ(b->local_addr(0), 3u);
  EXPECT_EQ(b->local_addr(2), 5u);
  EXPECT_EQ(b->local_addr(3), 0u);  // out of range
  EXPECT_EQ(a->format_addr(a->local_addr(0)), "sim:1");
  EXPECT_EQ(a->fabric().attached(), 5u);
  EXPECT_EQ(a->caps().name, "sim");
  EXPECT_EQ(a->caps().mtu_payload, 4096u);
  EXPECT_EQ(a->caps().max_burst, 32u);
  EXPECT_EQ(b->caps().queues, 3u);
  b.reset();
  EXPECT_EQ(a->fabric().attached(), 2u);
  // Addresses are never reused while the fabric lives.
  auto c = open_sim("addr-order");
  EXPECT_EQ(c->local_addr(0), 6u);
  // Once every driver is gone the fabric is too: a new one counts from 1.
  a.reset();
  c.reset();
  auto d = open_sim("addr-order");
  EXPECT_EQ(d->local_addr(0), 1u);
}

TEST(Loopback, ParseAndFormatAddresses) {
  auto d = open_sim("parse");
  EXPECT_EQ(d->format_addr(1), "sim:1");
  EXPECT_EQ(d->format_addr(1234567), "sim:1234567");
  EXPECT_EQ(d->parse_addr("sim:3").value(), 3u);
  EXPECT_EQ(d->parse_addr("17").value(), 17u);
  EXPECT_EQ(d->parse_addr(d->format_addr(987654321)).value(), 987654321u);
  for (const char* bad :
       {"", "sim:", "sim:0", "0", "sim:-1", "-1", "+1", "sim:+1", "sim:1x", "x1", "sim: 1", " 1",
        "udp:1", "SIM:1", "sim:99999999999999999999", "127.0.0.1:4793"}) {
    auto r = d->parse_addr(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string_view::npos)
        << r.status();
  }
}

TEST(Loopback, ExchangeBothWaysExactBytesAndMeta) {
  auto a = open_sim("exchange");
  auto b = open_sim("exchange");
  const PeerAddr aa = a->local_addr(0), ba = b->local_addr(0);
  const auto ab_pkts = pattern(100, 1, 1);
  auto ba_pkts = pattern(70, 200, 3000);
  ba_pkts[5].bytes.assign(4096, 0xab);  // a full-MTU packet
  ba_pkts[6].control = true;
  ba_pkts[7].ecn = Ecn::kNotEct;
  EXPECT_EQ(send(*a, 0, ba, ab_pkts), 100u);
  EXPECT_EQ(send(*b, 0, aa, ba_pkts), 70u);
  const auto at_b = drain(*b, 0, 7);
  const auto at_a = drain(*a, 0);
  ASSERT_EQ(at_b.size(), ab_pkts.size());
  ASSERT_EQ(at_a.size(), ba_pkts.size());
  for (size_t i = 0; i < at_b.size(); ++i) {
    EXPECT_EQ(at_b[i].bytes, ab_pkts[i].bytes) << i;
    EXPECT_EQ(at_b[i].meta.peer, aa);
    EXPECT_EQ(at_b[i].meta.entropy, ab_pkts[i].entropy);
    EXPECT_EQ(at_b[i].meta.ecn, Ecn::kEct0);
    EXPECT_FALSE(at_b[i].meta.trimmed);
  }
  for (size_t i = 0; i < at_a.size(); ++i) {
    EXPECT_EQ(at_a[i].bytes, ba_pkts[i].bytes) << i;
    EXPECT_EQ(at_a[i].meta.peer, ba);
    EXPECT_EQ(at_a[i].meta.entropy, ba_pkts[i].entropy);
    EXPECT_EQ(at_a[i].meta.ecn, ba_pkts[i].ecn);
  }
  EXPECT_EQ(a->counters().tx_packets, 100u);
  EXPECT_EQ(a->counters().rx_packets, 70u);
  EXPECT_EQ(b->counters().tx_packets, 70u);
  EXPECT_EQ(b->counters().rx_packets, 100u);
  for (const auto* d : {a.get(), b.get()}) {
    const auto& c = d->counters();
    EXPECT_EQ(c.inbox_drops + c.unroutable + c.lost + c.ce_marked + c.bad_buffers, 0u);
  }
  EXPECT_NE(a->dump().find("sim:1"), std::string::npos) << a->dump();
}

TEST(Loopback, MixedDestinationsInOneBurstAndMultiQueue) {
  auto a = open_sim("mixed", 2);
  auto b = open_sim("mixed", 2);
  TxPacket slots[32];
  ASSERT_EQ(a->tx_alloc(1, slots), 32u);
  const PeerAddr dests[4] = {b->local_addr(0), b->local_addr(1), a->local_addr(0),
                             a->local_addr(1)};
  for (uint32_t i = 0; i < 32; ++i) {
    slots[i].len = 4;
    std::memcpy(slots[i].data, &i, 4);
    slots[i].peer = dests[i % 4];
    slots[i].entropy = static_cast<uint16_t>(i);
  }
  slots[31].len = 0;  // unused: returned, not sent
  EXPECT_EQ(a->tx_burst(1, slots), 31u);
  std::vector<In> got[4] = {drain(*b, 0), drain(*b, 1), drain(*a, 0), drain(*a, 1)};
  for (uint32_t d = 0; d < 4; ++d) {
    ASSERT_EQ(got[d].size(), d == 3 ? 7u : 8u);
    for (size_t k = 0; k < got[d].size(); ++k) {
      uint32_t v;
      std::memcpy(&v, got[d][k].bytes.data(), 4);
      EXPECT_EQ(v, d + 4 * k);  // per-destination order is send order
      EXPECT_EQ(got[d][k].meta.entropy, v);
      EXPECT_EQ(got[d][k].meta.peer, a->local_addr(1));
    }
  }
  EXPECT_EQ(a->queue_counters(1).tx_packets, 31u);
  EXPECT_EQ(a->queue_counters(0).tx_packets, 0u);
  EXPECT_EQ(a->queue_counters(1).rx_packets, 7u);
}

TEST(Loopback, RxSlotsStayValidUntilReleasedAndRingWraps) {
  LoopbackOptions o;
  o.inbox = 5;
  auto a = open_sim("wrap");
  auto b = open_sim("wrap", 1, o);
  RxPacket rx[8];
  uint64_t next = 0, received = 0;
  for (int round = 0; round < 50; ++round) {
    std::vector<Out> pk(3);
    for (auto& p : pk) {
      p.bytes.resize(8);
      std::memcpy(p.bytes.data(), &next, 8);
      ++next;
    }
    EXPECT_EQ(send(*a, 0, b->local_addr(0), pk), 3u);
    const uint32_t n = b->rx_burst(0, rx);
    ASSERT_EQ(n, 3u);
    // Two more fit while three are held; the third would overwrite a held slot.
    EXPECT_EQ(send(*a, 0, b->local_addr(0),
                   {Out{std::vector<uint8_t>(8, 0xee)}, Out{std::vector<uint8_t>(8, 0xee)},
                    Out{std::vector<uint8_t>(8, 0xee)}}),
              3u);
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t v;
      std::memcpy(&v, rx[i].data.data(), 8);
      EXPECT_EQ(v, received + i);  // held bytes were not overwritten
    }
    received += n;
    b->rx_release(0, std::span(rx, n));
    const auto filler = drain(*b, 0);
    ASSERT_EQ(filler.size(), 2u);
    for (const auto& f : filler) EXPECT_EQ(f.bytes, std::vector<uint8_t>(8, 0xee));
  }
  EXPECT_EQ(a->counters().inbox_drops, 50u);
  EXPECT_EQ(b->counters().bad_buffers, 0u);
}

TEST(Loopback, OutOfOrderReleaseIsCountedNotTrusted) {
  auto a = open_sim("badrelease");
  EXPECT_EQ(send(*a, 0, a->local_addr(0), pattern(4, 9)), 4u);  // to itself
  RxPacket rx[4];
  ASSERT_EQ(a->rx_burst(0, rx), 4u);
  std::swap(rx[0], rx[1]);
  a->rx_release(0, std::span(rx, 2));
  EXPECT_EQ(a->counters().bad_buffers, 1u);
  std::swap(rx[0], rx[1]);
  a->rx_release(0, rx);
  EXPECT_EQ(a->counters().bad_buffers, 1u);
  EXPECT_TRUE(drain(*a, 0).empty());
}

TEST(Loopback, InboxOverflowDropsAndCounts) {
  LoopbackOptions small;
  small.inbox = 40;
  auto a = open_sim("overflow");
  auto b = open_sim("overflow", 1, small);
  const auto pk = pattern(100, 5);
  EXPECT_EQ(send(*a, 0, b->local_addr(0), pk), 100u);  // sent: drops happen downstream
  EXPECT_EQ(a->counters().tx_packets, 100u);
  EXPECT_EQ(a->counters().inbox_drops, 60u);
  const auto got = drain(*b, 0);
  ASSERT_EQ(got.size(), 40u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].bytes, pk[i].bytes);
  // Space is back once the receiver released it.
  EXPECT_EQ(send(*a, 0, b->local_addr(0), pattern(40, 6)), 40u);
  EXPECT_EQ(a->counters().inbox_drops, 60u);
  EXPECT_EQ(drain(*b, 0).size(), 40u);
}

TEST(Loopback, UnknownAndClosedDestinationsAreUnroutable) {
  auto a = open_sim("closed");
  auto b = open_sim("closed");
  const PeerAddr gone = b->local_addr(0);
  EXPECT_EQ(send(*a, 0, gone, pattern(3, 1)), 3u);
  b.reset();
  EXPECT_EQ(send(*a, 0, gone, pattern(10, 1)), 10u);
  EXPECT_EQ(send(*a, 0, 0, pattern(2, 1)), 2u);
  EXPECT_EQ(send(*a, 0, 77, pattern(4, 1)), 4u);
  EXPECT_EQ(a->counters().unroutable, 16u);
  EXPECT_EQ(a->counters().tx_packets, 19u);
  EXPECT_EQ(a->counters().inbox_drops, 0u);
  // A reopened driver gets a new address; the old one stays dead.
  auto c = open_sim("closed");
  EXPECT_NE(c->local_addr(0), gone);
  EXPECT_EQ(send(*a, 0, gone, pattern(1, 1)), 1u);
  EXPECT_EQ(a->counters().unroutable, 17u);
  EXPECT_TRUE(drain(*c, 0).empty());
}

TEST(Loopback, LossOneDropsEverything) {
  LoopbackOptions lossy;
  lossy.loss = 1;
  auto a = open_sim("lossy", 1, lossy);
  auto b = open_sim("lossy");
  EXPECT_EQ(send(*a, 0, b->local_addr(0), pattern(100, 1)), 100u);
  EXPECT_EQ(a->counters().lost, 100u);
  EXPECT_TRUE(drain(*b, 0).empty());
  // The other direction is lossless: loss belongs to the sending driver.
  EXPECT_EQ(send(*b, 0, a->local_addr(0), pattern(10, 1)), 10u);
  EXPECT_EQ(drain(*a, 0).size(), 10u);
}

TEST(Loopback, PartialLossIsSeededAndReproducible) {
  auto run = [](uint64_t seed, const std::string& fabric) {
    LoopbackOptions o;
    o.loss = 0.3;
    o.seed = seed;
    auto a = open_sim(fabric, 1, o);
    auto b = open_sim(fabric);
    send(*a, 0, b->local_addr(0), pattern(1000, 1, 16));
    std::vector<uint16_t> ent;
    for (const auto& p : drain(*b, 0)) ent.push_back(p.meta.entropy);
    EXPECT_EQ(ent.size() + a->counters().lost, 1000u);
    return ent;
  };
  const auto r1 = run(7, "seeded1"), r2 = run(7, "seeded2"), r3 = run(8, "seeded3");
  EXPECT_EQ(r1, r2);
  EXPECT_NE(r1, r3);
  EXPECT_GT(r1.size(), 600u);
  EXPECT_LT(r1.size(), 800u);
}

TEST(Loopback, EcnOneMarksDataButNotControl) {
  LoopbackOptions o;
  o.ecn = 1;
  auto a = open_sim("ecn", 1, o);
  auto b = open_sim("ecn");
  auto pk = pattern(30, 1);
  for (int i = 0; i < 30; ++i) pk[i].control = i % 3 == 0;
  pk[1].ecn = Ecn::kNotEct;  // not ECN-capable: never marked (a switch would drop it)
  pk[2].ecn = Ecn::kEct1;
  EXPECT_EQ(send(*a, 0, b->local_addr(0), pk), 30u);
  const auto got = drain(*b, 0);
  ASSERT_EQ(got.size(), 30u);
  uint64_t marked = 0;
  for (int i = 0; i < 30; ++i) {
    const Ecn want = pk[i].control || pk[i].ecn == Ecn::kNotEct ? pk[i].ecn : Ecn::kCe;
    EXPECT_EQ(got[i].meta.ecn, want) << i;
    marked += want == Ecn::kCe;
  }
  EXPECT_EQ(marked, 19u);
  EXPECT_EQ(a->counters().ce_marked, 19u);
}

TEST(Loopback, FabricsWithDifferentNamesAreIsolated) {
  auto a1 = open_sim("iso-a");
  auto b1 = open_sim("iso-b");
  EXPECT_EQ(a1->local_addr(0), 1u);
  EXPECT_EQ(b1->local_addr(0), 1u);
  auto a2 = open_sim("iso-a");
  EXPECT_EQ(send(*a2, 0, 1, pattern(5, 1)), 5u);
  EXPECT_EQ(drain(*a1, 0).size(), 5u);
  EXPECT_TRUE(drain(*b1, 0).empty());
  EXPECT_EQ(send(*b1, 0, 2, pattern(5, 1)), 5u);  // iso-b has no address 2
  EXPECT_EQ(b1->counters().unroutable, 5u);
  EXPECT_TRUE(drain(*a2, 0).empty());
  EXPECT_EQ(LoopbackFabric::get("iso-a").get(), &a1->fabric());
  EXPECT_NE(LoopbackFabric::get("iso-b").get(), &a1->fabric());
}

TEST(Loopback, TxAllocLendsAtMostMaxBurst) {
  auto a = open_sim("txalloc");
  TxPacket s1[20], s2[20], s3[4];
  EXPECT_EQ(a->tx_alloc(0, s1), 20u);
  EXPECT_EQ(a->tx_alloc(0, s2), 12u);
  EXPECT_EQ(a->tx_alloc(0, s3), 0u);
  for (auto* s : {s1, s2})
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s[i].len, 0u);
  // Distinct buffers of mtu bytes.
  std::vector<uint8_t*> seen;
  for (int i = 0; i < 20; ++i) seen.push_back(s1[i].data);
  for (int i = 0; i < 12; ++i) seen.push_back(s2[i].data);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(s1[0].capacity, 4096u + LoopbackDriver::kSlotHeadroom);
  // Returning 12 unused ones lends 12 again, no more.
  EXPECT_EQ(a->tx_burst(0, std::span(s2, 12)), 0u);
  EXPECT_EQ(a->tx_alloc(0, s2), 12u);
  EXPECT_EQ(a->tx_alloc(0, s3), 0u);
  // A double return and a foreign buffer are counted, not trusted.
  EXPECT_EQ(a->tx_burst(0, std::span(s2, 12)), 0u);
  EXPECT_EQ(a->tx_burst(0, std::span(s2, 1)), 0u);
  uint8_t foreign[64];
  TxPacket f;
  f.data = foreign;
  f.capacity = 64;
  f.len = 10;
  EXPECT_EQ(a->tx_burst(0, std::span(&f, 1)), 0u);
  EXPECT_EQ(a->counters().bad_buffers, 2u);
  EXPECT_EQ(a->tx_alloc(0, s2), 12u);
  EXPECT_EQ(a->tx_alloc(0, s3), 0u);
  // len > capacity is refused (and the buffer still comes back).
  s1[0].len = 5000;
  s1[0].peer = a->local_addr(0);
  EXPECT_EQ(a->tx_burst(0, std::span(s1, 20)), 0u);
  EXPECT_EQ(a->tx_burst(0, std::span(s2, 12)), 0u);
  EXPECT_EQ(a->counters().bad_buffers, 3u);
  TxPacket all[40];
  EXPECT_EQ(a->tx_alloc(0, all), 32u);
  EXPECT_EQ(a->tx_burst(0, std::span(all, 32)), 0u);
}

TEST(Loopback, OptionsAreValidated) {
  auto fabric = LoopbackFabric::get("opts");
  auto bad = [&](LoopbackOptions o, uint32_t queues = 1) {
    auto d = LoopbackDriver::open(fabric, queues, o);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  };
  bad({}, 0);
  bad({.mtu = 255});
  bad({.mtu = 9001});
  bad({.inbox = 0});
  bad({.loss = -0.1});
  bad({.loss = 1.5});
  bad({.ecn = 2});
  EXPECT_EQ(fabric->attached(), 0u);
  auto ok = LoopbackDriver::open(fabric, 1, {.mtu = 9000, .inbox = 1, .loss = 1, .ecn = 1});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->caps().mtu_payload, 9000u);
}

TEST(OpenDriver, SimUri) {
  auto d = open_driver("sim://uri-fabric?mtu=1500&inbox=8&loss=0&ecn=0.5&seed=42", 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->caps().name, "sim");
  EXPECT_EQ((*d)->caps().mtu_payload, 1500u);
  EXPECT_EQ((*d)->caps().queues, 2u);
  EXPECT_EQ((*d)->local_addr(1), 2u);
  auto* lb = dynamic_cast<LoopbackDriver*>(d->get());
  ASSERT_NE(lb, nullptr);
  EXPECT_EQ(lb->fabric().name(), "uri-fabric");
  EXPECT_EQ(lb->options().inbox, 8u);
  EXPECT_EQ(lb->options().ecn, 0.5);
  EXPECT_EQ(lb->options().seed, 42u);
  // Same fabric through the URI and through get().
  auto e = open_driver("sim://uri-fabric", 1);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->local_addr(0), 3u);
  // Empty name is "default", and a query may follow it directly.
  auto f = open_driver("sim://", 1);
  auto g = open_driver("sim://?mtu=9000", 1);
  ASSERT_TRUE(f.ok() && g.ok());
  EXPECT_EQ(dynamic_cast<LoopbackDriver*>(f->get())->fabric().name(), "default");
  EXPECT_EQ(&dynamic_cast<LoopbackDriver*>(g->get())->fabric(),
            &dynamic_cast<LoopbackDriver*>(f->get())->fabric());
  // A driver from open_driver talks to one made directly.
  auto h = open_sim("uri-fabric");
  EXPECT_EQ(send(**e, 0, h->local_addr(0), pattern(3, 1)), 3u);
  EXPECT_EQ(drain(*h, 0).size(), 3u);
}

TEST(OpenDriver, Errors) {
  struct Case {
    const char* uri;
    absl::StatusCode code;
    const char* names;  // the message must contain this
  };
  const Case cases[] = {
      {"sim", absl::StatusCode::kInvalidArgument, "\"sim\""},
      {"sim:/x", absl::StatusCode::kInvalidArgument, "sim:/x"},
      {"", absl::StatusCode::kInvalidArgument, "\"\""},
      {"://x", absl::StatusCode::kInvalidArgument, "://x"},
      {"udp://127.0.0.1:4793?bogus=1", absl::StatusCode::kInvalidArgument, "\"bogus\""},
      // dpdk:// errors: drivers/dpdk/dpdk_test.cc (the scheme is built when libdpdk is found).
      {"rdma://x", absl::StatusCode::kNotFound, "\"rdma\""},
      {"SIM://x", absl::StatusCode::kNotFound, "sim, udp, dpdk"},
      {"sim://x?hosts=4", absl::StatusCode::kInvalidArgument, "\"hosts\""},
      {"sim://x?mtu", absl::StatusCode::kInvalidArgument, "\"mtu\""},
      {"sim://x?mtu=big", absl::StatusCode::kInvalidArgument, "mtu=\"big\""},
      {"sim://x?mtu=-1", absl::StatusCode::kInvalidArgument, "mtu=\"-1\""},
      {"sim://x?mtu=100", absl::StatusCode::kInvalidArgument, "mtu 100"},
      {"sim://x?loss=2", absl::StatusCode::kInvalidArgument, "loss 2"},
      {"sim://x?loss=nan", absl::StatusCode::kInvalidArgument, "loss"},
      {"sim://x?ecn=0.1&ecn=0.2", absl::StatusCode::kInvalidArgument, "given twice"},
      {"sim://x?seed=1.5", absl::StatusCode::kInvalidArgument, "seed=\"1.5\""},
      {"sim://x?inbox=0", absl::StatusCode::kInvalidArgument, "inbox 0"},
  };
  for (const Case& c : cases) {
    auto d = open_driver(c.uri, 1);
    ASSERT_FALSE(d.ok()) << c.uri;
    EXPECT_EQ(d.status().code(), c.code) << c.uri << ": " << d.status();
    EXPECT_NE(d.status().message().find(c.names), std::string_view::npos)
        << c.uri << ": " << d.status();
  }
  auto z = open_driver("sim://x", 0);
  EXPECT_EQ(z.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoopbackFabric::get("x")->attached(), 0u);
}

// One thread sends 200k packets to another that drains. Every sent packet is
// either received (bytes intact, in order) or counted as an inbox drop.
TEST(Loopback, TwoThreadsSendAndDrain) {
  constexpr uint64_t kTotal = 200000;
  LoopbackOptions o;
  o.inbox = 1024;
  auto tx = open_sim("threads", 1, o);
  auto rx = open_sim("threads", 1, o);
  const PeerAddr to = rx->local_addr(0), from = tx->local_addr(0);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> expected{0};
  uint64_t sent_total = 0, drops = 0;

  std::thread sender([&] {
    TxPacket slots[32];
    uint64_t seq = 0, last_drops = 0;
    while (seq < kTotal) {
      const uint32_t want = static_cast<uint32_t>(std::min<uint64_t>(32, kTotal - seq));
      const uint32_t n = tx->tx_alloc(0, std::span(slots, want));
      for (uint32_t i = 0; i < n; ++i, ++seq) {
        const uint32_t len = 9 + seq % 57;
        std::memcpy(slots[i].data, &seq, 8);
        std::memset(slots[i].data + 8, static_cast<int>(seq & 0xff), len - 8);
        slots[i].len = len;
        slots[i].peer = to;
        slots[i].entropy = static_cast<uint16_t>(seq);
      }
      sent_total += tx->tx_burst(0, std::span(slots, n));
      const uint64_t d = tx->queue_counters(0).inbox_drops;
      if (d != last_drops) {  // the receiver is behind: let it run
        last_drops = d;
        sched_yield();
      }
    }
    drops = tx->queue_counters(0).inbox_drops;
    expected.store(sent_total - drops, std::memory_order_release);
    done.store(true, std::memory_order_release);
  });

  uint64_t received = 0, last_seq = 0, bad = 0;
  bool first = true;
  RxPacket pkts[32];
  for (;;) {
    const uint32_t n = rx->rx_burst(0, pkts);
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t seq;
      const auto& p = pkts[i];
      std::memcpy(&seq, p.data.data(), 8);
      bad += p.data.size() != 9 + seq % 57 || p.meta.peer != from ||
             p.meta.entropy != static_cast<uint16_t>(seq) || (!first && seq <= last_seq) ||
             p.data[p.data.size() - 1] != static_cast<uint8_t>(seq & 0xff);
      last_seq = seq;
      first = false;
    }
    rx->rx_release(0, std::span(pkts, n));
    received += n;
    if (n == 0) {
      if (done.load(std::memory_order_acquire) && received >= expected.load()) break;
      sched_yield();
    }
  }
  sender.join();
  EXPECT_EQ(sent_total, kTotal);
  EXPECT_EQ(received, kTotal - drops);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(rx->counters().rx_packets, received);
  EXPECT_EQ(tx->counters().tx_packets, kTotal);
  EXPECT_EQ(tx->counters().unroutable + tx->counters().lost, 0u);
  std::printf("two threads: %llu sent, %llu received, %llu inbox drops\n",
              static_cast<unsigned long long>(kTotal), static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(drops));
}

// A driver closes while another thread keeps sending to it: no crash, and
// every packet is either delivered, dropped or unroutable.
TEST(Loopback, CloseWhileAnotherThreadSends) {
  auto tx = open_sim("close-race");
  for (int round = 0; round < 20; ++round) {
    auto rx = open_sim("close-race", 1, {.inbox = 64});
    const PeerAddr to = rx->local_addr(0);
    const uint64_t before = tx->queue_counters(0).unroutable;
    std::thread sender([&] {
      TxPacket slots[32];
      for (;;) {
        const uint32_t n = tx->tx_alloc(0, slots);
        for (uint32_t i = 0; i < n; ++i) {
          slots[i].len = 64;
          std::memset(slots[i].data, 1, 64);
          slots[i].peer = to;
        }
        tx->tx_burst(0, std::span(slots, n));
        if (tx->queue_counters(0).unroutable > before) break;
      }
    });
    for (int i = 0; i < 10; ++i) drain(*rx, 0);
    rx.reset();  // detaches while the sender may be inside tx_burst
    sender.join();
  }
  const auto& c = tx->counters();
  EXPECT_GT(c.unroutable, 0u);
  EXPECT_EQ(c.bad_buffers, 0u);
}

}  // namespace
}  // namespace shoal::sim
