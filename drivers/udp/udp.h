// drivers/udp/udp.h: the `udp://` driver, Shoal over the kernel's UDP/IPv4
// sockets, batched through io_uring (liburing), with a recvmmsg/sendmmsg
// fallback. Runs as an ordinary user. docs/drivers.md has the user's view.
//
// Port layout (a protocol constant, so a receiver can name the sender):
//  * Queue q of a driver listens on L = P + q, P the URI's port. Every
//    listening port lies in the window [kPortBase, kPortBase + kPortStride)
//    = 4793..5048.
//  * Entropy socket i (0 <= i < N, N = entropies) of that queue is bound to
//    L + kPortStride * (i + 1) (5049..21432 at most: below Linux's
//    ephemeral range 32768..60999). A packet goes out through socket
//    entropy % N, so its UDP source port, the thing ECMP hashes, varies with
//    TxPacket.entropy.
//  * A receiver maps a source port s back to the sender's listening port:
//    s in an entropy range -> kPortBase + (s - kPortBase) % kPortStride;
//    anything else is taken as is (a foreign sender is answered where it
//    came from). RxMeta.peer = src IPv4 << 16 | that port, which equals the
//    sender's local_addr(q); RxMeta.entropy = s itself.
//  * Two listening ports in the window differ modulo kPortStride, so the
//    ports of all contexts on one IP never collide as long as their
//    listening ports differ. Port 0 in the URI picks the first free block.
//
// Invariants:
//  * No allocation per packet: tx buffers (kTxSlots per queue, each with its
//    msghdr, sockaddr and TOS cmsg), rx buffers and the rx stash are
//    allocated at open.
//  * io_uring mode: a chunk of up to 32 packets that uses more than two
//    entropy sockets is one io_uring_submit, none per packet; a chunk
//    through one or two sockets is one sendmmsg per socket (cheaper for
//    few packets). A tx buffer stays in flight until the CQE of the send
//    that carries it. Receive, rx=multishot: buffers come from a
//    provided-buffer ring and go back to it in rx_release (any order), one
//    more submit re-arms the receive after it ran out of buffers;
//    rx=recvmmsg (default): one recvmmsg per rx_burst, as mmsg mode.
//  * mmsg mode: one recvmmsg per rx_burst; one sendmmsg per entropy socket
//    a burst uses.
//  * GSO (both modes): a send carries consecutive packets (per socket in
//    mmsg mode) with one socket, destination and TOS, every one but the
//    last of the same length, at most 32 and 65507 bytes; the packets keep
//    their order. Each arrives as its own datagram.
//  * Sends use MSG_DONTWAIT: a full socket buffer drops and counts, as a full
//    NIC queue does; the protocol recovers.
//
// Threading (driver_sdk.h): queue q is used by one thread; each queue has
// its own ring and sockets. The multishot receive is armed by the queue's
// own thread (in its first rx_burst), so the kernel runs its completion work
// on that thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/base/packet.h"
#include "shoal/driver_sdk.h"

