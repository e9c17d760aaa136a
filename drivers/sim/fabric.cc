#include "drivers/sim/fabric.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "lib/wire/wire.h"

namespace shoal::sim {

namespace {

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kDstPort = 4793;  // the UET UDP port: fixed, so only entropy varies per flow
constexpr uint64_t kProtoUdp = 17;

}  // namespace

FabricSim::FabricSim(const FabricConfig& config,
                     const std::function<ses::TransportConfig(uint32_t host)>& config_of)
    : config_(config), rng_(config.seed * 0x9e3779b97f4a7c15ULL + 0x5eed) {
  delay_ns_ = config_.link.hop_delay.ns();
  jitter_ns_ = static_cast<uint64_t>(std::max<int64_t>(0, config_.link.jitter.ns()));
  // Ring indices are 16-bit.
  hi_cap_ = std::clamp<uint32_t>(config_.queue.header_limit_packets, 1, 65535);
  data_cap_ = std::clamp<uint32_t>(config_.queue.limit_packets, 1, 65535);
  if (config_.topology == Topology::kFatTree) {
    if (config_.k < 2 || config_.k % 2 != 0)
      config_.k = std::max<uint32_t>(2, config_.k + config_.k % 2);
    uplink_rate_gbps_ =
        config_.uplink_rate_gbps > 0 ? config_.uplink_rate_gbps : config_.link.rate_gbps;
    build_fat_tree();
  } else {
    config_.leaves = std::max<uint32_t>(1, config_.leaves);
    config_.hosts_per_leaf = std::max<uint32_t>(1, config_.hosts_per_leaf);
    config_.spines = std::max<uint32_t>(1, config_.spines);
    uplink_rate_gbps_ = config_.uplink_rate_gbps > 0
                            ? config_.uplink_rate_gbps
                            : config_.hosts_per_leaf * config_.link.rate_gbps /
                                  (config_.spines * std::max(config_.oversubscription, 1e-9));
    build_leaf_spine();
  }
  const uint32_t n = hosts();
  ring_.resize(static_cast<size_t>(ports_.size()) * (hi_cap_ + data_cap_));
  nic_free_.assign(n, TimePoint::zero());
  wake_at_.assign(n, TimePoint::max());
  stalled_at_.assign(n, ~uint64_t{0});
  due_at_.assign(n, -1);
  due_count_.assign(n, 0);
  hosts_.resize(n);
  uint32_t mtu = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const ses::TransportConfig c = config_of(i);
    mtu = std::max(mtu, c.mtu_payload);
    hosts_[i] = std::make_unique<ses::Transport>(c, address(i), config_.seed * 1000003 + i);
  }
  // Room for the largest payload plus headers and trailer; Pkt.len is 16-bit.
  buf_size_ = std::min<uint32_t>(mtu + 256, 65535);
}

FabricSim::~FabricSim() = default;

// ---- topology ------------------------------------------------------------------

uint32_t FabricSim::add_node(uint8_t tier, uint32_t index, uint32_t down, uint32_t up, uint32_t lo,
                             uint32_t span) {
  Node node;
  node.first_port = static_cast<uint32_t>(ports_.size());
  node.down = static_cast<uint16_t>(down);
  node.up = static_cast<uint16_t>(up);
  node.tier = tier;
  node.index = index;
  node.lo = lo;
  node.span = span;
  const uint32_t id = static_cast<uint32_t>(nodes_.size());
  // Each switch hashes with its own seed: identical hashes at successive
  // tiers would correlate their choices (polarization) and leave paths unused.
  node.hash_seed = mix64(config_.seed * 0x9e3779b97f4a7c15ULL + id + 1);
  node.hash_shift = static_cast<uint8_t>((node.hash_seed >> 40) % 17);  // bits [shift, shift + 16)
  nodes_.push_back(node);
  for (uint32_t i = 0; i < down + up; ++i) {
    Port p;
    p.owner = id;
    p.peer = p.reverse = ~0u;
    p.ring = static_cast<uint32_t>(ports_.size()) * (hi_cap_ + data_cap_);
    p.rate_gbps = 0;
    p.bits_per_sec = 0;
    ports_.push_back(p);
  }
  return id;
}

