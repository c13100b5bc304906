// vdpbf16ps zmm: 16 fp32 lanes x 2 bf16 pairs x (mul + add) = 64 FLOP per instruction. 24
// independent accumulators cover its latency (5-6 cycles at 2 per cycle on Zen 4/5 and
// Sapphire Rapids); A and B sit in two more registers.
#include <immintrin.h>

#include "kernels/cpu/peak_rate_loops.h"

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

}  // namespace qwen3::cpu
