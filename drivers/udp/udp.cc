// The `udp://` driver; see udp.h for the port layout and invariants.
//
// Buffer layout, both modes: an rx buffer is [io_uring_recvmsg_out (16)]
// [sockaddr_in (16)] [control (64)] [payload], the layout a multishot
// recvmsg writes into a provided buffer; the mmsg mode points its msghdr at
// the same places, so both hand out payloads at the same offset.
#include "drivers/udp/udp.h"
#include "drivers/uri_options.h"
#include "lib/base/counters.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/base/log.h"
#include "lib/base/status.h"

namespace shoal::udp {
namespace {

using sv = absl::string_view;

constexpr uint32_t kNameOff = sizeof(io_uring_recvmsg_out);
constexpr uint32_t kCtrlOff = kNameOff + sizeof(sockaddr_in);
constexpr uint32_t kCtrlLen = 64;  // room for the IP_TOS cmsg (CMSG_SPACE(1) = 24) and slack
constexpr uint32_t kPayloadOff = kCtrlOff + kCtrlLen;
static_assert(kPayloadOff == 96);

constexpr uint16_t kBufGroup = 7;

// UDP GSO (UDP_SEGMENT, Linux 4.18): one send of up to kMaxGso packets of
// one size (the last may be shorter) to one destination through one socket;
// the kernel (or the NIC) cuts it into datagrams, so the receiver sees what
// separate sends would have produced. The byte cap is the largest UDP
// payload an IPv4 datagram holds; Linux's own segment cap is 64 (128 since
// 6.13), above kMaxGso.
constexpr uint32_t kMaxGso = 32;
// io_uring mode sends a chunk that uses at most this many entropy sockets
// with sendmmsg (see tx_burst).
constexpr uint32_t kDirectSockets = 2;
constexpr uint32_t kMaxGsoBytes = 65535 - 20 - 8;
static_assert(kMaxGso <= UdpDriver::kMaxBurst);

// The kernel cannot send GSO on this path (no checksum offload on the
// device: EIO; a segment above the path MTU: EINVAL; too big: EMSGSIZE).
bool gso_refused(int err) { return err == EIO || err == EINVAL || err == EMSGSIZE; }
constexpr uint64_t kRecvTag = 1ULL << 63;  // user_data of the multishot receive; sends carry the slot

std::string errno_text(int e) { return std::strerror(e); }

std::atomic<bool> g_refuse_uring{false};

// The kernel must have multishot recvmsg (6.0) and provided-buffer rings (5.19).
bool kernel_has_multishot_recvmsg() {
  utsname u;
  if (uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major >= 6;  // 6.0 has both
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// SO_*BUFFORCE lifts the rmem_max/wmem_max cap for CAP_NET_ADMIN; an
// ordinary user gets the capped size, which works, only slower under load.
void set_buf(int fd, int force_opt, int opt, uint32_t bytes) {
  int v = static_cast<int>(bytes);
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) != 0)
    setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

sockaddr_in make_sockaddr(uint32_t ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(ip);
  a.sin_port = htons(port);
  return a;
}

}  // namespace

void refuse_uring_for_testing(bool refuse) { g_refuse_uring.store(refuse, std::memory_order_relaxed); }

absl::StatusOr<uint32_t> parse_ipv4(std::string_view text) {
  const std::string s(text);
  in_addr a{};
  if (s.empty() || inet_pton(AF_INET, s.c_str(), &a) != 1)
    return absl::InvalidArgumentError(absl::StrCat("udp: \"", s, "\" is not a dotted IPv4 address"));
  return ntohl(a.s_addr);
}

std::string format_ipv4(uint32_t ip) {
  return absl::StrFormat("%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xFF, (ip >> 8) & 0xFF, ip & 0xFF);
}

// ---------------------------------------------------------------------------
// Queue state

// A tx buffer's send state. A slot may lead a GSO send: its msghdr then
// points at giov (the buffers of every packet in it) and carries a second
// cmsg (UDP_SEGMENT), and the other slots ride on its completion.
struct TxSlot {
  static constexpr uint32_t kTosSpace = CMSG_SPACE(sizeof(int));
  static constexpr uint32_t kSegSpace = CMSG_SPACE(sizeof(uint16_t));
  msghdr msg;
  iovec iov;
  sockaddr_in dst;
  PeerAddr peer;
  int tos;
  alignas(cmsghdr) uint8_t ctrl[kTosSpace + kSegSpace];  // IP_TOS, then UDP_SEGMENT
  uint8_t nriders;
  std::array<uint16_t, kMaxGso - 1> riders;
  std::array<iovec, kMaxGso> giov;

  // One packet: the slot's own buffer, TOS only.
  void single() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_controllen = kTosSpace;
    nriders = 0;
  }
};

struct RxReady {  // a received datagram waiting for rx_burst (io_uring mode)
  uint32_t bid;
  uint32_t len;
  RxMeta meta;
};

struct alignas(64) UdpDriver::Queue {
  enum : uint8_t { kFree = 0, kLent = 1, kInFlight = 2 };

  uint32_t index = 0;
  uint16_t port = 0;
  int listen_fd = -1;
  std::vector<int> efds;  // entropy sockets

  // UDP GSO in use (UdpOptions::gso and the kernel has it); turned off for
  // good the first time the kernel refuses a GSO send on this queue.
  bool gso = false;
  // tx: kTxSlots buffers of buf_size bytes.
  uint32_t buf_size = 0;
  std::unique_ptr<uint8_t[]> tx_mem;
  std::unique_ptr<TxSlot[]> tx;
  std::array<uint16_t, kTxSlots> free_stack{};
  uint32_t nfree = 0;
  std::array<uint8_t, kTxSlots> state{};

