// qwen3-bench: the decode step against the machine and a peer, in one process.
//   (a) read bandwidth: every thread streams a buffer of >= 2 GiB (read_bandwidth.h)
//   (b) our step per stage and in total: median and spread over --steps after --warmup
//   (c) the bytes each stage must move, its GB/s and % of (a)
//   (c') the roofline: each stage's FLOPs, the path's peak dot rate (exec/cpu/peak_rate.h),
//        and max(bytes / bandwidth, FLOPs / peak), the least time the stage can take
//   (d) the same projections through oneDNN's bf16 matmul (the peer), side by side
//   (e) what the seed's design choices are worth: fused epilogues vs an unfused schedule,
//       flat attention dispatch vs one dispatch per user
// --json FILE writes it all; --trace FILE a Chrome/Perfetto trace of two steps.
//
//   qwen3-bench -b 16 --max-seq --json bench.json
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "exec/cpu/peak_rate.h"
#include "tools/bench_variants.h"
#include "tools/stage_cost.h"
#include "tools/layer_flags.h"
#include "tools/onednn_peer.h"
#include "tools/model_bench.h"
#include "tools/read_bandwidth.h"
#include "tools/summary.h"
#include "tools/tool_main.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;

// Per stage and in total: ms, and % of the read bandwidth of the pass just before each step
// (median over steps of that per-step ratio, which cancels the host's bandwidth drift), and %
// of the roofline, max(bytes / that pass's bandwidth, FLOPs / peak) / ms, the same way.
struct StageStats {
  std::array<Summary, kNumStages> stage, stage_pct, stage_roof;
  Summary total, total_pct, total_roof, bw;
};

// The least seconds `bytes` and `flops` take at bw GB/s and peak FLOP/s.
double RooflineSeconds(double bytes, double flops, double bw_gbs, double peak) {
  return std::max(bytes / (bw_gbs * 1e9), flops / peak);
}

// Steps of several program variants, interleaved round-robin (a bandwidth pass before each
// step), so that the host's drift hits every variant alike.
std::vector<StageStats> TimeSteps(LayerHarness& h, const std::vector<DecodeLayer*>& layers,
                                  ReadBandwidthProbe& probe,
                                  const std::array<double, kNumStages>& bytes,
                                  const std::array<double, kNumStages>& flops, double peak,
                                  size_t warmup, size_t steps) {
  for (size_t i = 0; i < warmup; ++i) {
    for (DecodeLayer* layer : layers) h.StepWith(*layer);
  }
  const size_t n = layers.size();
  std::vector<StageTimes> runs(steps * n);
  std::vector<double> bw(steps * n);
  for (size_t i = 0; i < steps; ++i) {
    for (size_t v = 0; v < n; ++v) {
      bw[i * n + v] = probe.Pass();
      h.StepWith(*layers[v], &runs[i * n + v]);
    }
  }
  double total_bytes = 0, total_flops = 0;
  for (double b : bytes) total_bytes += b;
  for (double f : flops) total_flops += f;
  std::vector<StageStats> out(n);
  for (size_t v = 0; v < n; ++v) {
    StageStats& s = out[v];
    std::vector<double> all_bw;
    for (size_t st = 0; st <= kNumStages; ++st) {
      std::vector<double> ms, pct, roof;
      for (size_t i = 0; i < steps; ++i) {
        const StageTimes& r = runs[i * n + v];
        const double sec = st < kNumStages ? r.seconds[st] : r.Total();
        const double b = st < kNumStages ? bytes[st] : total_bytes;
        const double f = st < kNumStages ? flops[st] : total_flops;
        ms.push_back(sec * 1e3);
        pct.push_back(sec > 0 ? 100 * b / sec / 1e9 / bw[i * n + v] : 0);
        roof.push_back(sec > 0 ? 100 * RooflineSeconds(b, f, bw[i * n + v], peak) / sec : 0);
        if (st == 0) all_bw.push_back(bw[i * n + v]);
      }
      (st < kNumStages ? s.stage[st] : s.total) = Summarize(ms);
      (st < kNumStages ? s.stage_pct[st] : s.total_pct) = Summarize(pct);
      (st < kNumStages ? s.stage_roof[st] : s.total_roof) = Summarize(roof);
    }
    s.bw = Summarize(all_bw);
  }
  return out;
}

