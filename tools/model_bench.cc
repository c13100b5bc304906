#include "tools/model_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/packed_matrix.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "serve/engine.h"
#include "tools/read_bandwidth.h"
#include "tools/summary.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The cube's peak rate: every worker runs 16 x 64 x K matmul blocks on operands that stay in
// its L1/L2, so nothing but the math limits it. FLOP/s over all workers, the best of 9 runs
// of ~10 ms (a limit: the host's noise only ever slows a run down).
double PeakMatmulFlops(const cpu::CpuKernels& k, ThreadPool& pool) {
  constexpr size_t kK = 1024, kCalls = 4000;
  const size_t workers = pool.NumWorkers();
  std::vector<AlignedBuffer<bf16>> a, b;
  std::vector<AlignedBuffer<float>> c;
  for (size_t w = 0; w < workers; ++w) {
    a.emplace_back(cpu::kTileM * kK);
    b.emplace_back(kK * cpu::kTileN * cpu::kMaxBlocksPerCall);
    c.emplace_back(cpu::kTileM * cpu::kTileN * cpu::kMaxBlocksPerCall);
  }
  const cpu::TileOrder order{kK / cpu::kTileK, cpu::kMaxBlocksPerCall};
  auto run = [&] {
    pool.Spmd(workers, [&](size_t w, size_t) {
      cpu::BBlock blocks[cpu::kMaxBlocksPerCall];
      for (size_t j = 0; j < cpu::kMaxBlocksPerCall; ++j) blocks[j] = order.Block(b[w].data(), j);
      for (size_t i = 0; i < kCalls; ++i) {
        k.matmul_block(a[w].data(), kK, cpu::kTileM, order.k_tiles, blocks, cpu::kMaxBlocksPerCall,
                       c[w].data(), cpu::kTileN * cpu::kMaxBlocksPerCall, nullptr, 0);
      }
    });
  };
  run();  // warm-up
  std::vector<double> rates;
  for (int rep = 0; rep < 9; ++rep) {
    const auto t0 = Clock::now();
    run();
    rates.push_back(2.0 * cpu::kTileM * cpu::kTileN * cpu::kMaxBlocksPerCall * kK * kCalls *
                    workers / Since(t0));
  }
  return Summarize(rates).max;
}

}  // namespace

