// vfmadd231ps ymm: 8 fp32 lanes x (mul + add) = 16 FLOP per instruction. 12 independent
// accumulators (of the 16 ymm registers) cover its latency (4 cycles at 2 per cycle).
#include <immintrin.h>

#include "kernels/cpu/peak_rate_loops.h"

namespace qwen3::cpu {

double DotLoopAvx2(size_t iters) {
  constexpr int kAcc = 12;
  __m256 acc[kAcc];
  for (__m256& x : acc) x = _mm256_setzero_ps();
  __m256 m = _mm256_set1_ps(0.5f), c = m;  // acc -> 1: no overflow, no denormals
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+x"(m), "+x"(c));  // opaque operands: nothing to hoist or fold
#pragma GCC unroll 24  // the accumulators must live in registers, not in a loop over an array
    for (__m256& x : acc) x = _mm256_fmadd_ps(x, m, c);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_ps(s, acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  dot_loop_sink = lanes[0] + lanes[7];
  return static_cast<double>(iters) * kAcc * 16;
}

}  // namespace qwen3::cpu
