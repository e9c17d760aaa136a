// The `sim://` loopback driver; see loopback.h for the model and invariants.
#include "drivers/sim/loopback.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/base/counters.h"
#include "lib/base/rng.h"

namespace shoal::sim {

// An inbox. Slot s holds sequence numbers s, s + nslots, ... Sequence
// numbers in [free, read) are lent to the receiver, [read, write) are
// waiting, and [write, free + nslots) are empty. Senders hold `mu` to write
// a slot and publish `write`; the one receiver reads `write` (acquire) and
// publishes `free` (release) without the lock.
struct LoopbackEndpoint {
  struct SlotMeta {
    uint32_t len = 0;
    RxMeta meta;
  };

  LoopbackEndpoint(uint32_t nslots, uint32_t slot_size)
      : nslots(nslots),
        slot_size(slot_size),
        // Default-initialised: pages are touched only when used.
        data(new uint8_t[size_t{nslots} * slot_size]),
        meta(new SlotMeta[nslots]) {}

  uint8_t* slot(uint64_t seq) { return data.get() + (seq % nslots) * size_t{slot_size}; }

  const uint32_t nslots;
  const uint32_t slot_size;
  const std::unique_ptr<uint8_t[]> data;
  const std::unique_ptr<SlotMeta[]> meta;

  std::mutex mu;                   // senders
  bool attached = true;            // under mu
  std::atomic<uint64_t> write{0};  // stored under mu
  std::atomic<uint64_t> free{0};   // receiver only stores
  uint64_t read = 0;               // receiver only
};

// ---------------------------------------------------------------------------
// LoopbackFabric

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<LoopbackFabric>, std::less<>> fabrics;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: fabrics may outlive static teardown
  return *r;
}

}  // namespace

std::shared_ptr<LoopbackFabric> LoopbackFabric::get(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto& slot = r.fabrics[name];
  if (auto f = slot.lock()) return f;
  std::shared_ptr<LoopbackFabric> f(new LoopbackFabric(name));
  slot = f;
  return f;
}

LoopbackFabric::~LoopbackFabric() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  // A new fabric of the same name may already have replaced this one.
  auto it = r.fabrics.find(name_);
  if (it != r.fabrics.end() && it->second.expired()) r.fabrics.erase(it);
}

size_t LoopbackFabric::attached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attached_;
}

PeerAddr LoopbackFabric::attach(std::span<const std::shared_ptr<LoopbackEndpoint>> eps) {
  std::lock_guard<std::mutex> lock(mu_);
  const PeerAddr first = endpoints_.size() + 1;
  for (const auto& ep : eps) endpoints_.push_back(ep);
  attached_ += eps.size();
  return first;
}

void LoopbackFabric::detach(PeerAddr addr) {
  std::shared_ptr<LoopbackEndpoint> ep;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (addr == 0 || addr > endpoints_.size() || !endpoints_[addr - 1]) return;
    ep = std::move(endpoints_[addr - 1]);
    endpoints_[addr - 1] = nullptr;
    --attached_;
  }
  // A sender that copied the pointer before we cleared it checks this flag
  // under the inbox lock and counts the packet unroutable.
  std::lock_guard<std::mutex> lock(ep->mu);
  ep->attached = false;
}

void LoopbackFabric::lookup(std::span<const PeerAddr> addrs,
                            std::span<std::shared_ptr<LoopbackEndpoint>> out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < addrs.size(); ++i) {
    const PeerAddr a = addrs[i];
    if (a >= 1 && a <= endpoints_.size()) {
      out[i] = endpoints_[a - 1];
    } else {
      out[i] = nullptr;
    }
  }
}

// ---------------------------------------------------------------------------
// LoopbackDriver

struct alignas(64) LoopbackDriver::Queue {
  Queue(uint32_t mtu, uint64_t seed)
      : buf_size(mtu + kSlotHeadroom), tx_mem(new uint8_t[size_t{kMaxBurst} * (mtu + kSlotHeadroom)]), rng(seed) {
    for (uint32_t i = 0; i < kMaxBurst; ++i) free_stack[i] = kMaxBurst - 1 - i;
    lent.fill(false);
  }