  // rx: nrx buffers of rx_size bytes; held[b] while the app or the stash has it.
  uint32_t nrx = 0;
  uint32_t rx_size = 0;
  uint8_t* rx_mem = nullptr;  // mmap'd
  size_t rx_bytes = 0;
  std::unique_ptr<uint8_t[]> held;

  // io_uring mode.
  bool uring = false;
  io_uring ring{};
  io_uring_buf_ring* br = nullptr;
  size_t br_bytes = 0;
  msghdr rx_msg{};         // the layout template of the multishot receive
  bool armed = false;
  uint32_t in_ring = 0;    // buffers the kernel may fill
  std::unique_ptr<RxReady[]> ready;  // FIFO of nrx entries
  uint32_t ready_head = 0, ready_count = 0;

  // mmsg mode: a stack of free rx buffers and per-call scratch.
  std::unique_ptr<uint32_t[]> rx_free;
  uint32_t rx_nfree = 0;
  std::array<mmsghdr, kMaxBurst> rvec{};
  std::array<iovec, kMaxBurst> riov{};
  std::array<uint32_t, kMaxBurst> rbuf{};
  uint32_t rx_armed = 0;  // rvec[0, rx_armed) hold buffer rbuf[j], ready for recvmmsg
  std::array<mmsghdr, kMaxBurst> svec{};

  UdpCounters counters;

  uint8_t* rx_buf(uint32_t b) { return rx_mem + size_t{b} * rx_size; }

  // recvmmsg entry j receives into buffer b: payload, source address and
  // control messages at the offsets a multishot receive would use.
  void arm(uint32_t j, uint32_t b) {
    rbuf[j] = b;
    uint8_t* buf = rx_buf(b);
    riov[j] = iovec{buf + kPayloadOff, rx_size - kPayloadOff};
    msghdr& m = rvec[j].msg_hdr;
    m = msghdr{};
    m.msg_name = buf + kNameOff;
    m.msg_namelen = sizeof(sockaddr_in);
    m.msg_iov = &riov[j];
    m.msg_iovlen = 1;
    m.msg_control = buf + kCtrlOff;
    m.msg_controllen = kCtrlLen;
    rvec[j].msg_len = 0;
  }
  // Moves armed entry `from` (untouched by the kernel) to `to`.
  void move_armed(uint32_t from, uint32_t to) {
    rbuf[to] = rbuf[from];
    riov[to] = riov[from];
    rvec[to] = rvec[from];
    rvec[to].msg_hdr.msg_iov = &riov[to];
  }
  uint8_t* tx_buf(uint32_t s) { return tx_mem.get() + size_t{s} * buf_size; }

  ~Queue() {
    if (uring) io_uring_queue_exit(&ring);
    if (br) munmap(br, br_bytes);
    if (rx_mem) munmap(rx_mem, rx_bytes);
    close_fd(listen_fd);
    for (int& fd : efds) close_fd(fd);
  }

  void close_sockets() {
    close_fd(listen_fd);
    for (int& fd : efds) close_fd(fd);
  }

  // Gives buffer b back to the kernel's ring (io_uring mode), as entry k of
  // a batch the caller publishes with io_uring_buf_ring_advance.
  void ring_add(uint32_t b, int k) {
    io_uring_buf_ring_add(br, rx_buf(b), rx_size, static_cast<uint16_t>(b), io_uring_buf_ring_mask(nrx), k);
  }

  void free_tx(uint32_t s) {
    state[s] = kFree;
    free_stack[nfree++] = static_cast<uint16_t>(s);
  }

  // A send led by slot s completed with `res`: frees s and its riders,
  // counts the packets a failed send lost; a refused GSO send turns GSO off.
  void sent(uint32_t s, int res) {
    TxSlot& t = tx[s];
    const uint32_t packets = 1u + t.nriders;
    if (res < 0) {
      counters.tx_errors += packets;
      if (packets > 1 && gso_refused(-res) && gso) {
        gso = false;
        ++counters.gso_refused;
        SHOAL_LOG(kDriver, kWarn, "udp: q%u: the kernel refused a GSO send (%s); sending one packet per send from now",
                  index, errno_text(-res));
      }
    }
    for (uint32_t k = 0; k < t.nriders; ++k) free_tx(t.riders[k]);
    t.nriders = 0;
    free_tx(s);
  }

  // Packet j of a staged burst may join the GSO send that starts at packet
  // i and currently ends before j (bytes so far in `bytes`).
  bool gso_joins(const uint16_t* slot, const uint16_t* sock, uint32_t i, uint32_t j, uint32_t bytes) const {
    const TxSlot& a = tx[slot[i]];
    const TxSlot& prev = tx[slot[j - 1]];
    const TxSlot& b = tx[slot[j]];
    // Only the last segment may be shorter: the one before j must be full.
    return j - i < kMaxGso && sock[j] == sock[i] && b.peer == a.peer && b.tos == a.tos &&
           prev.iov.iov_len == a.iov.iov_len && b.iov.iov_len <= a.iov.iov_len &&
           bytes + b.iov.iov_len <= kMaxGsoBytes;
  }

