// vfmadd231ps zmm: 16 fp32 lanes x (mul + add) = 32 FLOP per instruction. 24 independent
// accumulators cover its latency (4 cycles at 2 per cycle).
#include <immintrin.h>

#include "exec/cpu/cpu_path_symbols.h"

namespace qwen3::cpu {

double DotLoopAvx512(size_t iters) {
  constexpr int kAcc = 24;
  __m512 acc[kAcc];
  for (__m512& x : acc) x = _mm512_setzero_ps();
  __m512 m = _mm512_set1_ps(0.5f), c = m;  // acc -> 1: no overflow, no denormals
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+v"(m), "+v"(c));  // opaque operands: nothing to hoist or fold
#pragma GCC unroll 24  // the accumulators must live in registers, not in a loop over an array
    for (__m512& x : acc) x = _mm512_fmadd_ps(x, m, c);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  alignas(64) float lanes[16];  // (not _mm512_reduce_add_ps: GCC 12 warns inside it)
  _mm512_store_ps(lanes, s);
  dot_loop_sink = lanes[0] + lanes[15];
  return static_cast<double>(iters) * kAcc * 32;
}

// vpmaddubsw + vpmaddwd + vpaddd zmm: 64 u8 x s8 products (mul + add) = 128 ops per 3.
double Int8LoopAvx512(size_t iters) {
  constexpr int kAcc = 12;
  __m512i acc[kAcc];
  for (__m512i& x : acc) x = _mm512_setzero_si512();
  __m512i a = _mm512_set1_epi8(1), b = a, ones = _mm512_set1_epi16(1);
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+v"(a), "+v"(b), "+v"(ones));
#pragma GCC unroll 12
    for (__m512i& x : acc) {
      x = _mm512_add_epi32(x, _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), ones));
    }
  }
  __m512i s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_epi32(s, acc[j]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  dot_loop_sink = static_cast<float>(lanes[0] + lanes[15]);
  return static_cast<double>(iters) * kAcc * 128;
}

}  // namespace qwen3::cpu