  std::shared_ptr<LoopbackEndpoint> ep;
  PeerAddr addr = 0;

  // tx buffers: kMaxBurst of buf_size bytes, lent by tx_alloc.
  const uint32_t buf_size;
  const std::unique_ptr<uint8_t[]> tx_mem;
  std::array<uint32_t, kMaxBurst> free_stack;
  uint32_t nfree = kMaxBurst;
  std::array<bool, kMaxBurst> lent;

  Rng rng;
  LoopbackCounters counters;
};

absl::StatusOr<std::unique_ptr<LoopbackDriver>> LoopbackDriver::open(
    std::shared_ptr<LoopbackFabric> fabric, uint32_t queues, const LoopbackOptions& o) {
  if (!fabric) return absl::InvalidArgumentError("sim: no fabric");
  if (queues == 0) return absl::InvalidArgumentError("sim: queues must be >= 1");
  if (o.mtu < 256 || o.mtu > 9000)
    return absl::InvalidArgumentError(absl::StrCat("sim: mtu ", o.mtu, " is outside 256..9000"));
  if (o.inbox < 1 || o.inbox > 65536)
    return absl::InvalidArgumentError(absl::StrCat("sim: inbox ", o.inbox, " is outside 1..65536"));
  if (!(o.loss >= 0 && o.loss <= 1))
    return absl::InvalidArgumentError(absl::StrCat("sim: loss ", o.loss, " is outside 0..1"));
  if (!(o.ecn >= 0 && o.ecn <= 1))
    return absl::InvalidArgumentError(absl::StrCat("sim: ecn ", o.ecn, " is outside 0..1"));
  return std::unique_ptr<LoopbackDriver>(new LoopbackDriver(std::move(fabric), queues, o));
}

LoopbackDriver::LoopbackDriver(std::shared_ptr<LoopbackFabric> fabric, uint32_t queues,
                               const LoopbackOptions& options)
    : fabric_(std::move(fabric)), options_(options) {
  caps_.name = "sim";
  caps_.mtu_payload = options_.mtu;
  caps_.max_burst = kMaxBurst;
  caps_.queues = queues;
  queues_.reserve(queues);
  std::vector<std::shared_ptr<LoopbackEndpoint>> eps;
  for (uint32_t q = 0; q < queues; ++q) {
    // Queue 0 draws exactly the sequence of Rng(seed); others get their own.
    auto qu = std::make_unique<Queue>(options_.mtu, options_.seed + q * 0x9e3779b97f4a7c15ULL);
    qu->ep = std::make_shared<LoopbackEndpoint>(options_.inbox, options_.mtu + kSlotHeadroom);
    eps.push_back(qu->ep);
    queues_.push_back(std::move(qu));
  }
  // One block of consecutive addresses: queue q is queue 0's address + q
  // (the driver SDK's rule, which QP numbers rely on).
  const PeerAddr first = fabric_->attach(eps);
  for (uint32_t q = 0; q < queues; ++q) queues_[q]->addr = first + q;
}

LoopbackDriver::~LoopbackDriver() {
  for (auto& qu : queues_) fabric_->detach(qu->addr);
}

PeerAddr LoopbackDriver::local_addr(uint32_t q) const {
  return q < queues_.size() ? queues_[q]->addr : 0;
}

absl::StatusOr<PeerAddr> LoopbackDriver::parse_addr(std::string_view text_std) const {
  // Debian's Abseil has its own string_view type, distinct from std's.
  const absl::string_view text(text_std.data(), text_std.size());
  absl::string_view digits = text;
  if (digits.substr(0, 4) == "sim:") digits.remove_prefix(4);
  const bool all_digits =
      !digits.empty() && digits.size() <= 19 &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  uint64_t n = 0;
  if (!all_digits || !absl::SimpleAtoi(digits, &n) || n == 0)
    return absl::InvalidArgumentError(
        absl::StrCat("sim: bad address \"", text, "\" (want sim:N or N, N >= 1)"));
  return PeerAddr{n};
}

