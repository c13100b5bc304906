// qwen3-layer: the seed harness (decode_layer.py) in C++. One fused decode step of a Qwen3
// layer + final RMSNorm + LM head on synthetic weights, optionally checked against the golden
// reference (--check) and timed per stage (--bench N).
//
//   qwen3-layer --max-seq --lm-head full --check         # 14B dims, batch 16, every user at 4096
//   qwen3-layer -b 5 --config 0.6b --check --seed 7      # random lengths 1..4096
//   qwen3-layer -b 16 --max-seq --bench 10               # stage table: ms and GB/s
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "tools/stage_cost.h"
#include "tools/layer_flags.h"
#include "tools/summary.h"
#include "tools/tool_main.h"

namespace {

int Main(int argc, char** argv) {
  using namespace qwen3;
  LayerFlags flags;
  bool check = false;
  size_t bench = 0;
  double tol = 3e-3;
  CLI::App app{"qwen3-layer: one fused Qwen3 decode layer step on synthetic weights"};
  flags.Add(app);
  app.add_flag("--check", check, "compare with the golden reference (rtol = atol = 3e-3)");
  app.add_option("--tol", tol, "rtol = atol of --check (default 3e-3)");
  app.add_option("--bench", bench, "time N steps: per-stage median ms and GB/s");
  CLI11_PARSE(app, argc, argv);

  const LayerHarnessOptions o = flags.Resolve();
  LayerHarness harness(o);
  std::unique_ptr<Tracer> tracer;
  if (!flags.trace.empty()) {
    tracer = std::make_unique<Tracer>(harness.threads());
    harness.pool().SetTracer(tracer.get());
  }
  const Qwen3Config& c = harness.config();
  std::printf(
      "qwen3-layer: %s hidden %d q %dx%d kv %d inter %d vocab %d | batch %zu, %s, "
      "lm-head %s | path %s, %zu threads, seed %llu\n",
      c.name.c_str(), c.hidden, c.heads, c.head_dim, c.kv_heads, c.intermediate, c.vocab, o.batch,
      o.all_max_seq ? "all seq_lens = max" : "seq_lens random", ToString(o.lm_head),
      cpu::ToString(harness.path()), harness.threads(), static_cast<unsigned long long>(o.seed));

  if (bench > 0) {
    harness.Step();  // warm-up
    std::vector<StageTimes> runs(bench);
    for (auto& t : runs) harness.Step(&t);
    const auto bytes =
        StageBytes(c, harness.batch(), harness.tensors().lm_rows,
                   harness.PagesPerSplit(), o.block_size);
    std::printf("%-20s %10s %10s %10s\n", "stage", "MB", "ms", "GB/s");
    double total_bytes = 0;
    std::vector<double> totals;
    for (auto& t : runs) totals.push_back(t.Total());
    for (size_t s = 0; s < kNumStages; ++s) {
      if ((o.lm_head == LmHeadMode::kSkip) && s == static_cast<size_t>(Stage::kLmHead)) continue;
      std::vector<double> v;
      for (auto& t : runs) v.push_back(t.seconds[s]);
      const double med = Summarize(v).median;
      total_bytes += bytes[s];
      std::printf("%-20s %10.2f %10.3f %10.2f\n", ToString(static_cast<Stage>(s)), bytes[s] / 1e6,
                  med * 1e3, med > 0 ? bytes[s] / med / 1e9 : 0.0);
    }
    const double med = Summarize(totals).median;
    std::printf("%-20s %10.2f %10.3f %10.2f   (median of %zu steps; min %.3f max %.3f ms)\n",
                "total", total_bytes / 1e6, med * 1e3, total_bytes / med / 1e9, bench,
                *std::min_element(totals.begin(), totals.end()) * 1e3,
                *std::max_element(totals.begin(), totals.end()) * 1e3);
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    harness.Step();
    std::printf(
        "step: %.3f ms\n",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3);
  }

  if (tracer) {
    harness.pool().SetTracer(nullptr);
    tracer->WriteChromeJson(flags.trace);
    std::printf("trace: %zu events -> %s\n", tracer->num_events(), flags.trace.c_str());
  }
  if (check) {
    const HarnessCheck r = harness.Check(tol, tol);
    std::printf("check out [%zu x %d]: max_abs_err %.3e max_rel_err %.3e mismatches %zu/%zu\n",
                o.batch, c.vocab, r.logits.max_abs, r.logits.max_rel, r.logits.mismatches,
                r.logits.count);
    std::printf(
        "check next_hidden [%zu x %d]: max_abs_err %.3e max_rel_err %.3e mismatches %zu/%zu\n",
        o.batch, c.hidden, r.next_hidden.max_abs, r.next_hidden.max_rel, r.next_hidden.mismatches,
        r.next_hidden.count);
    if (!r.pass()) {
      const CompareResult& w = r.logits.pass() ? r.next_hidden : r.logits;
      std::printf("worst element %zu: actual %.6g expected %.6g\n", w.worst, w.worst_actual,
                  w.worst_expected);
    }
    std::printf("%s\n", r.pass() ? "PASS" : "FAIL");
    return r.pass() ? 0 : 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3-layer", argc, argv, Main);
}
