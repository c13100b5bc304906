#include "exec/cpu/cpu_path.h"

#include <cstdlib>

#include "base/cpu_features.h"
#include "base/error.h"
#include "exec/cpu/cpu_path_table.h"

namespace qwen3::cpu {

const char* ToString(CpuPath path) {
  const CpuPathRow* row = FindCpuPathRow(path);
  return row != nullptr ? row->name : "?";
}

CpuPath ParseCpuPath(const std::string& name) {
  std::string names;  // "amx, avx512bf16, ... or scalar"
  const auto rows = CpuPathRows();
  for (size_t i = 0; i < rows.size(); ++i) {
    if (name == rows[i].name) return rows[i].path;
    names += (i == 0 ? "" : i + 1 == rows.size() ? " or " : ", ") + std::string(rows[i].name);
  }
  throw Error("unknown CPU path '" + name + "': expected " + names);
}

bool IsSupported(CpuPath path) {
  const CpuPathRow* row = FindCpuPathRow(path);
  return row != nullptr && row->supported(GetCpuFeatures());
}

std::vector<CpuPath> AvailableCpuPaths() {
  const CpuFeatures& f = GetCpuFeatures();
  std::vector<CpuPath> paths;
  for (const CpuPathRow& row : CpuPathRows()) {
    if (row.supported(f)) paths.push_back(row.path);
  }
  return paths;
}

CpuPath SelectCpuPath() {
  const char* env = std::getenv("QWEN3_CPU_PATH");
  if (env == nullptr || *env == '\0') return AvailableCpuPaths().front();
  const CpuPath path = ParseCpuPath(env);
  if (!IsSupported(path)) {
    const CpuPathRow& row = *FindCpuPathRow(path);
    std::string why = row.why_unsupported ? " (" + row.why_unsupported(GetCpuFeatures()) + ")" : "";
    throw Error(std::string("QWEN3_CPU_PATH=") + env + ": this CPU/OS does not support it" + why);
  }
  return path;
}

}  // namespace qwen3::cpu
