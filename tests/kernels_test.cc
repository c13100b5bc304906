// The per-path CPU kernels (matmul_block, softmax_tile), PackedMatrix with the fused matmul
// drivers, and the vec ops, each against a plain double-precision reference computed here,
// and every path against the scalar twin. Every test runs once per AvailableCpuPaths() entry
// (KernelsTest/<path>), so `--gtest_filter='*/scalar'` runs the twin alone.
//
// Tolerances (STYLE.md "Derive tolerances from error analysis"): matmul inputs are bf16, so
// every product a*b is exact in fp32 (8 + 8 significant bits); the only error is fp32
// summation. With random signs the error is a random walk of a few u * sum|ab| (u = 2^-24;
// the worst case K u is never approached), so tol = 1e-6 * sum_k |a_k b_k| (~17u) holds while
// staying far below any real indexing or tiling bug (which is O(|a_k b_k|)). Measured worst:
// 0.42 tol (7u), on every path, K 1..17408. Path vs scalar: both err, so 2 x tol.
#include "exec/cpu/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "base/bf16.h"
#include "base/error.h"
#include "base/rng.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/fused_matmul.h"
#include "exec/cpu/packed_matrix.h"
#include "runtime/thread_pool.h"
#include "tests/error_matchers.h"

namespace qwen3::cpu {
namespace {

constexpr double kU = 0x1p-24;       // fp32 unit roundoff
constexpr double kMatmulRel = 1e-6;  // x sum|ab|, see the file comment
constexpr float kCanaryF32 = -1234.5f;
constexpr bf16 kCanaryBf16 = 0xdead;  // a finite bf16 (-6.2e18) no kernel would produce

ThreadPool& Pool() {
  static ThreadPool pool(2);
  return pool;
}

size_t RoundUp(size_t x, size_t m) { return (x + m - 1) / m * m; }

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

// A random bf16 with magnitude spread over 2^-4 .. 2^4, so sums cancel and round.
bf16 RandomBf16(const CounterRng& rng, uint64_t i) {
  const float u = rng.Uniform(2 * i) * 2.0f - 1.0f;
  return F32ToBf16(std::ldexp(u, static_cast<int>(rng.Int(2 * i + 1, -4, 4))));
}

std::vector<bf16> RandomBf16s(uint64_t seed, uint64_t stream, size_t n) {
  const CounterRng rng(seed, stream);
  std::vector<bf16> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = RandomBf16(rng, i);
  return v;
}

// Distance in units in the last place between two finite bf16 values of any sign.
int64_t UlpDistanceBf16(bf16 a, bf16 b) {
  auto ordered = [](bf16 h) -> int64_t {
    return (h & 0x8000u) ? -static_cast<int64_t>(h & 0x7fffu) : static_cast<int64_t>(h);
  };
  return std::abs(ordered(a) - ordered(b));
}

// Checks actual(r, c) against expected(r, c) within tol(r, c) for r < rows, c < cols. On
// failure names the worst element (by err / tol), expected, actual and the count outside.
template <typename Actual, typename Expected, typename Tol>
testing::AssertionResult NearAll(std::string_view what, size_t rows, size_t cols, Actual actual,
                                 Expected expected, Tol tol) {
  size_t outside = 0, worst_r = 0, worst_c = 0;
  double worst_ratio = 0;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const double err = std::fabs(static_cast<double>(actual(r, c)) - expected(r, c));
      const double t = tol(r, c);
      const double ratio = err <= t ? err / t : (std::isnan(err) ? INFINITY : err / t);
      if (!(err <= t)) ++outside;
      if (!(ratio <= worst_ratio)) {
        worst_ratio = ratio;
        worst_r = r;
        worst_c = c;
      }
    }
  }
  if (outside == 0) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << what << ": " << outside << " of " << rows << " x " << cols
         << " outside tolerance; worst at (row " << worst_r << ", col " << worst_c << "): expected "
         << expected(worst_r, worst_c) << ", actual " << actual(worst_r, worst_c) << ", tol "
         << tol(worst_r, worst_c);
}

// Counts elements of [p, p + n) that are no longer the canary.
size_t CountChanged(const float* p, size_t n) {
  size_t changed = 0;
  for (size_t i = 0; i < n; ++i) changed += !SameBits(p[i], kCanaryF32);
  return changed;
}
size_t CountChanged(const bf16* p, size_t n) {
  size_t changed = 0;
  for (size_t i = 0; i < n; ++i) changed += p[i] != kCanaryBf16;
  return changed;
}

// C = A[rows][k] . B(k, n) in double, and sum |a b| for the tolerance.
struct Reference {
  size_t rows = 0, cols = 0;
  std::vector<double> value, abs_sum;
  double Tol(size_t r, size_t c, double scale = 1.0) const {
    return scale * kMatmulRel * abs_sum[r * cols + c] + 1e-30;
  }
};

template <typename A, typename B>
Reference MatmulReference(size_t rows, size_t k, size_t cols, A a, B b) {
  Reference ref;
  ref.rows = rows;
  ref.cols = cols;
  ref.value.assign(rows * cols, 0.0);
  ref.abs_sum.assign(rows * cols, 0.0);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t kk = 0; kk < k; ++kk) {
      const double av = Bf16ToF32(a(r, kk));
      if (av == 0) continue;
      for (size_t c = 0; c < cols; ++c) {
        const double prod = av * Bf16ToF32(b(kk, c));
        ref.value[r * cols + c] += prod;
        ref.abs_sum[r * cols + c] += std::fabs(prod);
      }
    }
  }
  return ref;
}

class KernelsTest : public testing::TestWithParam<CpuPath> {
 protected:
  const CpuKernels& Kernels() const { return GetCpuKernels(GetParam()); }
  static const CpuKernels& Scalar() { return GetCpuKernels(CpuPath::kScalar); }
  bool IsScalar() const { return GetParam() == CpuPath::kScalar; }
};