// The projections of each cube stage, as oneDNN matmuls on the harness's own weights.
struct PeerStats {
  Summary ms, pct;
};

std::optional<PeerStats> TimePeer(LayerHarness& h, Stage stage, ReadBandwidthProbe& probe,
                                  double bytes, size_t warmup, size_t steps) {
  const Qwen3Config& c = h.config();
  LayerTensors& t = h.tensors();
  const size_t m = h.shape().batch, hid = c.hidden, q = c.QDim(), kv = c.KvDim(),
               inter = c.intermediate;
  struct Shape {
    size_t k, n;
    const bf16* w;
    bool out_in;
  };
  std::vector<Shape> shapes;
  switch (stage) {
    case Stage::kQkvProj:
      shapes = {{hid, q, t.wq.data(), false},
                {hid, kv, t.wk.data(), false},
                {hid, kv, t.wv.data(), false}};
      break;
    case Stage::kOutProj:
      shapes = {{q, hid, t.wo.data(), false}};
      break;
    case Stage::kGateUpSilu:
      shapes = {{hid, inter, t.w_gate.data(), false}, {hid, inter, t.w_up.data(), false}};
      break;
    case Stage::kDownProj:
      shapes = {{inter, hid, t.w_down.data(), false}};
      break;
    case Stage::kLmHead:
      if (t.lm_rows == 0) return std::nullopt;
      shapes = {{hid, t.lm_rows, t.lm_head.data(), true}};
      break;
    default:
      return std::nullopt;
  }
  size_t max_k = 0;
  for (const Shape& s : shapes) max_k = std::max(max_k, s.k);
  AlignedBuffer<bf16> src(m * max_k);  // activations: values do not change the timing
  for (size_t i = 0; i < src.size(); ++i) src[i] = t.hidden[i % t.hidden.size()];
  std::vector<std::unique_ptr<OneDnnMatmul>> mms;
  for (const Shape& s : shapes) {
    mms.push_back(std::make_unique<OneDnnMatmul>(m, s.k, s.n, s.w, s.out_in, src.data()));
  }
  std::vector<double> ms, pct;
  for (size_t i = 0; i < warmup + steps; ++i) {
    const double bw = i >= warmup ? probe.Pass() : 0;
    const auto t0 = Clock::now();
    for (auto& mm : mms) mm->Run();
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i >= warmup) {
      ms.push_back(sec * 1e3);
      pct.push_back(100 * bytes / sec / 1e9 / bw);
    }
  }
  return PeerStats{Summarize(ms), Summarize(pct)};
}

nlohmann::json SummaryJson(const Summary& s) {
  return {{"median", s.median}, {"min", s.min}, {"max", s.max}};
}

