// drivers/dpdk/dpdk.cc: EAL start-up and the DPDK ethdev driver (design and
// invariants in dpdk_driver.h and dpdk.h).
#include "drivers/dpdk/dpdk_driver.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <rte_arp.h>
#include <rte_bus_vdev.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_flow.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_udp.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/base/counters.h"
#include "lib/base/log.h"
#include "lib/base/status.h"

namespace shoal::dpdk {
namespace {

using sv = absl::string_view;

std::string ip_str(uint32_t ip) {
  return absl::StrFormat("%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

std::string mac_str(const rte_ether_addr& m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m.addr_bytes[0], m.addr_bytes[1], m.addr_bytes[2],
                         m.addr_bytes[3], m.addr_bytes[4], m.addr_bytes[5]);
}

uint64_t mac_bits(const rte_ether_addr& m) {
  uint64_t v = 0;
  for (int i = 0; i < 6; ++i) v = v << 8 | m.addr_bytes[i];
  return v;
}

rte_ether_addr bits_mac(uint64_t v) {
  rte_ether_addr m;
  for (int i = 5; i >= 0; --i, v >>= 8) m.addr_bytes[i] = static_cast<uint8_t>(v);
  return m;
}

// rte_eth_link_to_str is experimental in 22.11; this is the same text.
std::string link_str(uint16_t port) {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port, &link) != 0) return "unknown";
  if (!link.link_status) return "down";
  return absl::StrCat("up ", link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? std::string("?") : absl::StrCat(link.link_speed),
                      " Mbps ", link.link_duplex ? "full" : "half", "-duplex");
}

// ---- EAL -------------------------------------------------------------------

std::mutex g_eal_mu;
bool g_eal_done = false;
absl::Status g_eal_status;          // the outcome of the one rte_eal_init
std::string g_eal_args;             // the eal= string it ran with
std::vector<std::string> g_eal_argv;  // EAL may keep pointers into argv

bool hugepages_available(bool in_memory) {
  std::ifstream mi("/proc/meminfo");
  std::string line;
  uint64_t free_pages = 0;
  while (std::getline(mi, line)) {
    if (line.rfind("HugePages_Free:", 0) == 0) {
      std::istringstream(line.substr(15)) >> free_pages;
    }
  }
  if (free_pages == 0) return false;
  if (in_memory) return true;  // memfd-backed, needs no mount
  std::ifstream mounts("/proc/mounts");
  while (std::getline(mounts, line))
    if (line.find(" hugetlbfs ") != std::string::npos) return true;
  return false;
}

// Ports opened by a driver in this process: one context per ethdev port.
std::mutex g_ports_mu;
std::set<uint16_t>& claimed_ports() {
  static auto* s = new std::set<uint16_t>;
  return *s;
}

std::atomic<uint32_t> g_serial{0};

constexpr uint64_t kArpResend = 10;  // per second: resend every 100 ms
constexpr uint32_t kMaxPending = 64;
constexpr uint32_t kMaxLent = 2 * DpdkDriver::kMaxBurst;

}  // namespace

