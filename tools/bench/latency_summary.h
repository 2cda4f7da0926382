#pragma once
// Percentiles of a set of latencies, for the load generators in tools/bench.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace grassroots::bench {

struct LatencySummary {
  size_t count = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// Nearest-rank percentile (the smallest value with at least p% of the values at or below it)
// of latencies in microseconds; sorts `us`.
inline double PercentileMs(std::vector<uint32_t>& us, double p) {
  if (us.empty()) return 0;
  std::sort(us.begin(), us.end());
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(us.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, us.size());
  return us[rank - 1] / 1000.0;
}

inline LatencySummary Summarise(std::vector<uint32_t> us) {
  LatencySummary s;
  s.count = us.size();
  if (us.empty()) return s;
  s.p50_ms = PercentileMs(us, 50);
  s.p90_ms = PercentileMs(us, 90);
  s.p99_ms = PercentileMs(us, 99);
  s.max_ms = us.back() / 1000.0;
  return s;
}

}  // namespace grassroots::bench