void FabricSim::connect(uint32_t a, uint32_t a_index, uint32_t b, uint32_t b_index,
                        double rate_gbps) {
  const uint32_t pa = port_id(a, a_index), pb = port_id(b, b_index);
  ports_[pa].peer = b;
  ports_[pb].peer = a;
  ports_[pa].reverse = pb;
  ports_[pb].reverse = pa;
  for (uint32_t p : {pa, pb}) {
    ports_[p].rate_gbps = rate_gbps;
    ports_[p].bits_per_sec = rate_gbps * 1e9;
  }
}

void FabricSim::build_leaf_spine() {
  const uint32_t L = config_.leaves, hpl = config_.hosts_per_leaf, S = config_.spines;
  const uint32_t H = L * hpl;
  n_hosts_ = H;
  for (uint32_t h = 0; h < H; ++h) add_node(0, h, 0, 1, h, 1);
  const uint32_t leaf0 = H, spine0 = H + L;
  for (uint32_t l = 0; l < L; ++l) add_node(1, l, hpl, S, l * hpl, 1);
  for (uint32_t s = 0; s < S; ++s) add_node(2, s, L, 0, 0, hpl);
  for (uint32_t h = 0; h < H; ++h) connect(h, 0, leaf0 + h / hpl, h % hpl, config_.link.rate_gbps);
  for (uint32_t l = 0; l < L; ++l) {
    for (uint32_t s = 0; s < S; ++s) connect(leaf0 + l, hpl + s, spine0 + s, l, uplink_rate_gbps_);
  }
}

void FabricSim::build_fat_tree() {
  const uint32_t k = config_.k, half = k / 2;
  const uint32_t H = k * half * half;
  n_hosts_ = H;
  for (uint32_t h = 0; h < H; ++h) add_node(0, h, 0, 1, h, 1);
  const uint32_t edge0 = H, agg0 = H + k * half, core0 = H + 2 * k * half;
  for (uint32_t e = 0; e < k * half; ++e) add_node(1, e, half, half, e * half, 1);
  for (uint32_t a = 0; a < k * half; ++a)
    add_node(2, a, half, half, (a / half) * half * half, half);
  for (uint32_t c = 0; c < half * half; ++c) add_node(3, c, k, 0, 0, half * half);
  for (uint32_t h = 0; h < H; ++h)
    connect(h, 0, edge0 + h / half, h % half, config_.link.rate_gbps);
  for (uint32_t pod = 0; pod < k; ++pod) {
    for (uint32_t i = 0; i < half; ++i) {
      for (uint32_t j = 0; j < half; ++j) {
        connect(edge0 + pod * half + i, half + j, agg0 + pod * half + j, i, uplink_rate_gbps_);
      }
    }
    // Aggregation j of every pod reaches cores j*half .. j*half + half-1.
    for (uint32_t j = 0; j < half; ++j) {
      for (uint32_t m = 0; m < half; ++m) {
        connect(agg0 + pod * half + j, half + m, core0 + j * half + m, pod, uplink_rate_gbps_);
      }
    }
  }
}

uint32_t FabricSim::hops(uint32_t src, uint32_t dst) const {
  if (src == dst) return 0;
  if (edge_of(src) == edge_of(dst)) return 2;
  if (config_.topology == Topology::kLeafSpine) return 4;
  const uint32_t pod_hosts = config_.k / 2 * (config_.k / 2);
  return src / pod_hosts == dst / pod_hosts ? 4 : 6;
}

double FabricSim::oversubscription() const {
  if (config_.topology == Topology::kFatTree) return config_.link.rate_gbps / uplink_rate_gbps_;
  return config_.hosts_per_leaf * config_.link.rate_gbps / (config_.spines * uplink_rate_gbps_);
}

std::string FabricSim::node_name(uint32_t node) const {
  const Node& n = nodes_[node];
  static const char* const kLeafSpine[] = {"h", "leaf", "spine", "?"};
  static const char* const kFatTree[] = {"h", "edge", "agg", "core"};
  const char* const* names = config_.topology == Topology::kFatTree ? kFatTree : kLeafSpine;
  return names[n.tier] + std::to_string(n.index);
}

std::string FabricSim::port_name(uint32_t port) const {
  const Port& p = ports_[port];
  return node_name(p.owner) + ":p" + std::to_string(port - nodes_[p.owner].first_port) + "->" +
         node_name(p.peer);
}