absl::Status ensure_eal(const DpdkOptions& o) {
  std::lock_guard<std::mutex> lock(g_eal_mu);
  if (g_eal_done) {
    if (!g_eal_status.ok()) return g_eal_status;
    if (o.eal_given && o.eal != g_eal_args)
      return absl::InvalidArgumentError(absl::StrCat(
          "dpdk: EAL is already initialized in this process with eal=\"", g_eal_args,
          "\"; a later context must pass the same eal= or none (got \"", o.eal, "\")"));
    return absl::OkStatus();
  }
  g_eal_done = true;
  g_eal_args = o.eal;
  g_eal_argv = {"shoal"};
  bool no_huge = false, in_memory = false;
  for (std::string& a : split_eal_args(o.eal)) {
    no_huge |= a == "--no-huge";
    in_memory |= a == "--in-memory";
    g_eal_argv.push_back(std::move(a));
  }
  if (!no_huge && !hugepages_available(in_memory)) {
    g_eal_argv.push_back("--no-huge");
    SHOAL_LOG(kDriver, kInfo, "dpdk: no free hugepages (or no hugetlbfs mount): adding --no-huge to the EAL arguments");
  }
  std::vector<char*> argv;
  for (std::string& a : g_eal_argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  // rte_eal_init pins the calling thread to the main lcore; the caller's
  // thread is the application's, so its affinity is put back afterwards.
  cpu_set_t saved;
  const bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;
  const int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (have_saved) pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
  if (rc < 0 && rte_errno == EALREADY) {
    SHOAL_LOG(kDriver, kInfo, "dpdk: EAL was initialized by the application; eal= is ignored");
    g_eal_status = absl::OkStatus();
  } else if (rc < 0) {
    std::string joined;
    for (size_t i = 1; i < g_eal_argv.size(); ++i) absl::StrAppend(&joined, i > 1 ? " " : "", g_eal_argv[i]);
    g_eal_status = absl::FailedPreconditionError(
        absl::StrCat("dpdk: rte_eal_init(", joined, "): ", rte_strerror(rte_errno), " (EAL starts once per process)"));
  } else {
    g_eal_status = absl::OkStatus();
  }
  return g_eal_status;
}

// ---- neighbours ------------------------------------------------------------

bool NeighTable::lookup(uint32_t ip, rte_ether_addr* mac) const {
  uint32_t i = (ip * 0x9E3779B1u) >> 22;
  for (uint32_t n = 0; n < kSize; ++n, i = (i + 1) & (kSize - 1)) {
    const uint32_t v = ip_[i].load(std::memory_order_acquire);
    if (v == 0) return false;
    if (v == ip) {
      *mac = bits_mac(mac_[i].load(std::memory_order_relaxed));
      return true;
    }
  }
  return false;
}

bool NeighTable::learn(uint32_t ip, const rte_ether_addr& mac) {
  if (ip == 0) return false;
  std::lock_guard<std::mutex> lock(write_mu_);
  uint32_t i = (ip * 0x9E3779B1u) >> 22;
  for (uint32_t n = 0; n < kSize; ++n, i = (i + 1) & (kSize - 1)) {
    const uint32_t v = ip_[i].load(std::memory_order_relaxed);
    if (v == ip) {
      mac_[i].store(mac_bits(mac), std::memory_order_relaxed);
      return true;
    }
    if (v == 0) {
      // MAC first, then publish the key: a reader that sees the key sees it.
      mac_[i].store(mac_bits(mac), std::memory_order_relaxed);
      ip_[i].store(ip, std::memory_order_release);
      return true;
    }
  }
  return false;
}

// ---- driver ----------------------------------------------------------------

struct DpdkDriver::Queue {
  std::atomic<bool> hw_busy{false};  // try-lock of hardware rx queue q
  rte_ring* sw = nullptr;            // frames other pollers dispatched to q
  rte_mbuf* lent[kMaxLent];
  uint32_t nlent = 0;
  struct Pending {
    rte_mbuf* m;
    uint32_t ip;
    uint64_t since;
  };
  Pending pend[kMaxPending];
  uint32_t npend = 0;
  struct ArpReq {
    uint32_t ip = 0;
    uint64_t at = 0;
  };
  ArpReq reqs[8];
  uint32_t next_req = 0;
  uint32_t help_next = 0;
  DpdkCounters c;
};

DpdkDriver::DpdkDriver(const DpdkOptions& o, uint32_t queues) : opts_(o), nq_(queues) {
  for (uint32_t q = 0; q < queues; ++q) queues_.push_back(std::make_unique<Queue>());
  base_port_ = o.udp_port;
}

absl::StatusOr<std::unique_ptr<DpdkDriver>> DpdkDriver::open(const DpdkOptions& o, uint32_t queues) {
  if (queues == 0 || queues > kMaxQueues)
    return absl::InvalidArgumentError(absl::StrCat("dpdk: queues must be 1..", kMaxQueues));
  if (o.udp_port + queues > kPortBase + kPortStride)
    return absl::InvalidArgumentError(absl::StrCat("dpdk: ports ", o.udp_port, "..", o.udp_port + queues - 1,
                                                   " leave the listening window ", kPortBase, "..",
                                                   kPortBase + kPortStride - 1));
  if (o.fabric.empty() && o.ip == 0)
    return absl::InvalidArgumentError("dpdk: ip= is required (this context's IPv4 address) unless fabric= is given");
  RETURN_IF_ERROR(ensure_eal(o));
  // lcores=: the EAL lcore (hence CPU) each queue's engine runs on. Checked
  // here, before a port exists, against the lcores EAL was started with.
  std::vector<int> engine_cpus;
  if (!o.lcores.empty()) {
    if (o.lcores.size() < queues)
      return absl::InvalidArgumentError(absl::StrCat("dpdk: lcores= names ", o.lcores.size(), " lcores for ", queues,
                                                     " queues (one engine per queue)"));
    for (uint32_t l : o.lcores) {
      if (!rte_lcore_is_enabled(l))
        return absl::InvalidArgumentError(absl::StrCat("dpdk: lcore ", l, " is not one EAL runs (give it in eal=, e.g. -l 0-", l, ")"));
      engine_cpus.push_back(static_cast<int>(rte_lcore_to_cpu_id(static_cast<int>(l))));
    }
  }
  std::unique_ptr<DpdkDriver> d(new DpdkDriver(o, queues));
  d->caps_.engine_cpus = std::move(engine_cpus);
  RETURN_IF_ERROR(d->start());
  return d;
}

absl::Status DpdkDriver::start() {
  const uint32_t serial = g_serial.fetch_add(1);
  uint32_t mtu_payload = opts_.mtu;
  if (!opts_.fabric.empty()) {
    if (mtu_payload == 0) mtu_payload = 4096;
    const uint32_t room = RTE_PKTMBUF_HEADROOM + kHdrLen + mtu_payload + kHeaderRoom;
    ASSIGN_OR_RETURN(fabric_, RingFabric::get(opts_.fabric, opts_.mbufs, static_cast<uint16_t>(room)));
    if (fabric_->data_room() < room)
      return absl::InvalidArgumentError(absl::StrCat("dpdk: fabric ", opts_.fabric, " was created for a smaller mtu"));
    ASSIGN_OR_RETURN(fabric_slot_, fabric_->attach(opts_.ip, nq_, opts_.ring));
    const RingFabric::Endpoint& ep = fabric_->endpoint(fabric_slot_);
    ip_ = ep.ip;
    mac_ = ep.mac;
    pool_ = fabric_->pool();
    vdev_name_ = absl::StrCat("net_ring_shoal", serial);
    const int port = rte_eth_from_rings(vdev_name_.c_str(), ep.rx, nq_, ep.tx, nq_, SOCKET_ID_ANY);
    if (port < 0) {
      vdev_name_.clear();
      return absl::FailedPreconditionError(absl::StrCat("dpdk: rte_eth_from_rings: ", rte_strerror(rte_errno)));
    }
    port_ = static_cast<uint16_t>(port);
  } else {
    port_ = opts_.port_id;
    ip_ = opts_.ip;
    if (!rte_eth_dev_is_valid_port(port_))
      return absl::FailedPreconditionError(absl::StrCat(
          "dpdk: no ethdev port ", port_, " (", rte_eth_dev_count_avail(),
          " ports; give the device in eal=, e.g. --vdev=net_af_packet0,iface=eth0)"));
    {
      std::lock_guard<std::mutex> lock(g_ports_mu);
      if (!claimed_ports().insert(port_).second)
        return absl::FailedPreconditionError(absl::StrCat("dpdk: port ", port_, " is used by another context"));
      port_claimed_ = true;
    }
    uint16_t port_mtu = 1500;
    rte_eth_dev_get_mtu(port_, &port_mtu);
    if (mtu_payload == 0) {
      mtu_payload = 512;
      for (uint32_t p : {4096u, 2048u, 1024u})
        if (p + kHeaderRoom + 28 <= port_mtu) {
          mtu_payload = p;
          break;
        }
    } else if (mtu_payload + kHeaderRoom + 28 > port_mtu) {
      const int rc = rte_eth_dev_set_mtu(port_, static_cast<uint16_t>(mtu_payload + kHeaderRoom + 28));
      if (rc != 0)
        return absl::InvalidArgumentError(absl::StrCat("dpdk: mtu=", mtu_payload, " needs a port MTU of ",
                                                       mtu_payload + kHeaderRoom + 28, " and port ", port_,
                                                       " has ", port_mtu, ": ", rte_strerror(-rc)));
    }
    // At least DPDK's default 2 KiB data room: PMDs such as af_packet size
    // their receive frames by it and refuse smaller mbufs.
    const uint32_t room = std::max<uint32_t>(RTE_PKTMBUF_HEADROOM + kHdrLen + mtu_payload + kHeaderRoom,
                                             RTE_MBUF_DEFAULT_BUF_SIZE);
    const std::string name = absl::StrCat("shp", serial);
    pool_ = rte_pktmbuf_pool_create(name.c_str(), opts_.mbufs, 256, 0, static_cast<uint16_t>(room),
                                    rte_eth_dev_socket_id(port_));
    if (!pool_)
      return absl::ResourceExhaustedError(absl::StrCat("dpdk: mbuf pool of ", opts_.mbufs, " x ", room,
                                                       " B: ", rte_strerror(rte_errno), " (EAL -m too small?)"));
    own_pool_ = true;
    rte_eth_macaddr_get(port_, &mac_);
  }
  caps_.name = "dpdk";
  caps_.mtu_payload = mtu_payload;
  caps_.max_burst = kMaxBurst;
  caps_.queues = nq_;

  rte_eth_dev_info info;
  if (int rc = rte_eth_dev_info_get(port_, &info); rc != 0)
    return absl::FailedPreconditionError(absl::StrCat("dpdk: port ", port_, ": dev_info: ", rte_strerror(-rc)));
  if (info.max_rx_queues < nq_ || info.max_tx_queues < nq_)
    return absl::FailedPreconditionError(absl::StrCat(
        "dpdk: port ", port_, " (", info.driver_name, ") has ", info.max_rx_queues, " rx / ", info.max_tx_queues,
        " tx queues, ", nq_, " engines need as many (af_packet: qpairs=N in the vdev arguments)"));
  rte_eth_conf conf;
  std::memset(&conf, 0, sizeof(conf));
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    ip_cksum_offload_ = true;
  }
  if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
  if (int rc = rte_eth_dev_configure(port_, nq_, nq_, &conf); rc != 0)
    return absl::FailedPreconditionError(absl::StrCat("dpdk: port ", port_, ": configure: ", rte_strerror(-rc)));
  uint16_t nrx = static_cast<uint16_t>(opts_.ring), ntx = static_cast<uint16_t>(opts_.ring);
  rte_eth_dev_adjust_nb_rx_tx_desc(port_, &nrx, &ntx);
  const int socket = rte_eth_dev_socket_id(port_);
  for (uint32_t q = 0; q < nq_; ++q) {
    if (int rc = rte_eth_rx_queue_setup(port_, q, nrx, socket, nullptr, pool_); rc != 0)
      return absl::FailedPreconditionError(absl::StrCat("dpdk: port ", port_, ": rx queue ", q, ": ", rte_strerror(-rc)));
    rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    if (int rc = rte_eth_tx_queue_setup(port_, q, ntx, socket, &txc); rc != 0)
      return absl::FailedPreconditionError(absl::StrCat("dpdk: port ", port_, ": tx queue ", q, ": ", rte_strerror(-rc)));
    const std::string rn = absl::StrCat("shq", serial, "_", q);
    queues_[q]->sw = rte_ring_create(rn.c_str(), opts_.ring, socket, RING_F_SC_DEQ);
    if (!queues_[q]->sw)
      return absl::ResourceExhaustedError(absl::StrCat("dpdk: dispatch ring: ", rte_strerror(rte_errno)));
  }
  if (int rc = rte_eth_dev_start(port_); rc != 0)
    return absl::FailedPreconditionError(absl::StrCat("dpdk: port ", port_, ": start: ", rte_strerror(-rc)));
  port_started_ = true;

  // Steering by UDP destination port; any refusal means software dispatch.
  if (nq_ > 1 && opts_.flow) {
    flow_steering_ = true;
    for (uint32_t q = 0; q < nq_ && flow_steering_; ++q) {
      rte_flow_attr attr{};
      attr.ingress = 1;
      rte_flow_item_udp udp_spec{}, udp_mask{};
      udp_spec.hdr.dst_port = rte_cpu_to_be_16(static_cast<uint16_t>(base_port_ + q));
      udp_mask.hdr.dst_port = 0xFFFF;
      rte_flow_item pattern[4] = {};
      pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
      pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
      pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
      pattern[2].spec = &udp_spec;
      pattern[2].mask = &udp_mask;
      pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
      rte_flow_action_queue queue{static_cast<uint16_t>(q)};
      rte_flow_action actions[2] = {};
      actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
      actions[0].conf = &queue;
      actions[1].type = RTE_FLOW_ACTION_TYPE_END;
      rte_flow_error err{};
      rte_flow* f = rte_flow_create(port_, &attr, pattern, actions, &err);
      if (f) {
        flows_.push_back(f);
      } else {
        SHOAL_LOG(kDriver, kInfo, "dpdk: port %u: rte_flow steering refused (%s): software dispatch", port_,
                  err.message ? err.message : "no reason");
        flow_steering_ = false;
      }
    }
    if (!flow_steering_) {
      for (rte_flow* f : flows_) rte_flow_destroy(port_, f, nullptr);
      flows_.clear();
    }
  }
  for (const auto& [nip, nmac] : opts_.neigh) {
    rte_ether_addr m;
    std::memcpy(m.addr_bytes, nmac.data(), 6);
    neigh_.learn(nip, m);
  }
  const std::string ls = link_str(port_);
  SHOAL_LOG(kDriver, kInfo, "dpdk: port %u (%s) %s %s:%u..%u, %u queues, payload mtu %u, %s, ip cksum %s; %s",
            port_, info.driver_name, mac_str(mac_), ip_str(ip_), base_port_, base_port_ + nq_ - 1, nq_,
            mtu_payload, nq_ > 1 ? (flow_steering_ ? "rte_flow steering" : "software dispatch") : "one queue",
            ip_cksum_offload_ ? "offloaded" : "software", ls);
  return absl::OkStatus();
}