INSTANTIATE_TEST_SUITE_P(Paths, KernelsTest, testing::ValuesIn(AvailableCpuPaths()),
                         [](const testing::TestParamInfo<CpuPath>& info) {
                           return std::string(ToString(info.param));
                         });

// ---------------------------------------------------------------------------------------------
// matmul_block on hand-built VNNI tiles with every kind of stride the engine uses: packed
// weights (row 32, tile 512), K pages (long rows, k-tiles interleaved within a row), V pages,
// plus gaps. Everything the kernel must not read (A columns >= k_tiles * 32, B gaps) holds
// large finite garbage, and C is surrounded by canaries and pre-filled with them (it must be
// overwritten, not accumulated into).

TEST_P(KernelsTest, MatmulBlockStridedTiles) {
  SCOPED_TRACE(ToString(GetParam()));
  struct TileLayout {
    size_t row_stride, ktile_stride;
  };
  const TileLayout layouts[] = {
      {32, 512},              // PackedMatrix
      {48, 16 * 48 + 24},     // padded rows, a gap between k-tiles
      {256, 32},              // k-tiles side by side in 256-element rows (a 128-token K page)
      {64, 16 * 64 * 2 + 8},  // every other row band unused
  };
  const bf16 garbage = F32ToBf16(3.0e4f);
  uint64_t stream = 0;
  // 9 and 17 k-tiles cross the AVX-512 kernels' K chunks (8 k-tiles) and end inside one.
  for (size_t k_tiles : {1, 2, 3, 4, 5, 9, 17}) {
    for (size_t nb = 1; nb <= kMaxBlocksPerCall; ++nb) {
      SCOPED_TRACE(testing::Message() << "k_tiles " << k_tiles << ", nb " << nb);
      const size_t k = k_tiles * kTileK, n = nb * kTileN, lda = k + 24, ldc = n + 7;
      const std::vector<bf16> a_vals = RandomBf16s(100, stream++, kTileM * k);
      const std::vector<bf16> b_vals = RandomBf16s(100, stream++, k * n);  // [k][n]
      std::vector<bf16> a(kTileM * lda, garbage);
      for (size_t m = 0; m < kTileM; ++m) {
        std::copy_n(a_vals.begin() + m * k, k, a.begin() + m * lda);
      }
      std::vector<std::vector<bf16>> b_bufs(nb);
      BBlock blocks[kMaxBlocksPerCall];
      for (size_t j = 0; j < nb; ++j) {
        TileLayout lay = layouts[(j + k_tiles) % 4];
        if (lay.ktile_stride == 32) lay.row_stride = std::max<size_t>(256, 32 * k_tiles);
        const size_t size = (k_tiles - 1) * lay.ktile_stride + 15 * lay.row_stride + 32;
        b_bufs[j].assign(size + 64, garbage);
        std::vector<bool> used(size);
        for (size_t t = 0; t < k_tiles; ++t) {
          for (size_t kp = 0; kp < kTileK / 2; ++kp) {
            for (size_t nn = 0; nn < kTileN; ++nn) {
              for (size_t e = 0; e < 2; ++e) {
                const size_t idx = t * lay.ktile_stride + kp * lay.row_stride + nn * 2 + e;
                ASSERT_FALSE(used[idx]) << "test bug: overlapping tile layout";
                used[idx] = true;
                b_bufs[j][idx] = b_vals[(t * kTileK + kp * 2 + e) * n + j * kTileN + nn];
              }
            }
          }
        }
        blocks[j] = {b_bufs[j].data(), lay.ktile_stride, lay.row_stride};
      }
      const Reference ref = MatmulReference(
          kTileM, k, n, [&](size_t r, size_t kk) { return a_vals[r * k + kk]; },
          [&](size_t kk, size_t c) { return b_vals[kk * n + c]; });

      constexpr size_t kGuard = 16;
      auto run = [&](const CpuKernels& kernels) {
        std::vector<float> buf(kGuard + kTileM * ldc + kGuard, kCanaryF32);
        kernels.matmul_block(a.data(), lda, kTileM, k_tiles, blocks, nb, buf.data() + kGuard, ldc,
                             nullptr, 0);
        EXPECT_EQ(CountChanged(buf.data(), kGuard), 0u) << "write before c";
        EXPECT_EQ(CountChanged(buf.data() + kGuard + kTileM * ldc, kGuard), 0u) << "write after c";
        for (size_t m = 0; m < kTileM; ++m) {
          EXPECT_EQ(CountChanged(buf.data() + kGuard + m * ldc + n, ldc - n), 0u)
              << "write past column " << n << " of row " << m;
        }
        return buf;
      };
      const std::vector<float> c = run(Kernels());
      const float* cp = c.data() + kGuard;
      EXPECT_TRUE(NearAll(
          "matmul_block vs double", kTileM, n,
          [&](size_t r, size_t col) { return cp[r * ldc + col]; },
          [&](size_t r, size_t col) { return ref.value[r * n + col]; },
          [&](size_t r, size_t col) { return ref.Tol(r, col); }));
      if (!IsScalar()) {
        const std::vector<float> cs = run(Scalar());
        const float* sp = cs.data() + kGuard;
        EXPECT_TRUE(NearAll(
            "matmul_block vs scalar path", kTileM, n,
            [&](size_t r, size_t col) { return cp[r * ldc + col]; },
            [&](size_t r, size_t col) { return static_cast<double>(sp[r * ldc + col]); },
            [&](size_t r, size_t col) { return ref.Tol(r, col, 2.0); }));
      }
      if (HasFailure()) return;
    }
  }
}