std::vector<uint32_t> FabricSim::edge_uplinks() const {
  std::vector<uint32_t> out;
  for (const Node& n : nodes_) {
    if (n.tier != 1) continue;
    for (uint32_t i = 0; i < n.up; ++i) out.push_back(n.first_port + n.down + i);
  }
  return out;
}

std::vector<uint32_t> FabricSim::agg_uplinks() const {
  std::vector<uint32_t> out;
  if (config_.topology != Topology::kFatTree) return out;
  for (const Node& n : nodes_) {
    if (n.tier != 2) continue;
    for (uint32_t i = 0; i < n.up; ++i) out.push_back(n.first_port + n.down + i);
  }
  return out;
}

uint32_t FabricSim::core_link(uint32_t i) const {
  const std::vector<uint32_t> links =
      config_.topology == Topology::kFatTree ? agg_uplinks() : edge_uplinks();
  return links[i % links.size()];
}

// ---- buffers and hosts -----------------------------------------------------------

uint32_t FabricSim::alloc_buf() {
  if (free_bufs_.empty()) {
    // Whole chunks at a time: few allocations, and buffers never move.
    chunks_.emplace_back(new uint8_t[static_cast<size_t>(kChunk) * buf_size_]);
    pkts_.resize(pkts_.size() + kChunk);
    for (uint32_t i = kChunk; i-- > 0;) free_bufs_.push_back(bufs_ + i);
    bufs_ += kChunk;
  }
  const uint32_t b = free_bufs_.back();
  free_bufs_.pop_back();
  return b;
}

void FabricSim::touch(uint32_t i) { schedule(i); }

void FabricSim::call_at(TimePoint t, std::function<void()> f) {
  uint32_t slot;
  if (free_calls_.empty()) {
    slot = static_cast<uint32_t>(calls_.size());
    calls_.push_back(std::move(f));
  } else {
    slot = free_calls_.back();
    free_calls_.pop_back();
    calls_[slot] = std::move(f);
  }
  push(Kind::kCall, max_time(t, now_).ns(), slot);
}

void FabricSim::set_progress(std::function<void()> f, uint64_t every_events, Duration every) {
  progress_ = std::move(f);
  progress_events_ = every_events;
  progress_every_ = every;
  next_progress_event_ = every_events > 0 ? stats_.events + every_events : ~uint64_t{0};
  next_progress_t_ = every > Duration::zero() ? (now_ + every).ns() : INT64_MAX;
}

void FabricSim::schedule(uint32_t h) {
  ses::Transport& t = *hosts_[h];
  TimePoint when = TimePoint::max();
  if (t.wants_transmit() && t.activity() != stalled_at_[h]) when = max_time(now_, nic_free_[h]);
  const TimePoint d = t.next_deadline();
  if (d > now_) {
    when = min_time(when, d);
  } else {
    // Still due after on_timeout: the transport re-armed a timer for `now`
    // inside its timeout pass (it acts on timers collected before it acts)
    // and expects another call. Wake again at this instant, a few times;
    // a deadline that stays due beyond that is polled every microsecond
    // rather than spun on.
    if (due_at_[h] != now_.ns()) {
      due_at_[h] = now_.ns();
      due_count_[h] = 0;
    }
    when = min_time(when, ++due_count_[h] <= kDueRetries ? now_ : now_ + Duration::micros(1));
  }
  // One pending wake per host is enough if it is the earliest one; a later
  // one already queued simply finds nothing to do.
  if (when.is_max() || when >= wake_at_[h]) return;
  wake_at_[h] = when;
  push(Kind::kWake, when.ns(), h);
}

void FabricSim::transmit(uint32_t h) {
  for (uint32_t i = 0; i < kBurst; ++i) {
    slot_bufs_[i] = alloc_buf();
    slots_[i] = TxPacket();
    slots_[i].data = buf_data(slot_bufs_[i]);
    slots_[i].capacity = buf_size_;
  }
  TxBatch batch(slots_, kBurst);
  const uint32_t n = hosts_[h]->poll_transmit(now_, batch);
  stalled_at_[h] = n == 0 ? hosts_[h]->activity() : ~uint64_t{0};
  for (uint32_t i = 0; i < kBurst; ++i) {
    if (i >= n) {
      free_buf(slot_bufs_[i]);
      continue;
    }
    const TxPacket& p = slots_[i];
    Pkt& k = pkts_[slot_bufs_[i]];
    k.src = h;
    k.dst = static_cast<uint32_t>(p.peer - 1);
    k.len = static_cast<uint16_t>(std::min<uint32_t>(p.len, buf_size_));
    k.entropy = p.entropy;
    k.ecn = p.ecn;
    k.trimmed = false;
    k.control = p.control;
    send_from_nic(h, slot_bufs_[i]);
  }
}