DpdkDriver::~DpdkDriver() {
  for (rte_flow* f : flows_) rte_flow_destroy(port_, f, nullptr);
  if (port_started_) rte_eth_dev_stop(port_);
  if (!vdev_name_.empty()) {
    rte_eth_dev_close(port_);
    rte_vdev_uninit(vdev_name_.c_str());
  }
  for (auto& qu : queues_) {
    if (qu->nlent) rte_pktmbuf_free_bulk(qu->lent, qu->nlent);
    for (uint32_t i = 0; i < qu->npend; ++i) rte_pktmbuf_free(qu->pend[i].m);
    if (qu->sw) {
      void* objs[64];
      unsigned n;
      while ((n = rte_ring_dequeue_burst(qu->sw, objs, 64, nullptr)) > 0)
        rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf**>(objs), n);
      rte_ring_free(qu->sw);
    }
  }
  if (fabric_) fabric_->detach(fabric_slot_);
  if (port_claimed_) {
    // A real port stays configured (EAL owns it); the next context reconfigures it.
    std::lock_guard<std::mutex> lock(g_ports_mu);
    claimed_ports().erase(port_);
  }
  if (own_pool_) rte_mempool_free(pool_);
}

PeerAddr DpdkDriver::local_addr(uint32_t q) const {
  if (q >= nq_) return 0;
  return static_cast<PeerAddr>(ip_) << 16 | static_cast<uint16_t>(base_port_ + q);
}

