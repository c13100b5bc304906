// vfmadd231ps ymm: 8 fp32 lanes x (mul + add) = 16 FLOP per instruction. 12 independent
// accumulators (of the 16 ymm registers) cover its latency (4 cycles at 2 per cycle).
#include <immintrin.h>

#include "exec/cpu/cpu_path_symbols.h"

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

// vpmaddubsw + vpmaddwd + vpaddd ymm: 32 u8 x s8 products (mul + add) = 64 ops per 3.
double Int8LoopAvx2(size_t iters) {
  constexpr int kAcc = 6;
  __m256i acc[kAcc];
  for (__m256i& x : acc) x = _mm256_setzero_si256();
  __m256i a = _mm256_set1_epi8(1), b = a, ones = _mm256_set1_epi16(1);
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+x"(a), "+x"(b), "+x"(ones));
#pragma GCC unroll 6
    for (__m256i& x : acc) {
      x = _mm256_add_epi32(x, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
    }
  }
  __m256i s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm256_add_epi32(s, acc[j]);
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  dot_loop_sink = static_cast<float>(lanes[0] + lanes[7]);
  return static_cast<double>(iters) * kAcc * 64;
}

}  // namespace qwen3::cpu