void FabricSim::inject(uint32_t src, const TxPacket& pkt) {
  const uint32_t b = alloc_buf();
  const uint32_t len = std::min(pkt.len, buf_size_);
  if (pkt.data && len > 0) std::memcpy(buf_data(b), pkt.data, len);
  Pkt& k = pkts_[b];
  k.src = src;
  k.dst = static_cast<uint32_t>(pkt.peer - 1);
  k.len = static_cast<uint16_t>(len);
  k.entropy = pkt.entropy;
  k.ecn = pkt.ecn;
  k.trimmed = false;
  k.control = pkt.control;
  send_from_nic(src, b);
}

void FabricSim::send_from_nic(uint32_t h, uint32_t buf) {
  const Pkt& k = pkts_[buf];
  const uint32_t up = host_uplink(h);
  Port& p = ports_[up];
  // The NIC serializes back to back: a burst leaves one packet after another.
  const TimePoint depart = max_time(now_, nic_free_[h]) + ser(k.len, p.bits_per_sec);
  nic_free_[h] = depart;
  ++stats_.packets_sent;
  ++p.stats.packets;
  p.stats.bytes += k.len + config_.link.wire_overhead;
  if (k.dst >= hosts()) {  // address 0 or beyond the last host: nowhere to go
    ++stats_.unroutable;
    free_buf(buf);
    return;
  }
  if (p.down) {
    ++p.stats.down_drops;
    ++stats_.down_drops;
    free_buf(buf);
    return;
  }
  push(Kind::kArrive, depart.ns() + hop_delay_ns(), up, buf);
}

// ---- switching -------------------------------------------------------------------------

void FabricSim::arrive(uint32_t via, uint32_t buf) {
  Port& p = ports_[via];
  if (p.down) {  // was on the wire when the link failed
    ++p.stats.down_drops;
    ++stats_.down_drops;
    free_buf(buf);
    return;
  }
  // Hosts are served by run() itself, which also calls on_host.
  forward(p.peer, buf);
}

void FabricSim::forward(uint32_t sw, uint32_t buf) {
  const Node& n = nodes_[sw];
  const Pkt& k = pkts_[buf];
  uint32_t index;
  if (k.dst >= n.lo && k.dst < n.lo + n.down * n.span) {
    index = (k.dst - n.lo) / n.span;  // down: one way to the destination
  } else if (n.up > 0) {
    index = choose_uplink(n, k);
  } else {
    ++stats_.unroutable;
    free_buf(buf);
    return;
  }
  enqueue(n.first_port + index, buf);
}

uint32_t FabricSim::choose_uplink(const Node& n, const Pkt& k) const {
  uint64_t x;
  if (config_.hash == FabricConfig::EcmpHash::kCrc32c) {
    const uint32_t src = address(k.src), dst = address(k.dst);
    const uint8_t tuple[13] = {uint8_t(src >> 24), uint8_t(src >> 16), uint8_t(src >> 8), uint8_t(src),
                               uint8_t(dst >> 24), uint8_t(dst >> 16), uint8_t(dst >> 8), uint8_t(dst),
                               uint8_t(k.entropy >> 8), uint8_t(k.entropy), uint8_t(kDstPort >> 8),
                               uint8_t(kDstPort), uint8_t(kProtoUdp)};
    // Real switches give each tier a different hash function, not just a
    // different seed: a seed only adds a constant to a CRC, and two windows
    // of one CRC polarized the aggregation tier (agg uplink max/min 7.5).
    // Each tier feeds the tuple in a different byte order (another linear map).
    uint8_t fed[13];
    const uint32_t rot = 5u * n.tier;
    for (uint32_t i = 0; i < 13; ++i) fed[i] = tuple[(i + rot) % 13];
    x = wire::crc32c(fed, static_cast<uint32_t>(n.hash_seed)) >> n.hash_shift;
  } else {
    x = mix64(n.hash_seed ^ (uint64_t{address(k.src)} << 32 | address(k.dst)));
    x = mix64(x ^ (uint64_t{k.entropy} << 24 | kDstPort << 8 | kProtoUdp));
  }
  if (!any_unrouted_) return n.down + static_cast<uint32_t>(x % n.up);
  // Routing has converged around some failure: hash over the uplinks from
  // which the destination is still reachable (as ECMP groups shrink when
  // routes are withdrawn).
  uint32_t cand[256];
  uint32_t c = 0;
  for (uint32_t i = 0; i < n.up && c < 256; ++i) {
    const Port& p = ports_[n.first_port + n.down + i];
    if (!p.unrouted && reachable(p.peer, k.dst, 3)) cand[c++] = i;
  }
  if (c == 0) return n.down + static_cast<uint32_t>(x % n.up);  // no route: a black hole
  return n.down + cand[x % c];
}