absl::StatusOr<PeerAddr> DpdkDriver::parse_addr(std::string_view text_std) const {
  const sv text(text_std.data(), text_std.size());
  const size_t colon = text.find(':');
  uint32_t parts[4], port = base_port_;
  const sv ip = text.substr(0, colon);
  int n = 0;
  size_t start = 0;
  bool ok = true;
  while (ok && n < 4) {
    const size_t dot = ip.find('.', start);
    const sv p = ip.substr(start, dot == sv::npos ? sv::npos : dot - start);
    ok = !p.empty() && p.size() <= 3 && absl::SimpleAtoi(p, &parts[n]) && parts[n] <= 255;
    ++n;
    if (dot == sv::npos) break;
    start = dot + 1;
  }
  ok = ok && n == 4 && ip.find('.', start) == sv::npos;
  if (ok && colon != sv::npos) ok = absl::SimpleAtoi(text.substr(colon + 1), &port) && port >= 1 && port <= 65535;
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("dpdk: address \"", text, "\" is not IP or IP:PORT"));
  const uint32_t v = parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3];
  return static_cast<PeerAddr>(v) << 16 | port;
}

std::string DpdkDriver::format_addr(PeerAddr addr) const {
  return absl::StrCat(ip_str(static_cast<uint32_t>(addr >> 16)), ":", addr & 0xFFFF);
}

