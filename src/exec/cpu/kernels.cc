#include "exec/cpu/kernels.h"

#include <atomic>

#include "base/error.h"
#include "exec/cpu/cpu_path_table.h"

namespace qwen3::cpu {
namespace {
std::atomic<uint64_t> tile_config_epoch{1};
}  // namespace

void InvalidateTileConfigs() { tile_config_epoch.fetch_add(1, std::memory_order_release); }
uint64_t TileConfigEpoch() { return tile_config_epoch.load(std::memory_order_acquire); }

const CpuKernels& GetCpuKernels(CpuPath path) {
  if (!IsSupported(path)) {
    throw Error(std::string("CPU path '") + ToString(path) + "' is not supported on this machine");
  }
  return *FindCpuPathRow(path)->kernels;
}

}  // namespace qwen3::cpu
