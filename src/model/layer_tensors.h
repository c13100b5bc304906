// The decode layer program's inputs and outputs in the seed's own layout (spec §2), as the
// harness builds them and the golden reads them: weights [in, out] except lm_head
// [lm_rows, hidden]; norm weights and rope tables fp32; KV cache rows
// [(block * kv_heads + kv_head) * block_size + offset][head_dim]. The engine packs these
// into its own layouts once (LayerWeights, LmHeadWeights, PagedKvCache::ImportSeedLayout).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "model/config.h"

namespace qwen3 {

enum class LmHeadMode { kFull, kSkip, kSingle };
const char* ToString(LmHeadMode mode);
LmHeadMode ParseLmHeadMode(const std::string& name);  // full | skip | single, else Error
// The seed's single-chunk mode computes the first 64 logits (VOCAB_CHUNK).
constexpr size_t kLmHeadSingleCols = 64;
// Rows of lm_head a mode reads: vocab, 64 or 0.
size_t LmHeadRows(LmHeadMode mode, size_t vocab);

// Static shape of one program run.
struct LayerShape {
  Qwen3Config config;
  size_t batch = 16;
  size_t max_seq = 4096;
  size_t block_size = 128;
  size_t num_blocks = 0;  // KV pool; 0 means batch * MaxBlocksPerSeq()
  size_t MaxBlocksPerSeq() const { return (max_seq + block_size - 1) / block_size; }
  size_t PoolBlocks() const { return num_blocks ? num_blocks : batch * MaxBlocksPerSeq(); }
  size_t KvRows() const { return PoolBlocks() * config.kv_heads * block_size; }
};

struct LayerTensors {
  AlignedBuffer<bf16> hidden;              // [batch, hidden]
  AlignedBuffer<float> input_rms_weight;   // [hidden]
  AlignedBuffer<bf16> wq;                  // [hidden, q_dim]
  AlignedBuffer<bf16> wk, wv;              // [hidden, kv_dim]
  AlignedBuffer<float> q_norm_weight;      // [head_dim]
  AlignedBuffer<float> k_norm_weight;      // [head_dim]
  AlignedBuffer<int32_t> seq_lens;         // [batch], including the current token
  AlignedBuffer<int32_t> block_table;      // [batch * max_blocks_per_seq]
  AlignedBuffer<int32_t> slot_mapping;     // [batch]
  AlignedBuffer<float> rope_cos;           // [max_seq, head_dim]
  AlignedBuffer<float> rope_sin;           // [max_seq, head_dim]
  AlignedBuffer<bf16> k_cache, v_cache;    // [kv_rows, head_dim]
  AlignedBuffer<bf16> wo;                  // [q_dim, hidden]
  AlignedBuffer<float> post_rms_weight;    // [hidden]
  AlignedBuffer<bf16> w_gate, w_up;        // [hidden, intermediate]
  AlignedBuffer<bf16> w_down;              // [intermediate, hidden]
  AlignedBuffer<float> final_norm_weight;  // [hidden]
  AlignedBuffer<bf16> lm_head;             // [lm_rows, hidden]
  size_t lm_rows = 0;
};

}  // namespace qwen3