uint32_t DpdkDriver::tx_alloc(uint32_t q, std::span<TxPacket> slots) {
  Queue& qu = *queues_[q];
  uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(slots.size()), kMaxLent - qu.nlent);
  rte_mbuf** ms = qu.lent + qu.nlent;
  // All-or-nothing bulk get; on a nearly empty pool halve until it works.
  while (n > 0 && rte_pktmbuf_alloc_bulk(pool_, ms, n) != 0) {
    ++qu.c.tx_alloc_fail;
    n /= 2;
  }
  for (uint32_t i = 0; i < n; ++i) {
    TxPacket& s = slots[i];
    s = TxPacket{};
    s.data = rte_pktmbuf_mtod(ms[i], uint8_t*) + kHdrLen;
    s.capacity = caps_.mtu_payload + kHeaderRoom;
  }
  qu.nlent += n;
  return n;
}

uint32_t DpdkDriver::send_raw(uint32_t q, rte_mbuf** ms, uint32_t n) {
  uint32_t sent = 0;
  // A NIC ring frees descriptors as it transmits: retry a few times, bounded.
  for (int tries = 0; tries < 8 && sent < n; ++tries) {
    sent += rte_eth_tx_burst(port_, static_cast<uint16_t>(q), ms + sent, static_cast<uint16_t>(n - sent));
    if (fabric_) fabric_->forward(fabric_slot_, q);
  }
  if (sent < n) {
    queues_[q]->c.tx_full_drops += n - sent;
    rte_pktmbuf_free_bulk(ms + sent, n - sent);
  }
  return sent;
}

void DpdkDriver::dispatch(uint32_t target, rte_mbuf* m, DpdkCounters& c) {
  if (rte_ring_mp_enqueue(queues_[target]->sw, m) == 0) {
    ++c.rx_dispatched;
  } else {
    ++c.rx_dispatch_drops;
    rte_pktmbuf_free(m);
  }
}

void DpdkDriver::arp_request(uint32_t q, uint32_t ip) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (!m) {
    ++queues_[q]->c.tx_alloc_fail;
    return;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  std::memset(eth, 0, RTE_ETHER_MIN_LEN);  // padded to the 60-byte minimum
  std::memset(&eth->dst_addr, 0xFF, 6);
  eth->src_addr = mac_;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = 6;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = mac_;
  arp->arp_data.arp_sip = rte_cpu_to_be_32(ip_);
  arp->arp_data.arp_tip = rte_cpu_to_be_32(ip);
  m->data_len = m->pkt_len = RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN;
  ++queues_[q]->c.arp_requests;
  send_raw(q, &m, 1);
}

