#include "tools/stage_cost.h"

#include "exec/cpu/attention.h"

namespace qwen3 {

std::array<double, kNumStages> StageBytes(const Qwen3Config& c, const DecodeBatch& batch,
                                          size_t lm_rows, size_t pages_per_split,
                                          size_t block_size) {
  const double n = static_cast<double>(batch.batch), h = c.hidden, q = c.QDim(), kv = c.KvDim();
  const double inter = c.intermediate, bf = 2, f32 = 4;
  double tokens = 0, parts = 0;
  for (size_t b = 0; b < batch.batch; ++b) {
    const size_t len = static_cast<size_t>(batch.seq_lens[b]);
    tokens += static_cast<double>(len);
    const size_t pages = (len + block_size - 1) / block_size;
    parts += static_cast<double>((pages + pages_per_split - 1) / pages_per_split);
  }
  const double part_bytes = parts * c.kv_heads * c.GroupSize() * (c.head_dim + 2) * f32;
  std::array<double, kNumStages> bytes{};
  auto set = [&](Stage s, double v) { bytes[static_cast<size_t>(s)] = v; };
  set(Stage::kInputNorm, n * h * (bf + bf) + h * f32);
  set(Stage::kQkvProj, h * (q + 2 * kv) * bf + n * h * bf + n * (q + 2 * kv) * f32);
  set(Stage::kQkNormRopeCache, n * (q + 2 * kv) * f32 + n * (q + 2 * kv) * bf);
  // The pages as stored: head_dim padded to whole k-tiles (KvPageLayout).
  const double kv_stored = static_cast<double>(c.kv_heads) * cpu::PaddedHeadDim(c.head_dim);
  set(Stage::kAttention, tokens * kv_stored * 2 * bf + n * q * bf + part_bytes);
  set(Stage::kAttentionMerge, part_bytes + n * q * bf);
  set(Stage::kOutProj, q * h * bf + n * q * bf + n * h * (bf + f32));
  set(Stage::kPostNorm, n * h * (f32 + bf) + h * f32);
  set(Stage::kGateUpSilu, 2 * h * inter * bf + n * h * bf + n * inter * bf);
  set(Stage::kDownProj, inter * h * bf + n * inter * bf + n * h * (f32 + bf));
  set(Stage::kFinalNorm, n * h * (bf + bf) + h * f32);
  if (lm_rows > 0) {
    set(Stage::kLmHead, lm_rows * h * bf + n * h * bf + n * static_cast<double>(lm_rows) * f32);
  }
  return bytes;
}

std::array<double, kNumStages> StageFlops(const Qwen3Config& c, const DecodeBatch& batch,
                                          size_t lm_rows, bool moe_layer) {
  const double n = static_cast<double>(batch.batch), h = c.hidden, q = c.QDim(), kv = c.KvDim();
  const double inter = c.intermediate;
  double tokens = 0;
  for (size_t b = 0; b < batch.batch; ++b) tokens += static_cast<double>(batch.seq_lens[b]);
  std::array<double, kNumStages> flops{};
  auto set = [&](Stage s, double v) { flops[static_cast<size_t>(s)] = v; };
  set(Stage::kInputNorm, 4 * n * h);
  set(Stage::kQkvProj, 2 * n * h * (q + 2 * kv));
  set(Stage::kQkNormRopeCache, 7 * n * (q + kv));
  set(Stage::kAttention, 2 * 2 * q * tokens);  // q.K^T and P.V for every (query head, token)
  set(Stage::kAttentionMerge, 2 * n * q);
  set(Stage::kOutProj, 2 * n * q * h + n * h);
  set(Stage::kPostNorm, 4 * n * h);
  set(Stage::kGateUpSilu, 2 * n * h * 2 * inter + 5 * n * inter);
  set(Stage::kDownProj, 2 * n * inter * h + n * h);
  set(Stage::kFinalNorm, 4 * n * h);
  set(Stage::kLmHead, 2 * n * h * static_cast<double>(lm_rows));
  if (moe_layer) {
    const double k = c.experts_used, mi = c.moe_intermediate;
    set(Stage::kGateUpSilu, 0);
    set(Stage::kDownProj, 0);
    set(Stage::kMoeRouter, 2 * n * h * c.experts);
    set(Stage::kMoeExperts, n * k * (2 * h * 2 * mi + 5 * mi + 2 * mi * h + 2 * h) + n * h);
  }
  return flops;
}

}  // namespace qwen3