std::string LoopbackDriver::format_addr(PeerAddr addr) const { return absl::StrCat("sim:", addr); }

uint32_t LoopbackDriver::rx_burst(uint32_t q, std::span<RxPacket> pkts) {
  if (q >= queues_.size()) return 0;
  Queue& qu = *queues_[q];
  LoopbackEndpoint& ep = *qu.ep;
  const uint64_t write = ep.write.load(std::memory_order_acquire);
  const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(write - ep.read, pkts.size()));
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t seq = ep.read + i;
    const LoopbackEndpoint::SlotMeta& m = ep.meta[seq % ep.nslots];
    pkts[i].data = std::span<const uint8_t>(ep.slot(seq), m.len);
    pkts[i].meta = m.meta;
    pkts[i].handle = seq;
  }
  ep.read += n;
  qu.counters.rx_packets += n;
  return n;
}

void LoopbackDriver::rx_release(uint32_t q, std::span<RxPacket> pkts) {
  if (q >= queues_.size()) return;
  Queue& qu = *queues_[q];
  LoopbackEndpoint& ep = *qu.ep;
  uint64_t free = ep.free.load(std::memory_order_relaxed);
  for (const RxPacket& p : pkts) {
    // Slots come back in the order they were handed out; anything else would
    // let a sender overwrite bytes the receiver still reads, so stop there.
    if (p.handle != free || free >= ep.read) {
      ++qu.counters.bad_buffers;
      break;
    }
    ++free;
  }
  ep.free.store(free, std::memory_order_release);
}

uint32_t LoopbackDriver::tx_alloc(uint32_t q, std::span<TxPacket> slots) {
  if (q >= queues_.size()) return 0;
  Queue& qu = *queues_[q];
  const uint32_t n = static_cast<uint32_t>(std::min<size_t>(qu.nfree, slots.size()));
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t b = qu.free_stack[--qu.nfree];
    qu.lent[b] = true;
    slots[i] = TxPacket();
    slots[i].data = qu.tx_mem.get() + size_t{b} * qu.buf_size;
    slots[i].capacity = qu.buf_size;
  }
  return n;
}

uint32_t LoopbackDriver::tx_burst(uint32_t q, std::span<TxPacket> pkts) {
  if (q >= queues_.size()) return 0;
  Queue& qu = *queues_[q];
  uint32_t sent = 0;
  // Lent buffers never exceed kMaxBurst, but a caller may pass a longer span.
  for (size_t off = 0; off < pkts.size(); off += kMaxBurst)
    sent += tx_chunk(qu, pkts.subspan(off, std::min<size_t>(kMaxBurst, pkts.size() - off)));
  return sent;
}

