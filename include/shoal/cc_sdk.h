// Shoal CC SDK (internal tier, C++): the congestion-control contract.
//
// A congestion-control algorithm is a table of hooks (`CcOps`), in the spirit
// of Linux `tcp_congestion_ops` and ngtcp2's `ngtcp2_cc`. The PDC owns one
// `CcState` per connection (inline, 128 bytes, two cache lines), feeds the
// hooks sample structs as ACKs, losses, timeouts, trims and credits arrive,
// and obeys the decision the hooks leave in the state's public fields:
//
//   cwnd_bytes      bytes the PDC may have in flight;
//   pacing_rate     bytes/s between transmissions (0 = unpaced);
//   credit_bytes    receiver-granted bytes still spendable, when
//                   credit_limited (EQDS).
//
// The algorithm keeps its own per-PDC state in the opaque `priv` area; each
// algorithm static_asserts that its struct fits (cc_priv<T>() checks too).
// Algorithm-wide knobs live in a `CcParams` shared by every PDC that uses the
// algorithm (one per engine and traffic class) and are passed to every hook,
// so per-PDC state stays small.
//
// Time: hooks are sans-I/O. They never read a clock; every sample carries
// `now`. Rate-based algorithms (DCQCN) need events with no ACK in sight; for
// them the PDC arms a timer at `next_timer()` and calls `on_timer(now)` when
// it is due. Algorithms must also catch up lazily from `now` on any hook, so
// a late or coalesced timer loses nothing but a little precision.
//
// Driving order per PDC (engine thread only; no hook is thread-safe):
//   init                     once, when the PDC opens (control path)
//   on_send                  after every transmission, new or retransmitted
//   on_ack / on_loss / on_timeout / on_trim / on_credit   as signals arrive
//   on_spurious_loss         a packet declared lost arrived without retransmission
//   next_timer / on_timer    whenever the PDC re-arms / fires its timers
//
// Invariants every algorithm keeps after every hook:
//   - cwnd_bytes >= 1 (the PDC may always have one packet in flight anyway,
//     see cc_window_allows, so a sub-packet window works through pacing);
//   - pacing_rate == 0 or pacing_rate >= 1;
//   - no allocation, no I/O, no clock reads on any hook but init/dump.
//
// The receiver side of receiver-driven algorithms (the EQDS credit
// scheduler) is per engine, not per PDC: see lib/cc/eqds.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "lib/base/time.h"