  // Makes staged packets [i, j) one send led by slot[i]: a GSO send when
  // there are several.
  void lead(const uint16_t* slot, uint32_t i, uint32_t j) {
    TxSlot& t = tx[slot[i]];
    t.single();
    if (j - i == 1) return;
    for (uint32_t k = i; k < j; ++k) t.giov[k - i] = tx[slot[k]].iov;
    for (uint32_t k = i + 1; k < j; ++k) t.riders[k - i - 1] = slot[k];
    t.nriders = static_cast<uint8_t>(j - i - 1);
    t.msg.msg_iov = t.giov.data();
    t.msg.msg_iovlen = j - i;
    t.msg.msg_controllen = TxSlot::kTosSpace + TxSlot::kSegSpace;
    const uint16_t seg = static_cast<uint16_t>(t.iov.iov_len);
    std::memcpy(CMSG_DATA(reinterpret_cast<cmsghdr*>(t.ctrl + TxSlot::kTosSpace)), &seg, sizeof(seg));
    ++counters.tx_gso_sends;
  }

  // The tx slot of a lent buffer, or -1 (and counted) if it is not one.
  int tx_slot_of(const TxPacket& p) {
    const uintptr_t off = reinterpret_cast<uintptr_t>(p.data) - reinterpret_cast<uintptr_t>(tx_mem.get());
    const uint64_t s = off / buf_size;
    if (p.data == nullptr || off % buf_size != 0 || s >= kTxSlots || state[s] != kLent) {
      ++counters.bad_buffers;
      return -1;
    }
    return static_cast<int>(s);
  }

  // Fills slot s's msghdr for p; false (and counted) if p cannot be sent.
  bool prepare(uint32_t s, const TxPacket& p) {
    if (p.len > buf_size || p.len > p.capacity) {
      ++counters.bad_buffers;
      return false;
    }
    const uint32_t ip = static_cast<uint32_t>(p.peer >> 16);
    const uint16_t port = static_cast<uint16_t>(p.peer & 0xFFFF);
    if ((p.peer >> 48) != 0 || ip == 0 || port == 0) {
      ++counters.tx_dropped;
      return false;
    }
    TxSlot& t = tx[s];
    t.dst = make_sockaddr(ip, port);
    t.peer = p.peer;
    t.iov.iov_len = p.len;
    // TOS = DSCP << 2 | ECN: the traffic class and the ECN codepoint of this
    // packet, per message, so one socket serves every class.
    t.tos = (p.dscp & 0x3F) << 2 | (static_cast<int>(p.ecn) & 3);
    std::memcpy(CMSG_DATA(reinterpret_cast<cmsghdr*>(t.ctrl)), &t.tos, sizeof(t.tos));
    return true;
  }

  // Takes every completion off the CQ: sends free their slot, receives go
  // to the ready FIFO (or straight back to the ring if unusable).
  void reap() {
    unsigned head, seen = 0;
    int back = 0;  // buffers given straight back
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      if (!(cqe->user_data & kRecvTag)) {
        const uint32_t s = static_cast<uint32_t>(cqe->user_data);
        if (s < kTxSlots && state[s] == kInFlight) sent(s, cqe->res);
        continue;
      }
      if (!(cqe->flags & IORING_CQE_F_MORE)) armed = false;
      if (cqe->res < 0) {
        if (cqe->res != -ENOBUFS) ++counters.rx_errors;
        continue;
      }
      if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
        ++counters.rx_errors;
        continue;
      }
      const uint32_t b = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      if (b >= nrx) {
        ++counters.rx_errors;
        continue;
      }
      --in_ring;
      uint8_t* buf = rx_buf(b);
      io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe->res, &rx_msg);
      RxMeta meta;
      if (out == nullptr || (out->flags & MSG_TRUNC) || !parse_meta(out->namelen, buf + kNameOff,
                                                                     out->controllen, buf + kCtrlOff, meta)) {
        ++counters.rx_dropped;
        ring_add(b, back++);
        continue;
      }
      RxReady& r = ready[(ready_head + ready_count++) % nrx];
      r.bid = b;
      r.len = io_uring_recvmsg_payload_length(out, cqe->res, &rx_msg);
      r.meta = meta;
      held[b] = 1;
    }
    io_uring_cq_advance(&ring, seen);
    if (back) {
      io_uring_buf_ring_advance(br, back);
      in_ring += back;
    }
  }

  // Source address and TOS of a datagram into meta; false without an IPv4 source.
  static bool parse_meta(uint32_t namelen, const uint8_t* name, uint32_t controllen, const uint8_t* ctrl,
                         RxMeta& meta) {
    if (namelen < sizeof(sockaddr_in)) return false;
    sockaddr_in a;
    std::memcpy(&a, name, sizeof(a));
    if (a.sin_family != AF_INET) return false;
    const uint16_t src = ntohs(a.sin_port);
    meta = RxMeta();
    meta.peer = PeerAddr{ntohl(a.sin_addr.s_addr)} << 16 | listening_port_of(src);
    meta.entropy = src;
    // Walk the control messages by hand: the buffer is not a msghdr's.
    uint32_t off = 0;
    while (off + sizeof(cmsghdr) <= controllen) {
      cmsghdr c;
      std::memcpy(&c, ctrl + off, sizeof(c));
      if (c.cmsg_len < sizeof(cmsghdr) || off + c.cmsg_len > controllen) break;
      if (c.cmsg_level == IPPROTO_IP && c.cmsg_type == IP_TOS && c.cmsg_len >= CMSG_LEN(1))
        meta.ecn = static_cast<Ecn>(ctrl[off + CMSG_LEN(0)] & 3);
      off += CMSG_ALIGN(c.cmsg_len);
    }
    return true;
  }
};

// ---------------------------------------------------------------------------
// open / close

UdpDriver::UdpDriver(const UdpOptions& options, uint32_t queues) : options_(options) {
  caps_.name = "udp";
  caps_.mtu_payload = options_.mtu;
  caps_.max_burst = kMaxBurst;
  caps_.queues = queues;
  io_ = options_.io;
  multishot_ = io_ == IoMode::kUring && options_.rx == RxMode::kMultishot;
}

