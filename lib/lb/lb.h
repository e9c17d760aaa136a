// lib/lb: path (entropy) selection, the contract every policy implements.
//
// Entropy is the UDP source port of a packet. ECMP switches hash the 5-tuple,
// so packets of one PDC that carry different entropies usually take different
// paths. A PDC asks its policy for an entropy for every packet it sends (new or
// retransmitted), remembers it in the packet's send record, and reports what
// became of the packet per entropy: acknowledged (with its RTT sample and
// whether the ACK echoed ECN-CE), declared lost (RACK/SACK), NACKed as trimmed,
// or timed out (RTO). This is ARCHITECTURE rule 5, shaped like the CC
// contract of rule 4 and like ngtcp2's ngtcp2_cc: a table of hooks (LbOps),
// per-PDC state inline in the PDC (LbState), registration by name.
//
// Driving it (sans-I/O): the caller passes `now` and a seeded Rng; hooks never
// read a clock, never allocate, never block. All hooks of one PDC run on the
// engine thread that owns the PDC. Report a loss before choosing the entropy
// of its retransmission, so that an adaptive policy can steer the retransmission
// away from the failed path.
//
// Invariants:
// - Every entropy a policy returns lies in [entropy_base, entropy_base + entropy_count).
// - Per-PDC policy state fits in kLbStateBytes (each policy static_asserts it),
//   is trivially copyable and needs no destructor, so a PDC may be memset,
//   copied or dropped without telling the policy.
// - Feedback for an entropy outside the PDC's set is ignored (a stale or
//   corrupted send record must not corrupt path state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/base/rng.h"
#include "lib/base/time.h"

namespace shoal::lb {

enum class SprayMode : uint8_t {
  kRoundRobin = 0,  // a per-PDC odd stride over the set: N calls visit all N entropies
  kRandom = 1,      // uniform draws from the caller's Rng
};

// Configuration, shared by all PDCs that use it. The owner keeps it alive and
// unchanged while any PathSelector points at it (like PdsConfig).
struct LbParams {
  // The set of entropies is [entropy_base, entropy_base + entropy_count).
  // entropy_count is a power of two in [1, 32768]: then every odd stride
  // visits the whole set and wrapping is a mask. The default (256 ports from
  // 49152) gives each PDC many more paths than a two-tier fabric has.
  uint16_t entropy_base = 0xC000;
  uint16_t entropy_count = 256;
  // spray, and adaptive's exploration of fresh entropies.
  SprayMode spray_mode = SprayMode::kRoundRobin;

  // ---- adaptive ----
  // An ACK whose RTT exceeds slow_rtt_factor x the PDC's min RTT marks its
  // entropy as slow (queueing on that path): it is not recycled.
  double slow_rtt_factor = 1.5;
  // An entropy whose packet was lost or timed out is quarantined for
  // max(quarantine_min, quarantine_rtts x min RTT), doubled after each failed
  // probe up to quarantine_max. Relative to the RTT so that a quarantine
  // outlasts the few round trips in which the PDC still reports losses of
  // packets already in flight on that path; with the floor it is 50 us
  // before any RTT sample and for a typical 2-5 us datacenter RTT.
  Duration quarantine_min = Duration::micros(50);
  uint32_t quarantine_rtts = 16;
  Duration quarantine_max = Duration::millis(10);
  // Once a quarantine ends one probe packet may use the entropy; if no verdict
  // (ACK, loss, trim, timeout) came within probe_interval, another probe may go.
  Duration probe_interval = Duration::micros(50);

  // Mixed with each PDC's seed, so that two runs (or two hosts) with different
  // seeds spread the same PDCs differently.
  uint64_t seed = 0;
};

// Checks what init() assumes. InvalidArgument names the first bad field.
absl::Status validate_lb_params(const LbParams& params);

// Path health; plain counters an exporter reads (rule 8). A PDC's selector
// counts into a block its owner shares among its PDCs (PathSelector::init),
// so that an idle PDC does not carry 56 bytes of statistics.
struct LbCounters {
  uint64_t choices = 0;       // choose_entropy calls
  uint64_t explored = 0;      // fresh entropies drawn from the spray sequence
  uint64_t recycled = 0;      // entropies reused from the recycle cache
  uint64_t not_recycled = 0;  // ACKs whose entropy was CE-marked or slow
  uint64_t quarantined = 0;   // entropies put in (or back in) quarantine
  uint64_t probes = 0;        // probe packets on an entropy whose quarantine ended
  uint64_t reinstated = 0;    // quarantined entropies that came back by a probe
};

// Bytes of policy-private state inline in every PDC. The largest builtin
// (adaptive) needs 108; see lib/lb/policies.h for each layout.
inline constexpr size_t kLbStateBytes = 112;

struct LbState {
  const LbParams* params = nullptr;  // set by PathSelector::init
  LbCounters* counters = nullptr;    // the owner's, set by PathSelector::init
  alignas(8) std::byte storage[kLbStateBytes];

