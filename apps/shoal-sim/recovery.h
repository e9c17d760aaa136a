// shoal-sim link-failure: how long the fabric took to recover, judged bin by
// bin against the same run without the failure.
//
// From the failure's bin to end_bin (the first flow completion in either
// run: after it, goodput falls because flows finish), a bin is low when the
// run with the failure delivered under `threshold` of the run without it,
// both averaged over the bins within `half` of it (a centred window, kept
// inside [fail_bin, end_bin)). The result is the exclusive end of the last
// low bin; "still low at end_bin" means the run never recovered within the
// bins that can show it.
//
// Why a window: once the two runs have drifted apart, single 5 us bins
// differ by several percent either way, and a fabric that lost a link
// carries a little less for good. Judged by single bins, one bin that dipped
// below the threshold by chance long after the failure set the recovery
// time (adaptive/swift with RED marking at k=8: 350 us; with a 25 us window:
// 0).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace shoal::app {

struct RecoveryJudgement {
  bool any_low = false;
  size_t last_low_end = 0;  // exclusive end of the last low bin (fail_bin if none)
  bool recovered = true;    // false when the last bin before end_bin is still low
};

inline RecoveryJudgement judge_recovery(const std::vector<double>& with_failure,
                                        const std::vector<double>& without_failure, size_t fail_bin,
                                        size_t end_bin, size_t half, double threshold = 0.9) {
  auto bin = [](const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : 0.0; };
  RecoveryJudgement r;
  r.last_low_end = fail_bin;
  for (size_t i = fail_bin; i < end_bin; ++i) {
    double g = 0, base = 0;
    for (size_t j = std::max(fail_bin, i >= half ? i - half : 0); j <= std::min(end_bin - 1, i + half); ++j) {
      g += bin(with_failure, j);
      base += bin(without_failure, j);
    }
    if (g < threshold * base) {
      r.any_low = true;
      r.last_low_end = i + 1;
    }
  }
  if (r.any_low && r.last_low_end >= end_bin) r.recovered = false;
  return r;
}

}  // namespace shoal::app
