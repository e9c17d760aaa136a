// Tests of shoal-sim's link-failure recovery judgement (recovery.h).
#include "apps/shoal-sim/recovery.h"

#include <gtest/gtest.h>

namespace shoal::app {
namespace {

TEST(Recovery, ADipEndsWhereGoodputIsBackWithinTheThreshold) {
  const std::vector<double> base(40, 100.0);
  std::vector<double> g(40, 100.0);
  for (size_t i = 10; i < 16; ++i) g[i] = 50;  // the failure's dip: bins 10..15
  const RecoveryJudgement single = judge_recovery(g, base, 10, 40, 0);
  EXPECT_TRUE(single.any_low);
  EXPECT_EQ(single.last_low_end, 16u);
  EXPECT_TRUE(single.recovered);
  // A 5-bin window stretches a deep dip by at most its half width.
  const RecoveryJudgement windowed = judge_recovery(g, base, 10, 40, 2);
  EXPECT_GE(windowed.last_low_end, 16u);
  EXPECT_LE(windowed.last_low_end, 18u);
}

TEST(Recovery, ALoneNoisyBinLongAfterTheDipDoesNotSetRecovery) {
  const std::vector<double> base(60, 100.0);
  std::vector<double> g(60, 95.0);  // a fabric that lost a link carries a little less
  for (size_t i = 10; i < 13; ++i) g[i] = 40;
  g[45] = 85;  // chance: one bin under 90%, 32 bins after the dip
  EXPECT_EQ(judge_recovery(g, base, 10, 60, 0).last_low_end, 46u) << "single bins take the lone one";
  EXPECT_LE(judge_recovery(g, base, 10, 60, 2).last_low_end, 15u) << "the window does not";
}

TEST(Recovery, StillLowAtTheEndIsNotRecoveredAndNoDipIsZero) {
  const std::vector<double> base(30, 100.0);
  std::vector<double> g(30, 80.0);
  const RecoveryJudgement low = judge_recovery(g, base, 5, 30, 2);
  EXPECT_TRUE(low.any_low);
  EXPECT_FALSE(low.recovered);
  const RecoveryJudgement none = judge_recovery(base, base, 5, 30, 2);
  EXPECT_FALSE(none.any_low);
  EXPECT_EQ(none.last_low_end, 5u);
  EXPECT_TRUE(none.recovered);
}

}  // namespace
}  // namespace shoal::app
