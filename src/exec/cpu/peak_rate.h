// The most FLOP/s a CPU path's dot instruction can deliver here: a register-only loop of it
// (no loads, no stores) on every worker of a pool, the compute roof of qwen3-bench's roofline.
// Per path: amx tdpbf16ps, avx512bf16 vdpbf16ps zmm, avx512 vfmadd231ps zmm, avx2 vfmadd231ps
// ymm, scalar a plain mul + add loop (peak_rate_<path>.cc, each with that path's ISA flags).
#pragma once

#include "exec/cpu/cpu_path.h"

namespace qwen3 {
class ThreadPool;
}  // namespace qwen3

namespace qwen3::cpu {

// FLOP/s over all workers of pool, the best of several ~10 ms repetitions (the host's noise only
// ever slows a run down). Throws Error when path is not supported. The amx path reconfigures
// the tiles of every worker and calls InvalidateTileConfigs() afterwards.
double PeakDotFlops(CpuPath path, ThreadPool& pool);
// The same for the int8 dot of the quantized-weight kernels, in ops/s (a multiply-add is 2):
// vpdpbusd on avx512bf16 and amx (whose AMX int8 tiles the kernels do not use), vpmaddubsw +
// vpmaddwd on avx512 and avx2, integer mul + add on scalar.
double PeakInt8Ops(CpuPath path, ThreadPool& pool);

}  // namespace qwen3::cpu
