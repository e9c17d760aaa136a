// Counter structs: plain structs of uint64_t fields that exporters read
// (ARCHITECTURE rule 8). add_counters sums one into another field by field,
// for totals over queues, PDCs or engines, without each struct listing its
// fields a second time (a new counter is summed the day it is added).
//
// Invariant (checked at compile time): T holds nothing but uint64_t fields.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace shoal {

template <typename T>
void add_counters(T& dst, const T& src) {
  static_assert(std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>, "a plain counter struct");
  static_assert(sizeof(T) % sizeof(uint64_t) == 0 && alignof(T) == alignof(uint64_t),
                "a counter struct holds only uint64_t fields");
  constexpr size_t n = sizeof(T) / sizeof(uint64_t);
  uint64_t a[n], b[n];
  std::memcpy(a, &dst, sizeof(T));
  std::memcpy(b, &src, sizeof(T));
  for (size_t i = 0; i < n; ++i) a[i] += b[i];
  std::memcpy(&dst, a, sizeof(T));
}

}  // namespace shoal
