#include "tools/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "exec/cpu/cpu_executor.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "serve/engine.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

ReplayStep Compare(const float* got, const TensorView& ref_view, const std::vector<int32_t>& ref_tokens,
                   size_t n, size_t vocab, const ReplayOptions& o) {
  const AlignedBuffer<float> ref = ref_view.ToF32();
  ReplayStep s;
  s.rows = n;
  double diff2 = 0, ref2 = 0;
  for (size_t b = 0; b < n; ++b) {
    const float* g = got + b * vocab;
    const float* r = ref.data() + b * vocab;
    size_t top = 0, ref_top = 0;
    float ref_second = -INFINITY;
    for (size_t v = 0; v < vocab; ++v) {
      const double d = static_cast<double>(g[v]) - r[v];
      diff2 += d * d;
      ref2 += static_cast<double>(r[v]) * r[v];
      s.max_abs = std::max(s.max_abs, std::abs(d));
      if (g[v] > g[top]) top = v;
      if (r[v] > r[ref_top]) ref_top = v;
    }
    for (size_t v = 0; v < vocab; ++v) {
      if (v != ref_top) ref_second = std::max(ref_second, r[v]);
    }
    if (static_cast<int32_t>(ref_top) != ref_tokens[b]) {
      throw Error(ref_view.Where() + ": row " + std::to_string(b) + " argmax " +
                  std::to_string(ref_top) + " differs from the file's token " +
                  std::to_string(ref_tokens[b]));
    }
    s.top1_agree += top == ref_top;
    if (r[ref_top] - ref_second >= o.top1_margin) {
      ++s.guarded_rows;
      s.guarded_mismatches += top != ref_top;
    }
  }
  s.rel_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  s.pass = s.rel_l2 <= o.max_rel_l2 && s.guarded_mismatches == 0;
  return s;
}

// The reference's prompts and teacher-forced tokens, checked before any weight is loaded.
struct Reference {
  std::unique_ptr<SafetensorsFile> file;
  size_t n = 0, steps = 0, longest = 0, prompt_tokens = 0;
  std::vector<std::vector<int32_t>> prompts;  // [n][its length]
  std::vector<std::vector<int32_t>> tokens;   // [steps][n]: the file's next token per step
};

Reference ReadReference(const ReplayOptions& o) {
  Reference ref;
  ref.file = SafetensorsFile::Open(o.reference);
  const TensorView& ids_view = ref.file->Get("prompt_ids");
  const TensorView& lens_view = ref.file->Get("prompt_lens");
  if (ids_view.shape.size() != 2) {
    throw Error(ids_view.Where() + ": shape " + ids_view.ShapeString() + ", expected [n, max_len]");
  }
  const size_t n = ids_view.shape[0], width = ids_view.shape[1];
  ref.n = n;
  lens_view.ExpectShape({n});
  const std::vector<int32_t> ids = ids_view.ToI32(), lens = lens_view.ToI32();
  while (ref.file->Find("logits_s" + std::to_string(ref.steps))) ++ref.steps;
  if (ref.steps == 0) {
    throw Error("file " + o.reference + ": no logits_s0: expected reference logits");
  }
  ref.prompts.resize(n);
  for (size_t b = 0; b < n; ++b) {
    if (lens[b] < 1 || static_cast<size_t>(lens[b]) > width) {
      throw Error(lens_view.Where() + ": prompt_lens[" + std::to_string(b) + "] = " +
                  std::to_string(lens[b]) + ": expected 1.." + std::to_string(width));
    }
    ref.prompts[b].assign(ids.begin() + b * width, ids.begin() + b * width + lens[b]);
    ref.longest = std::max(ref.longest, ref.prompts[b].size());
    ref.prompt_tokens += ref.prompts[b].size();
  }
  ref.tokens.resize(ref.steps);
  for (size_t s = 0; s < ref.steps; ++s) {
    const TensorView& t = ref.file->Get("tokens_s" + std::to_string(s));
    t.ExpectShape({n});
    ref.tokens[s] = t.ToI32();
  }
  return ref;
}

