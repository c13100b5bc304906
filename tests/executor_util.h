// Test helpers: a CPU executor for a config on a chosen path.
#pragma once

#include <memory>

#include "exec/cpu/cpu_executor.h"
#include "exec/cpu/cpu_weight.h"
#include "exec/cpu/cpu_path.h"
#include "model/config.h"
#include "model/layer_weights.h"
#include "runtime/thread_pool.h"

namespace qwen3 {

inline std::unique_ptr<cpu::CpuExecutor> MakeCpuExecutor(const Qwen3Config& c, ThreadPool& pool,
                                                         cpu::CpuPath path = cpu::SelectCpuPath()) {
  return std::make_unique<cpu::CpuExecutor>(DimsOf(c), cpu::GetCpuKernels(path), pool);
}

}  // namespace qwen3
