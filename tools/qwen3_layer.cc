// qwen3-layer: the seed harness (decode_layer.py) in C++. One fused decode step of a Qwen3
// layer + final RMSNorm + LM head on synthetic weights, optionally checked against the golden
// reference (--check) and timed per stage (--bench N).
//
//   qwen3-layer --max-seq --lm-head full --check         # 14B dims, batch 16, every user at 4096
//   qwen3-layer -b 5 --config 0.6b --check --seed 7      # random lengths 1..4096
//   qwen3-layer -b 16 --max-seq --bench 10               # stage table: ms and GB/s
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "tools/layer_harness.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int Main(int argc, char** argv) {
  using namespace qwen3;
  LayerHarnessOptions o;
  std::string lm_head = "full";
  bool check = false;
  size_t bench = 0;
  double tol = 3e-3;
  CLI::App app{"qwen3-layer: one fused Qwen3 decode layer step on synthetic weights"};
  app.add_option("-b,--batch", o.batch, "users in the batch (default 16)");
  app.add_flag("--max-seq", o.all_max_seq, "every seq_len = max length (else random 1..max)");
  app.add_option("--lm-head", lm_head, "full | skip | single (first 64 logits)");
  app.add_option("--seed", o.seed, "seed of the synthetic inputs (default 0)");
  app.add_option("--threads", o.threads, "worker threads (default: all cores)");
  app.add_option("--config", o.config, "0.6b|1.7b|4b|8b|14b|32b or PATH/config.json (default 14b)");
  app.add_option("--vocab", o.vocab, "override the vocab (14b default: the seed's 152064)");
  app.add_option("--max-len", o.max_seq, "max context length, rope rows (default 4096)");
  app.add_option("--block-size", o.block_size, "KV block size (default 128)");
  app.add_option("--kv-blocks", o.kv_blocks, "KV pool blocks (default batch * max-len/block)");
  app.add_option("--seq-lens", o.seq_lens, "explicit seq_len per user")->delimiter(',');
  app.add_option("--pages-per-split", o.pages_per_split, "KV pages per attention partial (1)");
  app.add_flag("--check", check, "compare with the golden reference (rtol = atol = 3e-3)");
  app.add_option("--tol", tol, "rtol = atol of --check (default 3e-3)");
  app.add_option("--bench", bench, "time N steps: per-stage median ms and GB/s");
  CLI11_PARSE(app, argc, argv);

  try {
    o.lm_head = ParseLmHeadMode(lm_head);
    if (o.config == "14b" && o.vocab == 0) o.vocab = static_cast<int>(Qwen3_14BSeed().vocab);
    LayerHarness harness(o);
    const Qwen3Config& c = harness.config();
    std::printf("qwen3-layer: %s hidden %d q %dx%d kv %d inter %d vocab %d | batch %zu, %s, "
                "lm-head %s | path %s, %zu threads, seed %llu\n",
                c.name.c_str(), c.hidden, c.heads, c.head_dim, c.kv_heads, c.intermediate, c.vocab,
                o.batch, o.all_max_seq ? "all seq_lens = max" : "seq_lens random",
                ToString(o.lm_head), cpu::ToString(harness.path()), harness.threads(),
                static_cast<unsigned long long>(o.seed));

    if (bench > 0) {
      harness.Step();  // warm-up
      std::vector<StageTimes> runs(bench);
      for (auto& t : runs) harness.Step(&t);
      const auto bytes = StageBytes(c, harness.batch(), harness.tensors().lm_rows,
                                    o.pages_per_split, o.block_size);
      std::printf("%-20s %10s %10s %10s\n", "stage", "MB", "ms", "GB/s");
      double total_bytes = 0;
      std::vector<double> totals;
      for (auto& t : runs) totals.push_back(t.Total());
      for (size_t s = 0; s < kNumStages; ++s) {
        if ((o.lm_head == LmHeadMode::kSkip) && s == static_cast<size_t>(Stage::kLmHead)) continue;
        std::vector<double> v;
        for (auto& t : runs) v.push_back(t.seconds[s]);
        const double med = Median(v);
        total_bytes += bytes[s];
        std::printf("%-20s %10.2f %10.3f %10.2f\n", ToString(static_cast<Stage>(s)),
                    bytes[s] / 1e6, med * 1e3, med > 0 ? bytes[s] / med / 1e9 : 0.0);
      }
      const double med = Median(totals);
      std::printf("%-20s %10.2f %10.3f %10.2f   (median of %zu steps; min %.3f max %.3f ms)\n",
                  "total", total_bytes / 1e6, med * 1e3, total_bytes / med / 1e9, bench,
                  *std::min_element(totals.begin(), totals.end()) * 1e3,
                  *std::max_element(totals.begin(), totals.end()) * 1e3);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      harness.Step();
      std::printf("step: %.3f ms\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3);
    }

    if (check) {
      const HarnessCheck r = harness.Check(tol, tol);
      std::printf("check out [%zu x %d]: max_abs_err %.3e max_rel_err %.3e mismatches %zu/%zu\n",
                  o.batch, c.vocab, r.logits.max_abs, r.logits.max_rel, r.logits.mismatches,
                  r.logits.count);
      std::printf("check next_hidden [%zu x %d]: max_abs_err %.3e max_rel_err %.3e mismatches %zu/%zu\n",
                  o.batch, c.hidden, r.next_hidden.max_abs, r.next_hidden.max_rel,
                  r.next_hidden.mismatches, r.next_hidden.count);
      if (!r.pass()) {
        const CompareResult& w = r.logits.pass() ? r.next_hidden : r.logits;
        std::printf("worst element %zu: actual %.6g expected %.6g\n", w.worst, w.worst_actual,
                    w.worst_expected);
      }
      std::printf("%s\n", r.pass() ? "PASS" : "FAIL");
      return r.pass() ? 0 : 1;
    }
    return 0;
  } catch (const qwen3::Error& e) {
    std::fprintf(stderr, "qwen3-layer: error: %s\n", e.what());
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
