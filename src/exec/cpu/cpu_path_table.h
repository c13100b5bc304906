// The CPU paths as one table (cpu_path_table.cc), best first: per path its name, whether this
// CPU and OS run it, its kernel table and its peak-rate loops. cpu_path.cc, GetCpuKernels
// (kernels.cc) and the peak rates (peak_rate.cc) read it; no other code switches on a path.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "base/cpu_features.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kernels.h"

namespace qwen3::cpu {

using PeakLoopFn = double (*)(size_t iters);  // cpu_path_symbols.h

struct CpuPathRow {
  CpuPath path;
  const char* name;  // ToString, QWEN3_CPU_PATH
  bool (*supported)(const CpuFeatures& f);
  // What QWEN3_CPU_PATH's "not supported" error adds in parentheses; nullptr: nothing.
  std::string (*why_unsupported)(const CpuFeatures& f);
  const CpuKernels* kernels;
  PeakLoopFn peak_dot;   // PeakDotFlops
  PeakLoopFn peak_int8;  // PeakInt8Ops
  // The peak_dot loop loads its own AMX tile config: PeakDotFlops then calls
  // InvalidateTileConfigs() so the matmul reloads its own.
  bool peak_dot_sets_tiles;
};

// Every path, best first: row i is CpuPath(i); the last is kScalar, supported everywhere.
std::span<const CpuPathRow> CpuPathRows();
// The row of path; nullptr for a value outside the table (kSentinel).
const CpuPathRow* FindCpuPathRow(CpuPath path);

}  // namespace qwen3::cpu
