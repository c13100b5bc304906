// What this CPU and OS let us run: CPUID, then XGETBV (the OS saves the state), then, for AMX,
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). Each failing step is named.
#pragma once

#include <string>

namespace qwen3 {

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA, OS saves YMM
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ, OS saves ZMM
  bool avx512_bf16 = false;  // + AVX512_BF16 (vdpbf16ps) and AVX512_VNNI (vpdpbusd)
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16, OS saves tiles, permission granted
  std::string amx_status;    // why AMX is (not) usable, for messages
};

// Detected once; AMX permission is requested on the first call.
const CpuFeatures& GetCpuFeatures();

}  // namespace qwen3
