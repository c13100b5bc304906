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
  // MoE references: routing [n][positions][layers][k], margin [n][positions][layers].
  std::vector<int32_t> routing;
  std::vector<float> margin;
  size_t positions = 0, layers = 0, k = 0;
};

// Compares the experts chosen for row b at position pos of layer l with the reference's.
class RoutingCheck {
 public:
  RoutingCheck(const Reference& ref, double guard) : ref_(ref), guard_(guard) {}
  void Observe(size_t b, size_t pos, size_t layer, const int32_t* got) {
    if (ref_.routing.empty() || pos >= ref_.positions || layer >= ref_.layers) return;
    const size_t at = (b * ref_.positions + pos) * ref_.layers + layer;
    std::vector<int32_t> want(ref_.routing.begin() + at * ref_.k,
                              ref_.routing.begin() + (at + 1) * ref_.k);
    std::vector<int32_t> have(got, got + ref_.k);
    std::sort(want.begin(), want.end());
    std::sort(have.begin(), have.end());
    if (want[0] < 0) return;  // past the sequence's end
    const bool differ = want != have;
    const bool guarded = guard_ >= 0 && ref_.margin[at] >= guard_;
    ++r_.decisions;
    r_.changed += differ;
    r_.guarded += guarded;
    r_.guarded_changed += guarded && differ;
  }
  const ReplayRouting& result() const { return r_; }

 private:
  const Reference& ref_;
  double guard_;
  ReplayRouting r_;
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
  if (const TensorView* r = ref.file->Find("routing_experts")) {
    if (r->shape.size() != 4 || r->shape[0] != n) {
      throw Error(r->Where() + ": shape " + r->ShapeString() +
                  ", expected [n, positions, layers, experts per token]");
    }
    ref.positions = r->shape[1];
    ref.layers = r->shape[2];
    ref.k = r->shape[3];
    ref.routing = r->ToI32();
    const TensorView& m = ref.file->Get("routing_margin");
    m.ExpectShape({n, ref.positions, ref.layers});
    const AlignedBuffer<float> margin = m.ToF32();
    ref.margin.assign(margin.data(), margin.data() + margin.size());
  }
  return ref;
}

// The weights only: no tokenizer, KV pool, model or engine thread.
std::unique_ptr<Engine> OpenWeights(const ReplayOptions& o, size_t threads) {
  EngineOptions eo;
  eo.model_dir = o.model_dir;
  eo.quantize = o.quantize;
  eo.device = o.device;
  eo.kv_type = o.kv_type;
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
  // Routing: the prefill's rows are the prompts' tokens in order, a decode step's row b is
  // prompt b's next position.
  RoutingCheck routing(ref, o.routing_margin);
  if (!ref.routing.empty() && (ref.layers != static_cast<size_t>(weights.config.layers) ||
                               ref.k != static_cast<size_t>(weights.config.experts_used))) {
    throw Error("file " + o.reference + ": routing_experts has " + std::to_string(ref.layers) +
                " layers of " + std::to_string(ref.k) + " experts: expected " +
                std::to_string(weights.config.layers) + " of " +
                std::to_string(weights.config.experts_used) + " (the model's)");
  }
  std::vector<std::pair<size_t, size_t>> row_at;  // the current call's rows: (prompt, position)
  const Model::Observer observer = [&](size_t row0, size_t count, size_t depth, const bf16*,
                                       const int32_t* experts) {
    if (experts == nullptr) return;
    for (size_t i = 0; i < count; ++i) {
      const auto [b, pos] = row_at[row0 + i];
      routing.Observe(b, pos, depth - 1, experts + i * ref.k);
    }
  };
  const Model::Observer* watch = ref.routing.empty() ? nullptr : &observer;
  std::vector<Model::Row> rows;
  std::vector<uint8_t> want;
  for (size_t b = 0; b < n; ++b) {
    for (size_t j = 0; j < prompts[b].size(); ++j) {
      rows.push_back({static_cast<int32_t>(b), prompts[b][j]});
      want.push_back(j + 1 == prompts[b].size());
      row_at.emplace_back(b, j);
    }
  }
  const auto t0 = Clock::now();
  model.Forward(rows, want, logits.data(), watch);
  const auto t1 = Clock::now();
  rows.resize(n);
  want.assign(n, 1);
  for (size_t s = 1; s < steps; ++s) {
    for (size_t b = 0; b < n; ++b) {
      rows[b] = {static_cast<int32_t>(b), tokens[s - 1][b]};
      row_at[b] = {b, prompts[b].size() + s - 1};
    }
    model.Forward(rows, want, logits.data() + s * n * vocab, watch);
  }
  const auto t2 = Clock::now();
  result.routing = routing.result();
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
  if (!ref.routing.empty()) {
    const ReplayRouting& rr = result.routing;
    const bool ok = rr.guarded_changed == 0;
    result.pass = result.pass && ok;
    std::printf("routing: %zu of %zu decisions chose other experts than the reference", rr.changed,
                rr.decisions);
    if (o.routing_margin >= 0) {
      std::printf("; %zu of the %zu with a margin >= %.1e %s", rr.guarded_changed, rr.guarded,
                  o.routing_margin, ok ? "ok" : "FAIL");
    }
    std::printf("\n");
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
  cpu::CpuExecutor executor(DimsOf(engine->weights().config), kernels, pool, cpu::kTileM,
                           ParseKvType(o.kv_type));
  return Replay(o, ref, engine->weights(), executor);
}

}  // namespace qwen3