namespace shoal::cc {

// ---- parameters ---------------------------------------------------------------

// Knobs of `fixed`.
struct FixedParams {
  uint64_t window_bytes = 0;  // 0 = one BDP (link_rate * base_rtt), at least one MTU
};

// Knobs of `swift` (lib/cc/swift.h explains each and how defaults were chosen).
// Windows are in packets (of `mtu` bytes) and may be fractional.
struct SwiftParams {
  Duration base_target = Duration::zero();   // 0 = base_rtt + base_rtt / 4
  Duration hop_scale = Duration::micros(1);  // target grows this much per hop
  double fs_range_factor = 5.0;              // flow-scaling range = factor * base target
  double fs_min_cwnd = 0.1;                  // window (pkts) at which flow scaling is fs_range
  double fs_max_cwnd = 100.0;                // window (pkts) at which flow scaling is 0
  double ai = 1.0;                           // additive increase, packets per RTT
  double beta = 0.8;                         // multiplicative-decrease gain
  double max_mdf = 0.5;                      // most a single decrease may cut
  double min_cwnd = 0.001;                   // packets; below 1 the sender paces
  double max_cwnd = 0;                       // packets; 0 = 4 BDP
  double init_cwnd = 0;                      // packets; 0 = 1 BDP
  uint32_t retx_reset_threshold = 5;         // consecutive RTOs that reset cwnd to min
  // A loss cuts only while srtt is at or above base_target (a queue is
  // there); true: every loss cuts, as in the paper's fast recovery.
  bool cut_on_any_loss = false;
};

// Knobs of `dcqcn` (lib/cc/dcqcn.h). Rates are bytes per second.
struct DcqcnParams {
  double g = 1.0 / 256;  // alpha EWMA gain
  double initial_alpha = 1.0;
  Duration cnp_interval = Duration::micros(50);  // at most one cut per interval
  Duration alpha_timer = Duration::micros(55);   // alpha decays once per period without a cut
  Duration increase_timer = Duration::micros(55);
  uint64_t byte_counter = 10ull * 1000 * 1000;  // bytes sent per byte-counter event
  uint32_t fast_recovery_steps = 5;             // F
  double rate_ai = 40e6 / 8;                    // R_AI: 40 Mb/s
  double rate_hai = 400e6 / 8;                  // R_HAI: 400 Mb/s
  double min_rate = 10e6 / 8;                   // 10 Mb/s
  double cwnd_bdp_factor = 2.0;                 // cwnd cap = factor * BDP at line rate
  // A loss counts as a notification only if a CE came back within the last
  // cnp_interval (a queue that overflows marks first); true: every loss does.
  bool cut_on_any_loss = false;
  // Scale an ECN-driven cut by the fraction of packets ACKed CE-marked over
  // the last one to two cnp_intervals (see lib/cc/dcqcn.h); false: the
  // paper's cut, Rc *= 1 - alpha/2 on any mark.
  bool mark_scaled_cut = false;
};

// Knobs of `eqds` (lib/cc/eqds.h).
struct EqdsParams {
  uint64_t initial_window_bytes = 0;  // unsolicited bytes a new sender may send; 0 = one BDP
  double headroom = 0.02;             // receiver keeps this fraction of its line rate ungranted
  uint32_t grant_quantum = 0;         // bytes per credit grant; 0 = one MTU
  uint32_t max_burst_grants = 4;      // grants a late poll may emit back to back
};

// Passed to every hook. One per engine and traffic class; kept alive and
// unchanged while any PDC uses it.
struct CcParams {
  double link_rate = 100e9 / 8;              // bytes/s of the local link
  uint32_t mtu = 4096;                       // payload bytes of a full packet
  Duration base_rtt = Duration::micros(10);  // unloaded fabric round trip
  uint32_t hops = 0;                         // switch hops to peers, 0 = unknown
  uint32_t flows = 1;                        // expected concurrent flows sharing the link
  FixedParams fixed;
  SwiftParams swift;
  DcqcnParams dcqcn;
  EqdsParams eqds;
  const void* ext = nullptr;  // knobs of an out-of-tree algorithm

