// drivers/dpdk/dpdk_test.cc: the dpdk:// driver on the in-process net_ring
// fabric (EAL with --no-huge --no-shconf: no hugepages, no shared files, so
// parallel test processes do not collide). Checks the frames on the wire
// (MAC/IPv4/UDP, TOS/ECN, checksum, entropy -> source port), ARP, software
// dispatch across queues, and URI errors. Every wait is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "absl/strings/str_format.h"
#include "drivers/dpdk/dpdk.h"
#include "drivers/dpdk/dpdk_driver.h"
#include "shoal/driver_sdk.h"

namespace shoal::dpdk {
namespace {

constexpr char kEal[] = "eal=--no-huge%20--no-pci%20--no-shconf%20-l%200%20-m%20256%20--log-level=lib.eal:warning";

std::unique_ptr<DpdkDriver> open(const std::string& query, uint32_t queues = 1) {
  auto o = parse_dpdk_query(std::string(kEal) + "&" + query);
  EXPECT_TRUE(o.ok()) << o.status();
  if (!o.ok()) return nullptr;
  auto d = DpdkDriver::open(*o, queues);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// Polls until pred() holds or 3 s pass; `spin` runs between checks.
bool wait_for(const std::function<bool()>& pred, const std::function<void()>& spin) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end) {
    spin();
    if (pred()) return true;
  }
  return false;
}

// Sends one packet of `len` bytes (byte i = seed + i) from queue q of `d`.
bool send_one(Driver& d, uint32_t q, PeerAddr to, uint32_t len, uint8_t seed, uint16_t entropy = 7,
              uint8_t dscp = 0, Ecn ecn = Ecn::kEct0) {
  TxPacket t[1];
  if (d.tx_alloc(q, t) != 1) return false;
  for (uint32_t i = 0; i < len; ++i) t[0].data[i] = static_cast<uint8_t>(seed + i);
  t[0].len = len;
  t[0].peer = to;
  t[0].entropy = entropy;
  t[0].dscp = dscp;
  t[0].ecn = ecn;
  return d.tx_burst(q, t) == 1;
}

struct Got {
  std::vector<uint8_t> data;
  RxMeta meta;
  rte_ether_hdr eth;
  rte_ipv4_hdr ip;
  rte_udp_hdr udp;
  bool ip_cksum_ok;
  uint32_t queue;
};

// Receives everything pending on every queue of `d` into `got`.
void drain(DpdkDriver& d, std::vector<Got>* got) {
  for (uint32_t q = 0; q < d.caps().queues; ++q) {
    RxPacket r[32];
    const uint32_t n = d.rx_burst(q, r);
    for (uint32_t i = 0; i < n; ++i) {
      Got g;
      g.data.assign(r[i].data.begin(), r[i].data.end());
      g.meta = r[i].meta;
      auto* m = reinterpret_cast<rte_mbuf*>(r[i].handle);
      const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
      std::memcpy(&g.eth, p, sizeof(g.eth));
      std::memcpy(&g.ip, p + sizeof(g.eth), sizeof(g.ip));
      std::memcpy(&g.udp, p + sizeof(g.eth) + sizeof(g.ip), sizeof(g.udp));
      g.ip_cksum_ok = rte_raw_cksum(p + sizeof(g.eth), sizeof(g.ip)) == 0xFFFF;
      // Zero copy: the payload is the mbuf's own bytes.
      EXPECT_EQ(r[i].data.data(), p + DpdkDriver::kHdrLen);
      g.queue = q;
      got->push_back(std::move(g));
    }
    d.rx_release(q, std::span<RxPacket>(r, n));
  }
}

TEST(DpdkOptions, ParsesAndRefuses) {
  auto o = parse_dpdk_query("eal=-l%200%20--no-huge&ip=10.1.2.3:4800&mtu=1024&entropies=16&neigh=10.1.2.4@02:00:00:00:00:0a");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->eal, "-l 0 --no-huge");
  EXPECT_EQ(o->ip, 0x0A010203u);
  EXPECT_EQ(o->udp_port, 4800);
  EXPECT_EQ(o->mtu, 1024u);
  EXPECT_EQ(o->entropies, 16u);
  ASSERT_EQ(o->neigh.size(), 1u);
  EXPECT_EQ(o->neigh[0].second[5], 0x0a);
  EXPECT_EQ(split_eal_args(o->eal), (std::vector<std::string>{"-l", "0", "--no-huge"}));