void DpdkDriver::flush_pending(uint32_t q, uint64_t now) {
  Queue& qu = *queues_[q];
  const uint64_t hz = rte_get_timer_hz();
  rte_mbuf* out[kMaxPending];
  uint32_t nout = 0, keep = 0;
  for (uint32_t i = 0; i < qu.npend; ++i) {
    Queue::Pending p = qu.pend[i];
    rte_ether_addr mac;
    if (neigh_.lookup(p.ip, &mac)) {
      rte_pktmbuf_mtod(p.m, rte_ether_hdr*)->dst_addr = mac;
      out[nout++] = p.m;
    } else if (now - p.since > hz) {
      ++qu.c.neigh_drops;
      rte_pktmbuf_free(p.m);
    } else {
      qu.pend[keep++] = p;
      // One request per destination per 100 ms, remembered in a tiny table.
      Queue::ArpReq* r = nullptr;
      for (auto& e : qu.reqs)
        if (e.ip == p.ip) r = &e;
      if (!r) {
        r = &qu.reqs[qu.next_req++ % 8];
        r->ip = p.ip;
        r->at = 0;
      }
      if (r->at == 0 || now - r->at > hz / kArpResend) {
        r->at = now;
        arp_request(q, p.ip);
      }
    }
  }
  qu.npend = keep;
  if (nout) send_raw(q, out, nout);
}

uint32_t DpdkDriver::tx_burst(uint32_t q, std::span<TxPacket> pkts) {
  Queue& qu = *queues_[q];
  rte_mbuf* out[kMaxLent];
  uint32_t nout = 0, later = 0;  // later: looped back or waiting for ARP
  for (TxPacket& p : pkts) {
    // Find the lent mbuf: usually the same order as tx_alloc handed them out.
    uint32_t idx = qu.nlent;
    for (uint32_t i = 0; i < qu.nlent; ++i) {
      if (rte_pktmbuf_mtod(qu.lent[i], uint8_t*) + kHdrLen == p.data) {
        idx = i;
        break;
      }
    }
    if (idx == qu.nlent) {
      ++qu.c.bad_buffers;
      continue;
    }
    rte_mbuf* m = qu.lent[idx];
    qu.lent[idx] = qu.lent[--qu.nlent];
    if (p.len == 0 || p.len > p.capacity || nout == kMaxLent) {
      if (p.len != 0) ++qu.c.bad_buffers;
      rte_pktmbuf_free(m);
      continue;
    }
    const uint32_t dst_ip = static_cast<uint32_t>(p.peer >> 16);
    const uint16_t dport = static_cast<uint16_t>(p.peer);
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    eth->src_addr = mac_;
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = static_cast<uint8_t>(p.dscp << 2 | static_cast<uint8_t>(p.ecn));
    ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(20 + 8 + p.len));
    ip->packet_id = 0;  // DF set: the id identifies no fragments
    ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->hdr_checksum = 0;
    ip->src_addr = rte_cpu_to_be_32(ip_);
    ip->dst_addr = rte_cpu_to_be_32(dst_ip);
    udp->src_port = rte_cpu_to_be_16(src_port_for(static_cast<uint16_t>(base_port_ + q), p.entropy, opts_.entropies));
    udp->dst_port = rte_cpu_to_be_16(dport);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(8 + p.len));
    udp->dgram_cksum = 0;
    m->data_len = static_cast<uint16_t>(kHdrLen + p.len);
    m->pkt_len = m->data_len;
    if (ip_cksum_offload_) {
      m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
      m->l2_len = sizeof(rte_ether_hdr);
      m->l3_len = sizeof(rte_ipv4_hdr);
    } else {
      ip->hdr_checksum = rte_ipv4_cksum(ip);
    }
    ++qu.c.tx_packets;
    if (dst_ip == ip_) {
      // To ourselves: no NIC hairpins, so hand it to the target queue.
      eth->dst_addr = mac_;
      if (ip_cksum_offload_) ip->hdr_checksum = rte_ipv4_cksum(ip);
      ++qu.c.loopback;
      const uint32_t t = static_cast<uint16_t>(dport - base_port_);
      if (t < nq_) {
        dispatch(t, m, qu.c);
        ++later;
      } else {
        ++qu.c.rx_not_ours;
        rte_pktmbuf_free(m);
      }
      continue;
    }
    if (neigh_.lookup(dst_ip, &eth->dst_addr)) {
      out[nout++] = m;
    } else if (qu.npend < kMaxPending) {
      qu.pend[qu.npend++] = {m, dst_ip, rte_get_timer_cycles()};
      ++later;
    } else {
      ++qu.c.neigh_drops;
      rte_pktmbuf_free(m);
    }
  }
  const uint32_t sent = nout ? send_raw(q, out, nout) : 0;
  if (qu.npend) flush_pending(q, rte_get_timer_cycles());
  // Frames waiting for ARP count as sent: they leave (or are counted in
  // neigh_drops) without the caller's help.
  return sent + later;
}

