#include "drivers/sim/pair.h"

#include <cstring>

namespace shoal::sim {

PairSim::PairSim(const ses::TransportConfig& config, const LinkConfig& link, uint64_t seed)
    : link_(link), rng_(seed * 0x9e3779b97f4a7c15ULL + 1) {
  for (int i = 0; i < 2; ++i) {
    hosts_[i] = std::make_unique<ses::Transport>(config, address(i), seed * 2 + i);
  }
  tx_slots_.resize(link_.nic_burst);
  tx_slot_bufs_.resize(link_.nic_burst);
}

uint32_t PairSim::alloc_buf() {
  if (free_bufs_.empty()) {
    bufs_.emplace_back(new uint8_t[kBufSize]);
    return static_cast<uint32_t>(bufs_.size() - 1);
  }
  const uint32_t b = free_bufs_.back();
  free_bufs_.pop_back();
  return b;
}

void PairSim::send_copy(int from, const uint8_t* data, uint32_t len, TimePoint depart, bool corrupt,
                        bool trim) {
  // A trim keeps the PDS request header and the SES header; payload and
  // trailer are gone.
  constexpr uint32_t kTrimmedLen = wire::kRequestSize + wire::kSesRequestSize;
  if (trim) {
    len = kTrimmedLen;
    ++stats_[from].trimmed;
  }
  const uint32_t b = alloc_buf();
  std::memcpy(bufs_[b].get(), data, len);
  if (corrupt && len > 0) {
    const uint64_t bit = rng_.below(uint64_t{len} * 8);
    bufs_[b][bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    ++stats_[from].corrupted;
  }
  Duration extra = Duration::zero();
  if (rng_.bernoulli(link_.reorder)) {
    extra = Duration::nanos(1 + static_cast<int64_t>(rng_.below(static_cast<uint64_t>(link_.reorder_delay.ns()))));
    ++stats_[from].reordered;
  }
  const TimePoint arrive = depart + link_.delay + extra;
  arrivals_.push(Arrival{arrive.ns(), seq_++, b, len, static_cast<uint8_t>(1 - from), trim});
}

void PairSim::transmit(int h) {
  // Lend the transport buffers, let it fill them, then put them on the wire.
  for (uint32_t i = 0; i < link_.nic_burst; ++i) {
    const uint32_t b = alloc_buf();
    tx_slot_bufs_[i] = b;
    tx_slots_[i] = TxPacket();
    tx_slots_[i].data = bufs_[b].get();
    tx_slots_[i].capacity = kBufSize;
  }
  TxBatch batch(tx_slots_.data(), link_.nic_burst);
  const uint32_t n = hosts_[h]->poll_transmit(now_, batch);
  stalled_at_[h] = n == 0 ? hosts_[h]->activity() : ~uint64_t{0};
  TimePoint depart = max_time(now_, nic_free_[h]);
  for (uint32_t i = 0; i < n; ++i) {
    const TxPacket& p = tx_slots_[i];
    const uint32_t wire = p.len + link_.wire_overhead;
    depart = depart + serialization_time(wire, link_.rate_gbps * 1e9);
    ++stats_[h].packets;
    stats_[h].wire_bytes += wire;
    if (rng_.bernoulli(link_.loss)) {
      ++stats_[h].dropped;
      continue;
    }
    const bool corrupt = rng_.bernoulli(link_.corrupt);
    // Only data packets (with a payload past the headers) are trimmed.
    const bool trim = !p.control && p.len > wire::kRequestSize + wire::kSesRequestSize + wire::kTrailerSize &&
                      rng_.bernoulli(link_.trim);
    send_copy(h, p.data, p.len, depart, corrupt && !trim, trim);
    if (rng_.bernoulli(link_.dup)) {
      ++stats_[h].duplicated;
      send_copy(h, p.data, p.len, depart, false, false);
    }
  }
  nic_free_[h] = depart;
  for (uint32_t i = 0; i < link_.nic_burst; ++i) free_bufs_.push_back(tx_slot_bufs_[i]);
}

bool PairSim::run(const std::function<bool()>& step, TimePoint limit) {
  for (;;) {
    if (step()) return true;
    TimePoint next = TimePoint::max();
    if (!arrivals_.empty()) next = TimePoint::from_ns(arrivals_.top().t);
    for (int h = 0; h < 2; ++h) {
      // A deadline already due was handled by on_timeout below; what is left
      // of it waits for the NIC (e.g. an ACK to send), which the NIC term covers.
      const TimePoint d = hosts_[h]->next_deadline();
      if (d > now_) next = min_time(next, d);
      if (hosts_[h]->wants_transmit() && !stalled(h)) next = min_time(next, max_time(now_, nic_free_[h]));
    }
    if (next.is_max() || next > limit) return false;
    if (next > now_) now_ = next;
    ++events_;
    while (!arrivals_.empty() && arrivals_.top().t <= now_.ns()) {
      const Arrival a = arrivals_.top();
      arrivals_.pop();
      RxMeta meta;
      meta.peer = address(1 - a.to);
      meta.trimmed = a.trimmed;
      hosts_[a.to]->on_datagram(std::span<const uint8_t>(bufs_[a.buf].get(), a.len), meta, now_);
      ++stats_[1 - a.to].delivered;
      free_bufs_.push_back(a.buf);
    }
    for (int h = 0; h < 2; ++h) {
      if (hosts_[h]->next_deadline() <= now_) hosts_[h]->on_timeout(now_);
    }
    for (int h = 0; h < 2; ++h) {
      if (nic_free_[h] <= now_ && hosts_[h]->wants_transmit() && !stalled(h)) transmit(h);
    }
  }
}

}  // namespace shoal::sim