  const char* bad[] = {"bogus=1",      "ip=10.1.2",  "ip=10.1.2.300", "ip=1.2.3.4:70000", "ip=1.2.3.4:6000", "entropies=65",
                       "entropies=0",  "mtu=100",    "ip=1.2.3.4&ip=1.2.3.5", "eal=%zz", "neigh=1.2.3.4@xx",
                       "flow=2",       "ring=100",   "fabric=a/b",    "mbufs", "lcores=a"};
  for (const char* q : bad) {
    auto r = open_driver(std::string("dpdk://?") + q, 1);
    ASSERT_FALSE(r.ok()) << q;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << q << ": " << r.status();
  }
  auto na = open_driver("dpdk://x?ip=1.2.3.4", 1);
  EXPECT_EQ(na.status().code(), absl::StatusCode::kInvalidArgument) << na.status();
  auto noip = open_driver("dpdk://?port=0", 1);
  EXPECT_EQ(noip.status().code(), absl::StatusCode::kInvalidArgument) << noip.status();
}

TEST(DpdkLayout, SameAsTheUdpDriver) {
  // drivers/udp: queue on L sends entropy i from L + 256 * (i % N + 1).
  EXPECT_EQ(src_port_for(4793, 0, 64), 4793 + 256);
  EXPECT_EQ(src_port_for(4795, 70, 64), 4795 + 256 * 7);
  EXPECT_EQ(src_port_for(4794, 0xC005, 4), 4794 + 256 * 2);
  for (uint16_t listen : {4793, 4794, 4800, 5048})
    for (uint16_t e : {0, 1, 63, 0xC000, 0xFFFF}) EXPECT_EQ(listen_port_from_src(src_port_for(listen, e, 64)), listen);
  EXPECT_EQ(listen_port_from_src(4793), 4793);  // a single-path sender
  EXPECT_EQ(listen_port_from_src(40000), 40000);
  EXPECT_FALSE(parse_dpdk_query("ip=1.2.3.4:4792").ok());
  EXPECT_FALSE(parse_dpdk_query("ip=1.2.3.4:5049").ok());
  auto o = parse_dpdk_query("ip=1.2.3.4:5048&fabric=lay");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(DpdkDriver::open(*o, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DpdkDriver, ExchangeHeadersAndArp) {
  auto a = open("fabric=t1&ip=10.0.0.1");
  auto b = open("fabric=t1&ip=10.0.0.2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->caps().name, "dpdk");
  EXPECT_EQ(a->caps().mtu_payload, 4096u);
  EXPECT_EQ(a->local_addr(0), PeerAddr{0x0A000001} << 16 | 4793);
  EXPECT_EQ(a->format_addr(b->local_addr(0)), "10.0.0.2:4793");
  auto pa = a->parse_addr("10.0.0.2");
  ASSERT_TRUE(pa.ok());
  EXPECT_EQ(*pa, b->local_addr(0));
  EXPECT_FALSE(a->parse_addr("10.0.0").ok());
  EXPECT_FALSE(a->parse_addr("10.0.0.2:x").ok());

  // The first packet waits in the pending list for ARP (b answers when it
  // polls, a learns when it polls), then leaves on its own.
  std::vector<Got> got;
  ASSERT_TRUE(send_one(*a, 0, b->local_addr(0), 10, 0));
  ASSERT_TRUE(wait_for([&] { return got.size() == 1; },
                       [&] {
                         drain(*b, &got);
                         std::vector<Got> none;
                         drain(*a, &none);
                         EXPECT_TRUE(none.empty());
                       }));
  got.clear();
  constexpr int kN = 100;
  for (int i = 0; i < kN; ++i)
    ASSERT_TRUE(send_one(*a, 0, b->local_addr(0), 100 + i, static_cast<uint8_t>(i), static_cast<uint16_t>(0xC000 + i),
                         10, Ecn::kCe));
  ASSERT_TRUE(wait_for([&] { return got.size() >= kN; }, [&] { drain(*b, &got); }));
  ASSERT_EQ(got.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    const Got& g = got[i];
    ASSERT_EQ(g.data.size(), 100u + i);
    for (size_t k = 0; k < g.data.size(); ++k) ASSERT_EQ(g.data[k], static_cast<uint8_t>(i + k));
    EXPECT_EQ(g.meta.peer, a->local_addr(0));
    EXPECT_EQ(g.meta.ecn, Ecn::kCe);
    const uint16_t sport = src_port_for(4793, static_cast<uint16_t>(0xC000 + i), 64);
    EXPECT_EQ(g.meta.entropy, sport);
    EXPECT_EQ(rte_be_to_cpu_16(g.udp.src_port), sport);
    EXPECT_EQ(rte_be_to_cpu_16(g.udp.dst_port), 4793);
    EXPECT_EQ(rte_be_to_cpu_16(g.udp.dgram_len), 8 + 100 + i);
    EXPECT_EQ(g.udp.dgram_cksum, 0);
    EXPECT_EQ(g.ip.type_of_service, (10 << 2) | 3);
    EXPECT_EQ(g.ip.version_ihl, 0x45);
    EXPECT_EQ(rte_be_to_cpu_16(g.ip.total_length), 28 + 100 + i);
    EXPECT_EQ(rte_be_to_cpu_32(g.ip.src_addr), 0x0A000001u);
    EXPECT_EQ(rte_be_to_cpu_32(g.ip.dst_addr), 0x0A000002u);
    EXPECT_EQ(g.ip.next_proto_id, IPPROTO_UDP);
    EXPECT_TRUE(g.ip_cksum_ok);
    EXPECT_TRUE(rte_is_same_ether_addr(&g.eth.src_addr, &a->mac()));
    EXPECT_TRUE(rte_is_same_ether_addr(&g.eth.dst_addr, &b->mac()));
    EXPECT_EQ(g.eth.ether_type, rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4));
  }
  // net_ring advertises no checksum offload: the software path ran.
  EXPECT_FALSE(a->ip_cksum_offload());
  EXPECT_GE(a->counters().arp_requests, 1u);
  EXPECT_GE(b->counters().arp_replies, 1u);
  rte_ether_addr m;
  ASSERT_TRUE(a->neigh().lookup(0x0A000002, &m));
  EXPECT_TRUE(rte_is_same_ether_addr(&m, &b->mac()));
  ASSERT_TRUE(b->neigh().lookup(0x0A000001, &m));  // learned from the request
  EXPECT_TRUE(rte_is_same_ether_addr(&m, &a->mac()));
  EXPECT_EQ(a->counters().neigh_drops, 0u);
  EXPECT_EQ(b->counters().rx_bad, 0u);
  const std::string dump = a->dump();
  EXPECT_NE(dump.find("link "), std::string::npos) << dump;
  EXPECT_NE(dump.find("arp_requests"), std::string::npos) << dump;
}

TEST(DpdkDriver, ArpRequestAnswered) {
  auto a = open("fabric=t2&ip=10.0.1.1");
  auto b = open("fabric=t2&ip=10.0.1.2");
  auto c = open("fabric=t2&ip=10.0.1.3");
  ASSERT_TRUE(a && b && c);
  a->arp_request(0, 0x0A000103);
  std::vector<Got> got;
  ASSERT_TRUE(wait_for([&] { return c->counters().arp_replies == 1 && a->counters().arp_rx == 1; },
                       [&] {
                         drain(*b, &got);
                         drain(*c, &got);
                         drain(*a, &got);
                       }));
  EXPECT_EQ(b->counters().arp_replies, 0u);  // not b's address
  EXPECT_EQ(b->counters().arp_rx, 1u);       // but b saw the broadcast
  rte_ether_addr m;
  EXPECT_TRUE(a->neigh().lookup(0x0A000103, &m));
  EXPECT_TRUE(rte_is_same_ether_addr(&m, &c->mac()));
  EXPECT_TRUE(got.empty());
}

TEST(DpdkDriver, StaticNeighboursNeedNoArp) {
  auto b = open("fabric=t3&ip=10.0.2.2");
  ASSERT_TRUE(b);
  const std::string bm = absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", b->mac().addr_bytes[0],
                                         b->mac().addr_bytes[1], b->mac().addr_bytes[2], b->mac().addr_bytes[3],
                                         b->mac().addr_bytes[4], b->mac().addr_bytes[5]);
  auto a = open("fabric=t3&ip=10.0.2.1&neigh=10.0.2.2@" + bm);
  ASSERT_TRUE(a);
  ASSERT_TRUE(send_one(*a, 0, b->local_addr(0), 64, 1));
  std::vector<Got> got;
  ASSERT_TRUE(wait_for([&] { return got.size() == 1; }, [&] { drain(*b, &got); }));
  EXPECT_EQ(a->counters().arp_requests, 0u);
}

TEST(DpdkDriver, TwoQueuesSoftwareDispatch) {
  auto a = open("fabric=t4&ip=10.0.3.1", 2);
  auto b = open("fabric=t4&ip=10.0.3.2", 2);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(b->flow_steering());  // net_ring takes no rte_flow rules
  EXPECT_EQ(b->local_addr(1), b->local_addr(0) + 1);
  // Resolve first (both ways), then send from both queues to both queues.
  a->arp_request(0, b->ip());
  std::vector<Got> got;
  rte_ether_addr m;
  ASSERT_TRUE(wait_for([&] { return a->neigh().lookup(b->ip(), &m); },
                       [&] {
                         drain(*b, &got);
                         drain(*a, &got);
                       }));
  constexpr int kPer = 64;
  for (uint32_t from = 0; from < 2; ++from)
    for (uint32_t to = 0; to < 2; ++to)
      for (int i = 0; i < kPer; ++i)
        ASSERT_TRUE(send_one(*a, from, b->local_addr(to), 32, static_cast<uint8_t>(from * 2 + to),
                             static_cast<uint16_t>(i)));
  got.clear();
  ASSERT_TRUE(wait_for([&] { return got.size() >= 4 * kPer; }, [&] { drain(*b, &got); }));
  EXPECT_EQ(got.size(), 4u * kPer);
  int per[2][2] = {};
  for (const Got& g : got) {
    const uint32_t to = rte_be_to_cpu_16(g.udp.dst_port) - 4793;
    ASSERT_EQ(g.queue, to);  // every packet reached its queue's engine
    const uint32_t from = static_cast<uint32_t>(g.meta.peer - a->local_addr(0));
    ASSERT_LT(from, 2u);
    EXPECT_EQ(g.data[0], from * 2 + to);
    ++per[from][to];
  }
  for (auto& row : per)
    for (int n : row) EXPECT_EQ(n, kPer);
  EXPECT_GT(b->counters().rx_dispatched, 0u);
  EXPECT_EQ(b->counters().rx_dispatch_drops, 0u);
}

TEST(DpdkDriver, OnlyOneQueueDrivenStillReceives) {
  // Frames for queue 1 that RSS put on queue 0 arrive even if nobody polls
  // queue 0: queue 1 helps by polling its sibling.
  auto a = open("fabric=t5&ip=10.0.4.1");
  auto b = open("fabric=t5&ip=10.0.4.2", 2);
  ASSERT_TRUE(a && b);
  b->arp_request(1, a->ip());  // a learns b, b learns a
  std::vector<Got> got;
  rte_ether_addr m;
  ASSERT_TRUE(wait_for([&] { return b->neigh().lookup(a->ip(), &m) && a->neigh().lookup(b->ip(), &m); },
                       [&] {
                         drain(*a, &got);
                         RxPacket r[32];
                         b->rx_release(1, std::span<RxPacket>(r, b->rx_burst(1, r)));
                       }));
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(send_one(*a, 0, b->local_addr(1), 16, 0, static_cast<uint16_t>(i)));
  int n = 0;
  ASSERT_TRUE(wait_for([&] { return n == 64; },
                       [&] {
                         RxPacket r[32];
                         const uint32_t k = b->rx_burst(1, r);
                         n += k;
                         b->rx_release(1, std::span<RxPacket>(r, k));
                       }));
}

TEST(DpdkDriver, LoopbackToOwnAddress) {
  auto a = open("fabric=t6&ip=10.0.5.1", 2);
  ASSERT_TRUE(a);
  ASSERT_TRUE(send_one(*a, 0, a->local_addr(1), 40, 3));
  std::vector<Got> got;
  ASSERT_TRUE(wait_for([&] { return got.size() == 1; }, [&] { drain(*a, &got); }));
  EXPECT_EQ(got[0].queue, 1u);
  EXPECT_EQ(got[0].meta.peer, a->local_addr(0));
  EXPECT_EQ(a->counters().arp_requests, 0u);
}

TEST(DpdkDriver, UnusedLentBuffersComeBack) {
  auto a = open("fabric=t7&ip=10.0.6.1");
  ASSERT_TRUE(a);
  for (int round = 0; round < 2000; ++round) {  // leaks would empty the pool
    TxPacket t[32];
    ASSERT_EQ(a->tx_alloc(0, t), 32u) << round;
    EXPECT_EQ(a->tx_burst(0, t), 0u);
  }
  TxPacket foreign[1];
  uint8_t buf[64];
  foreign[0].data = buf;
  foreign[0].len = 10;
  a->tx_burst(0, foreign);
  EXPECT_EQ(a->counters().bad_buffers, 1u);
}

TEST(DpdkDriver, EalStartsOnceAndRefusesOtherArguments) {
  auto a = open("fabric=t8&ip=10.0.7.1");
  ASSERT_TRUE(a);
  auto same = open_driver(std::string("dpdk://?") + kEal + "&fabric=t8&ip=10.0.7.2", 1);
  EXPECT_TRUE(same.ok()) << same.status();
  auto none = open_driver("dpdk://?fabric=t8&ip=10.0.7.3", 1);
  EXPECT_TRUE(none.ok()) << none.status();
  auto other = open_driver("dpdk://?eal=-l%201&fabric=t8&ip=10.0.7.4", 1);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("already initialized"), std::string::npos) << other.status();
  auto dup = open_driver("dpdk://?fabric=t8&ip=10.0.7.1", 1);
  EXPECT_FALSE(dup.ok());
  auto noport = open_driver("dpdk://?port=99&ip=10.0.7.9", 1);
  EXPECT_EQ(noport.status().code(), absl::StatusCode::kFailedPrecondition) << noport.status();
}

TEST(DpdkDriver, LcoresNameTheCpuOfEachQueuesEngine) {
  // EAL runs lcore 0 only here (-l 0): its CPU for the one queue, and clear
  // errors for an lcore EAL does not run or too few lcores for the queues.
  auto a = open("fabric=t9&ip=10.0.8.1&lcores=0");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->caps().engine_cpus, std::vector<int>{static_cast<int>(rte_lcore_to_cpu_id(0))});
  auto plain = open("fabric=t9&ip=10.0.8.2");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->caps().engine_cpus.empty());
  auto off = open_driver(std::string("dpdk://?") + kEal + "&fabric=t9&ip=10.0.8.3&lcores=7", 1);
  ASSERT_FALSE(off.ok());
  EXPECT_EQ(off.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(off.status().message().find("lcore 7"), std::string::npos) << off.status();
  auto few = open_driver(std::string("dpdk://?") + kEal + "&fabric=t9&ip=10.0.8.4&lcores=0", 2);
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.status().message().find("1 lcores for 2 queues"), std::string::npos) << few.status();
}

}  // namespace
}  // namespace shoal::dpdk
