// One pass's paged-attention metadata (spec §2): per row, its sequence length (including the
// row's own token), its sequence's block table and the KV slot its token is written to.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3 {

struct DecodeBatch {
  size_t batch = 0;
  const int32_t* seq_lens = nullptr;     // [batch], including the current token
  const int32_t* block_table = nullptr;  // [batch * max_blocks_per_seq]
  size_t max_blocks_per_seq = 0;
  const int32_t* slot_mapping = nullptr;  // [batch], where the current token's K/V go
};

}  // namespace qwen3
