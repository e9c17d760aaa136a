// Time for the I/O-free core: nanosecond time points and durations.
//
// The core never reads a clock; every entry point takes `now` (a TimePoint)
// from its caller (the engine reads the TSC or CLOCK_MONOTONIC, the simulator
// advances virtual time). Both types are plain int64 nanoseconds so that they
// are cheap to copy and compare on the data path.
//
// Invariant: TimePoint values from one clock are comparable; TimePoint::max()
// means "never" (e.g. no deadline pending).
#pragma once

#include <cstdint>
#include <limits>

namespace shoal {

class Duration {
 public:
  constexpr Duration() = default;
  static constexpr Duration nanos(int64_t n) { return Duration(n); }
  static constexpr Duration micros(int64_t us) { return Duration(us * 1000); }
  static constexpr Duration micros_f(double us) { return Duration(static_cast<int64_t>(us * 1e3)); }
  static constexpr Duration millis(int64_t ms) { return Duration(ms * 1000 * 1000); }
  static constexpr Duration seconds(int64_t s) { return Duration(s * 1000 * 1000 * 1000); }
  static constexpr Duration zero() { return Duration(0); }
  static constexpr Duration max() { return Duration(std::numeric_limits<int64_t>::max()); }

  constexpr int64_t ns() const { return ns_; }
  constexpr double us() const { return static_cast<double>(ns_) / 1e3; }
  constexpr double sec() const { return static_cast<double>(ns_) / 1e9; }

  constexpr Duration operator+(Duration o) const { return Duration(ns_ + o.ns_); }
  constexpr Duration operator-(Duration o) const { return Duration(ns_ - o.ns_); }
  constexpr Duration operator*(int64_t k) const { return Duration(ns_ * k); }
  constexpr Duration operator/(int64_t k) const { return Duration(ns_ / k); }
  constexpr Duration& operator+=(Duration o) { ns_ += o.ns_; return *this; }
  constexpr Duration& operator-=(Duration o) { ns_ -= o.ns_; return *this; }
  constexpr auto operator<=>(const Duration&) const = default;

 private:
  constexpr explicit Duration(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};

class TimePoint {
 public:
  constexpr TimePoint() = default;
  static constexpr TimePoint from_ns(int64_t ns) { return TimePoint(ns); }
  static constexpr TimePoint zero() { return TimePoint(0); }
  // "Never": the value next_deadline() returns when nothing is pending.
  static constexpr TimePoint max() { return TimePoint(std::numeric_limits<int64_t>::max()); }

  constexpr int64_t ns() const { return ns_; }
  constexpr double us() const { return static_cast<double>(ns_) / 1e3; }
  constexpr double sec() const { return static_cast<double>(ns_) / 1e9; }
  constexpr bool is_max() const { return ns_ == std::numeric_limits<int64_t>::max(); }

  constexpr TimePoint operator+(Duration d) const {
    // Saturate so that max() + d stays "never".
    if (d.ns() > 0 && ns_ > std::numeric_limits<int64_t>::max() - d.ns()) return max();
    return TimePoint(ns_ + d.ns());
  }
  constexpr TimePoint operator-(Duration d) const { return TimePoint(ns_ - d.ns()); }
  constexpr Duration operator-(TimePoint o) const { return Duration::nanos(ns_ - o.ns_); }
  constexpr TimePoint& operator+=(Duration d) { *this = *this + d; return *this; }
  constexpr auto operator<=>(const TimePoint&) const = default;

 private:
  constexpr explicit TimePoint(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};

inline constexpr TimePoint min_time(TimePoint a, TimePoint b) { return a < b ? a : b; }
inline constexpr TimePoint max_time(TimePoint a, TimePoint b) { return a < b ? b : a; }
inline constexpr Duration min_dur(Duration a, Duration b) { return a < b ? a : b; }
inline constexpr Duration max_dur(Duration a, Duration b) { return a < b ? b : a; }

// Serialization time of `bytes` at `bits_per_second`, rounded up to a ns.
inline constexpr Duration serialization_time(uint64_t bytes, double bits_per_second) {
  double ns = static_cast<double>(bytes) * 8.0 * 1e9 / bits_per_second;
  int64_t whole = static_cast<int64_t>(ns);
  return Duration::nanos(whole + (static_cast<double>(whole) < ns ? 1 : 0));
}

}  // namespace shoal
