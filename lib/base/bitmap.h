// RingBitmap: a fixed-capacity bitmap addressed by a wrapping position.
//
// The PDS receiver keeps one per PDC: bit (psn mod capacity) says "this PSN
// arrived" for PSNs in the window [cack+1, cack+capacity]. Positions are
// taken modulo the capacity, so the window slides by clearing the bits it
// leaves behind; nothing moves.
//
// Invariants: capacity is a power of two and a multiple of 64; a caller never
// addresses more than `capacity` consecutive positions at once.
#pragma once

#include <cstdint>
#include <vector>

namespace shoal {

class RingBitmap {
 public:
  RingBitmap() = default;
  explicit RingBitmap(uint32_t capacity_bits) { reset(capacity_bits); }

  void reset(uint32_t capacity_bits) {
    capacity_ = capacity_bits;
    mask_ = capacity_bits - 1;
    words_.assign(capacity_bits / 64, 0);
  }

  uint32_t capacity() const { return capacity_; }

  bool test(uint32_t pos) const {
    pos &= mask_;
    return (words_[pos >> 6] >> (pos & 63)) & 1;
  }
  void set(uint32_t pos) {
    pos &= mask_;
    words_[pos >> 6] |= uint64_t{1} << (pos & 63);
  }
  void clear(uint32_t pos) {
    pos &= mask_;
    words_[pos >> 6] &= ~(uint64_t{1} << (pos & 63));
  }

  // The 64 bits starting at `pos`: bit i of the result is position pos+i.
  uint64_t extract64(uint32_t pos) const {
    pos &= mask_;
    const uint32_t w = pos >> 6, sh = pos & 63;
    const uint64_t lo = words_[w] >> sh;
    if (sh == 0) return lo;
    const uint64_t hi = words_[(w + 1) & (mask_ >> 6)] << (64 - sh);
    return lo | hi;
  }

  // Number of consecutive set bits starting at `pos`, at most `limit`.
  uint32_t count_run(uint32_t pos, uint32_t limit) const {
    uint32_t n = 0;
    while (n < limit) {
      const uint64_t bits = extract64(pos + n);
      if (bits == ~uint64_t{0}) {
        n += 64;
        continue;
      }
      n += static_cast<uint32_t>(__builtin_ctzll(~bits));
      break;
    }
    return n < limit ? n : limit;
  }

  // Clears `n` positions starting at `pos` (n <= capacity).
  void clear_range(uint32_t pos, uint32_t n) {
    while (n > 0) {
      const uint32_t p = pos & mask_, sh = p & 63;
      const uint32_t take = (64 - sh) < n ? (64 - sh) : n;
      const uint64_t m = take == 64 ? ~uint64_t{0} : (((uint64_t{1} << take) - 1) << sh);
      words_[p >> 6] &= ~m;
      pos += take;
      n -= take;
    }
  }

  // Grows to `capacity_bits` (a larger power of two, multiple of 64),
  // keeping the `capacity()` positions starting at `from`: positions are
  // taken modulo the capacity, so every kept bit moves to its new place.
  void grow(uint32_t capacity_bits, uint32_t from) {
    RingBitmap bigger(capacity_bits);
    for (uint32_t i = 0; i < capacity_; i += 64) {
      uint64_t bits = extract64(from + i);
      while (bits) {
        const int b = __builtin_ctzll(bits);
        bits &= bits - 1;
        bigger.set(from + i + static_cast<uint32_t>(b));
      }
    }
    *this = std::move(bigger);
  }

  size_t memory_bytes() const { return words_.size() * sizeof(uint64_t); }

 private:
  std::vector<uint64_t> words_;
  uint32_t capacity_ = 0;
  uint32_t mask_ = 0;
};

}  // namespace shoal
