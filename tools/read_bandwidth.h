// The machine's read bandwidth as the engine sees it: every worker of the pool streams its
// share of a buffer much larger than the last-level cache (the 480 MiB LLC reported here
// would flatter anything smaller), with the same allocation (huge pages) as the weights; the
// software prefetch distance (none, 512 B … 4 KiB ahead) that reads fastest is picked at
// start-up. Bandwidth on a shared host drifts by tens of
// percent within seconds, so the benchmark interleaves one pass before every timed step and
// compares each step with its own pass.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned_buffer.h"

namespace qwen3 {

class ThreadPool;

class ReadBandwidthProbe {
 public:
  // Allocates and first-touches bytes (rounded down to 4 MiB chunks, at least one).
  ReadBandwidthProbe(ThreadPool& pool, size_t bytes);
  size_t bytes() const { return buffer_.size(); }
  size_t prefetch_bytes() const { return prefetch_bytes_; }
  // One timed pass over the whole buffer by all workers: GB/s.
  double Pass();

 private:
  ThreadPool& pool_;
  AlignedBuffer<uint8_t> buffer_;
  uint64_t sink_ = 0;
  size_t prefetch_bytes_ = 1024;
};

}  // namespace qwen3
