// Shoal driver SDK (internal tier, C++): what an engine needs from a NIC.
//
// A driver moves packet buffers in bursts: the engine asks for up to N
// received datagrams, hands them to the protocol core, and gives the buffers
// back; it borrows empty buffers, lets the core fill them, and sends the
// filled ones. One virtual call per burst, none per packet, and no
// allocation per packet (ARCHITECTURE rule 2). Only drivers/dpdk includes
// DPDK and only drivers/udp includes liburing; everything above sees this.
//
// Threading: a driver exposes `queues()` queue pairs; queue q is used by one
// engine thread only (no locking inside a queue). open/close and the
// address helpers are control-path calls from the owning thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/base/packet.h"

namespace shoal {

// A received datagram: `data` is the UDP payload, valid until rx_release().
struct RxPacket {
  std::span<const uint8_t> data;
  RxMeta meta;
  uint64_t handle = 0;  // the driver's reference to the buffer (mbuf, slot)
};

// Room Shoal's own bytes take in a datagram beyond the data payload: PDS and
// SES headers and the trailer (12 + 44 + 4 today), rounded up for growth.
inline constexpr uint32_t kHeaderRoom = 128;

struct DriverCaps {
  std::string name;            // "sim", "udp", "dpdk"
  // Data payload bytes a packet may carry (wire-format.md's payload MTU:
  // 4096 on a 9000-byte link, 1024 on a 1500-byte one). Every buffer the
  // driver lends or receives into holds mtu_payload + kHeaderRoom bytes.
  uint32_t mtu_payload = 4096;
  uint32_t max_burst = 32;     // most packets per rx/tx burst
  uint32_t queues = 1;         // queue pairs (one per engine)
  // The CPU the driver wants queue q's engine thread on (dpdk's lcores=),
  // empty for no preference. Threaded mode pins engine q to engine_cpus[q]
  // unless the application gave its own engine_cpus.
  std::vector<int> engine_cpus;
};

class Driver {
 public:
  virtual ~Driver() = default;

  virtual const DriverCaps& caps() const = 0;
  // The local address of queue q, as peers reach it, and its text form.
  // Rule every driver keeps: local_addr(q) == local_addr(0) + q, so a peer
  // reaches engine e of a context from the context's address and the engine
  // bits of a QP number alone (sim: consecutive ids; udp/dpdk: consecutive
  // UDP ports, PeerAddr being IPv4 << 16 | port).
  virtual PeerAddr local_addr(uint32_t q) const = 0;
  // Parses a peer address in the driver's text form ("sim:3",
  // "127.0.0.1:4793"). Errors: InvalidArgument.
  virtual absl::StatusOr<PeerAddr> parse_addr(std::string_view text) const = 0;
  virtual std::string format_addr(PeerAddr addr) const = 0;

  // Up to pkts.size() received datagrams on queue q; returns how many.
  virtual uint32_t rx_burst(uint32_t q, std::span<RxPacket> pkts) = 0;
  // Gives back the buffers of received datagrams.
  virtual void rx_release(uint32_t q, std::span<RxPacket> pkts) = 0;
  // Lends up to slots.size() empty buffers (data, capacity set); returns how
  // many it lent. Unused ones go back through tx_burst with len == 0.
  virtual uint32_t tx_alloc(uint32_t q, std::span<TxPacket> slots) = 0;
  // Sends every lent buffer with len > 0 and takes all of them back.
  // Returns how many were sent (a full NIC queue drops and counts the rest).
  virtual uint32_t tx_burst(uint32_t q, std::span<TxPacket> pkts) = 0;
};

// Opens a driver from a URI: "sim://[fabric][?mtu=..&loss=..]", "udp://IP:PORT",
// "dpdk://?eal=...". `queues` is the number of engines that will use it.
// Errors: NotFound (unknown scheme), Unimplemented (a scheme this build has
// no driver for), InvalidArgument (malformed URI or option).
absl::StatusOr<std::unique_ptr<Driver>> open_driver(std::string_view uri, uint32_t queues);

}  // namespace shoal
