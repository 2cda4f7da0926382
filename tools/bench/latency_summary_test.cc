#include "latency_summary.h"

#include <gtest/gtest.h>

namespace grassroots::bench {
namespace {

TEST(LatencySummary, NearestRankPercentilesOfUnsortedInput) {
  std::vector<uint32_t> us;
  for (uint32_t i = 100; i >= 1; --i) us.push_back(i * 1000);  // 1..100 ms, descending
  LatencySummary s = Summarise(us);
  EXPECT_EQ(s.count, 100u);
  EXPECT_DOUBLE_EQ(s.p50_ms, 50.0);
  EXPECT_DOUBLE_EQ(s.p90_ms, 90.0);
  EXPECT_DOUBLE_EQ(s.p99_ms, 99.0);
  EXPECT_DOUBLE_EQ(s.max_ms, 100.0);
}

TEST(LatencySummary, OneSlowCallInAHundredIsThePercentileAboveIt) {
  std::vector<uint32_t> us(200, 500);
  us[7] = 9000;
  us[150] = 8000;
  LatencySummary s = Summarise(us);
  EXPECT_DOUBLE_EQ(s.p50_ms, 0.5);
  EXPECT_DOUBLE_EQ(s.p99_ms, 0.5);  // rank 198 of 200: still a fast call
  EXPECT_DOUBLE_EQ(s.max_ms, 9.0);
  std::vector<uint32_t> few(10, 500);
  few[3] = 7000;
  EXPECT_DOUBLE_EQ(Summarise(few).p99_ms, 7.0);  // rank 10 of 10
}

TEST(LatencySummary, EmptyIsAllZero) {
  LatencySummary s = Summarise({});
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.p99_ms, 0.0);
  EXPECT_EQ(s.max_ms, 0.0);
}

}  // namespace
}  // namespace grassroots::bench
