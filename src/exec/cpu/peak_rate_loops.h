// The per-path register-only dot loops behind PeakDotFlops (peak_rate.cc), one per
// peak_rate_<path>.cc compiled with that path's ISA flags. Each runs `iters` rounds of
// independent accumulator updates (enough to cover the instruction's latency), folds the
// accumulators into a sink so the loop cannot be optimized away, and returns the FLOPs done.
#pragma once

#include <cstddef>

namespace qwen3::cpu {

// Where the loops leave their result (defined in peak_rate.cc).
extern volatile float dot_loop_sink;

double DotLoopAmx(size_t iters);
double DotLoopAvx512Bf16(size_t iters);
double DotLoopAvx512(size_t iters);
double DotLoopAvx2(size_t iters);
double DotLoopScalar(size_t iters);
// The int8 dot of the quantized-weight kernels (qmatmul_*.cc), in integer ops (mul + add).
double Int8LoopVnni(size_t iters);    // vpdpbusd zmm: the avx512bf16 and amx paths
double Int8LoopAvx512(size_t iters);  // vpmaddubsw + vpmaddwd + vpaddd zmm
double Int8LoopAvx2(size_t iters);    // the same on ymm
double Int8LoopScalar(size_t iters);

}  // namespace qwen3::cpu
