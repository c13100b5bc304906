// The serving engine's KV blocks: one pool per model (every layer uses the same block numbers),
// reference-counted, with a prefix cache (vLLM's design). A full block is keyed by
// hash(parent block's key, its tokens); once its sequence ends it stays cached, in an LRU list of
// free blocks that are evicted (their key dropped) only when a block is needed. A new sequence
// reuses every cached full block of its prompt and computes only the rest. Lookups compare the
// stored tokens and parent key too, so a hash collision is a miss, never a wrong prefix.
//
// A sequence's table (SeqBlocks) grows as it does: all or nothing per call, so a failed Grow
// leaves everything as it was. Not thread-safe: the engine thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace qwen3 {

// One sequence's blocks: blocks[i] holds positions [i * block_size, (i + 1) * block_size).
struct SeqBlocks {
  std::vector<int32_t> blocks;
  std::vector<uint64_t> keys;  // keys of the first keys.size() blocks (full, registered)
};

class KvBlockPool {
 public:
  KvBlockPool(size_t num_blocks, size_t block_size);

  size_t num_blocks() const { return ref_.size(); }
  size_t block_size() const { return block_size_; }
  // Blocks no sequence holds (empty or cached): what Grow can use.
  size_t NumFree() const { return num_free_; }
  // Free blocks that still hold a cached prefix.
  size_t NumCached() const { return num_cached_; }
  size_t NumUsed() const { return num_blocks() - num_free_; }
  // Blocks needed to hold `tokens` positions.
  size_t BlocksFor(size_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

  // For a sequence with no blocks yet: takes every cached full block that starts `tokens`,
  // up to max_tokens tokens (whole blocks), and returns the number of tokens they hold.
  size_t TakeCachedPrefix(SeqBlocks& seq, std::span<const int32_t> tokens, size_t max_tokens);
  // Makes seq's blocks cover `tokens` positions; false (nothing changed) if the pool lacks
  // blocks.
  bool Grow(SeqBlocks& seq, size_t tokens);
  // Registers seq's blocks that are full within tokens[0, computed) (their K/V written) in the
  // prefix cache. A block whose content is already cached elsewhere stays unregistered.
  void CommitFull(SeqBlocks& seq, std::span<const int32_t> tokens, size_t computed);
  // Drops seq's hold on its blocks (last block first, so a sequence's tail is evicted before
  // its head) and empties seq.
  void Release(SeqBlocks& seq);

  int32_t RefCount(int32_t block) const { return ref_.at(static_cast<size_t>(block)); }
  // Checks the pool's invariants (free list, counts, hash table); throws Error if broken.
  void CheckConsistency() const;

 private:
  static constexpr int32_t kNone = -1;
  void Unlink(int32_t b);
  void PushBack(int32_t b);
  void PushFront(int32_t b);
  int32_t PopFront();
  void DropKey(int32_t b);
  int32_t Lookup(uint64_t key, uint64_t parent, std::span<const int32_t> tokens) const;
  uint64_t KeyOf(uint64_t parent, std::span<const int32_t> tokens) const;

  size_t block_size_;
  std::vector<int32_t> ref_;
  std::vector<int32_t> prev_, next_;  // the free list (ref 0), head evicted first
  std::vector<uint8_t> in_free_list_;
  int32_t head_ = kNone, tail_ = kNone;
  size_t num_free_ = 0, num_cached_ = 0;
  // Cached content of each block: its key, parent key and tokens (valid while has_key_).
  std::vector<uint8_t> has_key_;
  std::vector<uint64_t> key_, parent_;
  std::vector<int32_t> tokens_;  // [num_blocks, block_size]
  std::unordered_map<uint64_t, int32_t> by_key_;
};

}  // namespace qwen3
