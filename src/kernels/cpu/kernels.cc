#include "kernels/cpu/kernels.h"

#include "base/error.h"

namespace qwen3::cpu {

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
    case CpuPath::kAmx: return kKernelsAmx;
    case CpuPath::kAvx512Bf16: return kKernelsAvx512Bf16;
    case CpuPath::kAvx512: return kKernelsAvx512;
    case CpuPath::kAvx2: return kKernelsAvx2;
    case CpuPath::kScalar: break;
    case CpuPath::kSentinel: break;
  }
  return kKernelsScalar;
}

}  // namespace qwen3::cpu
