// The CPU kernel paths, best first, and how one is chosen: the best the CPU and OS allow,
// or the one named by QWEN3_CPU_PATH (amx, avx512bf16, avx512, avx2, scalar). What a path is
// (name, detection, kernels, peak loops) is its row of the path table, cpu_path_table.cc.
#pragma once

#include <string>
#include <vector>

namespace qwen3::cpu {

// One value per row of the path table, in its order.
enum class CpuPath { kAmx, kAvx512Bf16, kAvx512, kAvx2, kScalar, kSentinel };

const char* ToString(CpuPath path);
// Throws Error for an unknown name.
CpuPath ParseCpuPath(const std::string& name);
bool IsSupported(CpuPath path);
// Supported paths, best first; always ends with kScalar.
std::vector<CpuPath> AvailableCpuPaths();
// QWEN3_CPU_PATH if set (an unknown or unsupported name throws Error), else the best path.
CpuPath SelectCpuPath();

}  // namespace qwen3::cpu