UdpDriver::~UdpDriver() {
  if (!queues_.empty() && queues_[0]->listen_fd >= 0) SHOAL_LOG(kDriver, kDebug, "%s", dump());
}

absl::Status UdpDriver::bind_all(uint16_t port) {
  const uint32_t ip = options_.ipv4;
  auto bind_one = [&](uint16_t p, int& fd) -> absl::Status {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::InternalError(absl::StrCat("udp: socket: ", errno_text(errno)));
    const sockaddr_in a = make_sockaddr(ip, p);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0) return absl::OkStatus();
    const int e = errno;
    close_fd(fd);
    const std::string where = absl::StrCat(format_ipv4(ip), ":", p);
    if (e == EADDRINUSE) return absl::AlreadyExistsError(absl::StrCat("udp: ", where, " is in use (bind: ", errno_text(e), ")"));
    if (e == EADDRNOTAVAIL)
      return absl::FailedPreconditionError(
          absl::StrCat("udp: ", format_ipv4(ip), " is not an address of this host (bind: ", errno_text(e), ")"));
    if (e == EACCES) return absl::PermissionDeniedError(absl::StrCat("udp: bind ", where, ": ", errno_text(e)));
    return absl::InternalError(absl::StrCat("udp: bind ", where, ": ", errno_text(e)));
  };
  for (uint32_t q = 0; q < queues_.size(); ++q) {
    Queue& qu = *queues_[q];
    qu.port = static_cast<uint16_t>(port + q);
    absl::Status st = bind_one(qu.port, qu.listen_fd);
    for (uint32_t i = 0; st.ok() && i < options_.entropies; ++i)
      st = bind_one(entropy_port(qu.port, i), qu.efds[i]);
    if (!st.ok()) {
      for (auto& other : queues_) other->close_sockets();
      return st;
    }
    // The receiver reads each datagram's TOS byte (ECN) from a cmsg.
    int one = 1;
    setsockopt(qu.listen_fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
    set_buf(qu.listen_fd, SO_RCVBUFFORCE, SO_RCVBUF, options_.sockbuf);
    for (int fd : qu.efds) set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, options_.sockbuf);
    // GSO where the kernel knows UDP_SEGMENT (4.18); whether the path can
    // take it shows only on the first GSO send (see Queue::sent).
    int seg = 0;
    socklen_t seg_len = sizeof(seg);
    qu.gso = options_.gso && getsockopt(qu.efds[0], SOL_UDP, UDP_SEGMENT, &seg, &seg_len) == 0;
  }
  return absl::OkStatus();
}

