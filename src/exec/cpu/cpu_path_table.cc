// The CPU paths, one row each (cpu_path_table.h). A new path is a CpuPath value, its row here,
// its own files exporting what the row names (cpu_path_symbols.h) and their ISA flags in
// CMakeLists.txt.
#include "exec/cpu/cpu_path_table.h"

#include <iterator>

#include "exec/cpu/cpu_path_symbols.h"

namespace qwen3::cpu {
namespace {

constexpr CpuPathRow kPaths[] = {
    {.path = CpuPath::kAmx,
     .name = "amx",
     .supported = [](const CpuFeatures& f) { return f.amx_bf16; },
     .why_unsupported = [](const CpuFeatures& f) { return f.amx_status; },
     .kernels = &kKernelsAmx,
     .peak_dot = DotLoopAmx,
     .peak_int8 = Int8LoopVnni,  // AMX int8 tiles are not used: the avx512bf16 int8 kernel
     .peak_dot_sets_tiles = true},
    {.path = CpuPath::kAvx512Bf16,
     .name = "avx512bf16",
     .supported = [](const CpuFeatures& f) { return f.avx512_bf16; },
     .why_unsupported = nullptr,
     .kernels = &kKernelsAvx512Bf16,
     .peak_dot = DotLoopAvx512Bf16,
     .peak_int8 = Int8LoopVnni,
     .peak_dot_sets_tiles = false},
    {.path = CpuPath::kAvx512,
     .name = "avx512",
     .supported = [](const CpuFeatures& f) { return f.avx512; },
     .why_unsupported = nullptr,
     .kernels = &kKernelsAvx512,
     .peak_dot = DotLoopAvx512,
     .peak_int8 = Int8LoopAvx512,
     .peak_dot_sets_tiles = false},
    {.path = CpuPath::kAvx2,
     .name = "avx2",
     .supported = [](const CpuFeatures& f) { return f.avx2_fma; },
     .why_unsupported = nullptr,
     .kernels = &kKernelsAvx2,
     .peak_dot = DotLoopAvx2,
     .peak_int8 = Int8LoopAvx2,
     .peak_dot_sets_tiles = false},
    {.path = CpuPath::kScalar,
     .name = "scalar",
     .supported = [](const CpuFeatures&) { return true; },
     .why_unsupported = nullptr,
     .kernels = &kKernelsScalar,
     .peak_dot = DotLoopScalar,
     .peak_int8 = Int8LoopScalar,
     .peak_dot_sets_tiles = false},
};

// Row i is CpuPath(i), so a path is found by index; a CpuPath value without its row (or a row
// out of order) does not compile.
consteval bool RowsInEnumOrder() {
  if (std::size(kPaths) != static_cast<size_t>(CpuPath::kSentinel)) return false;
  for (size_t i = 0; i < std::size(kPaths); ++i) {
    if (kPaths[i].path != static_cast<CpuPath>(i)) return false;
  }
  return kPaths[std::size(kPaths) - 1].path == CpuPath::kScalar;
}
static_assert(RowsInEnumOrder(), "kPaths: one row per CpuPath, in enum order, kScalar last");

}  // namespace

std::span<const CpuPathRow> CpuPathRows() { return kPaths; }

const CpuPathRow* FindCpuPathRow(CpuPath path) {
  const auto i = static_cast<size_t>(path);
  return i < std::size(kPaths) ? &kPaths[i] : nullptr;
}

}  // namespace qwen3::cpu
