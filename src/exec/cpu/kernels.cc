#include "exec/cpu/kernels.h"

#include <atomic>

#include "base/error.h"

namespace qwen3::cpu {
namespace {
std::atomic<uint64_t> tile_config_epoch{1};
}  // namespace

void InvalidateTileConfigs() { tile_config_epoch.fetch_add(1, std::memory_order_release); }
uint64_t TileConfigEpoch() { return tile_config_epoch.load(std::memory_order_acquire); }

// Defined in the per-path translation units, each compiled with its own ISA flags.
extern const CpuKernels kKernelsAmx;
extern const CpuKernels kKernelsAvx512Bf16;
extern const CpuKernels kKernelsAvx512;
extern const CpuKernels kKernelsAvx2;
extern const CpuKernels kKernelsScalar;

const CpuKernels& GetCpuKernels(CpuPath path) {
  if (!IsSupported(path)) {
    throw Error(std::string("CPU path '") + ToString(path) + "' is not supported on this machine");
  }
  switch (path) {
    case CpuPath::kAmx:
      return kKernelsAmx;
    case CpuPath::kAvx512Bf16:
      return kKernelsAvx512Bf16;
    case CpuPath::kAvx512:
      return kKernelsAvx512;
    case CpuPath::kAvx2:
      return kKernelsAvx2;
    case CpuPath::kScalar:
      break;
    case CpuPath::kSentinel:
      break;
  }
  return kKernelsScalar;
}

}  // namespace qwen3::cpu