  // Bandwidth-delay product in bytes, at least one MTU.
  uint64_t bdp_bytes() const {
    const double bdp = link_rate * base_rtt.sec();
    return bdp < mtu ? mtu : static_cast<uint64_t>(bdp);
  }
};

// Checks the common fields and every built-in algorithm's knobs.
// Errors: InvalidArgument naming the first bad field.
absl::Status validate(const CcParams& p);

// Sets the knob `key` ("dcqcn.g", "swift.ai", "link_gbps"; param_names() lists
// them all; durations in us, rates in Gb/s) from text. Errors: NotFound for
// an unknown name, InvalidArgument for a value that does not parse; either
// way `p` is unchanged. Cross-field checks are validate()'s.
absl::Status set_param(CcParams& p, std::string_view key, std::string_view value);
// The same from "key=value".
absl::Status set_param(CcParams& p, std::string_view key_eq_value);
std::vector<std::string_view> param_names();

// ---- per-PDC state ----------------------------------------------------------------

inline constexpr size_t kCcPrivBytes = 96;

// Lives inline in the PDC. The first 32 bytes are what the PDC reads on every
// transmission; `priv` belongs to the algorithm.
struct alignas(64) CcState {
  // Bytes the PDC may have in flight (sent, neither acked nor declared lost).
  uint64_t cwnd_bytes = 0;
  // Pacing rate in bytes/s: the PDC spaces transmissions by bytes/pacing_rate.
  // 0 = unpaced (window-limited only).
  uint64_t pacing_rate = 0;
  // Receiver-granted bytes the sender may still send; meaningful only when
  // credit_limited. May be negative only if the PDC sent without checking.
  int64_t credit_bytes = 0;
  // True when transmissions also need credit_bytes >= packet bytes (EQDS).
  bool credit_limited = false;
  uint8_t reserved[7] = {};
  // The algorithm's own state; see cc_priv().
  alignas(16) unsigned char priv[kCcPrivBytes] = {};
};
static_assert(sizeof(CcState) == 128, "CcState: two cache lines");

// The algorithm's view of `priv`. T must fit, be trivially destructible (no
// teardown hook exists) and be constructed by cc_priv_init in init.
template <typename T>
constexpr void cc_check_priv() {
  static_assert(sizeof(T) <= kCcPrivBytes, "algorithm state does not fit CcState::priv");
  static_assert(alignof(T) <= 16, "algorithm state over-aligned for CcState::priv");
  static_assert(std::is_trivially_destructible_v<T>,
                "algorithm state must be trivially destructible");
}
template <typename T>
T& cc_priv_init(CcState& s) {
  cc_check_priv<T>();
  return *::new (static_cast<void*>(s.priv)) T{};
}
template <typename T>
T& cc_priv(CcState& s) {
  cc_check_priv<T>();
  return *std::launder(reinterpret_cast<T*>(s.priv));
}
template <typename T>
const T& cc_priv(const CcState& s) {
  cc_check_priv<T>();
  return *std::launder(reinterpret_cast<const T*>(s.priv));
}

// Whether the window and credit let the PDC send `bytes` more now, with
// `in_flight` bytes outstanding. A PDC with nothing in flight may always send
// one packet (sub-packet Swift windows are enforced by pacing instead); credit
// is never overdrawn. Pacing is the PDC's separate check.
inline bool cc_window_allows(const CcState& s, uint64_t in_flight, uint32_t bytes) {
  if (in_flight != 0 && in_flight + bytes > s.cwnd_bytes) return false;
  if (s.credit_limited && s.credit_bytes < static_cast<int64_t>(bytes)) return false;
  return true;
}

// ---- samples --------------------------------------------------------------------

// An ACK (or SACK) that newly acknowledged data.
struct AckSample {
  TimePoint now;
  uint64_t acked_bytes = 0;         // newly acknowledged bytes
  uint32_t acked_packets = 0;       // newly acknowledged packets
  uint32_t ce_packets = 0;          // CE-marked packets this ACK reports (ECN echo)
  Duration rtt = Duration::zero();  // RTT sample; zero = none (e.g. Karn: retransmitted)
  uint64_t bytes_in_flight = 0;     // after this ACK
  uint32_t mtu = 0;                 // full-packet payload bytes; 0 = CcParams::mtu
  uint32_t hops = 0;                // hops the data took, if known; 0 = CcParams::hops
};

// Packets declared lost by RACK / SACK / NACK (a fast retransmission follows).
struct LossSample {
  TimePoint now;
  uint64_t lost_bytes = 0;
  uint32_t lost_packets = 0;
  uint64_t bytes_in_flight = 0;  // after removing the lost packets
};

// Packets an earlier LossSample declared lost were delivered after all, before
// being retransmitted (RACK mistook reordering for loss, e.g. under packet
// spraying): the reaction to that loss may be undone.
struct SpuriousLossSample {
  TimePoint now;
  uint64_t bytes = 0;    // bytes of the packet found not lost
  uint32_t packets = 0;
};

// The retransmission timer fired.
struct TimeoutSample {
  TimePoint now;
  uint64_t bytes_in_flight = 0;
};

// A NACK said a switch trimmed these packets' payloads (congestion, not loss
// of the network path). The PDC retransmits them.
struct TrimSample {
  TimePoint now;
  uint64_t trimmed_bytes = 0;
  uint32_t trimmed_packets = 0;
};

// The receiver granted credit (EQDS CREDIT control packet).
struct CreditSample {
  TimePoint now;
  uint64_t credit_bytes = 0;  // bytes this grant adds
  // The receiver's cumulative grant for this PDC, if the packet carries it
  // (0 = not carried). Lets a lost or reordered CREDIT be repaired by the next.
  uint64_t granted_total = 0;
};

// ---- the operations table ----------------------------------------------------

enum CcFlags : uint32_t {
  // The sender spends receiver credit: the engine must run an eqds
  // CreditScheduler on the receive side and carry CREDIT / CREDIT_REQ.
  kCcFlagReceiverCredit = 1u << 0,
};

struct CcOps {
  const char* name = nullptr;  // unique; a string with static storage
  uint32_t flags = 0;          // CcFlags

