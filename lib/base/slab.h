// Slab<T>: a fixed-capacity pool of T addressed by 32-bit index.
//
// The core keeps its per-message and per-connection records in slabs so
// that the data path never allocates: everything is sized at construction,
// alloc()/free() are a push and a pop on a free stack, and records are named
// by index (4 bytes, stable, cheap to put in a packet cookie or a list link).
//
// Invariants: an index is either free or allocated, never both; alloc()
// returns kNoIndex when the slab is full (callers turn that into
// backpressure); a freed record keeps its bytes until reused.
#pragma once

#include <cstdint>
#include <vector>

#include "lib/base/index_list.h"

namespace shoal {

template <typename T>
class Slab {
 public:
  explicit Slab(uint32_t capacity = 0) { reset(capacity); }

  void reset(uint32_t capacity) {
    items_.assign(capacity, T());
    free_.resize(capacity);
    // Lowest indices first: they are the warmest in cache after a reset.
    for (uint32_t i = 0; i < capacity; ++i) free_[i] = capacity - 1 - i;
  }

  uint32_t alloc() {
    if (free_.empty()) return kNoIndex;
    const uint32_t i = free_.back();
    free_.pop_back();
    return i;
  }
  void free(uint32_t i) { free_.push_back(i); }

  T& operator[](uint32_t i) { return items_[i]; }
  const T& operator[](uint32_t i) const { return items_[i]; }

  bool full() const { return free_.empty(); }
  uint32_t capacity() const { return static_cast<uint32_t>(items_.size()); }
  uint32_t in_use() const { return capacity() - static_cast<uint32_t>(free_.size()); }
  size_t memory_bytes() const { return items_.size() * sizeof(T) + free_.capacity() * sizeof(uint32_t); }

 private:
  std::vector<T> items_;
  std::vector<uint32_t> free_;  // capacity reserved up front: free() never allocates
};

}  // namespace shoal