// One packed group of nb random column blocks, k_tiles deep (TileOrder: PackedMatrix's layout).
struct RandomGroup {
  RandomGroup(size_t k_tiles, size_t nb, uint64_t stream)
      : b(RandomBf16s(100, stream, k_tiles * kTileK * nb * kTileN)) {
    const TileOrder order{k_tiles, nb};
    for (size_t j = 0; j < nb; ++j) blocks[j] = order.Block(b.data(), j);
  }
  RandomGroup(const RandomGroup&) = delete;  // blocks point into b
  RandomGroup& operator=(const RandomGroup&) = delete;

  std::vector<bf16> b;
  BBlock blocks[kMaxBlocksPerCall] = {};
};

// Batch invariance at the kernel: row r of C is the same bits whether the call computes 1, 5,
// 9 or 16 rows (the kernels pick register tiles by row count), and a prefetch hint (attention's
// next page) changes nothing.
TEST_P(KernelsTest, MatmulBlockRowsDoNotChangeARow) {
  SCOPED_TRACE(ToString(GetParam()));
  const size_t k_tiles = 11, k = k_tiles * kTileK, lda = k + 8;
  const std::vector<bf16> a = RandomBf16s(100, 90, kTileM * lda);
  for (size_t nb = 1; nb <= kMaxBlocksPerCall; ++nb) {
    const RandomGroup group(k_tiles, nb, 91 + nb);
    const BBlock* blocks = group.blocks;
    const size_t ldc = nb * kTileN;
    std::vector<float> full(kTileM * ldc);
    Kernels().matmul_block(a.data(), lda, kTileM, k_tiles, blocks, nb, full.data(), ldc, nullptr,
                           0);
    for (size_t rows = 1; rows <= kTileM; ++rows) {
      std::vector<float> c(kTileM * ldc);
      Kernels().matmul_block(a.data(), lda, rows, k_tiles, blocks, nb, c.data(), ldc,
                             group.b.data(), group.b.size() * sizeof(bf16));
      for (size_t i = 0; i < rows * ldc; ++i) {
        ASSERT_TRUE(SameBits(c[i], full[i]))
            << "nb " << nb << ", rows " << rows << ": row " << i / ldc << " col " << i % ldc;
      }
    }
  }
}

// A call outside a kernel's preconditions stops the process with the failed condition named
// (a bug in the caller, never silent garbage): block counts 0 and 5, 0 and 17 rows, 0 k-tiles.
TEST_P(KernelsTest, MatmulPreconditionsAreChecked) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::vector<bf16> a(kTileM * kTileK * 2, 0), b(kTileK * kTileN * kMaxBlocksPerCall * 2, 0);
  std::vector<float> c(kMaxPanelRows * kTileN * kMaxBlocksPerCall);
  BBlock blocks[kMaxBlocksPerCall + 1];
  for (BBlock& blk : blocks) blk = {b.data(), kTileK * kTileN, kTileK};
  const CpuKernels& k = Kernels();
  const size_t ldc = kTileN * kMaxBlocksPerCall;
  EXPECT_DEATH(k.matmul_block(a.data(), kTileK, kTileM, 1, blocks, 0, c.data(), ldc, nullptr, 0),
               "nb");
  EXPECT_DEATH(k.matmul_block(a.data(), kTileK, kTileM, 1, blocks, 5, c.data(), ldc, nullptr, 0),
               "nb");
  EXPECT_DEATH(k.matmul_block(a.data(), kTileK, 0, 1, blocks, 1, c.data(), ldc, nullptr, 0),
               "rows");
  EXPECT_DEATH(k.matmul_block(a.data(), kTileK, 17, 1, blocks, 1, c.data(), ldc, nullptr, 0),
               "rows");
  EXPECT_DEATH(k.matmul_block(a.data(), kTileK, kTileM, 0, blocks, 1, c.data(), ldc, nullptr, 0),
               "k_tiles");
}