  // Required hooks.
  // Writes the initial decision and constructs the private state.
  void (*init)(CcState& s, const CcParams& p, TimePoint now) = nullptr;
  void (*on_ack)(CcState& s, const CcParams& p, const AckSample& a) = nullptr;
  void (*on_loss)(CcState& s, const CcParams& p, const LossSample& l) = nullptr;
  void (*on_timeout)(CcState& s, const CcParams& p, const TimeoutSample& t) = nullptr;

  // Optional hooks (nullptr = the event does not concern the algorithm).
  void (*on_trim)(CcState& s, const CcParams& p, const TrimSample& t) = nullptr;
  void (*on_credit)(CcState& s, const CcParams& p, const CreditSample& c) = nullptr;
  // After each transmission of `bytes` (new data or retransmission).
  void (*on_send)(CcState& s, const CcParams& p, uint32_t bytes, TimePoint now) = nullptr;
  // A pair: both or neither. next_timer says when on_timer must run next
  // (TimePoint::max() = nothing pending); calling on_timer early is harmless.
  void (*on_timer)(CcState& s, const CcParams& p, TimePoint now) = nullptr;
  TimePoint (*next_timer)(const CcState& s, const CcParams& p) = nullptr;
  // A loss reported earlier was spurious (SpuriousLossSample): undo what
  // on_loss did for it, if the algorithm can tell. Called once per packet
  // found delivered while waiting for its retransmission.
  void (*on_spurious_loss)(CcState& s, const CcParams& p, const SpuriousLossSample& l) = nullptr;
  // One-line description of the private state, for dump() (control path).
  std::string (*dump)(const CcState& s, const CcParams& p) = nullptr;
};

// Dispatch helpers for the optional hooks, so callers need no null checks.
inline void cc_on_trim(const CcOps& o, CcState& s, const CcParams& p, const TrimSample& t) {
  if (o.on_trim) o.on_trim(s, p, t);
}
inline void cc_on_credit(const CcOps& o, CcState& s, const CcParams& p, const CreditSample& c) {
  if (o.on_credit) o.on_credit(s, p, c);
}
inline void cc_on_spurious_loss(const CcOps& o, CcState& s, const CcParams& p,
                                const SpuriousLossSample& l) {
  if (o.on_spurious_loss) o.on_spurious_loss(s, p, l);
}
inline void cc_on_send(const CcOps& o, CcState& s, const CcParams& p, uint32_t bytes,
                       TimePoint now) {
  if (o.on_send) o.on_send(s, p, bytes, now);
}
inline void cc_on_timer(const CcOps& o, CcState& s, const CcParams& p, TimePoint now) {
  if (o.on_timer) o.on_timer(s, p, now);
}
inline TimePoint cc_next_timer(const CcOps& o, const CcState& s, const CcParams& p) {
  return o.next_timer ? o.next_timer(s, p) : TimePoint::max();
}
std::string cc_dump(const CcOps& o, const CcState& s, const CcParams& p);

// ---- registry ---------------------------------------------------------------------
//
// A process-wide table of algorithms by name. The built-ins (fixed, swift,
// dcqcn, eqds) are always present: the table is seeded from lib/cc/registry.cc
// on first use, so no self-registering object can be dead-stripped.
// register_cc is a control-path call: make it at startup, before engine
// threads look algorithms up (lookups are then read-only and safe).

inline constexpr size_t kMaxCcAlgorithms = 32;

// Copies `ops` into the table. Errors: InvalidArgument if the name is empty
// or a required hook (init, on_ack, on_loss, on_timeout) is missing, or only
// one of on_timer/next_timer is set; AlreadyExists if the name is taken;
// ResourceExhausted if kMaxCcAlgorithms are registered.
absl::Status register_cc(const CcOps& ops);

// The algorithm named `name`, or nullptr. The pointer stays valid for the
// life of the process.
const CcOps* find_cc(std::string_view name);

// Names of every registered algorithm, built-ins first, in registration order.
std::vector<std::string_view> cc_names();

}  // namespace shoal::cc
