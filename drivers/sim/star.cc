#include "drivers/sim/star.h"

#include <cstring>

namespace shoal::sim {

StarSim::StarSim(uint32_t hosts, const std::function<ses::TransportConfig(uint32_t host)>& config_of,
                 const StarLinkConfig& link, uint64_t seed)
    : link_(link),
      nic_free_(hosts),
      port_free_(hosts),
      port_bytes_(hosts, 0),
      wake_at_(hosts, TimePoint::max()),
      stalled_at_(hosts, ~uint64_t{0}),
      slots_(kBurst),
      slot_bufs_(kBurst) {
  hosts_.reserve(hosts);
  for (uint32_t i = 0; i < hosts; ++i) {
    hosts_.push_back(std::make_unique<ses::Transport>(config_of(i), address(i), seed * 1000003 + i));
  }
}

uint32_t StarSim::alloc_buf() {
  if (free_bufs_.empty()) {
    bufs_.emplace_back(new uint8_t[kBufSize]);
    return static_cast<uint32_t>(bufs_.size() - 1);
  }
  const uint32_t b = free_bufs_.back();
  free_bufs_.pop_back();
  return b;
}

void StarSim::push(Kind kind, TimePoint t, uint32_t host, uint32_t from, uint32_t buf, uint32_t len) {
  events_.push(Event{t.ns(), seq_++, kind, host, from, buf, len});
}

void StarSim::touch(uint32_t i) { schedule(i); }

void StarSim::call_at(TimePoint t, std::function<void()> f) {
  calls_.push_back(std::move(f));
  push(Kind::kCall, t, 0, 0, static_cast<uint32_t>(calls_.size() - 1));
}

void StarSim::schedule(uint32_t h) {
  ses::Transport& t = *hosts_[h];
  TimePoint when = TimePoint::max();
  if (t.wants_transmit() && t.activity() != stalled_at_[h]) when = max_time(now_, nic_free_[h]);
  const TimePoint d = t.next_deadline();
  if (d > now_) when = min_time(when, d);
  // One pending wake per host is enough if it is the earliest one; a later
  // one already queued simply finds nothing to do.
  if (when.is_max() || when >= wake_at_[h]) return;
  wake_at_[h] = when;
  push(Kind::kWake, when, h);
}

void StarSim::transmit(uint32_t h) {
  for (uint32_t i = 0; i < kBurst; ++i) {
    slot_bufs_[i] = alloc_buf();
    slots_[i] = TxPacket();
    slots_[i].data = bufs_[slot_bufs_[i]].get();
    slots_[i].capacity = kBufSize;
  }
  TxBatch batch(slots_.data(), kBurst);
  const uint32_t n = hosts_[h]->poll_transmit(now_, batch);
  stalled_at_[h] = n == 0 ? hosts_[h]->activity() : ~uint64_t{0};
  TimePoint depart = max_time(now_, nic_free_[h]);
  for (uint32_t i = 0; i < kBurst; ++i) {
    if (i >= n) {
      free_bufs_.push_back(slot_bufs_[i]);
      continue;
    }
    const TxPacket& p = slots_[i];
    const uint32_t dst = static_cast<uint32_t>(p.peer - 1);
    depart = depart + ser(p.len);
    ++stats_.packets;
    if (dst >= hosts_.size()) {  // no such host: the switch drops it
      free_bufs_.push_back(slot_bufs_[i]);
      continue;
    }
    push(Kind::kAtSwitch, depart + link_.hop_delay, dst, h, slot_bufs_[i], p.len);
  }
  nic_free_[h] = depart;
}

bool StarSim::run(const std::function<void(uint32_t host)>& on_host, const std::function<bool()>& done,
                  TimePoint limit) {
  while (!done()) {
    if (events_.empty()) return done();
    const Event e = events_.top();
    if (TimePoint::from_ns(e.t) > limit) return done();
    events_.pop();
    if (e.t > now_.ns()) now_ = TimePoint::from_ns(e.t);
    ++stats_.events;
    switch (e.kind) {
      case Kind::kAtSwitch: {
        // Store and forward onto the destination's port, FIFO at link rate.
        const TimePoint start = max_time(now_, port_free_[e.host]);
        port_free_[e.host] = start + ser(e.len);
        const uint64_t queued = static_cast<uint64_t>((port_free_[e.host] - now_).ns()) *
                                static_cast<uint64_t>(link_.rate_gbps) / 8;
        if (queued > stats_.max_queue_bytes) stats_.max_queue_bytes = queued;
        push(Kind::kAtHost, port_free_[e.host] + link_.hop_delay, e.host, e.from, e.buf, e.len);
        break;
      }
      case Kind::kAtHost: {
        RxMeta meta;
        meta.peer = address(e.from);
        hosts_[e.host]->on_datagram(std::span<const uint8_t>(bufs_[e.buf].get(), e.len), meta, now_);
        free_bufs_.push_back(e.buf);
        on_host(e.host);
        schedule(e.host);
        break;
      }
      case Kind::kCall: {
        auto f = std::move(calls_[e.buf]);
        f();
        break;
      }
      case Kind::kWake: {
        const uint32_t h = e.host;
        if (TimePoint::from_ns(e.t) == wake_at_[h]) wake_at_[h] = TimePoint::max();
        ses::Transport& t = *hosts_[h];
        if (t.next_deadline() <= now_) t.on_timeout(now_);
        if (nic_free_[h] <= now_ && t.wants_transmit() && t.activity() != stalled_at_[h]) transmit(h);
        on_host(h);
        schedule(h);
        break;
      }
    }
  }
  return true;
}

Duration StarSim::unloaded_rtt(uint32_t request_bytes, uint32_t ack_bytes) const {
  return link_.hop_delay * 4 + ser(request_bytes) * 2 + ser(ack_bytes) * 2;
}

}  // namespace shoal::sim
