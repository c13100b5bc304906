#include "exec/cpu/cpu_path.h"

#include <cstdlib>

#include "base/cpu_features.h"
#include "base/error.h"

namespace qwen3::cpu {

const char* ToString(CpuPath path) {
  switch (path) {
    case CpuPath::kAmx:
      return "amx";
    case CpuPath::kAvx512Bf16:
      return "avx512bf16";
    case CpuPath::kAvx512:
      return "avx512";
    case CpuPath::kAvx2:
      return "avx2";
    case CpuPath::kScalar:
      return "scalar";
    case CpuPath::kSentinel:
      break;
  }
  return "?";
}

CpuPath ParseCpuPath(const std::string& name) {
  for (int i = 0; i < static_cast<int>(CpuPath::kSentinel); ++i) {
    if (name == ToString(static_cast<CpuPath>(i))) return static_cast<CpuPath>(i);
  }
  throw Error("unknown CPU path '" + name + "': expected amx, avx512bf16, avx512, avx2 or scalar");
}

bool IsSupported(CpuPath path) {
  const CpuFeatures& f = GetCpuFeatures();
  switch (path) {
    case CpuPath::kAmx:
      return f.amx_bf16;
    case CpuPath::kAvx512Bf16:
      return f.avx512_bf16;
    case CpuPath::kAvx512:
      return f.avx512;
    case CpuPath::kAvx2:
      return f.avx2_fma;
    case CpuPath::kScalar:
      return true;
    case CpuPath::kSentinel:
      break;
  }
  return false;
}

std::vector<CpuPath> AvailableCpuPaths() {
  std::vector<CpuPath> paths;
  for (int i = 0; i < static_cast<int>(CpuPath::kSentinel); ++i) {
    if (IsSupported(static_cast<CpuPath>(i))) paths.push_back(static_cast<CpuPath>(i));
  }
  return paths;
}

CpuPath SelectCpuPath() {
  const char* env = std::getenv("QWEN3_CPU_PATH");
  if (env == nullptr || *env == '\0') return AvailableCpuPaths().front();
  const CpuPath path = ParseCpuPath(env);
  if (!IsSupported(path)) {
    std::string why = path == CpuPath::kAmx ? " (" + GetCpuFeatures().amx_status + ")" : "";
    throw Error(std::string("QWEN3_CPU_PATH=") + env + ": this CPU/OS does not support it" + why);
  }
  return path;
}

}  // namespace qwen3::cpu
