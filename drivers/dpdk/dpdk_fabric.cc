// drivers/dpdk/dpdk_fabric.cc: the in-process net_ring fabric (see
// dpdk_fabric.h for the model and invariants).
#include "drivers/dpdk/dpdk_fabric.h"

#include <map>
#include <string>

#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_udp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shoal::dpdk {
namespace {

std::mutex g_mu;
std::map<std::string, std::weak_ptr<RingFabric>>& registry() {
  static auto* r = new std::map<std::string, std::weak_ptr<RingFabric>>;
  return *r;
}
std::atomic<uint32_t> g_serial{0};  // makes every DPDK object name unique

void drain_free(rte_ring* r) {
  void* objs[64];
  unsigned n;
  while ((n = rte_ring_dequeue_burst(r, objs, 64, nullptr)) > 0)
    rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
}

}  // namespace

absl::StatusOr<std::shared_ptr<RingFabric>> RingFabric::get(const std::string& name, uint32_t mbufs,
                                                            uint16_t data_room) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (auto f = registry()[name].lock()) return f;
  const std::string pool_name = absl::StrCat("shf", g_serial.fetch_add(1), "_", name.substr(0, 12));
  // The cache lets an EAL thread (lcore id set) take and return mbufs
  // without touching the shared ring; other threads bypass it.
  rte_mempool* pool = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, 256, 0, data_room, SOCKET_ID_ANY);
  if (!pool)
    return absl::ResourceExhaustedError(absl::StrCat("dpdk fabric ", name, ": mbuf pool of ", mbufs, " x ",
                                                     data_room, " B: ", rte_strerror(rte_errno)));
  std::shared_ptr<RingFabric> f(new RingFabric(name, pool, data_room));
  registry()[name] = f;
  return f;
}

RingFabric::~RingFabric() {
  for (uint32_t s = 0; s < used_.load(); ++s) {
    for (uint32_t q = 0; q < eps_[s].queues; ++q) {
      for (rte_ring* r : {eps_[s].rx[q], eps_[s].tx[q]}) {
        if (!r) continue;
        drain_free(r);
        rte_ring_free(r);
      }
    }
  }
  rte_mempool_free(pool_);
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = registry().find(name_);
  if (it != registry().end() && it->second.expired()) registry().erase(it);
}

absl::StatusOr<uint32_t> RingFabric::attach(uint32_t ip, uint32_t queues, uint32_t ring_size) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t slot = used_.load();
  if (slot >= kMaxEndpoints)
    return absl::ResourceExhaustedError(
        absl::StrCat("dpdk fabric ", name_, ": all ", kMaxEndpoints, " port slots used (use a new fabric name)"));
  if (queues == 0 || queues > kMaxQueues)
    return absl::InvalidArgumentError(absl::StrCat("dpdk fabric: queues must be 1..", kMaxQueues));
  if (ip == 0) ip = (10u << 24) | (77u << 16) | (slot + 1);
  for (uint32_t s = 0; s < slot; ++s)
    if (eps_[s].live.load() && eps_[s].ip == ip)
      return absl::AlreadyExistsError(absl::StrCat("dpdk fabric ", name_, ": ip ", ip >> 24, ".", (ip >> 16) & 255,
                                                   ".", (ip >> 8) & 255, ".", ip & 255, " is taken"));
  Endpoint& ep = eps_[slot];
  ep.ip = ip;
  ep.queues = queues;
  // Locally administered unicast MAC: 02:53:<fabric serial>:00:<slot>.
  const uint32_t serial = g_serial.fetch_add(1);
  ep.mac = {{0x02, 0x53, static_cast<uint8_t>(serial >> 8), static_cast<uint8_t>(serial), 0x00,
             static_cast<uint8_t>(slot)}};
  for (uint32_t q = 0; q < queues; ++q) {
    const std::string rx = absl::StrCat("shr", g_serial.fetch_add(1)), tx = absl::StrCat("sht", g_serial.fetch_add(1));
    // rx: any sender thread produces (MP), the port's rx queue consumes (SC).
    // tx: only the owning engine thread touches it (SP/SC).
    ep.rx[q] = rte_ring_create(rx.c_str(), ring_size, SOCKET_ID_ANY, RING_F_SC_DEQ);
    ep.tx[q] = rte_ring_create(tx.c_str(), ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!ep.rx[q] || !ep.tx[q]) {
      // The slot stays used (never reused); the destructor frees what exists.
      used_.store(slot + 1);
      return absl::ResourceExhaustedError(absl::StrCat("dpdk fabric: ring: ", rte_strerror(rte_errno)));
    }
  }
  used_.store(slot + 1, std::memory_order_release);
  ep.live.store(true, std::memory_order_release);
  return slot;
}

void RingFabric::detach(uint32_t slot) {
  std::lock_guard<std::mutex> lock(mu_);
  eps_[slot].live.store(false, std::memory_order_release);
  for (uint32_t q = 0; q < eps_[slot].queues; ++q) {
    drain_free(eps_[slot].rx[q]);
    drain_free(eps_[slot].tx[q]);
  }
}

void RingFabric::deliver(uint32_t to, rte_mbuf* m) {
  const Endpoint& ep = eps_[to];
  // RSS-like queue choice: the UDP source port (the entropy) if it is an
  // IPv4/UDP frame, else queue 0.
  uint32_t q = 0;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (ep.queues > 1 && m->data_len >= sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) &&
      eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
    const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr));
    const uint32_t h = rte_be_to_cpu_16(udp->src_port) * 0x9E3779B1u;
    q = (h >> 16) % ep.queues;
  }
  if (rte_ring_mp_enqueue(ep.rx[q], m) != 0) {
    rte_pktmbuf_free(m);
    drops_.fetch_add(1, std::memory_order_relaxed);
  }
}

void RingFabric::forward(uint32_t slot, uint32_t q) {
  rte_mbuf* ms[64];
  const uint32_t used = used_.load(std::memory_order_acquire);
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst(eps_[slot].tx[q], reinterpret_cast<void**>(ms), 64, nullptr)) > 0) {
    for (unsigned i = 0; i < n; ++i) {
      rte_mbuf* m = ms[i];
      const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
      if (rte_is_broadcast_ether_addr(&eth->dst_addr)) {
        for (uint32_t s = 0; s < used; ++s) {
          if (s == slot || !eps_[s].live.load(std::memory_order_acquire)) continue;
          rte_mbuf* c = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
          if (c) deliver(s, c);
          else drops_.fetch_add(1, std::memory_order_relaxed);
        }
        rte_pktmbuf_free(m);
        continue;
      }
      uint32_t to = used;
      for (uint32_t s = 0; s < used; ++s) {
        if (rte_is_same_ether_addr(&eth->dst_addr, &eps_[s].mac)) {
          to = s;
          break;
        }
      }
      if (to == used || !eps_[to].live.load(std::memory_order_acquire)) {
        rte_pktmbuf_free(m);
        drops_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      deliver(to, m);
    }
  }
}

}  // namespace shoal::dpdk
