// Counter-based random numbers: value i of a stream depends only on (seed, stream, i), so
// tensors fill in parallel, in any order, and a slice equals the same slice of the whole.
#pragma once

#include <cstdint>

namespace qwen3 {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t stream) : key_(SplitMix64(seed ^ SplitMix64(stream))) {}
  uint64_t Bits(uint64_t i) const { return SplitMix64(key_ + i * 0xd1342543de82ef95ull); }
  // U[0, 1) with 24 random bits, like torch.rand's float32.
  float Uniform(uint64_t i) const {
    return static_cast<float>(Bits(i) >> 40) * (1.0f / 16777216.0f);
  }
  // Uniform integer in [lo, hi] (lo <= hi); unsigned arithmetic so any int64 range works
  // (the full range wraps span to 0: every 64-bit value is in range).
  int64_t Int(uint64_t i, int64_t lo, int64_t hi) const {
    const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;
    const uint64_t offset = span == 0 ? Bits(i) : Bits(i) % span;
    return static_cast<int64_t>(static_cast<uint64_t>(lo) + offset);
  }

 private:
  uint64_t key_;
};

}  // namespace qwen3