bool FabricSim::reachable_down(uint32_t node, uint32_t dst) const {
  while (node >= hosts()) {
    const Node& n = nodes_[node];
    const Port& p = ports_[n.first_port + (dst - n.lo) / n.span];
    if (p.unrouted) return false;
    node = p.peer;
  }
  return true;
}

bool FabricSim::reachable(uint32_t node, uint32_t dst, int depth) const {
  const Node& n = nodes_[node];
  if (dst >= n.lo && dst < n.lo + n.down * n.span) return reachable_down(node, dst);
  if (depth == 0) return false;
  for (uint32_t i = 0; i < n.up; ++i) {
    const Port& p = ports_[n.first_port + n.down + i];
    if (!p.unrouted && reachable(p.peer, dst, depth - 1)) return true;
  }
  return false;
}

uint32_t FabricSim::trimmed_len(uint32_t buf) const {
  // What survives a trim is what wire::parse_trimmed reads and a NACK needs:
  // the PDS request header and the SES header behind it. Only requests carry
  // a payload worth cutting; anything else that does not fit is dropped.
  const Pkt& k = pkts_[buf];
  const uint8_t* data = chunks_[buf / kChunk].get() + static_cast<size_t>(buf % kChunk) * buf_size_;
  wire::Prologue pr;
  if (wire::decode_prologue({data, k.len}, pr) != wire::WireError::kOk) return 0;
  switch (pr.type) {
    case wire::PdsType::kRudReq:
    case wire::PdsType::kRodReq:
    case wire::PdsType::kRudCcReq:
    case wire::PdsType::kRodCcReq:
      break;
    default:
      return 0;
  }
  size_t len = wire::pds_header_size(pr);
  switch (static_cast<wire::NextHdr>(pr.next_hdr)) {
    case wire::NextHdr::kReqStd:
      len += wire::kSesRequestSize;
      break;
    case wire::NextHdr::kRsp:
      len += wire::kSesResponseSize;
      break;
    case wire::NextHdr::kRspData:
      len += wire::kSesResponseDataSize;
      break;
    default:
      break;
  }
  return len <= k.len ? static_cast<uint32_t>(len) : 0;
}

bool FabricSim::mark_ecn(uint32_t depth) {
  const QueueConfig& q = config_.queue;
  switch (q.ecn) {
    case EcnMode::kOff:
      return false;
    case EcnMode::kStep:
      return depth >= q.ecn_k;
    case EcnMode::kRed:
      if (depth < q.red_kmin) return false;
      if (depth >= q.red_kmax) return true;
      return rng_.uniform01() < q.red_pmax * static_cast<double>(depth - q.red_kmin) /
                                    static_cast<double>(q.red_kmax - q.red_kmin);
  }
  return false;
}

