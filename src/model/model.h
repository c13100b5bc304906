// A whole Qwen3 model on an executor: embedding -> every decoder layer (the fused decode program of
// decode_layer.h, per layer over its weights and its paged KV cache) -> final norm -> LM head.
//
// Work is a list of rows, one token each. A PagedRow names its sequence's block table (blocks
// of one KV pool that every layer shares: block b of the table holds positions b * block_size..)
// and its position: the serving engine owns the tables (serve/kv_block_pool.h). The user-slot
// API (Row, Prefill, Decode) is a convenience over it for tools and tests: user u statically
// owns blocks [u * blocks_per_seq, (u + 1) * blocks_per_seq) and its rows append at its length.
//
// One pass runs up to max_rows rows through all layers together: decode rows of many
// sequences and prefill chunks mixed. Within a pass every row's K/V is written to the cache
// before attention runs, and each row attends to positions 0..its own, so a prompt processed
// as one pass is exactly causal attention. A row's result does not depend on the other rows of
// its pass (per-row attention splits; the kernels compute rows independently): the law that
// makes serving outputs independent of batching. Memory is allocated at construction (weights
// are borrowed); a pass allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <memory>

#include "base/aligned_buffer.h"
#include "exec/executor.h"
#include "model/decode_layer.h"
#include "model/layer_weights.h"
#include "model/model_weights.h"

namespace qwen3 {

class Model {
 public:
  struct Options {
    size_t max_users = 16;   // user slots of the convenience API (0: paged rows only)
    size_t max_seq = 4096;   // tokens per sequence (prompt + generated)
    size_t block_size = 128; // KV cache block
    size_t max_rows = 64;    // tokens per pass (the prefill chunk)
    size_t pages_per_split = 0;  // 0: per-row automatic splits (batch invariant)
    size_t num_blocks = 0;   // KV pool blocks; 0: max_users * blocks_per_seq
  };
  struct Row {
    int32_t user;
    int32_t token;
  };
  // One token of a sequence at position pos; blocks[0..num_blocks) is its block table, which
  // must cover pos. A sequence's rows come in position order; its positions before pos must
  // already be in the cache (or be rows earlier in the same call).
  struct PagedRow {
    int32_t token;
    int32_t pos;
    const int32_t* blocks;
    size_t num_blocks;
  };
  // depth 0 = embedding output, depth d = output of layer d - 1 (before the final norm), for the
  // rows [row0, row0 + n) of the Forward call; experts: for an MoE layer d - 1 the experts each
  // row was routed to, [n, experts_used] in the order they were summed (else null).
  using Observer = std::function<void(size_t row0, size_t n, size_t depth, const bf16* hidden,
                                      const int32_t* experts)>;

  // weights packed by executor, which runs every pass (and holds the KV pool).
  Model(const ModelWeights& weights, const Options& options, Executor& executor);

  const Qwen3Config& config() const { return w_.config; }
  const Options& options() const { return options_; }
  size_t vocab() const { return w_.config.vocab; }
  size_t num_blocks() const { return num_blocks_; }
  size_t blocks_per_seq() const { return blocks_per_seq_; }
  // Tokens in user's cache.
  size_t Length(size_t user) const { return lengths_.at(user); }
  void Reset(size_t user);
  void ResetAll();
  size_t kv_bytes() const;

  // Runs rows, writing vocab fp32 logits for each row whose want_logits is non-zero, in row
  // order. Everything is checked before any state changes: tokens in 0..vocab-1, positions
  // in 0..max_seq-1 and covered by the row's table, block ids in the pool.
  void ForwardPaged(std::span<const PagedRow> rows, std::span<const uint8_t> want_logits,
                    float* logits, const Observer* observer = nullptr,
                    StageTimes* times = nullptr);
  // User-slot rows (a user's rows in position order), appended at the users' lengths; users
  // in 0..max_users-1, lengths within max_seq.
  void Forward(std::span<const Row> rows, std::span<const uint8_t> want_logits, float* logits,
               const Observer* observer = nullptr, StageTimes* times = nullptr);
  // Appends prompts[i] to user users[i]; logits [n, vocab] of each prompt's last token.
  void Prefill(std::span<const int32_t> users, const std::vector<std::vector<int32_t>>& prompts,
               float* logits, StageTimes* times = nullptr);
  // One token per user (distinct users); logits [n, vocab].
  void Decode(std::span<const int32_t> users, std::span<const int32_t> tokens, float* logits,
              StageTimes* times = nullptr);

 private:
  void Pass(std::span<const PagedRow> rows, size_t row0, std::span<const uint8_t> want,
            float*& logits, const Observer* observer, StageTimes* times);

  const ModelWeights& w_;
  Options options_;
  Executor& x_;
  size_t blocks_per_seq_, num_blocks_;
  DecodeLayer layer_;
  RopeTable rope_;
  std::vector<std::unique_ptr<KvCache>> kv_;  // one per layer
  std::vector<size_t> lengths_;   // per user
  std::vector<size_t> saved_lengths_;  // Forward's rollback copy
  std::vector<int32_t> slot_tables_;   // [max_users * blocks_per_seq]: the user slots' tables
  std::vector<PagedRow> slot_rows_;    // Forward's rows as paged rows
  // Per pass.
  AlignedBuffer<bf16> observed_;  // [max_rows, hidden]: what an observer is shown
  std::vector<int32_t> observed_experts_;  // [max_rows, experts_used]
  std::vector<int32_t> tokens_, seq_lens_, slots_, block_table_;
  std::vector<uint32_t> lm_rows_;  // the pass's rows that want logits
  std::vector<size_t> pending_;  // per user, rows appended so far in this call (validation)
  std::vector<Row> decode_rows_;
  std::vector<uint8_t> decode_want_;
};

}  // namespace qwen3
