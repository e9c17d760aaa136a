// LogHistogram: a fixed-size log-linear histogram of non-negative integers
// (nanoseconds, bytes, queue depths), for percentiles without storing
// samples. Values are bucketed by power of two with 32 linear sub-buckets,
// so a reported percentile is within ~3% of the true sample.
//
// Plain struct, no allocation after construction; exporters read it.
#pragma once

#include <array>
#include <cstdint>

namespace shoal {

class LogHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;

  void add(uint64_t v, uint64_t count = 1) {
    buckets_[index_of(v)] += count;
    count_ += count;
    sum_ += v * count;
    if (v > max_) max_ = v;
    if (count_ == count || v < min_) min_ = v;
  }
  void merge(const LogHistogram& o) {
    for (int i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
    if (o.count_) {
      if (!count_ || o.min_ < min_) min_ = o.min_;
      if (o.max_ > max_) max_ = o.max_;
    }
    count_ += o.count_;
    sum_ += o.sum_;
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }

  // The value at quantile q in [0, 1] (upper edge of its bucket, capped by max).
  uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        uint64_t hi = upper_of(i);
        return hi < max_ ? hi : max_;
      }
    }
    return max_;
  }

 private:
  static int index_of(uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<int>((v >> shift) & (kSub - 1));
  }
  static uint64_t upper_of(int i) {
    if (i < kSub) return static_cast<uint64_t>(i);
    int shift = i / kSub - 1;
    uint64_t sub = static_cast<uint64_t>(i % kSub);
    return ((uint64_t{kSub} + sub + 1) << shift) - 1;
  }

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
};

}  // namespace shoal