void FabricSim::enqueue(uint32_t port, uint32_t buf) {
  Port& p = ports_[port];
  Pkt& k = pkts_[buf];
  if (p.down) {
    ++p.stats.down_drops;
    ++stats_.down_drops;
    free_buf(buf);
    return;
  }
  const bool hi = k.control || k.trimmed;
  // Marks an ECT data packet that the data queue accepts, by the depth it finds.
  auto maybe_mark = [&] {
    if (hi || k.ecn == Ecn::kNotEct || k.ecn == Ecn::kCe || !mark_ecn(p.data_count)) return;
    k.ecn = Ecn::kCe;
    ++p.stats.ecn_marks;
    ++stats_.ecn_marks;
  };
  // Idle wire and nothing waiting (a non-empty queue always has a kPortFree
  // pending): the packet goes straight onto the wire, with no extra event.
  if (!p.free_pending && p.busy_until <= now_.ns()) {
    maybe_mark();
    start_tx(p, port, buf);
    return;
  }
  bool to_hi = hi;
  if (!hi && p.data_count < data_cap_) {
    maybe_mark();
  } else if (!hi) {
    const uint32_t cut = config_.queue.full == FullPolicy::kTrim ? trimmed_len(buf) : 0;
    if (cut == 0) {
      ++p.stats.drops;
      ++stats_.drops;
      free_buf(buf);
      return;
    }
    k.len = static_cast<uint16_t>(cut);
    k.trimmed = true;
    ++p.stats.trims;
    ++stats_.trims;
    to_hi = true;
  }
  const uint32_t wire_len = k.len + config_.link.wire_overhead;
  if (to_hi) {
    if (p.hi_count >= hi_cap_) {
      ++p.stats.header_drops;
      ++stats_.header_drops;
      free_buf(buf);
      return;
    }
    ring_[p.ring + (p.hi_head + p.hi_count) % hi_cap_] = buf;
    ++p.hi_count;
  } else {
    ring_[p.ring + hi_cap_ + (p.data_head + p.data_count) % data_cap_] = buf;
    ++p.data_count;
  }
  p.queued_bytes += wire_len;
  const uint32_t depth = p.hi_count + p.data_count;
  if (depth > p.stats.max_depth_packets) {
    p.stats.max_depth_packets = depth;
    stats_.max_depth_packets = std::max(stats_.max_depth_packets, depth);
  }
  if (p.queued_bytes > p.stats.max_depth_bytes) {
    p.stats.max_depth_bytes = p.queued_bytes;
    stats_.max_depth_bytes = std::max(stats_.max_depth_bytes, p.queued_bytes);
  }
  if (!p.free_pending) {
    p.free_pending = true;
    push(Kind::kPortFree, p.busy_until, port);
  }
}

void FabricSim::start_tx(Port& p, uint32_t port, uint32_t buf) {
  const uint32_t len = pkts_[buf].len;
  const int64_t start = std::max(now_.ns(), p.busy_until);
  p.busy_until = start + ser(len, p.bits_per_sec).ns();
  ++p.stats.packets;
  p.stats.bytes += len + config_.link.wire_overhead;
  push(Kind::kArrive, p.busy_until + hop_delay_ns(), port, buf);
}

void FabricSim::port_free(uint32_t port) {
  Port& p = ports_[port];
  p.free_pending = false;
  uint32_t buf;
  if (p.hi_count > 0) {
    buf = ring_[p.ring + p.hi_head];
    p.hi_head = static_cast<uint16_t>((p.hi_head + 1) % hi_cap_);
    --p.hi_count;
  } else if (p.data_count > 0) {
    buf = ring_[p.ring + hi_cap_ + p.data_head];
    p.data_head = static_cast<uint16_t>((p.data_head + 1) % data_cap_);
    --p.data_count;
  } else {
    return;  // emptied by a failure
  }
  p.queued_bytes -= pkts_[buf].len + config_.link.wire_overhead;
  start_tx(p, port, buf);
  if (p.hi_count + p.data_count > 0) {
    p.free_pending = true;
    push(Kind::kPortFree, p.busy_until, port);
  }
}

void FabricSim::drop_port(uint32_t port) {
  Port& p = ports_[port];
  p.down = true;
  const uint64_t n = p.hi_count + p.data_count;
  for (uint32_t i = 0; i < p.hi_count; ++i) free_buf(ring_[p.ring + (p.hi_head + i) % hi_cap_]);
  for (uint32_t i = 0; i < p.data_count; ++i)
    free_buf(ring_[p.ring + hi_cap_ + (p.data_head + i) % data_cap_]);
  p.hi_count = p.data_count = 0;
  p.hi_head = p.data_head = 0;
  p.queued_bytes = 0;
  p.stats.down_drops += n;
  stats_.down_drops += n;
}

