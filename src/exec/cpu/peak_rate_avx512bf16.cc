// vdpbf16ps zmm: 16 fp32 lanes x 2 bf16 pairs x (mul + add) = 64 FLOP per instruction. 24
// independent accumulators cover its latency (5-6 cycles at 2 per cycle on Zen 4/5 and
// Sapphire Rapids); A and B sit in two more registers.
#include <immintrin.h>

#include "exec/cpu/cpu_path_symbols.h"

namespace qwen3::cpu {

double DotLoopAvx512Bf16(size_t iters) {
  constexpr int kAcc = 24;
  __m512 acc[kAcc];
  for (__m512& x : acc) x = _mm512_setzero_ps();
  __m512i a = _mm512_set1_epi16(0x3f80), b = a;  // bf16 1.0: sums stay finite
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+v"(a), "+v"(b));  // opaque operands: nothing to hoist or fold
#pragma GCC unroll 24  // the accumulators must live in registers, not in a loop over an array
    for (__m512& x : acc) x = _mm512_dpbf16_ps(x, (__m512bh)a, (__m512bh)b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_ps(s, acc[j]);
  alignas(64) float lanes[16];  // (not _mm512_reduce_add_ps: GCC 12 warns inside it)
  _mm512_store_ps(lanes, s);
  dot_loop_sink = lanes[0] + lanes[15];
  return static_cast<double>(iters) * kAcc * 64;
}

// vpdpbusd zmm: 16 int32 lanes x 4 u8 x s8 products (mul + add) = 128 ops per instruction.
// 12 accumulators: with 24, GCC 12 kept some of them in memory and the loop measured 360
// instead of ~850 GOP/s per Zen 5 core (8, 12 and 16 all reach it).
double Int8LoopVnni(size_t iters) {
  constexpr int kAcc = 12;
  __m512i acc[kAcc];
  for (__m512i& x : acc) x = _mm512_setzero_si512();
  __m512i a = _mm512_set1_epi8(1), b = a;
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+v"(a), "+v"(b));
#pragma GCC unroll 12
    for (__m512i& x : acc) x = _mm512_dpbusd_epi32(x, a, b);
  }
  __m512i s = acc[0];
  for (int j = 1; j < kAcc; ++j) s = _mm512_add_epi32(s, acc[j]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  dot_loop_sink = static_cast<float>(lanes[0] + lanes[15]);
  return static_cast<double>(iters) * kAcc * 128;
}

}  // namespace qwen3::cpu