  // The policy's view of `storage`. T must fit and be trivially copyable.
  template <typename T>
  T& as() {
    static_assert(sizeof(T) <= kLbStateBytes, "policy state does not fit kLbStateBytes");
    static_assert(alignof(T) <= 8 && std::is_trivially_copyable_v<T> &&
                  std::is_trivially_destructible_v<T>);
    return *std::launder(reinterpret_cast<T*>(storage));
  }
  template <typename T>
  const T& as() const {
    return const_cast<LbState*>(this)->as<T>();
  }
};

// A policy. All hooks are required (a policy that ignores feedback supplies
// no-ops), and are called on the PDC's engine thread only.
struct LbOps {
  const char* name = nullptr;
  // Bytes of `storage` the policy uses; at most kLbStateBytes.
  size_t state_size = 0;
  // Builds the policy state from validated params and the PDC's seed (e.g. a
  // hash of its peer and id). Deterministic: same inputs, same choices.
  void (*init)(LbState& s, const LbParams& params, uint64_t pdc_seed) = nullptr;
  // The entropy for the next packet. `retransmission`: the packet was
  // declared lost once already, so a policy should pick a path it trusts (a
  // retransmission sent as a probe of a doubtful path, lost again, costs
  // another timeout; with one packet in flight it can cost every one).
  uint16_t (*choose_entropy)(LbState& s, TimePoint now, Rng& rng, bool retransmission) = nullptr;
  // A packet sent on `entropy` was acknowledged; `rtt` is its sample (zero if
  // the PDC has none, e.g. an ambiguous retransmission), `ecn_ce` whether its
  // ACK echoed a CE mark.
  void (*on_ack)(LbState& s, uint16_t entropy, Duration rtt, bool ecn_ce, TimePoint now) = nullptr;
  // Declared lost by RACK or SACK.
  void (*on_loss)(LbState& s, uint16_t entropy, TimePoint now) = nullptr;
  // NACKed because a switch trimmed its payload (a full queue on that path).
  void (*on_trim)(LbState& s, uint16_t entropy, TimePoint now) = nullptr;
  // Resolved by the retransmission timer.
  void (*on_timeout)(LbState& s, uint16_t entropy, TimePoint now) = nullptr;
};

// Adds a policy to the registry (the ops are copied, name included).
// InvalidArgument: empty name, a missing hook, or state_size > kLbStateBytes.
// AlreadyExists: the name is taken (builtins included).
// Not thread-safe: register during start-up, before engines run (like DPDK's
// driver registration); find_lb may then be called from any thread.
absl::Status register_lb(const LbOps& ops);

// The policy registered as `name`. NotFound if none. The pointer stays valid
// for the life of the process.
absl::StatusOr<const LbOps*> find_lb(std::string_view name);

// Names of all policies, builtins ("ecmp", "spray", "adaptive") first.
std::vector<std::string> lb_names();

// What a PDC embeds: a policy bound to its state. Thin inline forwarding, so a
// PDC calls one indirect function per packet and per feedback.
class PathSelector {
 public:
  // `params` must have passed validate_lb_params and outlive the selector;
  // `counters` (not null) outlives it too and may be shared by selectors of
  // the same thread.
  void init(const LbOps& ops, const LbParams& params, uint64_t pdc_seed, LbCounters* counters) {
    ops_ = &ops;
    state_.params = &params;
    state_.counters = counters;
    ops.init(state_, params, pdc_seed);
  }

  uint16_t choose_entropy(TimePoint now, Rng& rng, bool retransmission = false) {
    return ops_->choose_entropy(state_, now, rng, retransmission);
  }
  void on_ack(uint16_t entropy, Duration rtt, bool ecn_ce, TimePoint now) {
    ops_->on_ack(state_, entropy, rtt, ecn_ce, now);
  }
  void on_loss(uint16_t entropy, TimePoint now) { ops_->on_loss(state_, entropy, now); }
  void on_trim(uint16_t entropy, TimePoint now) { ops_->on_trim(state_, entropy, now); }
  void on_timeout(uint16_t entropy, TimePoint now) { ops_->on_timeout(state_, entropy, now); }

  const LbOps* ops() const { return ops_; }
  const LbCounters& counters() const { return *state_.counters; }
  const LbState& state() const { return state_; }
  // One line for a PDC's dump(): policy name and counters.
  std::string dump() const;

 private:
  const LbOps* ops_ = nullptr;
  LbState state_;
};

}  // namespace shoal::lb
