// What each CPU path's own files export, by name, for its row of the path table
// (cpu_path_table.cc): its kernel table (matmul_<path>.cc) and the register-only loops behind
// its peak rates (peak_rate_<path>.cc), each file compiled with the path's ISA flags. A new
// path declares its own here.
#pragma once

#include <cstddef>

#include "exec/cpu/kernels.h"

namespace qwen3::cpu {

extern const CpuKernels kKernelsAmx;
extern const CpuKernels kKernelsAvx512Bf16;
extern const CpuKernels kKernelsAvx512;
extern const CpuKernels kKernelsAvx2;
extern const CpuKernels kKernelsScalar;

// The peak loops (peak_rate.h). Each runs `iters` rounds of independent accumulator updates
// (enough to cover the instruction's latency), folds the accumulators into dot_loop_sink so the
// loop cannot be optimized away, and returns the FLOPs done.
extern volatile float dot_loop_sink;  // defined in peak_rate.cc

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