int Main(int argc, char** argv) {
  LayerFlags flags;
  size_t steps = 20, warmup = 3;
  double bw_gib = 2.5;
  std::string json_path;
  bool no_peer = false, no_variants = false;
  CLI::App app{"qwen3-bench: the decode step vs the machine's read bandwidth and oneDNN"};
  flags.Add(app);
  app.add_option("--steps", steps, "timed steps (default 20, at least 10)");
  app.add_option("--warmup", warmup, "untimed steps first (default 3)");
  app.add_option("--bw-gib", bw_gib, "read-bandwidth buffer in GiB (default 2.5, at least 2)");
  app.add_option("--json", json_path, "write the results as JSON to FILE");
  app.add_flag("--no-peer", no_peer, "skip the oneDNN peer");
  app.add_flag("--no-variants", no_variants, "skip the unfused / per-user variants");
  ModelBenchOptions mb;
  app.add_option("--model", mb.model_dir,
                 "benchmark a whole model from a Hugging Face directory instead of the layer: "
                 "decode tokens/s at each --batches, prefill tokens/s");
  app.add_option("--batches", mb.batches, "with --model: batch sizes (default 1,16)")
      ->delimiter(',');
  app.add_option("--context", mb.context, "with --model: prompt tokens per user (default 512)");
  app.add_option("--max-rows", mb.max_rows, "with --model: tokens per prefill pass (default 128)");
  app.add_option("--quantize", mb.quantize,
                 "with --model: quantize the bf16 weights at load (q8_0 | q4_0)");
  app.add_option("--kv-type", mb.kv_type, "with --model: KV cache element type (bf16 | q8_0)");
  app.add_option("--attention-contexts", mb.attention_contexts,
                 "with --model: then the attention stage alone at these contexts (tokens per "
                 "user), each --batches, KV bf16 and q8_0 side by side")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  if (!mb.model_dir.empty()) {
    if (!json_path.empty()) CheckWritable("--json", json_path);
    mb.steps = steps;
    mb.threads = flags.options.threads;
    mb.bw_gib = bw_gib;
    mb.json_path = json_path;
    if (!flags.trace.empty()) CheckWritable("--trace", flags.trace);
    mb.trace_path = flags.trace;
    RunModelBench(mb);
    return 0;
  }
  if (steps < 10) throw Error("--steps " + std::to_string(steps) + ": expected at least 10");
  if (bw_gib < 2) throw Error("--bw-gib " + std::to_string(bw_gib) + ": expected at least 2");
  if (!json_path.empty()) CheckWritable("--json", json_path);
  const LayerHarnessOptions o = flags.Resolve();
  LayerHarness h(o);
  const Qwen3Config& c = h.config();
  const size_t threads = h.threads();
  std::printf("qwen3-bench: %s batch %zu %s lm-head %s | path %s, %zu threads\n", c.name.c_str(),
              o.batch, o.all_max_seq ? "all seq_lens = max" : "seq_lens random",
              ToString(o.lm_head), cpu::ToString(h.path()), threads);

  const size_t h_pps = h.PagesPerSplit();
  const auto bytes = StageBytes(c, h.batch(), h.tensors().lm_rows, h_pps, o.block_size);
  const auto flops = StageFlops(c, h.batch(), h.tensors().lm_rows);
  ReadBandwidthProbe probe(h.pool(), static_cast<size_t>(bw_gib * (1 << 30)));
  const double peak = cpu::PeakDotFlops(h.path(), h.pool());
  const StageStats ours =
      TimeSteps(h, {&h.layer()}, probe, bytes, flops, peak, warmup, steps)[0];

  std::array<std::optional<PeerStats>, kNumStages> peer{};
  if (!no_peer) {
    OneDnnMatmul::SetThreads(static_cast<int>(threads));
    for (size_t s = 0; s < kNumStages; ++s) {
      peer[s] = TimePeer(h, static_cast<Stage>(s), probe, bytes[s], warmup, steps);
    }
    cpu::InvalidateTileConfigs();  // oneDNN configured AMX tiles on our main thread
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // OpenMP workers go idle
  }

  // What the seed's design choices are worth, and the split length: every variant steps in
  // turn with the engine, so the comparison is not at the mercy of the host's drift.
  nlohmann::json variants = nlohmann::json::object();
  if (!no_variants) {
    std::vector<std::unique_ptr<Executor>> executors;  // the variants' (tools/bench_variants.h)
    executors.push_back(std::make_unique<UnfusedEpilogueExecutor>(
        h.executor().dims(), h.kernels(), h.pool(), o.batch));
    executors.push_back(std::make_unique<PerUserAttentionExecutor>(
        h.executor().dims(), h.kernels(), h.pool(), o.batch));
    std::vector<std::unique_ptr<DecodeLayer>> own;
    auto variant = [&](Executor& x, auto set) {
      DecodeLayer::Options vo = h.layer_options();
      set(vo);
      own.push_back(std::make_unique<DecodeLayer>(c, vo, x));
      return own.back().get();
    };
    const auto same = [](auto&) {};
    const std::vector<DecodeLayer*> layers = {
        &h.layer(), variant(*executors[0], same), variant(*executors[1], same),
        variant(h.executor(), [](auto& vo) { vo.pages_per_split = 1; }),
        variant(h.executor(), [](auto& vo) { vo.pages_per_split = 8; })};
    const std::vector<StageStats> st =
        TimeSteps(h, layers, probe, bytes, flops, peak, warmup, steps);
    const char* names[] = {"engine", "unfused_epilogues", "attention_per_user",
                           "pages_per_split_1", "pages_per_split_8"};
    const auto idx = [](Stage x) { return static_cast<size_t>(x); };
    std::printf("\nvariants, interleaved step by step (median ms; %% of read bandwidth)\n");
    std::printf("%-22s %9s %9s %9s %10s %9s %9s %8s\n", "", "out_proj", "gate_up", "down",
                "attention", "merge", "step", "step%bw");
    for (size_t v = 0; v < layers.size(); ++v) {
      const StageStats& s = st[v];
      nlohmann::json vj = nlohmann::json::object();
      for (Stage x : {Stage::kOutProj, Stage::kGateUpSilu, Stage::kDownProj, Stage::kAttention,
                      Stage::kAttentionMerge}) {
        vj[ToString(x)] = {{"ms", s.stage[idx(x)].median},
                           {"pct_bw", s.stage_pct[idx(x)].median},
                           {"pct_roofline", s.stage_roof[idx(x)].median}};
      }
      vj["total"] = {{"ms", s.total.median},
                     {"pct_bw", s.total_pct.median},
                     {"pct_roofline", s.total_roof.median}};
      variants[names[v]] = vj;
      std::printf("%-22s %9.3f %9.3f %9.3f %10.3f %9.3f %9.3f %7.1f%%\n", names[v],
                  s.stage[idx(Stage::kOutProj)].median, s.stage[idx(Stage::kGateUpSilu)].median,
                  s.stage[idx(Stage::kDownProj)].median, s.stage[idx(Stage::kAttention)].median,
                  s.stage[idx(Stage::kAttentionMerge)].median, s.total.median,
                  s.total_pct.median);
    }
  }

  if (!flags.trace.empty()) {
    Tracer tracer(threads);
    h.pool().SetTracer(&tracer);
    h.Step();
    h.Step();
    h.pool().SetTracer(nullptr);
    tracer.WriteChromeJson(flags.trace);
    std::printf("\ntrace: %zu events -> %s\n", tracer.num_events(), flags.trace.c_str());
  }

  const double read_gbs = ours.bw.median;
  nlohmann::json j;
  j["read_bw_gbs"] = read_gbs;
  j["peak_gflops"] = peak / 1e9;
  j["read_bw"] = {
      {"bytes", probe.bytes()},
      {"passes", SummaryJson(ours.bw)},
      {"note",
       "one pass before each timed step; pct_bw and pct_roofline = median of per-step ratios "
       "(each step against its own pass); roofline_ms and bound use the median bandwidth"}};
  j["path"] = cpu::ToString(h.path());
  j["threads"] = threads;
  j["config"] = c.name;
  j["batch"] = o.batch;
  j["all_max_seq"] = o.all_max_seq;
  j["lm_head"] = ToString(o.lm_head);
  j["steps"] = steps;
  std::printf("\n%-20s %9s %9s %9s %9s %8s %7s %9s %9s %7s %-7s %8s %7s\n", "stage", "MB", "ms",
              "(min", "max)", "GB/s", "%bw", "GFLOP", "roof ms", "%roof", "bound", "oneDNN",
              "%bw");
  // The least time at the median bandwidth and the peak, and which of the two limits it.
  auto roofline = [&](double b, double f, const Summary& pct, nlohmann::json& out) {
    const double sec = RooflineSeconds(b, f, read_gbs, peak);
    const char* bound = b / (read_gbs * 1e9) >= f / peak ? "memory" : "compute";
    out["flops"] = f;
    out["roofline_ms"] = sec * 1e3;
    out["pct_roofline"] = pct.median;
    out["pct_roofline_min"] = pct.min;
    out["pct_roofline_max"] = pct.max;
    out["bound"] = bound;
    char col[64];
    std::snprintf(col, sizeof(col), "%9.3f %9.3f %6.1f%% %-7s", f / 1e9, sec * 1e3, pct.median,
                  bound);
    return std::string(col);
  };
  double total_bytes = 0, total_flops = 0;
  j["stages"] = nlohmann::json::array();
  for (size_t s = 0; s < kNumStages; ++s) {
    if (bytes[s] == 0 || (s == static_cast<size_t>(Stage::kLmHead) && h.tensors().lm_rows == 0))
      continue;
    const Summary& t = ours.stage[s];
    total_bytes += bytes[s];
    total_flops += flops[s];
    const double gbs = bytes[s] / (t.median * 1e-3) / 1e9;
    nlohmann::json st = {{"name", ToString(static_cast<Stage>(s))},
                         {"bytes", bytes[s]},
                         {"ms", t.median},
                         {"ms_min", t.min},
                         {"ms_max", t.max},
                         {"gbs", gbs},
                         {"pct_bw", ours.stage_pct[s].median},
                         {"pct_bw_min", ours.stage_pct[s].min},
                         {"pct_bw_max", ours.stage_pct[s].max},
                         {"peer_gbs", nullptr}};
    char peer_col[48] = "       -";
    if (peer[s]) {
      const double pg = bytes[s] / (peer[s]->ms.median * 1e-3) / 1e9;
      st["peer_gbs"] = pg;
      st["peer_ms"] = peer[s]->ms.median;
      st["peer_pct_bw"] = peer[s]->pct.median;
      std::snprintf(peer_col, sizeof(peer_col), "%8.2f %6.1f%%", pg, peer[s]->pct.median);
    }
    const std::string roof_col = roofline(bytes[s], flops[s], ours.stage_roof[s], st);
    std::printf("%-20s %9.2f %9.3f %9.3f %9.3f %8.2f %6.1f%% %s %s\n",
                ToString(static_cast<Stage>(s)), bytes[s] / 1e6, t.median, t.min, t.max, gbs,
                ours.stage_pct[s].median, roof_col.c_str(), peer_col);
    j["stages"].push_back(st);
  }
  const double total_gbs = total_bytes / (ours.total.median * 1e-3) / 1e9;
  nlohmann::json total = {{"bytes", total_bytes},
                          {"ms", ours.total.median},
                          {"ms_min", ours.total.min},
                          {"ms_max", ours.total.max},
                          {"gbs", total_gbs},
                          {"pct_bw", ours.total_pct.median},
                          {"pct_bw_min", ours.total_pct.min},
                          {"pct_bw_max", ours.total_pct.max}};
  const std::string roof_col = roofline(total_bytes, total_flops, ours.total_roof, total);
  std::printf("%-20s %9.2f %9.3f %9.3f %9.3f %8.2f %6.1f%% %s\n", "total", total_bytes / 1e6,
              ours.total.median, ours.total.min, ours.total.max, total_gbs,
              ours.total_pct.median, roof_col.c_str());
  std::printf(
      "read bandwidth: %.2f GB/s median of %zu passes over %.2f GiB, one before each "
      "step [%.2f..%.2f], prefetch %zu B ahead\n",
      read_gbs, steps, probe.bytes() / double(1 << 30), ours.bw.min, ours.bw.max,
      probe.prefetch_bytes());
  std::printf(
      "peak dot rate: %.1f GFLOP/s (path %s, register-only loop on all %zu threads); roof ms = "
      "max(bytes / median bandwidth, FLOPs / peak), %%roof = median of per-step roof / ms\n",
      peak / 1e9, cpu::ToString(h.path()), threads);
  j["total"] = total;
  j["variants"] = variants;
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << j.dump(2) << "\n";
    if (!out) throw Error("--json " + json_path + ": cannot write");
  }
  return 0;
}

}  // namespace
}  // namespace qwen3

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3-bench", argc, argv, qwen3::Main);
}
