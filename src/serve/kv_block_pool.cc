#include "serve/kv_block_pool.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.h"

namespace qwen3 {
namespace {

constexpr uint64_t kRootKey = 0x9e3779b97f4a7c15ull;  // the parent of a sequence's first block

uint64_t Mix(uint64_t h, uint64_t v) {  // splitmix64 finalizer over h ^ v
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

KvBlockPool::KvBlockPool(size_t num_blocks, size_t block_size) : block_size_(block_size) {
  if (num_blocks == 0 || num_blocks > static_cast<size_t>(INT32_MAX)) {
    throw Error("KV pool: " + std::to_string(num_blocks) + " blocks: expected 1.." +
                std::to_string(INT32_MAX));
  }
  if (block_size == 0) throw Error("KV pool: block size 0: expected at least 1");
  ref_.assign(num_blocks, 0);
  prev_.assign(num_blocks, kNone);
  next_.assign(num_blocks, kNone);
  in_free_list_.assign(num_blocks, 0);
  has_key_.assign(num_blocks, 0);
  key_.assign(num_blocks, 0);
  parent_.assign(num_blocks, 0);
  tokens_.assign(num_blocks * block_size, 0);
  by_key_.reserve(num_blocks);
  for (size_t b = 0; b < num_blocks; ++b) PushBack(static_cast<int32_t>(b));
}

void KvBlockPool::Unlink(int32_t b) {
  const int32_t p = prev_[b], n = next_[b];
  (p == kNone ? head_ : next_[p]) = n;
  (n == kNone ? tail_ : prev_[n]) = p;
  prev_[b] = next_[b] = kNone;
  in_free_list_[b] = 0;
  --num_free_;
  if (has_key_[b]) --num_cached_;
}

void KvBlockPool::PushBack(int32_t b) {
  prev_[b] = tail_;
  next_[b] = kNone;
  (tail_ == kNone ? head_ : next_[tail_]) = b;
  tail_ = b;
  in_free_list_[b] = 1;
  ++num_free_;
  if (has_key_[b]) ++num_cached_;
}

void KvBlockPool::PushFront(int32_t b) {
  prev_[b] = kNone;
  next_[b] = head_;
  (head_ == kNone ? tail_ : prev_[head_]) = b;
  head_ = b;
  in_free_list_[b] = 1;
  ++num_free_;
  if (has_key_[b]) ++num_cached_;
}

int32_t KvBlockPool::PopFront() {
  const int32_t b = head_;
  Unlink(b);
  return b;
}

void KvBlockPool::DropKey(int32_t b) {
  if (!has_key_[b]) return;
  const auto it = by_key_.find(key_[b]);
  if (it != by_key_.end() && it->second == b) by_key_.erase(it);
  has_key_[b] = 0;
}

uint64_t KvBlockPool::KeyOf(uint64_t parent, std::span<const int32_t> tokens) const {
  uint64_t h = Mix(parent, tokens.size());
  for (int32_t t : tokens) h = Mix(h, static_cast<uint32_t>(t));
  return h;
}

int32_t KvBlockPool::Lookup(uint64_t key, uint64_t parent,
                            std::span<const int32_t> tokens) const {
  const auto it = by_key_.find(key);
  if (it == by_key_.end()) return kNone;
  const int32_t b = it->second;
  if (parent_[b] != parent ||
      !std::equal(tokens.begin(), tokens.end(), tokens_.begin() + b * block_size_)) {
    return kNone;  // a hash collision: not this prefix
  }
  return b;
}

size_t KvBlockPool::TakeCachedPrefix(SeqBlocks& seq, std::span<const int32_t> tokens,
                                     size_t max_tokens) {
  if (!seq.blocks.empty()) throw Error("KV pool: TakeCachedPrefix on a sequence with blocks");
  const size_t full = std::min(tokens.size(), max_tokens) / block_size_;
  uint64_t parent = kRootKey;
  for (size_t i = 0; i < full; ++i) {
    const auto span = tokens.subspan(i * block_size_, block_size_);
    const uint64_t key = KeyOf(parent, span);
    const int32_t b = Lookup(key, parent, span);
    if (b == kNone) break;
    if (ref_[b]++ == 0) Unlink(b);
    seq.blocks.push_back(b);
    seq.keys.push_back(key);
    parent = key;
  }
  return seq.blocks.size() * block_size_;
}

bool KvBlockPool::Grow(SeqBlocks& seq, size_t tokens) {
  const size_t need = BlocksFor(tokens);
  if (need <= seq.blocks.size()) return true;
  if (need - seq.blocks.size() > num_free_) return false;
  while (seq.blocks.size() < need) {
    const int32_t b = PopFront();  // the least recently freed: evict its cached prefix
    DropKey(b);
    ref_[b] = 1;
    seq.blocks.push_back(b);
  }
  return true;
}

void KvBlockPool::CommitFull(SeqBlocks& seq, std::span<const int32_t> tokens, size_t computed) {
  const size_t full = std::min({computed, tokens.size(), seq.blocks.size() * block_size_}) /
                      block_size_;
  while (seq.keys.size() < full) {
    const size_t i = seq.keys.size();
    const uint64_t parent = i == 0 ? kRootKey : seq.keys[i - 1];
    const auto span = tokens.subspan(i * block_size_, block_size_);
    const uint64_t key = KeyOf(parent, span);
    seq.keys.push_back(key);
    const int32_t b = seq.blocks[i];
    if (has_key_[b] || by_key_.count(key)) continue;  // shared, or cached in another block
    has_key_[b] = 1;
    key_[b] = key;
    parent_[b] = parent;
    std::copy(span.begin(), span.end(), tokens_.begin() + b * block_size_);
    by_key_.emplace(key, b);
  }
}

void KvBlockPool::Release(SeqBlocks& seq) {
  for (size_t i = seq.blocks.size(); i-- > 0;) {
    const int32_t b = seq.blocks[i];
    if (ref_[b] <= 0) throw Error("KV pool: block " + std::to_string(b) + " released twice");
    if (--ref_[b] == 0) {
      // Empty blocks go to the head: reused before any cached prefix is evicted.
      has_key_[b] ? PushBack(b) : PushFront(b);
    }
  }
  seq.blocks.clear();
  seq.keys.clear();
}

void KvBlockPool::CheckConsistency() const {
  const auto fail = [](const std::string& what) { throw Error("KV pool inconsistent: " + what); };
  size_t free = 0, cached = 0;
  int32_t prev = kNone;
  for (int32_t b = head_; b != kNone; b = next_[b]) {
    if (prev_[b] != prev) fail("free list links at block " + std::to_string(b));
    if (ref_[b] != 0) fail("block " + std::to_string(b) + " in the free list with ref > 0");
    if (!in_free_list_[b]) fail("block " + std::to_string(b) + " not flagged free");
    ++free;
    cached += has_key_[b];
    prev = b;
    if (free > num_blocks()) fail("free list cycle");
  }
  if (prev != tail_) fail("free list tail");
  if (free != num_free_ || cached != num_cached_) fail("free/cached counts");
  for (size_t b = 0; b < num_blocks(); ++b) {
    if (ref_[b] < 0) fail("negative ref count");
    if ((ref_[b] == 0) != (in_free_list_[b] != 0)) fail("ref 0 <=> free list");
  }
  for (const auto& [key, b] : by_key_) {
    if (!has_key_[b] || key_[b] != key) fail("hash table entry of block " + std::to_string(b));
  }
}

}  // namespace qwen3