// matmul_rows (a prefill panel in one call) gives every row the bits matmul_block gives it in
// its 16-row tile, for panels that end inside a tile.
TEST_P(KernelsTest, MatmulRowsEqualsBlockTiles) {
  SCOPED_TRACE(ToString(GetParam()));
  const size_t k_tiles = 10, k = k_tiles * kTileK, lda = k + 8;
  const std::vector<bf16> a = RandomBf16s(100, 95, kMaxPanelRows * lda);
  for (size_t nb = 1; nb <= kMaxBlocksPerCall; ++nb) {
    const RandomGroup group(k_tiles, nb, 96 + nb);
    const BBlock* blocks = group.blocks;
    const size_t ldc = nb * kTileN + 3;
    for (size_t rows : {size_t{17}, size_t{40}, size_t{100}, kMaxPanelRows}) {
      std::vector<float> panel(RoundUp(rows, kTileM) * ldc), tile(kTileM * ldc);
      Kernels().matmul_rows(a.data(), lda, rows, k_tiles, blocks, nb, panel.data(), ldc);
      for (size_t r0 = 0; r0 < rows; r0 += kTileM) {
        const size_t n_rows = std::min(kTileM, rows - r0);
        Kernels().matmul_block(a.data() + r0 * lda, lda, n_rows, k_tiles, blocks, nb, tile.data(),
                               ldc, nullptr, 0);
        for (size_t r = 0; r < n_rows; ++r) {
          for (size_t col = 0; col < nb * kTileN; ++col) {
            ASSERT_TRUE(SameBits(panel[(r0 + r) * ldc + col], tile[r * ldc + col]))
                << "nb " << nb << ", rows " << rows << ": row " << r0 + r << " col " << col;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PackedMatrix + MatmulGroup: both source layouts, every column group, every 16-row tile.

// Runs MatmulGroup over all column groups of w, group_blocks blocks per call, and all row
// tiles; returns out[M][n_blocks * 16] (padded columns included). Checks the epilogue's calls.
std::vector<float> RunGroups(const CpuKernels& kernels, const bf16* a, size_t lda, size_t rows,
                             const PackedMatrix& w, size_t group_blocks) {
  const size_t cols = w.n_blocks() * kTileN;
  std::vector<float> out(rows * cols, std::numeric_limits<float>::quiet_NaN());
  for (size_t j0 = 0; j0 < w.n_blocks(); j0 += group_blocks) {
    const size_t nb = std::min(group_blocks, w.n_blocks() - j0);
    size_t next_row0 = 0;
    MatmulGroup(kernels, a, lda, rows, w, j0, nb,
                [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                  EXPECT_EQ(row0, next_row0);
                  EXPECT_EQ(tile_rows, std::min(kTileM, rows - row0));
                  next_row0 = row0 + kTileM;
                  for (size_t r = 0; r < tile_rows; ++r) {
                    for (size_t col = 0; col < nb * kTileN; ++col) {
                      out[(row0 + r) * cols + j0 * kTileN + col] = c[r * ldc + col];
                    }
                  }
                });
    EXPECT_EQ(next_row0, RoundUp(rows, kTileM));
  }
  return out;
}

// One (M, K, N) case: a[M][K] (random rows of a_vals) against both packings of w.
void CheckMatmulGroupCase(const CpuKernels& kernels, bool is_scalar, size_t rows, size_t k,
                          size_t n, const std::vector<bf16>& a_vals, const PackedMatrix& w_in_out,
                          const PackedMatrix& w_out_in, const Reference& ref) {
  SCOPED_TRACE(testing::Message() << "M " << rows << ", K " << k << ", N " << n);
  const size_t lda = w_in_out.k_tiles() * kTileK, cols = w_in_out.n_blocks() * kTileN;
  std::vector<bf16> a(RoundUp(rows, kTileM) * lda, 0);  // zero rows and columns of padding
  for (size_t r = 0; r < rows; ++r) std::copy_n(&a_vals[r * k], k, &a[r * lda]);
  const size_t group_blocks = 1 + (rows + k + n) % kMaxBlocksPerCall;
  SCOPED_TRACE(testing::Message() << "blocks per call " << group_blocks);

  const std::vector<float> out = RunGroups(kernels, a.data(), lda, rows, w_in_out, group_blocks);
  EXPECT_TRUE(NearAll(
      "MatmulGroup vs double", rows, n, [&](size_t r, size_t c) { return out[r * cols + c]; },
      [&](size_t r, size_t c) { return ref.value[r * ref.cols + c]; },
      [&](size_t r, size_t c) { return ref.Tol(r, c); }));
  // Columns of the zero padding of w come out exactly zero.
  EXPECT_TRUE(NearAll(
      "padded columns", rows, cols - n, [&](size_t r, size_t c) { return out[r * cols + n + c]; },
      [](size_t, size_t) { return 0.0; }, [](size_t, size_t) { return 0.0; }));
  // Both source layouts pack to the same tiles, so the results are identical.
  const std::vector<float> out2 = RunGroups(kernels, a.data(), lda, rows, w_out_in, group_blocks);
  EXPECT_TRUE(NearAll(
      "FromOutIn vs FromInOut", rows, cols, [&](size_t r, size_t c) { return out2[r * cols + c]; },
      [&](size_t r, size_t c) { return static_cast<double>(out[r * cols + c]); },
      [](size_t, size_t) { return 0.0; }));
  if (!is_scalar) {
    const std::vector<float> outs = RunGroups(GetCpuKernels(CpuPath::kScalar), a.data(), lda, rows,
                                              w_in_out, kMaxBlocksPerCall);
    EXPECT_TRUE(NearAll(
        "MatmulGroup vs scalar path", rows, n,
        [&](size_t r, size_t c) { return out[r * cols + c]; },
        [&](size_t r, size_t c) { return static_cast<double>(outs[r * cols + c]); },
        [&](size_t r, size_t c) { return ref.Tol(r, c, 2.0); }));
  }
}

struct PackedCase {
  size_t k, n;
  std::vector<bf16> w;       // [k][n]
  std::vector<bf16> w_t;     // [n][k]
  std::vector<bf16> a_vals;  // [max_rows][k]
  PackedMatrix w_in_out, w_out_in;
  Reference ref;  // [max_rows][n]

  PackedCase(size_t k_, size_t n_, size_t max_rows, uint64_t seed) : k(k_), n(n_) {
    w = RandomBf16s(seed, 1, k * n);
    w_t.resize(k * n);
    for (size_t kk = 0; kk < k; ++kk) {
      for (size_t nn = 0; nn < n; ++nn) w_t[nn * k + kk] = w[kk * n + nn];
    }
    a_vals = RandomBf16s(seed, 2, max_rows * k);
    w_in_out = PackedMatrix::FromInOut(w.data(), k, n, "test.w", Pool());
    w_out_in = PackedMatrix::FromOutIn(w_t.data(), n, k, "test.w_t", Pool());
    ref = MatmulReference(
        max_rows, k, n, [&](size_t r, size_t kk) { return a_vals[r * k + kk]; },
        [&](size_t kk, size_t nn) { return w[kk * n + nn]; });
  }
};

TEST_P(KernelsTest, MatmulGroupSweep) {
  SCOPED_TRACE(ToString(GetParam()));
  const size_t ks[] = {1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 129};
  const size_t ns[] = {1, 15, 16, 17, 63, 64, 65, 129};
  constexpr size_t kMaxRows = 17;
  for (size_t k : ks) {
    for (size_t n : ns) {
      const PackedCase pc(k, n, kMaxRows, 1000 + k * 1000 + n);
      for (size_t rows = 1; rows <= kMaxRows; ++rows) {
        CheckMatmulGroupCase(Kernels(), IsScalar(), rows, k, n, pc.a_vals, pc.w_in_out, pc.w_out_in,
                             pc.ref);
        if (HasFailure()) return;
      }
    }
  }
}

// Qwen3-14B's K (hidden 5120, intermediate 17408) on a few column blocks.
TEST_P(KernelsTest, MatmulGroup14BDims) {
  SCOPED_TRACE(ToString(GetParam()));
  for (size_t k : {size_t{5120}, size_t{17408}}) {
    const PackedCase pc(k, 65, 17, 77 + k);
    for (size_t rows : {size_t{1}, size_t{5}, size_t{17}}) {
      CheckMatmulGroupCase(Kernels(), IsScalar(), rows, k, 65, pc.a_vals, pc.w_in_out, pc.w_out_in,
                           pc.ref);
      if (HasFailure()) return;
    }
  }
}

// gate and up interleaved into one matrix (FromInOutInterleaved): a 64-column group's C block
// is 32 gate columns, then the up columns of the same 32 outputs.
TEST_P(KernelsTest, InterleavedGateUpOneKLoop) {
  SCOPED_TRACE(ToString(GetParam()));
  ThreadPool pool(2);
  for (size_t k : {size_t{15}, size_t{64}, size_t{129}}) {
    for (size_t n : {size_t{32}, size_t{64}, size_t{96}}) {
      const PackedCase gate(k, n, 17, 5000 + k * 100 + n), up(k, n, 17, 6000 + k * 100 + n);
      const PackedMatrix both =
          PackedMatrix::FromInOutInterleaved(gate.w.data(), up.w.data(), k, n, "gate", "up", pool);
      ASSERT_EQ(both.n(), 2 * n);
      // Both use gate's activations.
      const Reference ref_up = MatmulReference(
          17, k, n, [&](size_t r, size_t kk) { return gate.a_vals[r * k + kk]; },
          [&](size_t kk, size_t nn) { return up.w[kk * n + nn]; });
      const size_t lda = RoundUp(k, kTileK);
      for (size_t rows : {size_t{1}, size_t{5}, size_t{16}, size_t{17}}) {
        SCOPED_TRACE(testing::Message() << "M " << rows << ", K " << k << ", N " << n);
        std::vector<bf16> a(RoundUp(rows, kTileM) * lda, 0);
        for (size_t r = 0; r < rows; ++r) std::copy_n(&gate.a_vals[r * k], k, &a[r * lda]);
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> out1(rows * n, nan), out2(rows * n, nan);
        for (size_t j0 = 0; j0 < both.n_blocks(); j0 += kMaxBlocksPerCall) {
          ASSERT_EQ(both.n_blocks() - j0 >= kMaxBlocksPerCall, true);  // whole groups of 64
          MatmulGroup(Kernels(), a.data(), lda, rows, both, j0, kMaxBlocksPerCall,
                      [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                        const size_t out0 = j0 / kMaxBlocksPerCall * 32;
                        for (size_t r = 0; r < tile_rows; ++r) {
                          for (size_t j = 0; j < 32; ++j) {
                            out1[(row0 + r) * n + out0 + j] = c[r * ldc + j];
                            out2[(row0 + r) * n + out0 + j] = c[r * ldc + 32 + j];
                          }
                        }
                      });
        }
        EXPECT_TRUE(NearAll(
            "gate", rows, n, [&](size_t r, size_t c) { return out1[r * n + c]; },
            [&](size_t r, size_t c) { return gate.ref.value[r * n + c]; },
            [&](size_t r, size_t c) { return gate.ref.Tol(r, c); }));
        EXPECT_TRUE(NearAll(
            "up", rows, n, [&](size_t r, size_t c) { return out2[r * n + c]; },
            [&](size_t r, size_t c) { return ref_up.value[r * n + c]; },
            [&](size_t r, size_t c) { return ref_up.Tol(r, c); }));
        if (HasFailure()) return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PackedMatrix layout and validation (path-independent).

TEST(PackedMatrixTest, AtAndZeroPaddingBothLayouts) {
  for (size_t k : {size_t{1}, size_t{17}, size_t{32}, size_t{33}, size_t{100}}) {
    for (size_t n : {size_t{1}, size_t{16}, size_t{17}, size_t{50}}) {
      SCOPED_TRACE(testing::Message() << "K " << k << ", N " << n);
      const PackedCase pc(k, n, 1, 9000 + k * 100 + n);
      const size_t k_tiles = (k + 31) / 32, n_blocks = (n + 15) / 16;
      for (const PackedMatrix* w : {&pc.w_in_out, &pc.w_out_in}) {
        EXPECT_EQ(w->k(), k);
        EXPECT_EQ(w->n(), n);
        EXPECT_EQ(w->k_tiles(), k_tiles);
        EXPECT_EQ(w->n_blocks(), n_blocks);
        EXPECT_EQ(w->bytes(), n_blocks * k_tiles * 512 * sizeof(bf16));
        size_t wrong = 0;
        for (size_t kk = 0; kk < k; ++kk) {
          for (size_t nn = 0; nn < n; ++nn) wrong += w->At(kk, nn) != pc.w[kk * n + nn];
        }
        EXPECT_EQ(wrong, 0u) << "elements where At(k, n) differs from the source";
        // Every stored element, padding included, from the documented tile layout.
        const bf16* base = w->Block(0).data;
        size_t wrong_data = 0, wrong_pad = 0;
        for (size_t j = 0; j < n_blocks; ++j) {
          const BBlock b = w->Block(j);
          // Groups of 4 blocks (the last may be smaller), tiles interleaved along K.
          const size_t group_size = std::min<size_t>(4, n_blocks - j / 4 * 4);
          EXPECT_EQ(b.data, base + (j / 4 * 4 * k_tiles + j % 4) * 512);
          EXPECT_EQ(b.ktile_stride, group_size * 512);
          EXPECT_EQ(b.row_stride, kTileK);
          for (size_t t = 0; t < k_tiles; ++t) {
            for (size_t kp = 0; kp < 16; ++kp) {
              for (size_t nl = 0; nl < 16; ++nl) {
                for (size_t e = 0; e < 2; ++e) {
                  const size_t kk = t * 32 + kp * 2 + e, nn = j * 16 + nl;
                  const bf16 v = b.data[t * b.ktile_stride + kp * b.row_stride + nl * 2 + e];
                  if (kk < k && nn < n) {
                    wrong_data += v != pc.w[kk * n + nn];
                  } else {
                    wrong_pad += v != 0;
                  }
                }
              }
            }
          }
        }
        EXPECT_EQ(wrong_data, 0u);
        EXPECT_EQ(wrong_pad, 0u) << "non-zero padding";
      }
    }
  }
}

// "[row, col]" as the error message writes it.
std::string Element(size_t row, size_t col) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "[%zu, %zu]", row, col);
  return buf;
}

TEST(PackedMatrixTest, NonFiniteThrowsNamingTensorAndElement) {
  const size_t k = 40, n = 20;
  const std::vector<bf16> good = RandomBf16s(3, 0, k * n);  // [k][n]
  struct Bad {
    bf16 bits;
    const char* kind;
  };
  const Bad bads[] = {
      {0x7fc0, "NaN"}, {0xffc1, "NaN"}, {0x7f81, "NaN"}, {0x7f80, "Inf"}, {0xff80, "Inf"}};
  struct Pos {
    size_t kk, nn;
  };
  for (const Bad& bad : bads) {
    for (const Pos& pos : {Pos{0, 0}, Pos{39, 19}, Pos{33, 17}, Pos{5, 0}}) {
      SCOPED_TRACE(testing::Message() << std::hex << "0x" << bad.bits << std::dec << " at k "
                                      << pos.kk << ", n " << pos.nn);
      std::vector<bf16> in_out = good;
      in_out[pos.kk * n + pos.nn] = bad.bits;
      const std::string at_in_out = Element(pos.kk, pos.nn);
      EXPECT_TRUE(ThrowsError(
          [&] {
            PackedMatrix::FromInOut(in_out.data(), k, n, "model.layers.3.mlp.up_proj", Pool());
          },
          {"model.layers.3.mlp.up_proj", at_in_out, bad.kind}));
      // [out, in] source: the message names the element in the source's own [row, col].
      std::vector<bf16> out_in(k * n);
      for (size_t kk = 0; kk < k; ++kk) {
        for (size_t nn = 0; nn < n; ++nn) out_in[nn * k + kk] = in_out[kk * n + nn];
      }
      const std::string at_out_in = Element(pos.nn, pos.kk);
      EXPECT_TRUE(
          ThrowsError([&] { PackedMatrix::FromOutIn(out_in.data(), n, k, "lm_head", Pool()); },
                      {"lm_head", at_out_in, bad.kind}));
    }
  }
  EXPECT_TRUE(ThrowsError([&] { PackedMatrix::FromInOut(good.data(), 0, n, "w0", Pool()); },
                          {"w0", "empty"}));
}

// ---------------------------------------------------------------------------------------------
// softmax_tile against double: m is exactly the max of the fp32-scaled scores; p is within one
// bf16 ulp of RNE(exp(s - m)) (ExpF32 is within ~2 fp32 ulp, which can flip a bf16 rounding);
// p is zero in [valid, cols); l is the sum of the fp32 values of p (such sums of bf16 values
// in [2^-16, 1] are exact in fp32 up to 128 terms, so 1e-6 relative is loose). Scores in
// [valid, cols) are huge garbage that must not reach m; canaries catch stray writes.

TEST_P(KernelsTest, SoftmaxTileMatchesDoubleReference) {
  SCOPED_TRACE(ToString(GetParam()));
  constexpr size_t kCols = 128, kLds = kCols + 8, kLdp = kCols + 16, kRowsAlloc = kTileM + 2;
  constexpr size_t kGuard = 32;
  const float scale = 1.0f / std::sqrt(128.0f);
  uint64_t stream = 0;
  int64_t worst_ulp = 0;
  for (size_t rows = 1; rows <= kTileM; ++rows) {
    for (size_t valid : {1, 15, 16, 17, 100, 127, 128}) {
      SCOPED_TRACE(testing::Message() << "rows " << rows << ", valid " << valid);
      const CounterRng rng(200, stream++);
      std::vector<float> raw(kRowsAlloc * kLds, kCanaryF32);
      for (size_t r = 0; r < rows; ++r) {
        for (size_t c = 0; c < kCols; ++c) {
          raw[r * kLds + c] = c < valid ? rng.Uniform(r * kCols + c) * 60.0f - 30.0f : 1e30f;
        }
      }
      std::vector<float> s = raw;
      std::vector<bf16> p_buf(kGuard + kRowsAlloc * kLdp + kGuard, kCanaryBf16);
      bf16* p = p_buf.data() + kGuard;
      std::vector<float> row_max(kTileM + 4, kCanaryF32), row_sum(kTileM + 4, kCanaryF32);
      Kernels().softmax_tile(s.data(), kLds, rows, valid, kCols, scale, p, kLdp, row_max.data(),
                             row_sum.data());

      for (size_t r = 0; r < rows; ++r) {
        SCOPED_TRACE(testing::Message() << "row " << r);
        float m = -INFINITY;
        size_t changed_s = 0;
        for (size_t c = 0; c < valid; ++c) {
          changed_s += !SameBits(s[r * kLds + c], raw[r * kLds + c]);
          m = std::max(m, raw[r * kLds + c] * scale);
        }
        EXPECT_EQ(changed_s, 0u) << "the scores are read only";
        ASSERT_TRUE(SameBits(row_max[r], m)) << "m " << row_max[r] << ", expected " << m;
        double sum = 0;
        size_t far = 0, far_c = 0, nonzero_tail = 0;
        bool has_one = false;
        for (size_t c = 0; c < valid; ++c) {
          const float v = raw[r * kLds + c] * scale;
          const bf16 want = F32ToBf16(
              static_cast<float>(std::exp(static_cast<double>(v) - static_cast<double>(m))));
          const bf16 got = p[r * kLdp + c];
          const int64_t d = UlpDistanceBf16(got, want);
          worst_ulp = std::max(worst_ulp, d);
          if (d > 1) {
            if (far++ == 0) far_c = c;
          }
          has_one |= got == 0x3f80;
          sum += Bf16ToF32(got);
        }
        EXPECT_EQ(far, 0u) << "p more than 1 bf16 ulp from RNE(exp(s - m)), first at col " << far_c
                           << ": got " << Bf16ToF32(p[r * kLdp + far_c]);
        EXPECT_TRUE(has_one) << "exp(0) at the max is not exactly 1";
        for (size_t c = valid; c < kCols; ++c) nonzero_tail += p[r * kLdp + c] != 0;
        EXPECT_EQ(nonzero_tail, 0u) << "p not zero in [valid, cols)";
        EXPECT_NEAR(row_sum[r], sum, 1e-6 * sum) << "l is not the sum of p";
        EXPECT_EQ(CountChanged(p + r * kLdp + kCols, kLdp - kCols), 0u) << "p written past cols";
        EXPECT_EQ(CountChanged(s.data() + r * kLds + kCols, kLds - kCols), 0u)
            << "s written past cols";
      }
      EXPECT_EQ(CountChanged(p_buf.data(), kGuard), 0u) << "write before p";
      EXPECT_EQ(CountChanged(p + rows * kLdp, (kRowsAlloc - rows) * kLdp + kGuard), 0u)
          << "p rows >= rows written";
      EXPECT_EQ(CountChanged(s.data() + rows * kLds, (kRowsAlloc - rows) * kLds), 0u)
          << "s rows >= rows written";
      EXPECT_EQ(CountChanged(row_max.data() + rows, row_max.size() - rows), 0u);
      EXPECT_EQ(CountChanged(row_sum.data() + rows, row_sum.size() - rows), 0u);
      if (HasFailure()) return;
    }
  }
  RecordProperty("worst_p_ulp", static_cast<int>(worst_ulp));
}

// ---------------------------------------------------------------------------------------------
// Vec ops against double. u = 2^-24; an n-term fp32 sum of squares is within n*u relative.

// Checks bf16 out against double ref: within 1 bf16 ulp of RNE(ref), or 1e-30 absolute (where
// fp32 intermediates flush a tiny result to zero).
testing::AssertionResult Bf16Near(std::string_view what, const std::vector<bf16>& out,
                                  const std::vector<double>& ref) {
  return NearAll(
      what, 1, out.size(),
      [&](size_t, size_t i) {
        const int64_t d = UlpDistanceBf16(out[i], F32ToBf16(static_cast<float>(ref[i])));
        return d <= 1 ? ref[i] : static_cast<double>(Bf16ToF32(out[i]));
      },
      [&](size_t, size_t i) { return ref[i]; }, [](size_t, size_t) { return 1e-30; });
}

std::vector<float> RandomF32s(uint64_t seed, size_t n, float lo, float hi) {
  const CounterRng rng(seed, 0);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * rng.Uniform(i);
  return v;
}

TEST_P(KernelsTest, RmsNormBothInputTypesMatchDouble) {
  SCOPED_TRACE(ToString(GetParam()));
  const CpuKernels& k = Kernels();
  const float eps = 1e-6f;
  for (size_t n : {size_t{1}, size_t{7}, size_t{128}, size_t{1000}, size_t{5120}}) {
    SCOPED_TRACE(testing::Message() << "n " << n);
    const std::vector<bf16> xb = RandomBf16s(300, n, n);
    const std::vector<float> xf = RandomF32s(301 + n, n, -5.0f, 5.0f);
    const std::vector<float> w = RandomF32s(302 + n, n, 0.5f, 1.5f);
    auto reference = [&](auto load) {
      double sq = 0;
      for (size_t i = 0; i < n; ++i) sq += load(i) * load(i);
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + eps);
      std::vector<double> ref(n);
      for (size_t i = 0; i < n; ++i) ref[i] = load(i) * inv * w[i];
      return ref;
    };
    std::vector<bf16> out(n + 16, kCanaryBf16);  // + a guard past n
    k.rms_norm_bf16(xb.data(), w.data(), n, eps, out.data());
    EXPECT_EQ(std::count(out.begin() + n, out.end(), kCanaryBf16), 16) << "written past n";
    out.resize(n);
    EXPECT_TRUE(
        Bf16Near("bf16 input", out, reference([&](size_t i) { return double{Bf16ToF32(xb[i])}; })));
    k.rms_norm_f32(xf.data(), w.data(), n, eps, out.data());
    EXPECT_TRUE(Bf16Near("fp32 input", out, reference([&](size_t i) { return double{xf[i]}; })));
  }
  // All zeros: 0 * rsqrt(eps) = 0.
  const std::vector<float> zeros(64, 0.0f), w(64, 1.0f);
  std::vector<bf16> out(64, kCanaryBf16);
  k.rms_norm_f32(zeros.data(), w.data(), 64, eps, out.data());
  EXPECT_EQ(std::count(out.begin(), out.end(), bf16{0}), 64);
}

// q/k norm then RoPE: the normalized value y is fp32 (sum of squares n*u, ~8 roundings), the
// rotation two products and a sum, then one bf16 rounding (2^-8 relative).
TEST_P(KernelsTest, HeadNormRopeMatchesDouble) {
  SCOPED_TRACE(ToString(GetParam()));
  const CpuKernels& k = Kernels();
  const float eps = 1e-6f;
  // Every even head_dim runs: 40, 48, 80, 96, 250 have halves (20, 24, 40, 48, 125) that are
  // not whole 16-lane vectors (masked tails on both halves).
  for (size_t n : {2, 32, 40, 48, 64, 80, 96, 128, 250, 256}) {
    SCOPED_TRACE(testing::Message() << "n " << n);
    const size_t half = n / 2;
    const std::vector<float> x = RandomF32s(400 + n, n, -3.0f, 3.0f);
    const std::vector<float> w = RandomF32s(401 + n, n, 0.5f, 1.5f);
    // Different cos/sin in the two halves, so a swapped index shows.
    const std::vector<float> cos = RandomF32s(501 + n, n, -1.0f, 1.0f);
    const std::vector<float> sin = RandomF32s(502 + n, n, -1.0f, 1.0f);
    double sq = 0;
    for (float v : x) sq += double{v} * v;
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + eps);
    std::vector<double> ref(n), mag(n);
    for (size_t i = 0; i < half; ++i) {
      const double lo = x[i] * inv * w[i], hi = x[i + half] * inv * w[i + half];
      ref[i] = lo * cos[i] - hi * sin[i];
      mag[i] = std::fabs(lo * cos[i]) + std::fabs(hi * sin[i]);
      ref[i + half] = hi * cos[i + half] + lo * sin[i + half];
      mag[i + half] = std::fabs(hi * cos[i + half]) + std::fabs(lo * sin[i + half]);
    }
    std::vector<bf16> out(n + 16, kCanaryBf16);
    k.head_norm_rope(x.data(), w.data(), cos.data(), sin.data(), n, eps, out.data());
    EXPECT_EQ(std::count(out.begin() + n, out.end(), kCanaryBf16), 16) << "written past n";
    const double rel = (static_cast<double>(n) + 16) * kU;
    EXPECT_TRUE(NearAll(
        "HeadNormRope", 1, n, [&](size_t, size_t i) { return double{Bf16ToF32(out[i])}; },
        [&](size_t, size_t i) { return ref[i]; },
        [&](size_t, size_t i) { return 0x1p-8 * std::fabs(ref[i]) + rel * mag[i] + 1e-30; }));
  }
}

// The vector paths against their scalar twin on head dims whose halves end in a partial
// vector: the same products, only the sum of squares is reassociated, so within one bf16 ulp.
TEST_P(KernelsTest, HeadNormRopeMatchesScalarTwinOnPartialHalves) {
  SCOPED_TRACE(ToString(GetParam()));
  const float eps = 1e-6f;
  for (size_t n : {2, 18, 40, 48, 80, 96, 112, 160, 250}) {
    SCOPED_TRACE(testing::Message() << "n " << n);
    const std::vector<float> x = RandomF32s(800 + n, n, -3.0f, 3.0f);
    const std::vector<float> w = RandomF32s(801 + n, n, 0.5f, 1.5f);
    const std::vector<float> cos = RandomF32s(802 + n, n, -1.0f, 1.0f);
    const std::vector<float> sin = RandomF32s(803 + n, n, -1.0f, 1.0f);
    std::vector<bf16> got(n + 16, kCanaryBf16), want(n + 16, kCanaryBf16);
    Kernels().head_norm_rope(x.data(), w.data(), cos.data(), sin.data(), n, eps, got.data());
    Scalar().head_norm_rope(x.data(), w.data(), cos.data(), sin.data(), n, eps, want.data());
    EXPECT_EQ(std::count(got.begin() + n, got.end(), kCanaryBf16), 16) << "written past n";
    int64_t worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; ++i) {
      const int64_t d = UlpDistanceBf16(got[i], want[i]);
      if (d > worst) worst = d, worst_i = i;
    }
    EXPECT_LE(worst, 1) << "element " << worst_i << ": " << Bf16ToF32(got[worst_i]) << " vs "
                        << Bf16ToF32(want[worst_i]);
  }
}

TEST_P(KernelsTest, CastBf16RoundsToNearestEven) {
  SCOPED_TRACE(ToString(GetParam()));
  for (size_t n : {size_t{1}, size_t{37}, size_t{128}}) {
    std::vector<float> x = RandomF32s(700 + n, n, -100.0f, 100.0f);
    x[0] = 1.0f + 0x1p-8f;  // a tie: rounds to even (1.0)
    std::vector<bf16> out(n + 16, kCanaryBf16);
    Kernels().cast_bf16(x.data(), n, out.data());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], F32ToBf16(x[i])) << i;
    EXPECT_EQ(out[0], F32ToBf16(1.0f));
    EXPECT_EQ(std::count(out.begin() + n, out.end(), kCanaryBf16), 16) << "written past n";
  }
}

TEST_P(KernelsTest, SiluMulMatchesDoubleReference) {
  SCOPED_TRACE(ToString(GetParam()));
  for (size_t n : {size_t{4096}, size_t{37}}) {  // 37: a masked tail
    SCOPED_TRACE(testing::Message() << "n " << n);
    std::vector<float> gate = RandomF32s(600, n, -20.0f, 20.0f);
    const std::vector<float> up = RandomF32s(601, n, -4.0f, 4.0f);
    // Extremes: exp(-g) overflows fp32 for g < -88.7 (silu -> -0), underflows for large g.
    const float extremes[] = {-100.0f, -88.8f, -87.0f, -1e-20f, 0.0f, -0.0f, 1e-20f, 88.0f, 100.0f};
    std::copy(std::begin(extremes), std::end(extremes), gate.begin());
    std::vector<double> ref(n);
    for (size_t i = 0; i < n; ++i) {
      const double g = gate[i];
      ref[i] = g / (1.0 + std::exp(-g)) * up[i];
    }
    std::vector<bf16> out(n + 8, kCanaryBf16);
    Kernels().silu_mul(gate.data(), up.data(), n, out.data());
    EXPECT_EQ(CountChanged(out.data() + n, 8), 0u) << "written past n";
    out.resize(n);
    EXPECT_TRUE(Bf16Near("silu_mul", out, ref));
  }
}

}  // namespace
}  // namespace qwen3::cpu