// The weights only: no tokenizer, KV pool, model or engine thread.
std::unique_ptr<Engine> OpenWeights(const ReplayOptions& o, size_t threads) {
  EngineOptions eo;
  eo.model_dir = o.model_dir;
  eo.quantize = o.quantize;
  eo.device = o.device;
  eo.need_tokenizer = false;
  eo.serve = false;
  eo.threads = threads;
  return Engine::Open(eo);
}

ReplayResult Replay(const ReplayOptions& o, const Reference& ref, const ModelWeights& weights,
                    Executor& executor) {
  const size_t n = ref.n, steps = ref.steps;
  const size_t vocab = weights.config.vocab;
  for (size_t s = 0; s < steps; ++s) {
    ref.file->Get("logits_s" + std::to_string(s)).Expect(DType::kF32, {n, vocab});
  }
  ReplayResult result;
  result.prompt_tokens = ref.prompt_tokens;
  const std::vector<std::vector<int32_t>>& prompts = ref.prompts;
  const std::vector<std::vector<int32_t>>& tokens = ref.tokens;

  Model::Options mo;
  mo.max_users = n;
  mo.max_seq = ref.longest + steps;
  mo.max_rows = o.max_rows;
  Model model(weights, mo, executor);

  std::vector<int32_t> users(n);
  for (size_t b = 0; b < n; ++b) users[b] = static_cast<int32_t>(b);
  std::vector<float> logits(steps * n * vocab);
  const auto t0 = Clock::now();
  model.Prefill(users, prompts, logits.data());
  const auto t1 = Clock::now();
  for (size_t s = 1; s < steps; ++s) {
    model.Decode(users, tokens[s - 1], logits.data() + s * n * vocab);
  }
  const auto t2 = Clock::now();
  result.prefill_seconds = Seconds(t0, t1);
  result.decode_seconds = Seconds(t1, t2);

  std::printf("replay: %s on %s | %zu prompts (%zu tokens) as one batch, %zu steps\n",
              o.model_dir.c_str(), o.reference.c_str(), n, result.prompt_tokens, steps);
  std::printf("%4s %10s %10s %8s %12s %6s\n", "step", "rel_l2", "max_abs", "top1", "guarded_miss",
              "");
  for (size_t s = 0; s < steps; ++s) {
    const ReplayStep st = Compare(logits.data() + s * n * vocab,
                                  ref.file->Get("logits_s" + std::to_string(s)), tokens[s], n,
                                  vocab, o);
    result.steps.push_back(st);
    result.pass = result.pass && st.pass;
    std::printf("%4zu %10.3e %10.3e %4zu/%-3zu %6zu/%-5zu %s\n", s, st.rel_l2, st.max_abs,
                st.top1_agree, st.rows, st.guarded_mismatches, st.guarded_rows,
                st.pass ? "ok" : "FAIL");
  }
  std::printf("prefill %.3f s (%.1f tokens/s), %zu decode steps %.3f s; %s (rel_l2 <= %.1e, top-1 "
              "equal where the reference leads by >= %.2f)\n",
              result.prefill_seconds, result.prompt_tokens / result.prefill_seconds, steps - 1,
              result.decode_seconds, result.pass ? "PASS" : "FAIL", o.max_rel_l2, o.top1_margin);

  if (!o.out.empty()) {
    SafetensorsWriter w;
    for (size_t s = 0; s < steps; ++s) {
      w.AddCopy("logits_s" + std::to_string(s), DType::kF32, {n, vocab},
                logits.data() + s * n * vocab);
    }
    w.Write(o.out);
  }
  return result;
}

}  // namespace

ReplayResult RunReplay(const ReplayOptions& o) {
  const Reference ref = ReadReference(o);
  const std::unique_ptr<Engine> engine = OpenWeights(o, o.threads);
  return Replay(o, ref, engine->weights(), engine->executor());
}

ReplayResult RunReplay(const ReplayOptions& o, const cpu::CpuKernels& kernels, ThreadPool& pool) {
  const Reference ref = ReadReference(o);
  const std::unique_ptr<Engine> engine = OpenWeights(o, pool.NumWorkers());
  cpu::CpuExecutor executor(DimsOf(engine->weights().config), kernels, pool);
  return Replay(o, ref, engine->weights(), executor);
}

}  // namespace qwen3
