// The stages of one decode step (spec §3), by which every executor names its dispatches (in
// traces) and accumulates its time.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>

namespace qwen3 {

enum class Stage {
  kInputNorm,
  kQkvProj,
  kQkNormRopeCache,
  kAttention,
  kAttentionMerge,
  kOutProj,
  kPostNorm,
  kGateUpSilu,
  kDownProj,
  kFinalNorm,
  kLmHead,
  kMoeRouter,   // an MoE layer's router, top-k and row grouping
  kMoeExperts,  // its experts' gate|up and down over their rows, and the weighted sum
  kSentinel
};
constexpr size_t kNumStages = static_cast<size_t>(Stage::kSentinel);
const char* ToString(Stage stage);

// Wall-clock seconds per stage, accumulated over runs.
struct StageTimes {
  std::array<double, kNumStages> seconds{};
  double Total() const;
};

// Runs f, adding its wall time to times->seconds[stage] (times may be null).
template <typename F>
void Timed(StageTimes* times, Stage stage, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  if (times != nullptr) {
    times->seconds[static_cast<size_t>(stage)] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

}  // namespace qwen3