void RunModelBench(const ModelBenchOptions& o) {
  if (o.steps < 10) throw Error("--steps " + std::to_string(o.steps) + ": expected at least 10");
  if (o.context < 1) throw Error("--context 0: expected at least 1 prompt token");
  const size_t max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  // The weights only (no tokenizer, KV pool or engine thread); the benchmark's Model has its
  // own user slots.
  EngineOptions eo;
  eo.model_dir = o.model_dir;
  eo.need_tokenizer = false;
  eo.serve = false;
  eo.threads = o.threads;
  const std::unique_ptr<Engine> engine = Engine::Open(eo);
  const cpu::CpuKernels& kernels = engine->kernels();
  const cpu::CpuPath path = kernels.path;
  ThreadPool& pool = engine->pool();
  const ModelWeights& w = engine->weights();
  const double load_s = engine->load_seconds();
  const Qwen3Config& c = w.config;
  Model::Options mo;
  mo.max_users = max_batch;
  mo.max_seq = o.context + o.steps + 8;  // warm-up steps too
  mo.max_rows = o.max_rows;
  Model model(w, mo, kernels, pool);
  std::printf(
      "qwen3-bench --model %s: %d layers, hidden %d, vocab %d, tied %s | weights %.3f GB packed "
      "(loaded in %.2f s), KV cache %.3f GB | path %s, %zu threads\n",
      o.model_dir.c_str(), c.layers, c.hidden, c.vocab, c.tied_embeddings ? "yes" : "no",
      w.bytes() / 1e9, load_s, model.kv_bytes() / 1e9, cpu::ToString(path), pool.NumWorkers());

  ReadBandwidthProbe probe(pool, static_cast<size_t>(o.bw_gib * (1 << 30)));
  const double peak = PeakMatmulFlops(kernels, pool);
  // Weights every decode step streams: all packed layers and the LM head (embedding rows and
  // norm vectors are noise).
  const double weight_bytes = static_cast<double>(w.bytes() - w.embed.size() * sizeof(bf16));
  const double kv_token_bytes = static_cast<double>(c.KvBytesPerToken());
  // FLOPs per token through the layers (2 per weight) and, per prompt, one LM head row.
  double layer_params = 0;
  for (const LayerWeights& l : w.layers) {
    layer_params += static_cast<double>(l.wq.k() * l.wq.n() + l.wk.k() * l.wk.n() +
                                        l.wv.k() * l.wv.n() + l.wo.k() * l.wo.n() +
                                        l.w_gate_up.k() * l.w_gate_up.n() + l.w_down.k() * l.w_down.n());
  }
  const double lm_flops = 2.0 * c.hidden * c.vocab;

  nlohmann::json j;
  j["model"] = o.model_dir;
  j["config"] = {{"layers", c.layers}, {"hidden", c.hidden}, {"vocab", c.vocab}};
  j["path"] = cpu::ToString(path);
  j["threads"] = pool.NumWorkers();
  j["context"] = o.context;
  j["weights_bytes"] = weight_bytes;
  j["peak_matmul_tflops"] = peak / 1e12;
  j["runs"] = nlohmann::json::array();
  std::printf("cube peak (in-cache matmul, all threads): %.2f TFLOP/s\n\n", peak / 1e12);
  std::printf("%5s | %9s %8s %9s %7s | %9s %9s %7s %7s %8s\n", "batch", "prefill", "tok/s",
              "TFLOP/s", "%peak", "decode ms", "(min-max)", "tok/s", "GB/step", "%bw");
  for (size_t batch : o.batches) {
    model.ResetAll();
    std::vector<int32_t> users(batch);
    std::vector<std::vector<int32_t>> prompts(batch, std::vector<int32_t>(o.context));
    for (size_t u = 0; u < batch; ++u) {
      users[u] = static_cast<int32_t>(u);
      for (size_t i = 0; i < o.context; ++i) {
        prompts[u][i] = static_cast<int32_t>((u * 7919 + i * 104729) % c.vocab);
      }
    }
    std::vector<float> logits(batch * c.vocab);
    const auto t0 = Clock::now();
    model.Prefill(users, prompts, logits.data());
    const double prefill_s = Since(t0);
    const double tokens = static_cast<double>(batch * o.context);
    // Causal attention: q.K and P.V over on average (context + 1) / 2 positions per token.
    const double attn_flops = 4.0 * c.QDim() * c.layers * (o.context + 1) / 2.0;
    const double prefill_flops = tokens * (2.0 * layer_params + attn_flops) + batch * lm_flops;

    std::vector<int32_t> next(batch);
    auto pick = [&] {
      for (size_t u = 0; u < batch; ++u) {
        const float* row = logits.data() + u * c.vocab;
        next[u] = static_cast<int32_t>(std::max_element(row, row + c.vocab) - row);
      }
    };
    for (int i = 0; i < 3; ++i) {  // warm-up
      pick();
      model.Decode(users, next, logits.data());
    }
    std::vector<double> ms, pct, bws;

    StageTimes stages;
    for (size_t s = 0; s < o.steps; ++s) {
      pick();
      const double bw = probe.Pass();
      double kv = 0;
      for (size_t u = 0; u < batch; ++u) kv += (model.Length(u) + 1) * kv_token_bytes;
      const auto ts = Clock::now();
      model.Decode(users, next, logits.data(), &stages);
      const double sec = Since(ts);

      ms.push_back(sec * 1e3);
      pct.push_back(100.0 * (weight_bytes + kv) / sec / 1e9 / bw);
      bws.push_back(bw);
    }
    const Summary t = Summarize(ms), p = Summarize(pct), b = Summarize(bws);
    const double step_bytes = weight_bytes + batch * (o.context + 3 + o.steps / 2) * kv_token_bytes;
    const double prefill_pct = 100.0 * prefill_flops / prefill_s / peak;
    std::printf("%5zu | %8.2fs %8.1f %9.3f %6.1f%% | %9.2f %4.1f-%-4.1f %7.1f %7.3f %7.1f%%\n",
                batch, prefill_s, tokens / prefill_s, prefill_flops / prefill_s / 1e12,
                prefill_pct, t.median, t.min, t.max, batch / (t.median * 1e-3), step_bytes / 1e9,
                p.median);
    std::string breakdown;
    nlohmann::json stage_ms = nlohmann::json::object();
    for (size_t st = 0; st < kNumStages; ++st) {
      const double per_step = stages.seconds[st] * 1e3 / o.steps;
      stage_ms[ToString(static_cast<Stage>(st))] = per_step;
      char buf[64];
      std::snprintf(buf, sizeof(buf), " %s %.2f", ToString(static_cast<Stage>(st)), per_step);
      breakdown += buf;
    }
    std::printf("      decode ms per step by stage (all layers, mean):%s\n", breakdown.c_str());
    j["runs"].push_back({{"batch", batch},
                         {"prefill_tokens", tokens},
                         {"prefill_s", prefill_s},
                         {"prefill_tokens_per_s", tokens / prefill_s},
                         {"prefill_pct_peak", prefill_pct},
                         {"decode_ms", {{"median", t.median}, {"min", t.min}, {"max", t.max}}},
                         {"decode_tokens_per_s", batch / (t.median * 1e-3)},
                         {"decode_bytes_per_step", step_bytes},
                         {"decode_pct_bw", {{"median", p.median}, {"min", p.min}, {"max", p.max}}},
                         {"read_bw_gbs", b.median},
                         {"decode_stage_ms", stage_ms}});
  }
  std::printf(
      "\ndecode %%bw: (packed weights + KV read) / step time / read bandwidth of the pass just "
      "before the step, median of %zu steps; prefill %%peak: prompt FLOPs / time / cube peak\n",
      o.steps);
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << j.dump(2) << "\n";
    if (!out) throw Error("--json " + o.json_path + ": cannot write");
  }
}

}  // namespace qwen3