void FabricSim::fail_link(uint32_t port, TimePoint t) {
  if (port >= ports_.size()) return;
  push(Kind::kFail, max_time(t, now_).ns(), port);
}

// ---- the event loop -------------------------------------------------------------------

bool FabricSim::run(const std::function<void(uint32_t host)>& on_host,
                    const std::function<bool()>& done, TimePoint limit) {
  while (!done()) {
    if (events_.empty()) return done();
    const Event e = events_.top();
    if (e.t > limit.ns()) return done();
    events_.pop();
    if (e.t > now_.ns()) now_ = TimePoint::from_ns(e.t);
    ++stats_.events;
    switch (kind_of(e)) {
      case Kind::kArrive: {
        const uint32_t node = ports_[e.a].peer;
        if (node >= hosts() || ports_[e.a].down) {
          arrive(e.a, e.buf);
          break;
        }
        const Pkt& k = pkts_[e.buf];
        RxMeta meta;
        meta.peer = address(k.src);
        meta.entropy = k.entropy;
        meta.ecn = k.ecn;
        meta.trimmed = k.trimmed;
        hosts_[node]->on_datagram(std::span<const uint8_t>(buf_data(e.buf), k.len), meta, now_);
        ++stats_.delivered;
        free_buf(e.buf);
        on_host(node);
        schedule(node);
        break;
      }
      case Kind::kPortFree:
        port_free(e.a);
        break;
      case Kind::kWake: {
        const uint32_t h = e.a;
        if (TimePoint::from_ns(e.t) == wake_at_[h]) wake_at_[h] = TimePoint::max();
        ses::Transport& t = *hosts_[h];
        if (t.next_deadline() <= now_) t.on_timeout(now_);
        if (nic_free_[h] <= now_ && t.wants_transmit() && t.activity() != stalled_at_[h])
          transmit(h);
        on_host(h);
        schedule(h);
        break;
      }
      case Kind::kCall: {
        std::function<void()> f = std::move(calls_[e.a]);
        calls_[e.a] = nullptr;
        free_calls_.push_back(e.a);
        f();
        break;
      }
      case Kind::kFail: {
        const uint32_t r = ports_[e.a].reverse;
        drop_port(e.a);
        if (r != ~0u) drop_port(r);
        if (config_.reroute_delay != Duration::max()) {
          push(Kind::kReroute, (now_ + config_.reroute_delay).ns(), e.a);
        }
        break;
      }
      case Kind::kReroute: {
        ports_[e.a].unrouted = true;
        if (ports_[e.a].reverse != ~0u) ports_[ports_[e.a].reverse].unrouted = true;
        any_unrouted_ = true;
        break;
      }
      case Kind::kSample: {
        --background_;
        Sampler& s = samplers_[e.a];
        const Port& p = ports_[s.port];
        s.samples.push_back(
            QueueSample{now_, static_cast<uint32_t>(p.hi_count + p.data_count), p.queued_bytes});
        // Keep sampling only while something else is left to happen.
        if (events_.size() > background_) {
          ++background_;
          push(Kind::kSample, (now_ + s.every).ns(), e.a);
        }
        break;
      }
    }
    if (progress_ && (stats_.events >= next_progress_event_ || now_.ns() >= next_progress_t_)) {
      if (progress_events_ > 0) next_progress_event_ = stats_.events + progress_events_;
      if (progress_every_ > Duration::zero()) {
        while (next_progress_t_ <= now_.ns()) next_progress_t_ += progress_every_.ns();
      }
      progress_();
    }
  }
  return true;
}

// ---- stats ---------------------------------------------------------------------------

uint32_t FabricSim::sample_queue(uint32_t port, Duration every) {
  const uint32_t id = static_cast<uint32_t>(samplers_.size());
  samplers_.push_back(Sampler{port, max_dur(every, Duration::nanos(1)), {}});
  ++background_;
  push(Kind::kSample, now_.ns(), id);
  return id;
}

