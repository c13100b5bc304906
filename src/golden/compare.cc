#include "golden/compare.h"

#include <cmath>

namespace qwen3 {

CompareResult AllClose(const float* actual, const float* expected, size_t n, double rtol,
                       double atol) {
  CompareResult r;
  r.count = n;
  double worst_excess = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    const double a = actual[i], e = expected[i];
    const double diff = std::fabs(a - e);
    const double excess = std::isnan(diff) ? INFINITY : diff - (atol + rtol * std::fabs(e));
    if (excess > 0) ++r.mismatches;
    if (excess > worst_excess) {
      worst_excess = excess;
      r.worst = i;
      r.worst_actual = a;
      r.worst_expected = e;
    }
    if (std::isnan(diff)) continue;
    r.max_abs = std::max(r.max_abs, diff);
    if (e != 0.0) r.max_rel = std::max(r.max_rel, diff / std::fabs(e));
  }
  return r;
}

}  // namespace qwen3