bool DpdkDriver::parse_udp(rte_mbuf* m, uint32_t* target, RxPacket* out, DpdkCounters& c) {
  const uint32_t len = m->data_len;
  if (m->nb_segs != 1 || len < kHdrLen) {
    ++c.rx_bad;
    return false;
  }
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
    ++c.rx_not_ours;
    return false;
  }
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
  const uint32_t hl = (ip->version_ihl & 0xF) * 4u;
  const uint32_t tot = rte_be_to_cpu_16(ip->total_length);
  if ((ip->version_ihl >> 4) != 4 || hl < 20 || sizeof(rte_ether_hdr) + hl + 8 > len || tot < hl + 8 ||
      sizeof(rte_ether_hdr) + tot > len) {
    ++c.rx_bad;
    return false;
  }
  if (ip->next_proto_id != IPPROTO_UDP || rte_be_to_cpu_32(ip->dst_addr) != ip_) {
    ++c.rx_not_ours;
    return false;
  }
  // Fragments (MF or an offset) are not ours to reassemble.
  if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
    ++c.rx_bad;
    return false;
  }
  const uint64_t ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ck == RTE_MBUF_F_RX_IP_CKSUM_BAD || (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, hl) != 0xFFFF)) {
    ++c.rx_bad;
    return false;
  }
  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(reinterpret_cast<const uint8_t*>(ip) + hl);
  const uint32_t ulen = rte_be_to_cpu_16(udp->dgram_len);
  if (ulen < 8 || ulen > tot - hl) {
    ++c.rx_bad;
    return false;
  }
  const uint16_t dport = rte_be_to_cpu_16(udp->dst_port);
  const uint32_t t = static_cast<uint16_t>(dport - base_port_);
  if (t >= nq_) {
    ++c.rx_not_ours;
    return false;
  }
  *target = t;
  const uint16_t sport = rte_be_to_cpu_16(udp->src_port);
  out->data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(udp + 1), ulen - 8);
  out->meta = RxMeta{};
  out->meta.peer = static_cast<PeerAddr>(rte_be_to_cpu_32(ip->src_addr)) << 16 | listen_port_from_src(sport);
  out->meta.entropy = sport;
  out->meta.ecn = static_cast<Ecn>(ip->type_of_service & 3);
  out->handle = reinterpret_cast<uint64_t>(m);
  return true;
}

void DpdkDriver::handle_arp(uint32_t q, rte_mbuf* m) {
  DpdkCounters& c = queues_[q]->c;
  ++c.arp_rx;
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  if (m->nb_segs != 1 || m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr) ||
      arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != 6 || arp->arp_plen != 4) {
    ++c.rx_bad;
    rte_pktmbuf_free(m);
    return;
  }
  const uint32_t sip = rte_be_to_cpu_32(arp->arp_data.arp_sip), tip = rte_be_to_cpu_32(arp->arp_data.arp_tip);
  const uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
  if (tip != ip_ || (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)) {
    rte_pktmbuf_free(m);
    return;
  }
  // RFC 826: the sender of a request or reply for us is worth knowing.
  if (sip != 0 && rte_is_unicast_ether_addr(&arp->arp_data.arp_sha)) neigh_.learn(sip, arp->arp_data.arp_sha);
  if (op == RTE_ARP_OP_REPLY) {
    rte_pktmbuf_free(m);
    return;
  }
  // Answer in place with the request's own mbuf.
  eth->dst_addr = arp->arp_data.arp_sha;
  eth->src_addr = mac_;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  arp->arp_data.arp_sha = mac_;
  arp->arp_data.arp_sip = rte_cpu_to_be_32(ip_);
  m->ol_flags = 0;
  ++c.arp_replies;
  send_raw(q, &m, 1);
}

bool DpdkDriver::accept(uint32_t q, rte_mbuf* m, RxPacket* out, bool from_ring) {
  DpdkCounters& c = queues_[q]->c;
  if (!from_ring && m->data_len >= sizeof(rte_ether_hdr) &&
      rte_pktmbuf_mtod(m, const rte_ether_hdr*)->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
    handle_arp(q, m);
    return false;
  }
  uint32_t target;
  if (!parse_udp(m, &target, out, c)) {
    rte_pktmbuf_free(m);
    return false;
  }
  if (target == q) return true;
  dispatch(target, m, c);
  return false;
}

uint32_t DpdkDriver::poll_hw(uint32_t hwq, uint32_t q, RxPacket* out, uint32_t room) {
  Queue& hw = *queues_[hwq];
  if (hw.hw_busy.exchange(true, std::memory_order_acquire)) return 0;
  rte_mbuf* ms[kMaxBurst];
  const uint16_t k = rte_eth_rx_burst(port_, static_cast<uint16_t>(hwq), ms, static_cast<uint16_t>(room));
  hw.hw_busy.store(false, std::memory_order_release);
  uint32_t n = 0;
  for (uint16_t i = 0; i < k; ++i)
    if (accept(q, ms[i], &out[n], false)) ++n;
  return n;
}