QueueSummary FabricSim::summarize(uint32_t sampler) const {
  QueueSummary out;
  const std::vector<QueueSample>& s = samplers_[sampler].samples;
  if (s.empty()) return out;
  std::vector<uint32_t> pk;
  std::vector<uint64_t> by;
  pk.reserve(s.size());
  by.reserve(s.size());
  double sum = 0;
  for (const QueueSample& q : s) {
    pk.push_back(q.packets);
    by.push_back(q.bytes);
    sum += q.packets;
  }
  std::sort(pk.begin(), pk.end());
  std::sort(by.begin(), by.end());
  const size_t i99 = std::min(s.size() - 1, static_cast<size_t>(std::ceil(0.99 * s.size())) - 1);
  out.max_packets = pk.back();
  out.max_bytes = by.back();
  out.p99_packets = pk[i99];
  out.p99_bytes = by[i99];
  out.mean_packets = sum / s.size();
  return out;
}

double FabricSim::utilization(uint32_t port, Duration elapsed) const {
  if (elapsed <= Duration::zero()) return 0;
  return static_cast<double>(ports_[port].stats.bytes) * 8 /
         (ports_[port].bits_per_sec * elapsed.sec());
}

LinkImbalance FabricSim::imbalance(const std::vector<uint32_t>& ports, Duration elapsed) const {
  LinkImbalance out;
  if (ports.empty()) return out;
  double sum = 0, sum2 = 0, bmax = 0, bmin = std::numeric_limits<double>::infinity();
  out.min_util = std::numeric_limits<double>::infinity();
  for (uint32_t p : ports) {
    const double u = utilization(p, elapsed);
    const double b = static_cast<double>(ports_[p].stats.bytes);
    out.max_util = std::max(out.max_util, u);
    out.min_util = std::min(out.min_util, u);
    out.mean_util += u;
    bmax = std::max(bmax, b);
    bmin = std::min(bmin, b);
    sum += b;
    sum2 += b * b;
  }
  const double n = static_cast<double>(ports.size());
  out.mean_util /= n;
  const double mean = sum / n;
  out.max_over_min =
      bmin > 0 ? bmax / bmin : (bmax > 0 ? std::numeric_limits<double>::infinity() : 1.0);
  out.cv = mean > 0 ? std::sqrt(std::max(0.0, sum2 / n - mean * mean)) / mean : 0;
  return out;
}

// ---- ideal figures ------------------------------------------------------------------------

// The path from src to dst is host link, (hops - 2) switch-to-switch links,
// host link; both directions are symmetric.
Duration FabricSim::one_way(uint32_t bytes, uint32_t src, uint32_t dst) const {
  const uint32_t n = hops(src, dst);
  if (n == 0) return Duration::zero();
  const double host_bps = config_.link.rate_gbps * 1e9, up_bps = uplink_rate_gbps_ * 1e9;
  return (ser(bytes, host_bps) + config_.link.hop_delay) * 2 +
         (ser(bytes, up_bps) + config_.link.hop_delay) * (n - 2);
}

double FabricSim::bottleneck_bps(uint32_t src, uint32_t dst) const {
  const double host_bps = config_.link.rate_gbps * 1e9;
  return hops(src, dst) > 2 ? std::min(host_bps, uplink_rate_gbps_ * 1e9) : host_bps;
}

Duration FabricSim::unloaded_rtt(uint32_t request_bytes, uint32_t ack_bytes, uint32_t src,
                                 uint32_t dst) const {
  return one_way(request_bytes, src, dst) + one_way(ack_bytes, dst, src);
}

Duration FabricSim::ideal_fct(uint64_t bytes, uint32_t src, uint32_t dst, uint32_t mtu_payload,
                              uint32_t header_bytes, uint32_t ack_bytes) const {
  mtu_payload = std::max<uint32_t>(mtu_payload, 1);
  const uint64_t packets = std::max<uint64_t>(1, (bytes + mtu_payload - 1) / mtu_payload);
  const uint32_t last = static_cast<uint32_t>(bytes - (packets - 1) * mtu_payload) + header_bytes;
  if (packets == 1) return unloaded_rtt(last, ack_bytes, src, dst);
  // The first full packet crosses the path; the others follow it at the
  // bottleneck's pace, the last (maybe shorter) one at its own size.
  const double b = bottleneck_bps(src, dst);
  return one_way(mtu_payload + header_bytes, src, dst) +
         ser(mtu_payload + header_bytes, b) * (packets - 2) + ser(last, b) +
         one_way(ack_bytes, dst, src);
}

}  // namespace shoal::sim
