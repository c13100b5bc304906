#include "tools/attention_contexts.h"

#include <chrono>
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "base/rng.h"
#include "exec/cpu/cpu_executor.h"
#include "runtime/thread_pool.h"
#include "tools/read_bandwidth.h"
#include "tools/summary.h"

namespace qwen3 {
namespace {

// One KV type's cache of `batch` users of `context` tokens each, filled with random values
// (pages the first write faults in: a zero page would read from no memory at all).
struct Case {
  std::unique_ptr<cpu::CpuExecutor> executor;
  std::unique_ptr<KvCache> kv;
  std::vector<double> ms, pct;
};

}  // namespace

nlohmann::json RunAttentionContexts(const ModelDims& dims, const cpu::CpuKernels& kernels,
                                    ThreadPool& pool, ReadBandwidthProbe& probe,
                                    const AttentionContextsOptions& o) {
  const KvType types[] = {KvType::kBf16, KvType::kQ8_0};
  nlohmann::json rows = nlohmann::json::array();
  std::printf("\nattention alone (one layer: partials + merge), KV bf16 vs q8_0, %zu reps "
              "interleaved, each against the read-bandwidth pass before it\n",
              o.reps);
  std::printf("%7s %5s | %-5s %9s %15s %9s %8s %6s\n", "context", "batch", "kv", "ms",
              "(min-max)", "KV MB", "GB/s", "%bw");
  for (const size_t ctx : o.contexts) {
    for (const size_t batch : o.batches) {
      const size_t pages = (ctx + o.block_size - 1) / o.block_size, blocks = batch * pages;
      std::vector<int32_t> seq_lens(batch, static_cast<int32_t>(ctx)), table(blocks),
          slots(batch);
      for (size_t i = 0; i < blocks; ++i) table[i] = static_cast<int32_t>(i);
      for (size_t u = 0; u < batch; ++u) {
        slots[u] = static_cast<int32_t>(u * pages * o.block_size + ctx - 1);
      }
      const DecodeBatch db{batch, seq_lens.data(), table.data(), pages, slots.data()};
      std::vector<Case> cases;
      {
        // The seed's layout, [block][kv_head][token][head_dim], of small random values.
        const size_t n = blocks * dims.kv_heads * o.block_size * dims.head_dim;
        std::vector<bf16> k(n), v(n);
        const CounterRng rng(ctx, batch);
        pool.Spmd(blocks, [&](size_t blk, size_t) {
          const size_t per = n / blocks;
          for (size_t i = blk * per; i < (blk + 1) * per; ++i) {
            k[i] = F32ToBf16(rng.Uniform(i) - 0.5f);
            v[i] = F32ToBf16(rng.Uniform(i + n) - 0.5f);
          }
        });
        for (const KvType type : types) {
          Case c;
          c.executor = std::make_unique<cpu::CpuExecutor>(dims, kernels, pool, batch, type);
          c.kv = c.executor->NewKvCache(blocks, o.block_size);
          c.executor->ImportKv(*c.kv, k.data(), v.data());
          cases.push_back(std::move(c));
        }
      }
      for (size_t rep = 0; rep < o.reps + 2; ++rep) {  // 2 untimed
        for (Case& c : cases) {
          const double bw = probe.Pass();
          const auto t0 = std::chrono::steady_clock::now();
          c.executor->Attention(*c.kv, db, AttentionOptions{}, Act::kAttn);
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          const double bytes = static_cast<double>(batch * ctx * c.executor->KvBytesPerToken());
          if (rep >= 2) {
            c.ms.push_back(s * 1e3);
            c.pct.push_back(100 * bytes / s / 1e9 / bw);
          }
        }
      }
      for (size_t i = 0; i < cases.size(); ++i) {
        const Summary t = Summarize(cases[i].ms), p = Summarize(cases[i].pct);
        const double bytes = static_cast<double>(batch * ctx * cases[i].executor->KvBytesPerToken());
        std::printf("%7zu %5zu | %-5s %9.3f %7.3f-%-7.3f %9.1f %8.1f %5.1f%%\n", ctx, batch,
                    KvTypeName(types[i]), t.median, t.min, t.max, bytes / 1e6,
                    bytes / (t.median * 1e-3) / 1e9, p.median);
        rows.push_back({{"kv_type", KvTypeName(types[i])},
                        {"batch", batch},
                        {"context", ctx},
                        {"ms", t.median},
                        {"ms_min", t.min},
                        {"ms_max", t.max},
                        {"kv_bytes", bytes},
                        {"gbs", bytes / (t.median * 1e-3) / 1e9},
                        {"pct_bw", p.median},
                        {"pct_bw_min", p.min},
                        {"pct_bw_max", p.max}});
      }
    }
  }
  return rows;
}

}  // namespace qwen3
