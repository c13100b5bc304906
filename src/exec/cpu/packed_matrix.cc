#include "exec/cpu/packed_matrix.h"

#include "base/error.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

namespace {

struct Element {
  bf16 value;
  const std::string* name;
  size_t row, col;  // in the source tensor
};

}  // namespace

template <typename Source>
PackedMatrix PackedMatrix::Pack(size_t k, size_t n, Source at, ThreadPool& pool) {
  PackedMatrix m;
  m.k_ = k;
  m.n_ = n;
  m.k_tiles_ = (k + kTileK - 1) / kTileK;
  m.n_blocks_ = (n + kTileN - 1) / kTileN;
  m.data_ = AlignedBuffer<bf16>(m.n_blocks_ * m.k_tiles_ * TileOrder::kTileElems, Pages::kHuge);
  bf16* dst = m.data_.data();
  const TileOrder order = m.order();
  // One block of 16 output columns per SPMD block; the source is read once, checked as read.
  pool.Spmd(m.n_blocks_, [&](size_t j, size_t) {
    const size_t n_end = std::min(n, (j + 1) * kTileN);
    for (size_t kk = 0; kk < k; ++kk) {
      for (size_t nn = j * kTileN; nn < n_end; ++nn) {
        const Element e = at(kk, nn);
        if (!IsFiniteBf16(e.value)) {
          throw Error("tensor " + *e.name + ": element [" + std::to_string(e.row) + ", " +
                      std::to_string(e.col) + "] is " + ((e.value & 0x7f) ? "NaN" : "Inf") +
                      ": expected finite weights");
        }
        dst[order.Index(kk, nn)] = e.value;
      }
    }
  });
  return m;
}

PackedMatrix PackedMatrix::FromInOut(const bf16* src, size_t k, size_t n, const std::string& name,
                                     ThreadPool& pool) {
  if (k == 0 || n == 0) throw Error("tensor " + name + ": empty matrix");
  return Pack(
      k, n,
      [&](size_t kk, size_t nn) {
        return Element{src[kk * n + nn], &name, kk, nn};
      },
      pool);
}

PackedMatrix PackedMatrix::FromOutIn(const bf16* src, size_t n, size_t k, const std::string& name,
                                     ThreadPool& pool) {
  if (k == 0 || n == 0) throw Error("tensor " + name + ": empty matrix");
  return Pack(
      k, n,
      [&](size_t kk, size_t nn) {
        return Element{src[nn * k + kk], &name, nn, kk};
      },
      pool);
}

namespace {

// Column nn of the interleaved [k, 2n] matrix: column `col` of the first or second source.
struct InterleavedColumn {
  size_t col;
  bool second;
};
InterleavedColumn Interleave(size_t nn) {
  return {nn / (2 * kTileK) * kTileK + nn % kTileK, nn % (2 * kTileK) >= kTileK};
}

void CheckInterleavable(size_t k, size_t n, const std::string& name_a, const std::string& name_b) {
  if (k == 0 || n == 0) throw Error("tensor " + name_a + ": empty matrix");
  if (n % kTileK != 0) {
    throw Error("tensors " + name_a + ", " + name_b + ": " + std::to_string(n) +
                " columns: expected a multiple of 32 to interleave");
  }
}

}  // namespace

PackedMatrix PackedMatrix::FromInOutInterleaved(const bf16* a, const bf16* b, size_t k, size_t n,
                                                const std::string& name_a,
                                                const std::string& name_b, ThreadPool& pool) {
  return PackInterleaved(a, b, k, n, name_a, name_b, /*out_in=*/false, pool);
}

PackedMatrix PackedMatrix::FromOutInInterleaved(const bf16* a, const bf16* b, size_t n, size_t k,
                                                const std::string& name_a,
                                                const std::string& name_b, ThreadPool& pool) {
  return PackInterleaved(a, b, k, n, name_a, name_b, /*out_in=*/true, pool);
}

PackedMatrix PackedMatrix::PackInterleaved(const bf16* a, const bf16* b, size_t k, size_t n,
                                           const std::string& name_a, const std::string& name_b,
                                           bool out_in, ThreadPool& pool) {
  CheckInterleavable(k, n, name_a, name_b);
  return Pack(
      k, 2 * n,
      [&](size_t kk, size_t nn) {
        const InterleavedColumn c = Interleave(nn);
        // The source element and its [row, col] in the source's own layout.
        const size_t row = out_in ? c.col : kk, col = out_in ? kk : c.col;
        const bf16* src = c.second ? b : a;
        return Element{src[row * (out_in ? k : n) + col], c.second ? &name_b : &name_a, row, col};
      },
      pool);
}

bf16 PackedMatrix::At(size_t k, size_t n) const {
  QW_ASSERT(k < k_ && n < n_);
  return data_[order().Index(k, n)];
}

}  // namespace qwen3::cpu
