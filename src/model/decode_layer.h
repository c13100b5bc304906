// The fused single-layer decode program (spec §3) on the CPU: a fixed sequence of stages, each
// ONE flat SPMD dispatch of independent blocks over the whole user batch.
//
//   input_rmsnorm -> qkv_proj -> qk_norm_rope_cache -> attention (split-KV partials)
//   -> attention_merge -> out_proj(+residual) -> post_rmsnorm -> gate_up_silu
//   -> down_proj(+residual) [-> final_rmsnorm -> lm_head]
//
// Batches of any size up to max_batch run as 16-row tiles; padded rows are computed but never
// written to an output. Everything is validated before the first stage runs, so a bad input
// throws Error and leaves the KV cache untouched.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "kernels/cpu/fused_matmul.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quant_rows.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/layer_weights.h"

namespace qwen3 {

class ThreadPool;

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
  kSentinel
};
constexpr size_t kNumStages = static_cast<size_t>(Stage::kSentinel);
const char* ToString(Stage stage);

// Wall-clock seconds per stage, accumulated over runs.
struct StageTimes {
  std::array<double, kNumStages> seconds{};
  double Total() const;
};

// One step's paged-attention metadata (spec §2), for `batch` users.
struct DecodeBatch {
  size_t batch = 0;
  const int32_t* seq_lens = nullptr;     // [batch], including the current token
  const int32_t* block_table = nullptr;  // [batch * max_blocks_per_seq]
  size_t max_blocks_per_seq = 0;
  const int32_t* slot_mapping = nullptr;  // [batch], where the current token's K/V go
};

class DecodeLayer {
 public:
  struct Options {
    size_t max_batch = 16;
    size_t max_seq = 4096;
    // KV pages per attention partial; 1 is the seed's one partial per (user, KV head, block),
    // 0 picks the longest splits that keep every worker busy (PagesPerSplit).
    size_t pages_per_split = 0;
    // With pages_per_split = 0: true picks each row's split length from its own length alone
    // (as if it ran by itself), so a row's attention never depends on the other rows of its
    // pass (batch invariance: the serving engine's law); false picks one length for the batch.
    bool per_row_splits = false;
    // Benchmark variants, to measure what the seed's design choices are worth (qwen3-bench):
    // false = out_proj / gate_up / down_proj write fp32 to a full-size scratch, then a
    // separate epilogue pass; true = attention partials and merge dispatch once per user.
    bool fused_epilogues = true;
    bool attention_per_user = false;
  };

  DecodeLayer(const Qwen3Config& config, const Options& options, const cpu::CpuKernels& kernels,
              ThreadPool& pool);

  // Throws Error on the first bad value: batch outside 1..max_batch, a seq_len outside
  // 1..max_seq (or past the rope table), a block_table entry outside the pool, a slot that is
  // not where block_table puts the current token, two users writing one slot, NaN/Inf hidden.
  void Validate(const DecodeBatch& batch, const PagedKvCache& kv, const RopeTable& rope,
                const bf16* hidden) const;

  // hidden, next_hidden: [batch, hidden] bf16 (may not alias). Writes each user's current
  // K/V into kv at its slot.
  void Run(const LayerWeights& w, const RopeTable& rope, PagedKvCache& kv, const DecodeBatch& batch,
           const bf16* hidden, bf16* next_hidden, StageTimes* times = nullptr);

  // The split length this batch runs with (options.pages_per_split, or the automatic choice;
  // with per_row_splits, the longest row's).
  size_t PagesPerSplit(const DecodeBatch& batch, size_t block_size) const;
  // The split length of one row of length seq_len in this batch.
  size_t RowPagesPerSplit(const DecodeBatch& batch, size_t row, size_t block_size) const;

  // Final RMSNorm + LM head: logits[b * ld_logits + v] for v < lm.rows (fp32); other
  // columns untouched.
  void RunLmHead(const LmHeadWeights& lm, const bf16* hidden, size_t batch, float* logits,
                 size_t ld_logits, StageTimes* times = nullptr);

 private:
  // Query block [row0, row0 + queries) against split `split` of KV head kv_head.
  struct AttentionItem {
    uint32_t row0, queries, kv_head, split;
  };

  // q_tiles_ is [kv_head][row][group][padded head_dim] plus 16 zero rows per head, so the
  // rows of consecutive queries are one A operand with 16 readable rows from any row on.
  size_t QTileRowsPerHead() const {
    return options_.max_batch * config_.GroupSize() + cpu::kTileM;
  }
  bf16* QTile(size_t kv_head, size_t row) {
    return q_tiles_.data() + (kv_head * QTileRowsPerHead() + row * config_.GroupSize()) *
                                 cpu::PaddedHeadDim(config_.head_dim);
  }
  static size_t Splits(int32_t seq_len, size_t block_size, size_t pages_per_split);
  void ReserveParts(size_t parts);
  // The A operand of a stage's weights: rows [0, rows) of a, quantized per row when any of
  // the weights is (once for all of them: they share k).
  cpu::MatmulInput Input(const bf16* a, size_t lda, size_t rows,
                         std::span<const cpu::WeightMatrix* const> weights);
  cpu::MatmulInput Input(const bf16* a, size_t lda, size_t rows, const cpu::WeightMatrix& w);

  Qwen3Config config_;
  Options options_;
  const cpu::CpuKernels& kernels_;
  ThreadPool& pool_;
  size_t part_capacity_ = 0;  // partials the part_* buffers hold
  // Workspace, rows padded to whole 16-row tiles.
  AlignedBuffer<bf16> normed_;            // [rows, hidden]
  cpu::QuantizedRows quant_rows_;         // a stage's A operand, for quantized weights
  cpu::QuantRows quant_view_;
  AlignedBuffer<float> q_proj_;           // [rows, q_dim]
  AlignedBuffer<float> k_proj_;           // [rows, kv_dim]
  AlignedBuffer<float> v_proj_;           // [rows, kv_dim]
  AlignedBuffer<bf16> q_tiles_;           // see QTile
  AlignedBuffer<float> part_o_;           // [max_batch * kv_heads * max_splits][group][head_dim]
  AlignedBuffer<float> part_m_, part_l_;  // [max_batch * kv_heads * max_splits][group]
  AlignedBuffer<bf16> attn_out_;          // [rows, q_dim padded to 32], padding 0
  AlignedBuffer<float> resid1_;           // [rows, hidden]
  AlignedBuffer<bf16> post_normed_;       // [rows, hidden]
  AlignedBuffer<bf16> mlp_;               // [rows, intermediate]
  AlignedBuffer<bf16> final_normed_;      // [rows, hidden]
  AlignedBuffer<float> unfused_scratch_;  // [rows, max(hidden, 2 * intermediate)], variant only
  std::vector<AttentionItem> items_;
  mutable std::vector<std::pair<int32_t, size_t>> validate_slots_;  // Validate's scratch
  std::vector<size_t> block_items_;  // items_ of query block k: [block_items_[k], [k + 1])
  std::vector<size_t> row_parts_;    // partials of row b: [row_parts_[b], row_parts_[b + 1])
  std::vector<size_t> row_pps_;     // per user: its split length this run
  std::vector<uint32_t> item_cost_;  // per attention item: pages + 1
  std::vector<size_t> item_bounds_;  // the workers' item ranges
};

}  // namespace qwen3
