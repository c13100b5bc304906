#include "tools/read_bandwidth.h"

#include <chrono>
#include <cstdint>
#include <vector>

#include "base/aligned_buffer.h"
#include "runtime/thread_pool.h"
#include "tools/summary.h"

namespace qwen3 {
namespace {

constexpr size_t kChunkBytes = size_t{4} << 20;

// Sums a chunk with 8 independent lanes: one load per 8 bytes, vectorized by the compiler.
uint64_t SumChunk(const uint64_t* p, size_t n) {
  uint64_t lanes[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8) {
    for (size_t l = 0; l < 8; ++l) lanes[l] += p[i + l];
  }
  uint64_t s = 0;
  for (uint64_t v : lanes) s += v;
  return s;
}

}  // namespace

ReadBandwidth MeasureReadBandwidth(ThreadPool& pool, size_t bytes, int repetitions) {
  const size_t words_per_chunk = kChunkBytes / sizeof(uint64_t);
  const size_t chunks = std::max<size_t>(1, bytes / kChunkBytes);
  AlignedBuffer<uint64_t> buf(chunks * words_per_chunk);
  pool.Spmd(chunks, [&](size_t c, size_t) {  // first touch by the workers, like the weights
    for (size_t i = 0; i < words_per_chunk; ++i) buf[c * words_per_chunk + i] = c + i;
  });
  std::vector<uint64_t> sink(pool.NumWorkers(), 0);
  std::vector<double> gbs;
  for (int r = 0; r < repetitions + 1; ++r) {  // +1: the first is a warm-up
    const auto t0 = std::chrono::steady_clock::now();
    pool.Spmd(chunks, [&](size_t c, size_t worker) {
      sink[worker] += SumChunk(buf.data() + c * words_per_chunk, words_per_chunk);
    }, "read_bandwidth");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) gbs.push_back(static_cast<double>(chunks * kChunkBytes) / s / 1e9);
  }
  const Summary s = Summarize(gbs);
  return {chunks * kChunkBytes, s.median, s.min, s.max};
}

}  // namespace qwen3
