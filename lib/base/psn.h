// Packet sequence numbers: 32-bit, wrap-safe.
//
// A PSN compares with another through their signed 32-bit distance, like TCP
// sequence numbers (RFC 1982 serial arithmetic). The comparison is only
// meaningful for PSNs less than 2^31 apart; the PDS keeps its windows far
// below that (at most 2^16 PSNs in flight), which is the invariant that makes
// these operators a total order over any live window.
#pragma once

#include <cstdint>

namespace shoal {

class Psn {
 public:
  constexpr Psn() = default;
  constexpr explicit Psn(uint32_t v) : v_(v) {}
  constexpr uint32_t value() const { return v_; }

  // Signed distance this - o (positive when this is after o).
  constexpr int32_t operator-(Psn o) const { return static_cast<int32_t>(v_ - o.v_); }
  constexpr Psn operator+(int64_t k) const { return Psn(v_ + static_cast<uint32_t>(k)); }
  constexpr Psn operator-(int64_t k) const { return Psn(v_ - static_cast<uint32_t>(k)); }
  constexpr Psn& operator++() { ++v_; return *this; }
  constexpr Psn& operator--() { --v_; return *this; }
  constexpr Psn& operator+=(int64_t k) { v_ += static_cast<uint32_t>(k); return *this; }

  constexpr bool operator==(const Psn&) const = default;
  constexpr bool operator<(Psn o) const { return (*this - o) < 0; }
  constexpr bool operator<=(Psn o) const { return (*this - o) <= 0; }
  constexpr bool operator>(Psn o) const { return (*this - o) > 0; }
  constexpr bool operator>=(Psn o) const { return (*this - o) >= 0; }

 private:
  uint32_t v_ = 0;
};

inline constexpr Psn max_psn(Psn a, Psn b) { return a < b ? b : a; }

}  // namespace shoal
