#include "tools/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "base/cpu_features.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

constexpr size_t kChunkBytes = size_t{4} << 20;
// Software prefetch distances tried at start-up; 0 = none (hardware prefetchers only).
constexpr size_t kPrefetchCandidates[] = {0, 512, 1024, 2048, 4096};

__attribute__((target("avx512f"))) uint64_t SumChunkAvx512(const uint8_t* p, size_t ahead) {
  __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
  for (size_t i = 0; i < kChunkBytes; i += 128) {
    if (ahead) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead + 64), _MM_HINT_T0);
    }
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(a0, a1));
  uint64_t s = 0;
  for (uint64_t v : lanes) s += v;
  return s;
}

uint64_t SumChunkGeneric(const uint8_t* p, size_t ahead) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t lanes[8] = {};
  for (size_t i = 0; i < kChunkBytes / 8; i += 8) {
    if (ahead) _mm_prefetch(reinterpret_cast<const char*>(w + i) + ahead, _MM_HINT_T0);
    for (size_t l = 0; l < 8; ++l) lanes[l] += w[i + l];
  }
  uint64_t s = 0;
  for (uint64_t v : lanes) s += v;
  return s;
}

}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(ThreadPool& pool, size_t bytes)
    : pool_(pool), buffer_(std::max<size_t>(1, bytes / kChunkBytes) * kChunkBytes) {
  pool_.Spmd(buffer_.size() / kChunkBytes, [&](size_t c, size_t) {  // first touch by the workers
    for (size_t i = 0; i < kChunkBytes; i += 64)
      buffer_[c * kChunkBytes + i] = static_cast<uint8_t>(c + i);
  });
  Pass();  // warm-up
  // The streaming kernel's best setting here, so the denominator is the most this machine
  // gives a plain read (the engine's % of it stays an upper bound on what is left to gain).
  double best = 0;
  size_t best_ahead = prefetch_bytes_;
  for (size_t ahead : kPrefetchCandidates) {
    prefetch_bytes_ = ahead;
    std::vector<double> gbs;
    for (int r = 0; r < 3; ++r) gbs.push_back(Pass());
    std::sort(gbs.begin(), gbs.end());
    if (gbs[1] > best) best = gbs[1], best_ahead = ahead;
  }
  prefetch_bytes_ = best_ahead;
}

double ReadBandwidthProbe::Pass() {
  const bool avx512 = GetCpuFeatures().avx512;
  std::atomic<uint64_t> sink{0};
  const auto t0 = std::chrono::steady_clock::now();
  pool_.Spmd(
      buffer_.size() / kChunkBytes,
      [&](size_t c, size_t) {
        const uint8_t* p = buffer_.data() + c * kChunkBytes;
        sink.fetch_add(avx512 ? SumChunkAvx512(p, prefetch_bytes_) : SumChunkGeneric(p, prefetch_bytes_),
                       std::memory_order_relaxed);
      },
      "read_bandwidth");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sink_ += sink.load();
  return static_cast<double>(buffer_.size()) / s / 1e9;
}

}  // namespace qwen3
