// A small seeded pseudo-random generator (xoshiro256**, seeded by SplitMix64).
//
// Why our own: simulations and chaos tests must reproduce bit for bit from a
// seed on every platform and library version, and the core must not read
// global state. Abseil's generators explicitly do not promise stable
// sequences across versions, and <random>'s distributions differ between
// standard libraries. This one is 20 lines and the same everywhere.
#pragma once

#include <cstdint>

namespace shoal {

class Rng {
 public:
  explicit Rng(uint64_t seed = 1) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : s_) s = splitmix64(x);
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double uniform01() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // True with probability p (p <= 0 never draws, so a zero-loss link stays
  // on the same sequence as before).
  bool bernoulli(double p) { return p > 0 && uniform01() < p; }
  // Uniform in [0, n); n > 0. Lemire's multiply-shift, slightly biased for
  // huge n, which no caller here needs.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

}  // namespace shoal
