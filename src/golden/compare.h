// torch.allclose-style comparison of the engine's output with the golden's, with the numbers
// a failure report needs: max abs and rel error, mismatch count, the worst element.
#pragma once

#include <cstddef>

namespace qwen3 {

struct CompareResult {
  size_t count = 0;
  size_t mismatches = 0;   // |actual - expected| > atol + rtol * |expected|, or NaN
  double max_abs = 0.0;
  double max_rel = 0.0;    // over elements with expected != 0
  size_t worst = 0;        // index of the largest excess over the tolerance
  double worst_actual = 0.0, worst_expected = 0.0;
  bool pass() const { return mismatches == 0; }
};

CompareResult AllClose(const float* actual, const float* expected, size_t n, double rtol,
                       double atol);

}  // namespace qwen3
