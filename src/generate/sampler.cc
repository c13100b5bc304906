#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "base/error.h"
#include "base/rng.h"

namespace qwen3 {

void ValidateSampling(const SamplingOptions& o) {
  const auto bad = [](const std::string& what) { throw Error("sampling: " + what); };
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) {
    bad("temperature " + std::to_string(o.temperature) + ": expected >= 0");
  }
  if (o.top_k < 0) bad("top_k " + std::to_string(o.top_k) + ": expected >= 0 (0 = off)");
  if (!(o.top_p > 0 && o.top_p <= 1)) bad("top_p " + std::to_string(o.top_p) + ": expected in (0, 1]");
  if (!(o.min_p >= 0 && o.min_p < 1)) bad("min_p " + std::to_string(o.min_p) + ": expected in [0, 1)");
  if (!(o.repetition_penalty > 0) || !std::isfinite(o.repetition_penalty)) {
    bad("repetition_penalty " + std::to_string(o.repetition_penalty) + ": expected > 0");
  }
  if (!(o.presence_penalty >= -2 && o.presence_penalty <= 2)) {
    bad("presence_penalty " + std::to_string(o.presence_penalty) + ": expected in [-2, 2]");
  }
  if (!(o.frequency_penalty >= -2 && o.frequency_penalty <= 2)) {
    bad("frequency_penalty " + std::to_string(o.frequency_penalty) + ": expected in [-2, 2]");
  }
}

Sampler::Sampler(const SamplingOptions& options, size_t allowed) : o_(options), allowed_(allowed) {
  ValidateSampling(options);
}

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> history,
                        size_t prompt_len, uint64_t stream, uint64_t step) {
  const size_t n = std::min(allowed_, logits.size());
  work_.assign(logits.begin(), logits.begin() + static_cast<std::ptrdiff_t>(n));
  prompt_len = std::min(prompt_len, history.size());
  if (o_.repetition_penalty != 1.0f) {
    seen_.assign(n, 0);
    for (int32_t id : history) {
      if (id >= 0 && static_cast<size_t>(id) < n) seen_[id] = 1;
    }
    for (size_t i = 0; i < n; ++i) {
      if (!seen_[i]) continue;
      float& l = work_[i];
      l = l > 0 ? l / o_.repetition_penalty : l * o_.repetition_penalty;
    }
  }
  if (o_.presence_penalty != 0.0f || o_.frequency_penalty != 0.0f) {
    counts_.assign(n, 0);
    for (size_t k = prompt_len; k < history.size(); ++k) {
      const int32_t id = history[k];
      if (id >= 0 && static_cast<size_t>(id) < n) ++counts_[id];
    }
    for (size_t i = 0; i < n; ++i) {
      if (counts_[i] == 0) continue;
      work_[i] -= o_.presence_penalty + o_.frequency_penalty * static_cast<float>(counts_[i]);
    }
  }
  if (o_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
  }
  // Candidates: ids within 30 nats (at this temperature) of the best, whose mass is all that
  // counts (the rest weigh < 151936 x e^-30 ~ 1e-8 of the top token), by descending logit
  // (ties: lower id first), then the top-k of them.
  const float max = *std::max_element(work_.begin(), work_.end());
  const float floor = max - 30.0f * o_.temperature;
  ids_.clear();
  for (size_t i = 0; i < n; ++i) {
    if (work_[i] >= floor) ids_.push_back(static_cast<int32_t>(i));
  }
  const auto by_logit = [&](int32_t a, int32_t b) {
    return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
  };
  size_t keep = ids_.size();
  if (o_.top_k > 0) keep = std::min(keep, static_cast<size_t>(o_.top_k));
  // Order matters only to top-p and min-p (and to cut at top-k): plain temperature sampling
  // draws from the candidates in id order, without sorting 150k of them.
  if (o_.top_p < 1 || o_.min_p > 0) {
    std::partial_sort(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(keep), ids_.end(),
                      by_logit);
  } else if (keep < ids_.size()) {
    std::nth_element(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(keep), ids_.end(),
                     by_logit);
    std::sort(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(keep));
  }
  // Softmax at the temperature over the kept candidates (double: long sums).
  std::vector<double>& p = probs_;
  p.resize(keep);
  for (size_t i = 0; i < keep; ++i) {
    p[i] = std::exp((static_cast<double>(work_[ids_[i]]) - max) / o_.temperature);
  }
  // min-p: drop candidates below min_p x the top probability.
  if (o_.min_p > 0) {
    size_t k = 1;
    while (k < keep && p[k] >= o_.min_p * p[0]) ++k;
    keep = k;
  }
  // top-p: the smallest prefix whose mass reaches top_p.
  if (o_.top_p < 1) {
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += p[i];
    double acc = 0;
    size_t k = 0;
    while (k < keep) {
      acc += p[k++];
      if (acc >= o_.top_p * total) break;
    }
    keep = k;
  }
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += p[i];
  const CounterRng rng(o_.seed, stream);
  const double u = static_cast<double>(rng.Uniform(step)) * total;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return ids_[i];
  }
  return ids_[keep - 1];
}

}  // namespace qwen3
