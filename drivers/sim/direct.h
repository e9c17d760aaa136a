// drivers/sim/direct.h: the simplest driver there is. It lends a transport a
// burst of buffers, and hands whatever was filled straight to a callback or
// to another transport: no link model, no event queue, no time of its own.
// pair-throughput, the micro benchmarks and the transport tests use it.
//
// Invariant: buffers are allocated once, at construction; a pump allocates
// nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "lib/base/packet.h"
#include "lib/ses/transport.h"

namespace shoal::sim {

class DirectLink {
 public:
  explicit DirectLink(uint32_t burst = 32, uint32_t buf_size = 9216)
      : buf_size_(buf_size), storage_(new uint8_t[size_t{burst} * buf_size]), slots_(burst) {}

  // Polls `from` once; calls each(span of the datagram, the TxPacket) for
  // every packet it emitted. Returns how many.
  template <typename Each>
  uint32_t poll(ses::Transport& from, TimePoint now, Each&& each) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i] = TxPacket();
      slots_[i].data = storage_.get() + i * buf_size_;
      slots_[i].capacity = buf_size_;
    }
    TxBatch batch(slots_.data(), static_cast<uint32_t>(slots_.size()));
    const uint32_t n = from.poll_transmit(now, batch);
    for (uint32_t i = 0; i < n; ++i) each(std::span<const uint8_t>(slots_[i].data, slots_[i].len), slots_[i]);
    return n;
  }

  // Polls `from` once and delivers everything to `to`, as sent by `src`.
  uint32_t pump(ses::Transport& from, ses::Transport& to, PeerAddr src, TimePoint now) {
    RxMeta meta;
    meta.peer = src;
    return poll(from, now, [&](std::span<const uint8_t> dg, const TxPacket&) { to.on_datagram(dg, meta, now); });
  }

  uint32_t burst() const { return static_cast<uint32_t>(slots_.size()); }

 private:
  uint32_t buf_size_;
  std::unique_ptr<uint8_t[]> storage_;
  std::vector<TxPacket> slots_;
};

}  // namespace shoal::sim
