#include "tools/model_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/packed_matrix.h"
#include "exec/cpu/peak_rate.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "tools/stage_cost.h"
#include "runtime/thread_pool.h"
#include "runtime/trace.h"
#include "serve/engine.h"
#include "tools/attention_contexts.h"
#include "tools/read_bandwidth.h"
#include "tools/summary.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Our matmul kernel's in-cache rate: every worker runs 16 x 64 x K matmul blocks on operands
// that stay in its L1/L2. FLOP/s over all workers, the best of 9 runs of ~10 ms. Reported next
// to the peak dot rate (the roofline's compute roof) to show what the kernel leaves of it.
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
  if (o.batches.empty()) throw Error("--batches: expected at least one batch size");
  const size_t max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  // The weights only (no tokenizer, KV pool or engine thread); the benchmark's Model has its
  // own user slots.
  EngineOptions eo;
  eo.model_dir = o.model_dir;
  eo.quantize = o.quantize;
  eo.kv_type = o.kv_type;
  eo.need_tokenizer = false;
  eo.serve = false;
  eo.threads = o.threads;
  const std::unique_ptr<Engine> engine = Engine::Open(eo);
  auto* cpu_executor = dynamic_cast<cpu::CpuExecutor*>(&engine->executor());
  if (cpu_executor == nullptr) throw Error("qwen3-bench --model: expected the cpu executor");
  const cpu::CpuKernels& kernels = cpu_executor->kernels();
  const cpu::CpuPath path = kernels.path;
  ThreadPool& pool = engine->pool();
  const ModelWeights& w = engine->weights();
  const double load_s = engine->load_seconds();
  const Qwen3Config& c = w.config;
  Model::Options mo;
  mo.max_users = max_batch + 1;  // + the mixed pass's prefill user
  mo.max_seq = o.context + 3 * o.steps + 8;  // warm-up and mixed-pass steps too
  mo.max_rows = o.max_rows;
  Model model(w, mo, *cpu_executor);
  std::printf(
      "qwen3-bench --model %s: %d layers, hidden %d, vocab %d, tied %s | weights %.3f GB packed "
      "(loaded in %.2f s), KV cache %.3f GB %s | path %s, %zu threads\n",
      o.model_dir.c_str(), c.layers, c.hidden, c.vocab, c.tied_embeddings ? "yes" : "no",
      w.bytes() / 1e9, load_s, model.kv_bytes() / 1e9, o.kv_type.c_str(), cpu::ToString(path),
      pool.NumWorkers());

  ReadBandwidthProbe probe(pool, static_cast<size_t>(o.bw_gib * (1 << 30)));
  // The compute roof of the weights' dot: bf16 (vdpbf16ps, ...) or the int8 one of quantized
  // weights (vpdpbusd, ...), in ops/s either way.
  const double bf16_peak = cpu::PeakDotFlops(path, pool);
  const double int8_peak = cpu::PeakInt8Ops(path, pool);
  const double peak = w.quantized() ? int8_peak : bf16_peak;
  const double kernel_peak = PeakMatmulFlops(kernels, pool);
  // Weights every decode step streams: all packed layers and the LM head (embedding rows and
  // norm vectors are noise).
  const size_t embed_rows =
      w.embed && w.embed->type() == WeightType::kBf16 ? w.embed->bytes() : 0;
  // An MoE model's experts count only where a step routes a row: the union of the experts
  // chosen in each layer (read once per step however many rows chose them).
  const auto expert_bytes = [&](size_t layer, size_t e) {
    const LayerWeights& l = w.layers[layer];
    return static_cast<double>(l.expert_gate_up[e]->bytes() + l.expert_down[e]->bytes());
  };
  double all_expert_bytes = 0;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    for (size_t e = 0; e < w.layers[l].expert_gate_up.size(); ++e) all_expert_bytes += expert_bytes(l, e);
  }
  const double weight_bytes = static_cast<double>(w.bytes() - embed_rows) - all_expert_bytes;
  // As the executor stores K and V (bf16, or q8_0's codes and scales), all layers.
  const double kv_token_bytes = static_cast<double>(cpu_executor->KvBytesPerToken()) * c.layers;
  // The routed experts of the last Forward: per layer, which experts any row chose.
  std::vector<std::vector<uint8_t>> touched(w.layers.size());
  const Model::Observer routing = [&](size_t, size_t rows, size_t depth, const bf16*,
                                      const int32_t* experts) {
    if (experts == nullptr) return;
    std::vector<uint8_t>& t = touched[depth - 1];
    t.resize(static_cast<size_t>(c.experts));
    for (size_t i = 0; i < rows * static_cast<size_t>(c.experts_used); ++i) t[experts[i]] = 1;
  };
  auto routed_bytes = [&] {
    double bytes = 0;
    for (size_t l = 0; l < touched.size(); ++l) {
      for (size_t e = 0; e < touched[l].size(); ++e) {
        if (touched[l][e]) bytes += expert_bytes(l, e);
      }
      touched[l].assign(touched[l].size(), 0);
    }
    return bytes;
  };
  // FLOPs (stage_cost.h): all layers' stages for rows at the given lengths (a decode step: one
  // row per user; a prompt: row i at length i + 1), and the final norm + LM head for `rows`.
  auto layer_flops = [&](const std::vector<int32_t>& seq_lens) {
    double sum = 0;
    for (int l = 0; l < c.layers; ++l) {
      const auto f = StageFlops(c, {.batch = seq_lens.size(), .seq_lens = seq_lens.data()}, 0,
                                c.IsMoeLayer(l));
      for (size_t st = 0; st < kNumStages; ++st) {
        if (st != static_cast<size_t>(Stage::kFinalNorm)) sum += f[st];
      }
    }
    return sum;
  };
  auto head_flops = [&](size_t rows) {
    const std::vector<int32_t> lens(rows, 1);
    const auto f =
        StageFlops(c, {.batch = rows, .seq_lens = lens.data()}, static_cast<size_t>(c.vocab));
    return f[static_cast<size_t>(Stage::kFinalNorm)] + f[static_cast<size_t>(Stage::kLmHead)];
  };
  std::vector<int32_t> prompt_lens(o.context);
  for (size_t i = 0; i < o.context; ++i) prompt_lens[i] = static_cast<int32_t>(i + 1);
  // One prompt: causal attention over positions 0..i for token i, the LM head on its last row.
  const double prompt_flops = layer_flops(prompt_lens) + head_flops(1);

  nlohmann::json j;
  j["model"] = o.model_dir;
  j["config"] = {{"layers", c.layers}, {"hidden", c.hidden}, {"vocab", c.vocab}};
  j["path"] = cpu::ToString(path);
  j["threads"] = pool.NumWorkers();
  j["context"] = o.context;
  j["weights_bytes"] = weight_bytes;  // without the experts
  j["expert_bytes"] = all_expert_bytes;  // all of them; a step reads those it routes to
  j["peak_gflops"] = peak / 1e9;
  j["peak_bf16_gflops"] = bf16_peak / 1e9;
  j["peak_int8_gops"] = int8_peak / 1e9;
  j["weight_type"] = w.weight_type();
  j["kv_type"] = o.kv_type;
  j["kv_bytes_per_token"] = kv_token_bytes;
  j["kernel_peak_gflops"] = kernel_peak / 1e9;
  j["decode"] = nlohmann::json::array();
  std::printf(
      "weights %s | peak dot rate (register-only loop of the path's dot instruction, all "
      "threads): bf16 %.1f GFLOP/s, int8 %.1f GOP/s (the roof: %s); our bf16 matmul kernel in "
      "cache: %.1f GFLOP/s (%.1f%% of the bf16 peak)\n\n",
      w.weight_type().c_str(), bf16_peak / 1e9, int8_peak / 1e9, w.quantized() ? "int8" : "bf16",
      kernel_peak / 1e9, 100 * kernel_peak / bf16_peak);
  std::printf("%5s | %9s %8s %9s %7s | %9s %9s %7s %7s %7s %7s %-7s\n", "batch", "prefill",
              "tok/s", "GFLOP/s", "%peak", "decode ms", "(min-max)", "tok/s", "GB/step", "%bw",
              "%roof", "bound");
  std::vector<double> all_bw;
  {
    // Untimed: the KV cache is a lazy mapping whose first writes fault in (and zero) its huge
    // pages, up to seconds on this host; the timed batch-1 prefill then measures the math.
    std::vector<float> warm(c.vocab);
    const std::vector<int32_t> user0 = {0};
    model.Prefill(user0, {std::vector<int32_t>(o.context, 1)}, warm.data());
  }
  for (size_t bi = 0; bi < o.batches.size(); ++bi) {
    const size_t batch = o.batches[bi];
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
    StageTimes prefill_stages;
    const auto t0 = Clock::now();
    model.Prefill(users, prompts, logits.data(), &prefill_stages);
    const double prefill_s = Since(t0);
    const double tokens = static_cast<double>(batch * o.context);
    const double prefill_flops = batch * prompt_flops;

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
    std::vector<Model::Row> step_rows(batch);
    const std::vector<uint8_t> step_want(batch, 1);
    std::vector<double> ms, pct, roof, bws;
    std::vector<int32_t> seq_lens(batch);
    double sum_bytes = 0, sum_flops = 0, mem_s = 0, flop_s = 0, step_kv = 0;
    StageTimes stages;
    for (size_t s = 0; s < o.steps; ++s) {
      pick();
      const double bw = probe.Pass();
      double kv = 0;
      for (size_t u = 0; u < batch; ++u) {
        seq_lens[u] = static_cast<int32_t>(model.Length(u) + 1);
        kv += seq_lens[u] * kv_token_bytes;
      }
      const auto ts = Clock::now();
      if (c.moe()) {  // with an observer of the routing (a hidden-state copy per layer: noise)
        for (size_t u = 0; u < batch; ++u) step_rows[u] = {users[u], next[u]};
        model.Forward(step_rows, step_want, logits.data(), &routing, &stages);
      } else {
        model.Decode(users, next, logits.data(), &stages);
      }
      const double sec = Since(ts);
      const double bytes = weight_bytes + (c.moe() ? routed_bytes() : 0) + kv;
      const double flops = layer_flops(seq_lens) + head_flops(batch);

      ms.push_back(sec * 1e3);
      pct.push_back(100.0 * bytes / sec / 1e9 / bw);
      roof.push_back(100.0 * std::max(bytes / (bw * 1e9), flops / peak) / sec);
      bws.push_back(bw);
      all_bw.push_back(bw);
      sum_bytes += bytes;
      step_kv += kv;
      sum_flops += flops;
      mem_s += bytes / (bw * 1e9);
      flop_s += flops / peak;
    }
    if (bi == 0 && !o.trace_path.empty()) {  // untimed: two more steps, every dispatch traced
      Tracer tracer(pool.NumWorkers());
      pool.SetTracer(&tracer);
      for (int i = 0; i < 2; ++i) {
        pick();
        model.Decode(users, next, logits.data());
      }
      pool.SetTracer(nullptr);
      tracer.WriteChromeJson(o.trace_path);
      std::printf("trace of 2 batch-%zu steps: %zu events -> %s\n", batch, tracer.num_events(),
                  o.trace_path.c_str());
    }
    const Summary t = Summarize(ms), p = Summarize(pct), r = Summarize(roof), b = Summarize(bws);
    const double step_bytes = sum_bytes / o.steps, step_fl = sum_flops / o.steps;
    const char* bound = mem_s >= flop_s ? "memory" : "compute";
    const double prefill_gflops = prefill_flops / prefill_s / 1e9;
    const double prefill_pct = 100.0 * prefill_flops / prefill_s / peak;
    std::printf("%5zu | %8.2fs %8.1f %9.1f %6.1f%% | %9.2f %4.1f-%-4.1f %7.1f %7.3f %6.1f%% "
                "%6.1f%% %-7s\n",
                batch, prefill_s, tokens / prefill_s, prefill_gflops, prefill_pct, t.median,
                t.min, t.max, batch / (t.median * 1e-3), step_bytes / 1e9, p.median, r.median,
                bound);
    std::string breakdown, prefill_breakdown;
    nlohmann::json stage_ms = nlohmann::json::object(), prefill_stage_ms = nlohmann::json::object();
    for (size_t st = 0; st < kNumStages; ++st) {
      const double per_step = stages.seconds[st] * 1e3 / o.steps;
      const double prefill_ms = prefill_stages.seconds[st] * 1e3;
      stage_ms[ToString(static_cast<Stage>(st))] = per_step;
      prefill_stage_ms[ToString(static_cast<Stage>(st))] = prefill_ms;
      char buf[64];
      std::snprintf(buf, sizeof(buf), " %s %.2f", ToString(static_cast<Stage>(st)), per_step);
      breakdown += buf;
      std::snprintf(buf, sizeof(buf), " %s %.1f", ToString(static_cast<Stage>(st)), prefill_ms);
      prefill_breakdown += buf;
    }
    std::printf("      decode ms per step by stage (all layers, mean):%s\n", breakdown.c_str());
    std::printf("      prefill ms by stage (all layers, all passes):%s\n",
                prefill_breakdown.c_str());
    if (bi == 0) {
      j["prefill"] = {{"batch", batch},
                      {"tokens", batch * o.context},
                      {"ms", prefill_s * 1e3},
                      {"tok_s", tokens / prefill_s},
                      {"gflops", prefill_gflops},
                      {"flops", prefill_flops},
                      {"pct_peak", prefill_pct}};
    }
    j["decode"].push_back({{"batch", batch},
                           {"context", o.context},
                           {"ms", t.median},
                           {"ms_min", t.min},
                           {"ms_max", t.max},
                           {"tok_s", batch / (t.median * 1e-3)},
                           {"bytes", step_bytes},
                           {"kv_bytes", step_kv / o.steps},
                           {"flops", step_fl},
                           {"pct_bw", p.median},
                           {"pct_roofline", r.median},
                           {"pct_roofline_min", r.min},
                           {"pct_roofline_max", r.max},
                           {"bound", bound},
                           {"read_bw_gbs", b.median},
                           {"prefill_ms", prefill_s * 1e3},
                           {"stage_ms", stage_ms},
                           {"prefill_stage_ms", prefill_stage_ms}});
  }
  // The server's mixed pass: the largest batch's users decode one token each while a new user
  // prefills a chunk that fills the pass (max_rows rows, at most --context), in one Forward, against the same
  // two run apart; interleaved rep by rep.
  const size_t chunk = max_batch < o.max_rows ? std::min(o.max_rows - max_batch, o.context) : 0;
  if (chunk > 0) {
    const size_t dec = max_batch;
    const int32_t fresh = static_cast<int32_t>(max_batch);
    std::vector<Model::Row> decode_rows, chunk_rows, mixed_rows;
    for (size_t u = 0; u < dec; ++u) decode_rows.push_back({static_cast<int32_t>(u), 1});
    for (size_t i = 0; i < chunk; ++i) {
      chunk_rows.push_back({fresh, static_cast<int32_t>((i * 104729) % c.vocab)});
    }
    mixed_rows = decode_rows;
    mixed_rows.insert(mixed_rows.end(), chunk_rows.begin(), chunk_rows.end());
    std::vector<uint8_t> want_dec(dec, 1), want_mixed(dec, 1);
    std::vector<uint8_t> want_chunk(chunk - 1, 0);
    want_chunk.push_back(1);  // the chunk's last row: the prompt's logits
    want_mixed.insert(want_mixed.end(), want_chunk.begin(), want_chunk.end());
    std::vector<float> out((dec + 1) * c.vocab);
    std::vector<double> apart_ms, mixed_ms;
    for (size_t s = 0; s < o.steps; ++s) {
      model.Reset(fresh);
      auto ts = Clock::now();
      model.Forward(decode_rows, want_dec, out.data());
      model.Forward(chunk_rows, want_chunk, out.data());
      apart_ms.push_back(Since(ts) * 1e3);
      model.Reset(fresh);
      ts = Clock::now();
      model.Forward(mixed_rows, want_mixed, out.data());
      mixed_ms.push_back(Since(ts) * 1e3);
    }
    const Summary apart = Summarize(apart_ms), mixed = Summarize(mixed_ms);
    std::printf("mixed pass: %zu decode rows + a %zu-token prefill chunk: one pass %.2f ms "
                "(%.2f-%.2f), apart %.2f ms (%.2f-%.2f); mixed / apart %.3f\n",
                dec, chunk, mixed.median, mixed.min, mixed.max, apart.median, apart.min,
                apart.max, mixed.median / apart.median);
    j["mixed_pass"] = {{"decode_rows", dec},
                       {"prefill_rows", chunk},
                       {"mixed_ms", mixed.median},
                       {"apart_ms", apart.median},
                       {"ratio", mixed.median / apart.median}};
  }
  if (!o.attention_contexts.empty()) {
    AttentionContextsOptions ao;
    ao.contexts = o.attention_contexts;
    ao.batches = o.batches;
    j["attention_contexts"] = RunAttentionContexts(DimsOf(c), kernels, pool, probe, ao);
  }
  j["read_bw_gbs"] = Summarize(all_bw).median;
  std::printf(
      "\nread bandwidth %.2f GB/s (median of the %zu passes, one before each step). decode %%bw: "
      "(packed weights + KV read) / step time / the bandwidth of the pass just before the step; "
      "%%roof: max(bytes / that bandwidth, step FLOPs / peak) / step time; both medians of %zu "
      "steps. prefill: all users' --context prompt tokens; %%peak: prompt FLOPs / time / peak "
      "dot rate. JSON \"prefill\" is the first batch's (%zu).\n",
      j["read_bw_gbs"].get<double>(), all_bw.size(), o.steps, o.batches.front());
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << j.dump(2) << "\n";
    if (!out) throw Error("--json " + o.json_path + ": cannot write");
  }
}

}  // namespace qwen3