absl::Status UdpDriver::setup_uring() {
  // Multishot recvmsg (6.0) and provided-buffer rings (5.19); the sends
  // alone need nothing newer than COOP_TASKRUN (5.19).
  if (multishot_ && !kernel_has_multishot_recvmsg())
    return absl::UnavailableError("the kernel predates Linux 6.0 (multishot recvmsg)");
  for (auto& qp : queues_) {
    Queue& qu = *qp;
    io_uring_params p{};
    // Cooperative task running: the kernel no longer interrupts this
    // busy-polling thread (an IPI) to post receive completions; it raises
    // IORING_SQ_TASKRUN instead, and rx_burst enters the kernel only then.
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    p.cq_entries = 2 * (kTxSlots + qu.nrx);
    int rc = g_refuse_uring.load(std::memory_order_relaxed) ? -EPERM
                                                             : io_uring_queue_init_params(2 * kTxSlots, &qu.ring, &p);
    if (rc < 0) return absl::UnavailableError(absl::StrCat("io_uring_queue_init: ", errno_text(-rc)));
    qu.uring = true;
    // Fixed files: 0 = the listening socket, 1 + i = entropy socket i.
    std::vector<int> fds{qu.listen_fd};
    fds.insert(fds.end(), qu.efds.begin(), qu.efds.end());
    rc = io_uring_register_files(&qu.ring, fds.data(), static_cast<unsigned>(fds.size()));
    if (rc < 0) return absl::UnavailableError(absl::StrCat("io_uring_register_files: ", errno_text(-rc)));
    if (!multishot_) continue;
    qu.br_bytes = size_t{qu.nrx} * sizeof(io_uring_buf);
    void* m = mmap(nullptr, qu.br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return absl::ResourceExhaustedError("udp: mmap of the buffer ring failed");
    qu.br = static_cast<io_uring_buf_ring*>(m);
    io_uring_buf_ring_init(qu.br);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uintptr_t>(qu.br);
    reg.ring_entries = qu.nrx;
    reg.bgid = kBufGroup;
    rc = io_uring_register_buf_ring(&qu.ring, &reg, 0);
    if (rc < 0) return absl::UnavailableError(absl::StrCat("io_uring_register_buf_ring: ", errno_text(-rc)));
    for (uint32_t b = 0; b < qu.nrx; ++b) qu.ring_add(b, static_cast<int>(b));
    io_uring_buf_ring_advance(qu.br, static_cast<int>(qu.nrx));
    qu.in_ring = qu.nrx;
    qu.rx_msg.msg_namelen = sizeof(sockaddr_in);
    qu.rx_msg.msg_controllen = kCtrlLen;
    qu.ready.reset(new RxReady[qu.nrx]);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UdpDriver>> UdpDriver::open(const UdpOptions& o, uint32_t queues) {
  if (queues == 0) return absl::InvalidArgumentError("udp: queues must be >= 1");
  if (queues > kPortStride) return absl::InvalidArgumentError(absl::StrCat("udp: at most ", kPortStride, " queues"));
  if (o.entropies < 1 || o.entropies > kMaxEntropies)
    return absl::InvalidArgumentError(
        absl::StrCat("udp: entropies ", o.entropies, " is outside 1..", kMaxEntropies));
  if (o.mtu < 256 || o.mtu > 16384)
    return absl::InvalidArgumentError(absl::StrCat("udp: mtu ", o.mtu, " is outside 256..16384"));
  if (o.rx_buffers < 64 || o.rx_buffers > 16384 || (o.rx_buffers & (o.rx_buffers - 1)))
    return absl::InvalidArgumentError(
        absl::StrCat("udp: rx_buffers ", o.rx_buffers, " is not a power of two in 64..16384"));
  const uint32_t top = o.ipv4 >> 24;
  if (o.ipv4 == 0 || o.ipv4 == 0xFFFFFFFF || (top >= 224 && top < 240))
    return absl::InvalidArgumentError(absl::StrCat(
        "udp: ", format_ipv4(o.ipv4), " is not a unicast address (bind a concrete local IPv4 address)"));
  if (o.port != 0 && (o.port < kPortBase || o.port + queues > kPortBase + kPortStride))
    return absl::InvalidArgumentError(absl::StrFormat(
        "udp: ports %u..%u are outside the listening window %u..%u (see docs/drivers.md; port 0 picks one)",
        o.port, o.port + queues - 1, kPortBase, kPortBase + kPortStride - 1));

  std::unique_ptr<UdpDriver> d(new UdpDriver(o, queues));
  for (uint32_t q = 0; q < queues; ++q) {
    auto qu = std::make_unique<Queue>();
    qu->index = q;
    qu->efds.assign(o.entropies, -1);
    qu->buf_size = o.mtu + kHeaderRoom;
    qu->tx_mem.reset(new uint8_t[size_t{kTxSlots} * qu->buf_size]);
    qu->tx.reset(new TxSlot[kTxSlots]);
    for (uint32_t s = 0; s < kTxSlots; ++s) {
      TxSlot& t = qu->tx[s];
      std::memset(&t, 0, sizeof(t));
      t.iov.iov_base = qu->tx_buf(s);
      t.msg.msg_name = &t.dst;
      t.msg.msg_namelen = sizeof(t.dst);
      t.msg.msg_iov = &t.iov;
      t.msg.msg_iovlen = 1;
      t.msg.msg_control = t.ctrl;
      t.msg.msg_controllen = TxSlot::kTosSpace;
      cmsghdr* c = reinterpret_cast<cmsghdr*>(t.ctrl);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_TOS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      cmsghdr* g = reinterpret_cast<cmsghdr*>(t.ctrl + TxSlot::kTosSpace);
      g->cmsg_level = SOL_UDP;
      g->cmsg_type = UDP_SEGMENT;
      g->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      qu->free_stack[s] = static_cast<uint16_t>(kTxSlots - 1 - s);
    }
    qu->nfree = kTxSlots;
    qu->nrx = o.rx_buffers;
    qu->rx_size = (kPayloadOff + o.mtu + kHeaderRoom + 63) & ~63u;
    qu->rx_bytes = size_t{qu->nrx} * qu->rx_size;
    // mmap: untouched pages cost nothing, so a generous ring is cheap until used.
    void* m = mmap(nullptr, qu->rx_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return absl::ResourceExhaustedError("udp: mmap of the receive buffers failed");
    qu->rx_mem = static_cast<uint8_t*>(m);
    qu->held.reset(new uint8_t[qu->nrx]());
    d->queues_.push_back(std::move(qu));
  }

  if (o.port != 0) {
    RETURN_IF_ERROR(d->bind_all(o.port));
  } else {
    // Port 0: the first free block from a cursor that moves on every open
    // and starts per process, so that a context opened right after another
    // closed does not inherit its port (and its late packets).
    static std::atomic<uint32_t> cursor{static_cast<uint32_t>(getpid()) * 37u};
    const uint32_t start = cursor.fetch_add(queues);
    absl::Status st = absl::ResourceExhaustedError(absl::StrFormat(
        "udp: no free block of %u listening ports in %u..%u", queues, kPortBase, kPortBase + kPortStride - 1));
    bool bound = false;
    for (uint32_t t = 0; t < kPortStride && !bound; ++t) {
      const uint32_t off = (start + t) % kPortStride;
      if (off + queues > kPortStride) continue;
      absl::Status b = d->bind_all(static_cast<uint16_t>(kPortBase + off));
      if (b.ok()) {
        bound = true;
      } else if (!absl::IsAlreadyExists(b)) {
        return b;
      }
    }
    if (!bound) return st;
  }

  if (d->io_ == IoMode::kUring) {
    absl::Status st = d->setup_uring();
    if (!st.ok()) {
      SHOAL_LOG(kDriver, kWarn, "udp: io_uring unavailable (%s); falling back to recvmmsg/sendmmsg",
                st.message());
      for (auto& qu : d->queues_) {
        if (qu->uring) io_uring_queue_exit(&qu->ring);
        qu->uring = false;
        if (qu->br) munmap(qu->br, qu->br_bytes);
        qu->br = nullptr;
      }
      d->io_ = IoMode::kMmsg;
      d->multishot_ = false;
    }
  }
  if (!d->multishot_) {
    for (auto& qu : d->queues_) {
      qu->rx_free.reset(new uint32_t[qu->nrx]);
      for (uint32_t b = 0; b < qu->nrx; ++b) qu->rx_free[b] = qu->nrx - 1 - b;
      qu->rx_nfree = qu->nrx;
    }
  }
  return d;
}

// ---------------------------------------------------------------------------
// Addresses

PeerAddr UdpDriver::local_addr(uint32_t q) const {
  if (q >= queues_.size()) return 0;
  return PeerAddr{options_.ipv4} << 16 | queues_[q]->port;
}

uint16_t UdpDriver::port(uint32_t q) const { return q < queues_.size() ? queues_[q]->port : 0; }

absl::StatusOr<PeerAddr> UdpDriver::parse_addr(std::string_view text_std) const {
  const sv text(text_std.data(), text_std.size());
  const size_t colon = text.find(':');
  auto ip = parse_ipv4(std::string_view(text.substr(0, colon).data(), text.substr(0, colon).size()));
  uint32_t port = kPortBase;
  if (!ip.ok() || *ip == 0 ||
      (colon != sv::npos && (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port == 0 || port > 65535)))
    return absl::InvalidArgumentError(
        absl::StrCat("udp: bad address \"", text, "\" (want IPv4:PORT or IPv4)"));
  return PeerAddr{*ip} << 16 | port;
}

std::string UdpDriver::format_addr(PeerAddr addr) const {
  return absl::StrCat(format_ipv4(static_cast<uint32_t>(addr >> 16)), ":", addr & 0xFFFF);
}

// ---------------------------------------------------------------------------
// Data path

uint32_t UdpDriver::rx_burst(uint32_t q, std::span<RxPacket> pkts) {
  if (q >= queues_.size()) return 0;
  Queue& qu = *queues_[q];
  if (multishot_) {
    // Completions the kernel has queued as task work (COOP_TASKRUN) become
    // CQEs only when this thread enters the kernel: do so when it says so.
    if (IO_URING_READ_ONCE(*qu.ring.sq.kflags) & IORING_SQ_TASKRUN) io_uring_get_events(&qu.ring);
    qu.reap();
    // (Re-)arm on this thread: the first time, and after the kernel ran out
    // of buffers (the datagrams wait in the socket meanwhile).
    if (!qu.armed && qu.in_ring > 0) {
      io_uring_sqe* sqe = io_uring_get_sqe(&qu.ring);
      if (sqe != nullptr) {
        io_uring_prep_recvmsg_multishot(sqe, 0, &qu.rx_msg, 0);
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
        sqe->buf_group = kBufGroup;
        io_uring_sqe_set_data64(sqe, kRecvTag);
        io_uring_submit(&qu.ring);
        qu.armed = true;
        ++qu.counters.rx_rearms;
        qu.reap();
      }
    }
    const uint32_t n = std::min<uint32_t>(qu.ready_count, static_cast<uint32_t>(pkts.size()));
    for (uint32_t i = 0; i < n; ++i) {
      const RxReady& r = qu.ready[(qu.ready_head + i) % qu.nrx];
      pkts[i].data = std::span<const uint8_t>(qu.rx_buf(r.bid) + kPayloadOff, r.len);
      pkts[i].meta = r.meta;
      pkts[i].handle = r.bid;
    }
    qu.ready_head = (qu.ready_head + n) % qu.nrx;
    qu.ready_count -= n;
    qu.counters.rx_packets += n;
    return n;
  }

  // recvmmsg (mmsg mode, and io_uring mode with rx=recvmmsg) into the armed
  // entries: rvec[0, rx_armed) each hold a free buffer and a ready msghdr.
  // The kernel fills entries from the front and leaves the rest untouched,
  // so a poll that finds nothing costs the call alone, and only the entries
  // it consumed are armed again (with the unfilled ones moved up front).
  const uint32_t want = std::min<uint32_t>(static_cast<uint32_t>(pkts.size()), kMaxBurst);
  while (qu.rx_armed < want && qu.rx_nfree > 0) qu.arm(qu.rx_armed++, qu.rx_free[--qu.rx_nfree]);
  const uint32_t k = std::min(want, qu.rx_armed);
  if (k == 0) return 0;
  const int got = recvmmsg(qu.listen_fd, qu.rvec.data(), k, MSG_DONTWAIT, nullptr);
  if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ++qu.counters.rx_errors;
  const uint32_t m = got > 0 ? static_cast<uint32_t>(got) : 0;
  uint32_t n = 0;
  for (uint32_t j = 0; j < m; ++j) {
    const uint32_t b = qu.rbuf[j];
    uint8_t* buf = qu.rx_buf(b);
    const msghdr& h = qu.rvec[j].msg_hdr;
    RxMeta meta;
    if ((h.msg_flags & MSG_TRUNC) ||
        !Queue::parse_meta(h.msg_namelen, buf + kNameOff, static_cast<uint32_t>(h.msg_controllen),
                           buf + kCtrlOff, meta)) {
      ++qu.counters.rx_dropped;
      qu.rx_free[qu.rx_nfree++] = b;
      continue;
    }
    qu.held[b] = 1;
    pkts[n].data = std::span<const uint8_t>(buf + kPayloadOff, qu.rvec[j].msg_len);
    pkts[n].meta = meta;
    pkts[n].handle = b;
    ++n;
  }
  if (m) {
    for (uint32_t j = m; j < qu.rx_armed; ++j) qu.move_armed(j, j - m);
    qu.rx_armed -= m;
  }
  qu.counters.rx_packets += n;
  return n;
}

void UdpDriver::rx_release(uint32_t q, std::span<RxPacket> pkts) {
  if (q >= queues_.size()) return;
  Queue& qu = *queues_[q];
  int k = 0;
  for (const RxPacket& p : pkts) {
    if (p.handle >= qu.nrx || !qu.held[p.handle]) {
      ++qu.counters.bad_buffers;
      continue;
    }
    const uint32_t b = static_cast<uint32_t>(p.handle);
    qu.held[b] = 0;
    if (multishot_) {
      qu.ring_add(b, k++);
    } else {
      qu.rx_free[qu.rx_nfree++] = b;
    }
  }
  if (k) {
    io_uring_buf_ring_advance(qu.br, k);
    qu.in_ring += k;
  }
}

uint32_t UdpDriver::tx_alloc(uint32_t q, std::span<TxPacket> slots) {
  if (q >= queues_.size()) return 0;
  Queue& qu = *queues_[q];
  if (io_ == IoMode::kUring) qu.reap();  // sends completed since: their buffers are free again
  const uint32_t n = std::min<uint32_t>(qu.nfree, static_cast<uint32_t>(slots.size()));
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t s = qu.free_stack[--qu.nfree];
    qu.state[s] = Queue::kLent;
    slots[i] = TxPacket();
    slots[i].data = qu.tx_buf(s);
    slots[i].capacity = qu.buf_size;
  }
  return n;
}

uint32_t UdpDriver::tx_burst(uint32_t q, std::span<TxPacket> pkts) {
  if (q >= queues_.size()) return 0;
  Queue& qu = *queues_[q];
  const uint32_t nent = options_.entropies;
  uint32_t handed = 0;
  // In chunks of kMaxBurst: stage the valid packets (slot, socket), then cut
  // them into sends: runs of packets that may share one GSO send, else one
  // packet each.
  std::array<uint16_t, kMaxBurst> slot;
  std::array<uint16_t, kMaxBurst> sock;
  for (size_t off = 0; off < pkts.size(); off += kMaxBurst) {
    const auto chunk = pkts.subspan(off, std::min<size_t>(kMaxBurst, pkts.size() - off));
    uint32_t n = 0;
    for (const TxPacket& p : chunk) {
      const int si = qu.tx_slot_of(p);
      if (si < 0) continue;
      const uint32_t s = static_cast<uint32_t>(si);
      if (p.len == 0 || !qu.prepare(s, p)) {
        qu.free_tx(s);
        continue;
      }
      slot[n] = static_cast<uint16_t>(s);
      sock[n++] = static_cast<uint16_t>(p.entropy % nent);
    }
    // A chunk through at most kDirectSockets sockets goes out by sendmmsg,
    // one call per socket: measurably quicker than an io_uring submit for
    // the packets of a request/response (a request on the PDC's path and an
    // ACK on its control path: two sockets; docs/drivers.md). The ring pays
    // off when a sprayed chunk uses more sockets: still one submit.
    uint32_t sockets = 0;
    std::array<uint16_t, kDirectSockets + 1> seen;
    for (uint32_t i = 0; i < n && sockets <= kDirectSockets; ++i) {
      bool known = false;
      for (uint32_t k = 0; k < sockets && !known; ++k) known = seen[k] == sock[i];
      if (!known) seen[sockets++] = sock[i];
    }
    if (io_ == IoMode::kUring && sockets > kDirectSockets) {
      // In burst order: GSO takes runs of consecutive packets.
      uint32_t queued = 0;
      for (uint32_t i = 0; i < n;) {
        uint32_t j = i + 1;
        uint32_t bytes = static_cast<uint32_t>(qu.tx[slot[i]].iov.iov_len);
        if (qu.gso) {
          while (j < n && qu.gso_joins(slot.data(), sock.data(), i, j, bytes))
            bytes += static_cast<uint32_t>(qu.tx[slot[j++]].iov.iov_len);
        }
        io_uring_sqe* sqe = io_uring_get_sqe(&qu.ring);
        if (sqe == nullptr) {  // cannot happen with 2 * kTxSlots entries; stay safe
          io_uring_submit(&qu.ring);
          sqe = io_uring_get_sqe(&qu.ring);
        }
        if (sqe == nullptr) {
          qu.counters.tx_dropped += j - i;
          for (uint32_t k = i; k < j; ++k) qu.free_tx(slot[k]);
          i = j;
          continue;
        }
        qu.lead(slot.data(), i, j);
        for (uint32_t k = i; k < j; ++k) qu.state[slot[k]] = Queue::kInFlight;
        io_uring_prep_sendmsg(sqe, static_cast<int>(1 + sock[i]), &qu.tx[slot[i]].msg, MSG_DONTWAIT);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(sqe, slot[i]);
        queued += j - i;
        i = j;
      }
      if (queued) io_uring_submit(&qu.ring);
      handed += queued;
      continue;
    }
    // sendmmsg: the kernel copies during the call, so every buffer is free
    // after it. One sendmmsg per entropy socket the chunk uses; GSO takes
    // runs of that socket's packets.
    std::array<bool, kMaxBurst> done{};
    std::array<uint16_t, kMaxBurst> mine;   // this socket's packets, in order
    std::array<uint16_t, kMaxBurst> lead;   // the leading slot of message c
    for (uint32_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      uint32_t m = 0;
      for (uint32_t j = i; j < n; ++j) {
        if (done[j] || sock[j] != sock[i]) continue;
        done[j] = true;
        mine[m++] = slot[j];
      }
      std::array<uint16_t, kMaxBurst> same;  // gso_joins compares sockets: all equal here
      same.fill(sock[i]);
      uint32_t c = 0;
      for (uint32_t a = 0; a < m;) {
        uint32_t b = a + 1;
        uint32_t bytes = static_cast<uint32_t>(qu.tx[mine[a]].iov.iov_len);
        if (qu.gso) {
          while (b < m && qu.gso_joins(mine.data(), same.data(), a, b, bytes))
            bytes += static_cast<uint32_t>(qu.tx[mine[b++]].iov.iov_len);
        }
        qu.lead(mine.data(), a, b);
        lead[c] = mine[a];
        qu.svec[c].msg_hdr = qu.tx[mine[a]].msg;
        qu.svec[c++].msg_len = 0;
        a = b;
      }
      const int r = sendmmsg(qu.efds[sock[i]], qu.svec.data(), c, MSG_DONTWAIT);
      const int err = r < 0 ? errno : 0;
      const uint32_t ok = r > 0 ? static_cast<uint32_t>(r) : 0;
      for (uint32_t k = 0; k < c; ++k) {
        TxSlot& t = qu.tx[lead[k]];
        if (k < ok) {
          handed += 1u + t.nriders;
          qu.sent(lead[k], 0);
        } else {
          // sendmmsg reports the error of the first message it could not
          // send; the rest were not tried.
          qu.sent(lead[k], k == ok && err ? -err : -EAGAIN);
        }
      }
    }
  }
  qu.counters.tx_packets += handed;
  if (io_ == IoMode::kUring) qu.reap();  // UDP sends mostly complete inside the submit
  return handed;
}

// ---------------------------------------------------------------------------
// Counters

UdpCounters UdpDriver::counters() const {
  UdpCounters t;
  for (const auto& qu : queues_) add_counters(t, qu->counters);
  return t;
}

const UdpCounters& UdpDriver::queue_counters(uint32_t q) const { return queues_.at(q)->counters; }

std::string UdpDriver::dump() const {
  const UdpCounters c = counters();
  std::string out = absl::StrFormat("udp driver %s, io %s, rx %s: %u queues, %u entropies, mtu %u, rx_buffers %u\n",
                                    format_ipv4(options_.ipv4), io_ == IoMode::kUring ? "uring" : "mmsg",
                                    multishot_ ? "multishot" : "recvmmsg",
                                    queues_.size(), options_.entropies, options_.mtu, options_.rx_buffers);
  for (const auto& qu : queues_)
    absl::StrAppendFormat(&out, "  q%u port %u (entropy ports %u..%u step %u): %u tx buffers free\n", qu->index,
                          qu->port, entropy_port(qu->port, 0), entropy_port(qu->port, options_.entropies - 1),
                          kPortStride, qu->nfree);
  absl::StrAppendFormat(&out,
                        "  tx %u tx_errors %u tx_dropped %u tx_gso_sends %u gso_refused %u rx %u rx_dropped %u "
                        "rx_rearms %u rx_errors %u bad_buffers %u\n",
                        c.tx_packets, c.tx_errors, c.tx_dropped, c.tx_gso_sends, c.gso_refused, c.rx_packets,
                        c.rx_dropped, c.rx_rearms, c.rx_errors, c.bad_buffers);
  return out;
}

// ---------------------------------------------------------------------------
// URI

absl::StatusOr<std::unique_ptr<Driver>> open_udp(std::string_view rest_std, uint32_t queues) {
  const sv rest(rest_std.data(), rest_std.size());
  const size_t qm = rest.find('?');
  const sv authority = rest.substr(0, qm);
  UdpOptions o;
  const size_t colon = authority.find(':');
  const sv host = authority.substr(0, colon);
  auto ip = parse_ipv4(std::string_view(host.data(), host.size()));
  if (!ip.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("udp: URI \"udp://", rest, "\" does not start with a local IPv4 address (udp://IP[:PORT])"));
  o.ipv4 = *ip;
  if (colon != sv::npos) {
    uint32_t port;
    if (!absl::SimpleAtoi(authority.substr(colon + 1), &port) || port > 65535)
      return absl::InvalidArgumentError(
          absl::StrCat("udp: port \"", authority.substr(colon + 1), "\" is not 0..65535"));
    o.port = static_cast<uint16_t>(port);
  }
  sv query = qm == sv::npos ? sv() : rest.substr(qm + 1);
  ASSIGN_OR_RETURN(const std::vector<UriOption> options, split_uri_options("udp", query));
  for (const auto& [key, value] : options) {
    bool ok = true;
    if (key == "entropies") {
      ok = absl::SimpleAtoi(value, &o.entropies);
    } else if (key == "mtu") {
      ok = absl::SimpleAtoi(value, &o.mtu);
    } else if (key == "io") {
      if (value == "uring") {
        o.io = IoMode::kUring;
      } else if (value == "mmsg") {
        o.io = IoMode::kMmsg;
      } else {
        ok = false;
      }
    } else if (key == "rx_buffers") {
      ok = absl::SimpleAtoi(value, &o.rx_buffers);
    } else if (key == "rx") {
      if (value == "multishot") {
        o.rx = RxMode::kMultishot;
      } else if (value == "recvmmsg") {
        o.rx = RxMode::kRecvmmsg;
      } else {
        ok = false;
      }
    } else if (key == "gso") {
      ok = value == "0" || value == "1";
      o.gso = value == "1";
    } else if (key == "sockbuf") {
      ok = absl::SimpleAtoi(value, &o.sockbuf) && o.sockbuf > 0 && o.sockbuf <= (1u << 30);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "udp: unknown option \"", key, "\" (known: entropies, mtu, io, rx, rx_buffers, sockbuf, gso)"));
    }
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat("udp: option ", key, "=\"", value, "\" is not valid"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<UdpDriver> d, UdpDriver::open(o, queues));
  return std::unique_ptr<Driver>(std::move(d));
}

}  // namespace shoal::udp
