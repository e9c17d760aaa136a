// lib/lb internals: the builtin policies' per-PDC state layouts and ops.
//
// Internal header: the PDC sees only lib/lb/lb.h. The layouts are here (not
// hidden in each .cc) so that tests can check their sizes and so that the
// spray sequence, shared by spray and adaptive, has one implementation.
//
// Invariants: every layout is trivially copyable and static_asserts its size;
// entropies are stored as ports (not indices) so feedback needs no
// conversion; an entropy `e` belongs to the set iff uint16(e - base) <= mask.
#pragma once

#include <cstdint>

#include "lib/lb/lb.h"

namespace shoal::lb {

// SplitMix64's finalizer: turns PDC ids and seeds (often small consecutive
// numbers) into well-spread bits.
inline constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t pdc_hash(const LbParams& p, uint64_t pdc_seed) {
  return mix64(mix64(pdc_seed + 0x9e3779b97f4a7c15ULL) ^ p.seed);
}

// The spray set and a walk over it, without storing the set: the k-th fresh
// entropy is base + ((offset + k * stride) & mask). The stride is odd and the
// set size a power of two, so any N consecutive steps visit all N entropies.
// Offset and stride come from the PDC seed, so PDCs to the same peer do not
// walk the paths in lockstep. The 16-bit counter may wrap: 65536 is a
// multiple of N, so the walk continues seamlessly.
struct SpraySeq {
  uint16_t base = 0;
  uint16_t mask = 0;  // entropy_count - 1
  uint16_t offset = 0;
  uint16_t stride = 1;
  uint16_t counter = 0;
  SprayMode mode = SprayMode::kRoundRobin;

  void init(const LbParams& p, uint64_t h) {
    base = p.entropy_base;
    mask = static_cast<uint16_t>(p.entropy_count - 1);
    offset = static_cast<uint16_t>(h) & mask;
    stride = static_cast<uint16_t>((h >> 16) | 1) & mask;
    if (mask == 0) stride = 0;
    counter = 0;
    mode = p.spray_mode;
  }
  bool contains(uint16_t e) const { return static_cast<uint16_t>(e - base) <= mask; }
  uint16_t next(Rng& rng) {
    if (mode == SprayMode::kRandom) return static_cast<uint16_t>(base + rng.below(mask + 1u));
    const uint16_t i = static_cast<uint16_t>(offset + uint32_t{counter} * stride) & mask;
    ++counter;
    return static_cast<uint16_t>(base + i);
  }
};
static_assert(sizeof(SpraySeq) == 12);

// ecmp: one entropy for the PDC's life, as RoCE does today.
struct EcmpState {
  uint16_t entropy;
};
static_assert(sizeof(EcmpState) == 2);

// spray: the sequence only; no per-entropy memory.
struct SprayState {
  SpraySeq seq;
};
static_assert(sizeof(SprayState) == 12);

// adaptive: REPS-style recycling plus quarantine.
//
// Recycle cache: a FIFO ring of entropies whose packets came back clean. An
// entropy leaves it when chosen, so the cache holds "known good and not in
// use"; when it is empty a fresh entropy is explored. 16 slots: enough to
// keep a window's worth of good paths turning over (only entropies not
// currently in flight wait here), small enough to stay at 32 bytes.
//
// Quarantine: a list of entropies that lost packets, each with a deadline,
// a backoff level and a probing flag. Exploration skips listed entropies.
// There is no per-entropy bitset: with N = 256 it would cost 32 bytes and
// still need per-entry deadlines; a scan of 8 ports is as cheap. Entropies
// failing beyond 8 at once are still never recycled (only clean ACKs feed the
// cache); they are merely not skipped by exploration, which revisits each of
// them once per N explorations. When the list is full the entry closest to
// release is evicted.
//
// Deadlines are 32-bit "coarse ticks" (ns >> 8, 256 ns) to keep an entry at 4
// bytes of time. Ticks wrap every ~18 minutes; a deadline further ahead than
// any quarantine could set (quarantine_max or probe_interval) is taken as
// expired, so an idle PDC coming back after a wrap at worst keeps an entropy
// out of use for one more quarantine period.
inline constexpr int kRecycleSlots = 16;
inline constexpr int kQuarantineSlots = 8;
inline constexpr uint8_t kMaxQuarantineLevel = 20;

struct AdaptiveState {
  SpraySeq seq;                  // 12: exploration order
  uint32_t min_rtt_ns;           // 4: 0 until the first sample; never grows (see adaptive.cc)
  uint8_t ring_head;             // 1: oldest entry
  uint8_t ring_count;            // 1
  uint8_t q_count;               // 1: entries [0, q_count) of the q_* arrays are live
  uint8_t q_probing;             // 1: bit i: entry i's quarantine ended and a probe is out
  uint16_t ring[kRecycleSlots];  // 32
  uint16_t q_entropy[kQuarantineSlots];   // 16
  uint32_t q_deadline[kQuarantineSlots];  // 32: coarse ticks; end of quarantine or probe wait
  uint8_t q_level[kQuarantineSlots];      // 8: quarantine = base << level
};
static_assert(sizeof(AdaptiveState) == 108);
static_assert(sizeof(AdaptiveState) <= kLbStateBytes);

extern const LbOps kEcmpOps;
extern const LbOps kSprayOps;
extern const LbOps kAdaptiveOps;

}  // namespace shoal::lb