namespace shoal::udp {

inline constexpr uint16_t kPortBase = 4793;    // SHOAL_UDP_PORT
inline constexpr uint16_t kPortStride = 256;   // listening window; entropy port step
inline constexpr uint32_t kMaxEntropies = 64;  // keeps entropy ports below 21433
inline constexpr uint32_t kTxSlots = 256;      // tx buffers per queue (lent + in flight)

// The listening port of the sender of a datagram with UDP source port `src`.
constexpr uint16_t listening_port_of(uint16_t src) {
  if (src >= kPortBase + kPortStride && src < kPortBase + kPortStride * (kMaxEntropies + 1))
    return static_cast<uint16_t>(kPortBase + (src - kPortBase) % kPortStride);
  return src;
}
// The source port of entropy socket i of the queue listening on `listen`.
constexpr uint16_t entropy_port(uint16_t listen, uint32_t i) {
  return static_cast<uint16_t>(listen + kPortStride * (i + 1));
}

enum class IoMode : uint8_t { kUring, kMmsg };
// How io_uring mode receives: a multishot recvmsg over a provided-buffer ring
// (completions in shared memory, the kernel's task work copies each
// datagram), or one recvmmsg per rx_burst as the mmsg mode does (sends still
// go through the ring). io=mmsg always receives with recvmmsg.
enum class RxMode : uint8_t { kMultishot, kRecvmmsg };

struct UdpOptions {
  uint32_t ipv4 = 0;        // host order; a local unicast address
  uint16_t port = kPortBase;  // queue 0's listening port; 0 = pick a free block
  uint32_t entropies = 64;  // 1..kMaxEntropies
  uint32_t mtu = 4096;      // data payload bytes per packet, 256..16384
  IoMode io = IoMode::kUring;  // kUring falls back to kMmsg if io_uring is unavailable
  // io_uring mode's receive. recvmmsg by default: on the loopback ping-pong
  // of bench/peers it answered 0.5-1.5 us sooner than the multishot receive
  // (whose datagrams wait for the kernel's task work) at the same rates.
  RxMode rx = RxMode::kRecvmmsg;
  uint32_t rx_buffers = 1024;  // receive buffers per queue, a power of two 64..16384
  // SO_RCVBUF/SO_SNDBUF request (capped by the kernel for users). 16 MiB:
  // with 4 MiB a 64 KiB-WRITE stream over loopback (window 64) overflowed
  // the receive buffer (141-3116 UdpRcvbufErrors per 20,000 WRITEs, each a
  // resend); 16 MiB holds a PDC window with the kernel's per-datagram
  // overhead and a few senders' bursts (0 in the same runs).
  uint32_t sockbuf = 16 << 20;
  // UDP GSO: consecutive packets of a burst with the same socket,
  // destination, TOS and size go out as one send (the kernel or NIC cuts
  // them apart; the receiver sees ordinary datagrams). Off by itself for a
  // queue whose path refuses it.
  bool gso = true;
};

struct UdpCounters {
  uint64_t tx_packets = 0;   // handed to the kernel
  uint64_t tx_errors = 0;    // the kernel refused (full socket buffer: EAGAIN, unreachable, ...)
  uint64_t tx_dropped = 0;   // not handed over: no SQE, or a peer that is not IPv4:port
  uint64_t tx_gso_sends = 0; // sends that carried several packets (UDP GSO)
  uint64_t gso_refused = 0;  // queues that turned GSO off: the path refused a GSO send
  uint64_t rx_packets = 0;   // handed out by rx_burst
  uint64_t rx_dropped = 0;   // truncated (larger than a buffer) or without a source address
  uint64_t rx_rearms = 0;    // multishot receive re-armed (ran out of buffers, or first arm)
  uint64_t rx_errors = 0;    // receive completions with an error
  uint64_t bad_buffers = 0;  // API misuse: a foreign or double-returned buffer, len > capacity
};

class UdpDriver final : public Driver {
 public:
  static constexpr uint32_t kMaxBurst = 32;

  // Binds every socket and sets up the rings. Errors: InvalidArgument (bad
  // option, queues == 0, a port block outside the window), AlreadyExists (a
  // port in use; the message names it), FailedPrecondition (the IP is not a
  // local address: EADDRNOTAVAIL), ResourceExhausted (port 0 and no free
  // block), Internal (another socket error).
  static absl::StatusOr<std::unique_ptr<UdpDriver>> open(const UdpOptions& options, uint32_t queues);
  ~UdpDriver() override;

  const DriverCaps& caps() const override { return caps_; }
  PeerAddr local_addr(uint32_t q) const override;
  // "a.b.c.d:port" or "a.b.c.d" (port kPortBase). Errors: InvalidArgument.
  absl::StatusOr<PeerAddr> parse_addr(std::string_view text) const override;
  std::string format_addr(PeerAddr addr) const override;

  uint32_t rx_burst(uint32_t q, std::span<RxPacket> pkts) override;
  void rx_release(uint32_t q, std::span<RxPacket> pkts) override;
  uint32_t tx_alloc(uint32_t q, std::span<TxPacket> slots) override;
  uint32_t tx_burst(uint32_t q, std::span<TxPacket> pkts) override;

  // The mode in use (kMmsg after a fallback).
  IoMode io_mode() const { return io_; }
  // Whether rx_burst takes datagrams from the multishot receive (io_uring
  // mode with rx=multishot) rather than from recvmmsg.
  bool multishot() const { return multishot_; }
  const UdpOptions& options() const { return options_; }
  uint16_t port(uint32_t q) const;
  // Sum over the queues / one queue; call when no queue runs (plain integers).
  UdpCounters counters() const;
  const UdpCounters& queue_counters(uint32_t q) const;
  std::string dump() const;

  struct Queue;  // defined in udp.cc

 private:
  UdpDriver(const UdpOptions& options, uint32_t queues);
  absl::Status bind_all(uint16_t port);
  absl::Status setup_uring();

  UdpOptions options_;
  DriverCaps caps_;
  IoMode io_ = IoMode::kUring;
  bool multishot_ = false;
  std::vector<std::unique_ptr<Queue>> queues_;
};

// Parses a dotted IPv4 address. Errors: InvalidArgument.
absl::StatusOr<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t ip);

// Tests only: while set, io_uring setup fails as a kernel that refuses
// io_uring would (EPERM), so the automatic fallback to kMmsg can be tested on
// a kernel that has it. Thread-safe.
void refuse_uring_for_testing(bool refuse);

// open_driver's udp:// branch: `rest` is what follows "udp://".
// Errors: those of UdpDriver::open, InvalidArgument for a malformed URI.
absl::StatusOr<std::unique_ptr<Driver>> open_udp(std::string_view rest, uint32_t queues);

}  // namespace shoal::udp