uint32_t DpdkDriver::rx_burst(uint32_t q, std::span<RxPacket> pkts) {
  Queue& qu = *queues_[q];
  const uint32_t want = std::min<uint32_t>(static_cast<uint32_t>(pkts.size()), kMaxBurst);
  if (qu.npend) flush_pending(q, rte_get_timer_cycles());
  uint32_t n = 0;
  rte_mbuf* ms[kMaxBurst];
  const unsigned k = rte_ring_sc_dequeue_burst(qu.sw, reinterpret_cast<void**>(ms), want, nullptr);
  for (unsigned i = 0; i < k; ++i)
    if (accept(q, ms[i], &pkts[n], true)) ++n;
  if (n < want) n += poll_hw(q, q, &pkts[n], want - n);
  // Help: without flow steering our frames may sit in a sibling's hardware
  // queue whose engine is idle; poll one sibling per call, round robin.
  if (n == 0 && nq_ > 1 && !flow_steering_) {
    const uint32_t s = (q + 1 + qu.help_next++ % (nq_ - 1)) % nq_;
    n += poll_hw(s, q, &pkts[0], want);
    if (n < want && rte_ring_count(qu.sw)) {
      const unsigned k2 = rte_ring_sc_dequeue_burst(qu.sw, reinterpret_cast<void**>(ms), want - n, nullptr);
      for (unsigned i = 0; i < k2; ++i)
        if (accept(q, ms[i], &pkts[n], true)) ++n;
    }
  }
  qu.c.rx_packets += n;
  return n;
}

void DpdkDriver::rx_release(uint32_t q, std::span<RxPacket> pkts) {
  rte_mbuf* ms[kMaxBurst];
  uint32_t n = 0;
  for (RxPacket& p : pkts) {
    if (p.handle) ms[n++] = reinterpret_cast<rte_mbuf*>(p.handle);
    p.handle = 0;
    if (n == kMaxBurst) {
      rte_pktmbuf_free_bulk(ms, n);
      n = 0;
    }
  }
  if (n) rte_pktmbuf_free_bulk(ms, n);
}

DpdkCounters DpdkDriver::counters() const {
  DpdkCounters t;
  for (const auto& qu : queues_) add_counters(t, qu->c);
  return t;
}

const DpdkCounters& DpdkDriver::queue_counters(uint32_t q) const { return queues_[q]->c; }

std::string DpdkDriver::dump() const {
  std::string s;
  const std::string ls = link_str(port_);
  absl::StrAppend(&s, "dpdk port ", port_, " ", mac_str(mac_), " ", ip_str(ip_), ":", base_port_, " queues ", nq_,
                  " mtu_payload ", caps_.mtu_payload, " steering ",
                  nq_ == 1 ? "none" : flow_steering_ ? "rte_flow" : "software", " ip_cksum ",
                  ip_cksum_offload_ ? "offload" : "software", "\nlink ", ls, "\n");
  const DpdkCounters c = counters();
  absl::StrAppend(&s, "tx_packets ", c.tx_packets, "\nrx_packets ", c.rx_packets, "\ntx_full_drops ",
                  c.tx_full_drops, "\ntx_alloc_fail ", c.tx_alloc_fail, "\nrx_dispatched ", c.rx_dispatched,
                  "\nrx_dispatch_drops ", c.rx_dispatch_drops, "\nrx_bad ", c.rx_bad, "\nrx_not_ours ",
                  c.rx_not_ours, "\narp_rx ", c.arp_rx, "\narp_replies ", c.arp_replies, "\narp_requests ",
                  c.arp_requests, "\nneigh_drops ", c.neigh_drops, "\nloopback ", c.loopback, "\nbad_buffers ",
                  c.bad_buffers, "\n");
  if (fabric_) absl::StrAppend(&s, "fabric_drops ", fabric_->drops(), "\n");
  const int nx = rte_eth_xstats_get_names(port_, nullptr, 0);
  if (nx > 0) {
    std::vector<rte_eth_xstat_name> names(nx);
    std::vector<rte_eth_xstat> vals(nx);
    if (rte_eth_xstats_get_names(port_, names.data(), nx) == nx && rte_eth_xstats_get(port_, vals.data(), nx) == nx)
      for (int i = 0; i < nx; ++i) absl::StrAppend(&s, "xstat ", names[vals[i].id].name, " ", vals[i].value, "\n");
  }
  return s;
}

absl::StatusOr<std::unique_ptr<Driver>> open_dpdk(std::string_view rest_std, uint32_t queues) {
  const sv rest(rest_std.data(), rest_std.size());
  const size_t qm = rest.find('?');
  if (qm != 0 && !rest.empty())
    return absl::InvalidArgumentError(absl::StrCat("dpdk: \"", rest.substr(0, qm),
                                                   "\": dpdk:// takes no authority; options go after '?' "
                                                   "(dpdk://?eal=...&ip=...)"));
  DpdkOptions o;
  if (qm != sv::npos) {
    ASSIGN_OR_RETURN(o, parse_dpdk_query(std::string_view(rest.data() + 1, rest.size() - 1)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<DpdkDriver> d, DpdkDriver::open(o, queues));
  return std::unique_ptr<Driver>(std::move(d));
}

}  // namespace shoal::dpdk