uint32_t LoopbackDriver::tx_chunk(Queue& qu, std::span<TxPacket> pkts) {
  // Pass 1: take the buffers back, pick the packets to send and draw loss and
  // ECN in packet order (so the draws do not depend on the grouping below).
  std::array<uint8_t, kMaxBurst> idx;      // positions in pkts to deliver
  std::array<bool, kMaxBurst> mark;        // CE-mark this one
  std::array<PeerAddr, kMaxBurst> peers;   // distinct destinations
  std::array<uint8_t, kMaxBurst> dest_of;  // idx[i] -> position in peers
  uint32_t n = 0, ndest = 0, sent = 0;
  for (uint32_t i = 0; i < pkts.size(); ++i) {
    TxPacket& p = pkts[i];
    const uintptr_t off =
        reinterpret_cast<uintptr_t>(p.data) - reinterpret_cast<uintptr_t>(qu.tx_mem.get());
    const uint64_t b = off / qu.buf_size;
    if (p.data == nullptr || off % qu.buf_size != 0 || b >= kMaxBurst || !qu.lent[b]) {
      ++qu.counters.bad_buffers;  // not ours to send or to take back
      continue;
    }
    qu.lent[b] = false;
    qu.free_stack[qu.nfree++] = static_cast<uint32_t>(b);
    if (p.len == 0) continue;
    if (p.len > p.capacity || p.len > qu.buf_size) {
      ++qu.counters.bad_buffers;
      continue;
    }
    ++sent;
    if (qu.rng.bernoulli(options_.loss)) {
      ++qu.counters.lost;
      continue;
    }
    mark[n] = !p.control && p.ecn != Ecn::kNotEct && qu.rng.bernoulli(options_.ecn);
    uint32_t d = 0;
    while (d < ndest && peers[d] != p.peer) ++d;
    if (d == ndest) peers[ndest++] = p.peer;
    dest_of[n] = static_cast<uint8_t>(d);
    idx[n++] = static_cast<uint8_t>(i);
  }
  qu.counters.tx_packets += sent;
  if (n == 0) return sent;

  // Pass 2: one fabric lock for the lookups, then one inbox lock per
  // destination. The shared_ptr copies keep an inbox alive if its driver
  // closes meanwhile.
  std::array<std::shared_ptr<LoopbackEndpoint>, kMaxBurst> eps;
  fabric_->lookup(std::span<const PeerAddr>(peers.data(), ndest), std::span(eps.data(), ndest));
  for (uint32_t d = 0; d < ndest; ++d) {
    LoopbackEndpoint* ep = eps[d].get();
    uint32_t count = 0;
    for (uint32_t k = 0; k < n; ++k) count += dest_of[k] == d;
    if (ep == nullptr) {
      qu.counters.unroutable += count;
      continue;
    }
    std::lock_guard<std::mutex> lock(ep->mu);
    if (!ep->attached) {
      qu.counters.unroutable += count;
      continue;
    }
    uint64_t write = ep->write.load(std::memory_order_relaxed);
    const uint64_t limit = ep->free.load(std::memory_order_acquire) + ep->nslots;
    for (uint32_t k = 0; k < n; ++k) {
      if (dest_of[k] != d) continue;
      if (write == limit) {
        ++qu.counters.inbox_drops;
        continue;
      }
      const TxPacket& p = pkts[idx[k]];
      std::memcpy(ep->slot(write), p.data, p.len);
      LoopbackEndpoint::SlotMeta& m = ep->meta[write % ep->nslots];
      m.len = p.len;
      m.meta = RxMeta();
      m.meta.peer = qu.addr;
      m.meta.entropy = p.entropy;
      m.meta.ecn = mark[k] ? Ecn::kCe : p.ecn;
      qu.counters.ce_marked += mark[k];
      ++write;
    }
    ep->write.store(write, std::memory_order_release);
  }
  return sent;
}

const LoopbackCounters& LoopbackDriver::counters() const {
  total_ = LoopbackCounters();
  for (const auto& qu : queues_) add_counters(total_, qu->counters);
  return total_;
}

const LoopbackCounters& LoopbackDriver::queue_counters(uint32_t q) const {
  return queues_.at(q)->counters;
}

std::string LoopbackDriver::dump() const {
  const LoopbackCounters& c = counters();
  std::string out = absl::StrFormat(
      "sim driver on fabric \"%s\": %u queues, mtu %u, inbox %u, loss %g, ecn %g, seed %u\n",
      fabric_->name(), queues_.size(), options_.mtu, options_.inbox, options_.loss, options_.ecn,
      options_.seed);
  for (size_t q = 0; q < queues_.size(); ++q) {
    const LoopbackEndpoint& ep = *queues_[q]->ep;
    absl::StrAppendFormat(&out, "  q%u %s: inbox %u waiting, %u lent\n", q,
                          format_addr(queues_[q]->addr),
                          ep.write.load(std::memory_order_relaxed) - ep.read,
                          ep.read - ep.free.load(std::memory_order_relaxed));
  }
  absl::StrAppendFormat(&out,
                        "  tx %u rx %u inbox_drops %u unroutable %u lost %u ce_marked %u "
                        "bad_buffers %u\n",
                        c.tx_packets, c.rx_packets, c.inbox_drops, c.unroutable, c.lost,
                        c.ce_marked, c.bad_buffers);
  return out;
}

}  // namespace shoal::sim
