// The scalar path's roof, compiled like matmul_scalar.cc (no ISA flags: x86-64 baseline, SSE2
// scalar ops, no FMA): 12 independent acc = acc * m + c chains, a mulss + addss pair = 2 FLOP
// each. What it measures is the throughput of scalar float mul/add, the most any plain
// one-lane loop could reach; the scalar matmul, one latency-bound accumulator per output,
// runs far below it, so its % of this roof is low by construction.
#include <cstdint>

#include "exec/cpu/cpu_path_symbols.h"

namespace qwen3::cpu {

double DotLoopScalar(size_t iters) {
  constexpr int kAcc = 12;
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0, a9 = 0, a10 = 0,
        a11 = 0;
  float m = 0.5f, c = 0.5f;  // acc -> 1: no overflow, no denormals
  for (size_t i = 0; i < iters; ++i) {
    // Every chain in its own register each round: the compiler can neither fold the loop nor
    // pack the chains into SSE vectors (which would measure 4 lanes, not the scalar path).
    asm volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                 "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11), "+x"(m), "+x"(c));
    a0 = a0 * m + c;
    a1 = a1 * m + c;
    a2 = a2 * m + c;
    a3 = a3 * m + c;
    a4 = a4 * m + c;
    a5 = a5 * m + c;
    a6 = a6 * m + c;
    a7 = a7 * m + c;
    a8 = a8 * m + c;
    a9 = a9 * m + c;
    a10 = a10 * m + c;
    a11 = a11 * m + c;
  }
  dot_loop_sink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  return static_cast<double>(iters) * kAcc * 2;
}

// Integer multiply-adds: 8 independent chains (imul + add = 2 ops each).
double Int8LoopScalar(size_t iters) {
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, m = 1, c = 1;
  for (size_t i = 0; i < iters; ++i) {
    asm volatile("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5), "+r"(a6),
                 "+r"(a7), "+r"(m), "+r"(c));
    a0 = a0 * m + c;
    a1 = a1 * m + c;
    a2 = a2 * m + c;
    a3 = a3 * m + c;
    a4 = a4 * m + c;
    a5 = a5 * m + c;
    a6 = a6 * m + c;
    a7 = a7 * m + c;
  }
  dot_loop_sink = static_cast<float>(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
  return static_cast<double>(iters) * 8 * 2;
}

}  // namespace qwen3::cpu
