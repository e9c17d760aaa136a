// Packet buffers as the core sees them: bytes plus the little metadata the
// network layer below needs (peer, entropy, ECN), handed over in bursts.
//
// The core never allocates packet memory. A driver (or the simulator) lends
// it a TxBatch of empty buffers; the core fills a prefix of them in
// poll_transmit() and returns how many it filled. Received datagrams come in
// as a span plus RxMeta.
#pragma once

#include <cstdint>
#include <span>

namespace shoal {

// An opaque peer address: the driver's own encoding (sim: host id;
// udp/dpdk: IPv4 address << 16 | UDP port). The core only compares it.
using PeerAddr = uint64_t;

// ECN codepoints (the two low bits of the IP TOS byte).
enum class Ecn : uint8_t { kNotEct = 0, kEct1 = 1, kEct0 = 2, kCe = 3 };

struct RxMeta {
  PeerAddr peer = 0;
  uint16_t entropy = 0;  // the UDP source port the packet came with
  Ecn ecn = Ecn::kNotEct;
  // A switch cut the payload (UET packet trimming). The driver tells from
  // the marking the switch applied; the bytes then hold headers only.
  bool trimmed = false;
};

struct TxPacket {
  uint8_t* data = nullptr;  // lent by the driver
  uint32_t capacity = 0;
  uint32_t len = 0;         // filled by the core
  PeerAddr peer = 0;
  uint16_t entropy = 0;     // becomes the UDP source port
  uint8_t dscp = 0;
  Ecn ecn = Ecn::kEct0;     // requested marking (ECT unless disabled)
  bool control = false;     // ACK/NACK/CTRL: may take a priority queue
};

// A burst of buffers to fill. Not thread-safe; lives for one poll_transmit.
class TxBatch {
 public:
  TxBatch(TxPacket* slots, uint32_t n) : slots_(slots), cap_(n) {}

  bool full() const { return count_ == cap_; }
  uint32_t count() const { return count_; }
  uint32_t capacity() const { return cap_; }
  // The next empty slot (call only when !full()).
  TxPacket& next() { return slots_[count_]; }
  void commit() { ++count_; }
  std::span<TxPacket> filled() { return {slots_, count_}; }

 private:
  TxPacket* slots_;
  uint32_t cap_;
  uint32_t count_ = 0;
};

}  // namespace shoal
