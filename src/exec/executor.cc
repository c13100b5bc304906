#include "exec/executor.h"

#include "base/error.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cpu/cpu_path.h"
#include "exec/reference/reference_executor.h"

namespace qwen3 {
namespace {

struct ExecutorRow {
  const char* name;
  std::unique_ptr<Executor> (*make)(const ModelDims& dims, const ExecutorOptions& o,
                                    ThreadPool& pool);
};

// One row per executor: a new device is its folder and a row here.
constexpr ExecutorRow kExecutors[] = {
    {"cpu",
     [](const ModelDims& d, const ExecutorOptions& o, ThreadPool& pool) -> std::unique_ptr<Executor> {
       return std::make_unique<cpu::CpuExecutor>(d, cpu::GetCpuKernels(cpu::SelectCpuPath()), pool,
                                                 o.max_rows, o.kv_type);
     }},
    {"reference",
     [](const ModelDims& d, const ExecutorOptions& o, ThreadPool& pool) -> std::unique_ptr<Executor> {
       if (o.kv_type != KvType::kBf16) {
         throw Error(std::string("--kv-type ") + KvTypeName(o.kv_type) +
                     ": the reference executor keeps its KV cache in fp32: expected bf16");
       }
       return std::make_unique<ReferenceExecutor>(d, pool, o.max_rows);
     }},
};

}  // namespace

KvType ParseKvType(const std::string& name) {
  if (name == "bf16") return KvType::kBf16;
  if (name == "q8_0") return KvType::kQ8_0;
  throw Error("--kv-type " + name + ": expected bf16 | q8_0");
}

const char* KvTypeName(KvType type) { return type == KvType::kQ8_0 ? "q8_0" : "bf16"; }

std::unique_ptr<Executor> MakeExecutor(const ModelDims& dims, const ExecutorOptions& options,
                                       ThreadPool& pool) {
  std::string known;
  for (const ExecutorRow& row : kExecutors) {
    if (options.device == row.name) return row.make(dims, options, pool);
    known += known.empty() ? row.name : std::string(" | ") + row.name;
  }
  throw Error("--device " + options.device + ": expected " + known);
}

}  // namespace qwen3
