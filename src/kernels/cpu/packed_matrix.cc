#include "kernels/cpu/packed_matrix.h"

#include "base/error.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

template <bool kInOut>
PackedMatrix PackedMatrix::Pack(const bf16* src, size_t k, size_t n, const std::string& name,
                                ThreadPool& pool) {
  if (k == 0 || n == 0) throw Error("tensor " + name + ": empty matrix");
  PackedMatrix m;
  m.k_ = k;
  m.n_ = n;
  m.k_tiles_ = (k + kTileK - 1) / kTileK;
  m.n_blocks_ = (n + kTileN - 1) / kTileN;
  m.data_ = AlignedBuffer<bf16>(m.n_blocks_ * m.k_tiles_ * kTileElems);
  bf16* dst = m.data_.data();
  const size_t k_tiles = m.k_tiles_;
  // One block of 16 output columns per SPMD block; the source is read once, checked as read.
  pool.Spmd(m.n_blocks_, [&](size_t j, size_t) {
    bf16* block = dst + j * k_tiles * kTileElems;
    const size_t n_end = std::min(n, (j + 1) * kTileN);
    for (size_t kk = 0; kk < k; ++kk) {
      bf16* row = block + (kk / kTileK) * kTileElems + ((kk % kTileK) / 2) * kTileK + (kk % 2);
      for (size_t nn = j * kTileN; nn < n_end; ++nn) {
        const bf16 v = kInOut ? src[kk * n + nn] : src[nn * k + kk];
        if (!IsFiniteBf16(v)) {
          throw Error("tensor " + name + ": element [" + std::to_string(kInOut ? kk : nn) + ", " +
                      std::to_string(kInOut ? nn : kk) + "] is " + ((v & 0x7f) ? "NaN" : "Inf") +
                      ": expected finite weights");
        }
        row[(nn - j * kTileN) * 2] = v;
      }
    }
  });
  return m;
}

PackedMatrix PackedMatrix::FromInOut(const bf16* src, size_t k, size_t n, const std::string& name,
                                     ThreadPool& pool) {
  return Pack<true>(src, k, n, name, pool);
}

PackedMatrix PackedMatrix::FromOutIn(const bf16* src, size_t n, size_t k, const std::string& name,
                                     ThreadPool& pool) {
  return Pack<false>(src, k, n, name, pool);
}

bf16 PackedMatrix::At(size_t k, size_t n) const {
  QW_ASSERT(k < k_ && n < n_);
  const BBlock b = Block(n / kTileN);
  return b.data[(k / kTileK) * b.ktile_stride + ((k % kTileK) / 2) * b.row_stride +
                (n % kTileN) * 2 + (k % 2)];
}

}  // namespace qwen3::cpu
