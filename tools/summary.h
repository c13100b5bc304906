// Median and spread of repeated measurements (benchmarks quote medians, never means).
#pragma once

#include <algorithm>
#include <vector>

namespace qwen3 {

struct Summary {
  double median = 0, min = 0, max = 0;
};

inline Summary Summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

}  // namespace qwen3
