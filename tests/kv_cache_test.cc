#include "exec/cpu/kv_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
using cpu::PagedKvCache;
namespace {

std::vector<bf16> RandomRows(size_t n, uint64_t stream) {
  const CounterRng rng(1, stream);
  std::vector<bf16> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = F32ToBf16(rng.Uniform(i) - 0.5f);
  return v;
}

TEST(KvCacheTest, SeedLayoutRoundTripsAndMatchesAccessors) {
  ThreadPool pool(2);
  for (size_t bs : {32, 64, 128}) {
    for (size_t dim : {32, 48, 64, 80, 128}) {
      const size_t blocks = 3, heads = 2, rows = blocks * heads * bs;
      PagedKvCache kv(blocks, heads, dim, bs);
      const auto k = RandomRows(rows * dim, 1), v = RandomRows(rows * dim, 2);
      kv.ImportSeedLayout(k.data(), v.data(), pool);
      for (size_t slot = 0; slot < blocks * bs; slot += 7) {
        for (size_t h = 0; h < heads; ++h) {
          const size_t row = ((slot / bs) * heads + h) * bs + slot % bs;
          for (size_t d = 0; d < dim; ++d) {
            ASSERT_EQ(kv.KAt(slot, h, d), k[row * dim + d]);
            ASSERT_EQ(kv.VAt(slot, h, d), v[row * dim + d]);
          }
        }
      }
      std::vector<bf16> k2(k.size()), v2(v.size());
      kv.ExportSeedLayout(k2.data(), v2.data());
      EXPECT_EQ(k2, k);
      EXPECT_EQ(v2, v);
    }
  }
}

TEST(KvCacheTest, WriteTouchesOnlyItsSlotAndHead) {
  ThreadPool pool(1);
  const size_t blocks = 2, heads = 3, dim = 64, bs = 64, rows = blocks * heads * bs;
  PagedKvCache kv(blocks, heads, dim, bs);
  const auto k = RandomRows(rows * dim, 3), v = RandomRows(rows * dim, 4);
  kv.ImportSeedLayout(k.data(), v.data(), pool);
  std::vector<bf16> nk(dim), nv(dim);
  for (size_t d = 0; d < dim; ++d) nk[d] = F32ToBf16(10.0f + d), nv[d] = F32ToBf16(-10.0f - d);
  const size_t slot = bs + 5, head = 1;
  kv.Write(slot, head, nk.data(), nv.data());
  std::vector<bf16> k2(k.size()), v2(v.size());
  kv.ExportSeedLayout(k2.data(), v2.data());
  const size_t row = ((slot / bs) * heads + head) * bs + slot % bs;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t d = 0; d < dim; ++d) {
      const size_t i = r * dim + d;
      EXPECT_EQ(k2[i], r == row ? nk[d] : k[i]);
      EXPECT_EQ(v2[i], r == row ? nv[d] : v[i]);
    }
  }
}

TEST(KvCacheTest, PagesAreCubeOperands) {
  // KBlock/VBlock address the same elements as KIndex/VIndex in VNNI tile order.
  const cpu::KvPageLayout layout{128, 64};
  const std::vector<bf16> page(layout.PageElems());
  const bf16* base = page.data();
  const cpu::BBlock kb = layout.KBlock(base, 3);
  // Element (k = dim d, n = token 3 * 16 + j) of K^T.
  for (size_t d : {0, 1, 31, 32, 63}) {
    for (size_t j : {0, 5, 15}) {
      const size_t idx = (d / 32) * kb.ktile_stride + ((d % 32) / 2) * kb.row_stride + j * 2 + d % 2;
      EXPECT_EQ(static_cast<size_t>(kb.data - base) + idx,
                layout.KIndex(3 * 16 + j, d));
    }
  }
  const cpu::BBlock vb = layout.VBlock(base, 2);
  for (size_t t : {0, 1, 31, 32, 127}) {
    for (size_t j : {0, 7, 15}) {
      const size_t idx = (t / 32) * vb.ktile_stride + ((t % 32) / 2) * vb.row_stride + j * 2 + t % 2;
      EXPECT_EQ(static_cast<size_t>(vb.data - base) + idx,
                layout.VIndex(t, 2 * 16 + j));
    }
  }
}

// head_dim padded to 32 inside pages: K pages have padded / 32 k-tiles, V pages padded / 16
// column blocks, and every lane past the real dims is zero after imports and writes (the
// cube multiplies them by the q tile's zero padding and drops the extra V columns).
TEST(KvCacheTest, PaddedPagesKeepPaddingZero) {
  ThreadPool pool(2);
  for (size_t dim : {2, 40, 48, 80, 96, 250}) {
    SCOPED_TRACE("head_dim " + std::to_string(dim));
    const size_t blocks = 3, heads = 2, bs = 64, rows = blocks * heads * bs;
    const size_t padded = (dim + 31) / 32 * 32;
    PagedKvCache kv(blocks, heads, dim, bs);
    EXPECT_EQ(kv.layout().padded_dim(), padded);
    EXPECT_EQ(kv.layout().PageElems(), bs * padded);
    EXPECT_EQ(kv.layout().KOrder().k_tiles, padded / 32);
    EXPECT_EQ(kv.layout().VOrder().n_blocks, padded / 16);
    EXPECT_EQ(kv.bytes(), 2 * blocks * heads * bs * padded * sizeof(bf16));
    const auto k = RandomRows(rows * dim, 5), v = RandomRows(rows * dim, 6);
    kv.ImportSeedLayout(k.data(), v.data(), pool);
    std::vector<bf16> nk(dim, F32ToBf16(3.0f)), nv(dim, F32ToBf16(-3.0f));
    kv.Write(bs + 7, 1, nk.data(), nv.data());
    std::vector<bool> real_k(kv.layout().PageElems(), false), real_v(real_k);
    for (size_t t = 0; t < bs; ++t) {
      for (size_t d = 0; d < dim; ++d) {
        real_k[kv.layout().KIndex(t, d)] = true;
        real_v[kv.layout().VIndex(t, d)] = true;
      }
    }
    size_t nonzero_padding = 0, zero_real = 0;
    for (size_t b = 0; b < blocks; ++b) {
      for (size_t h = 0; h < heads; ++h) {
        const bf16 *kp = kv.KPage(b, h), *vp = kv.VPage(b, h);
        for (size_t i = 0; i < kv.layout().PageElems(); ++i) {
          nonzero_padding += (!real_k[i] && kp[i] != 0) + (!real_v[i] && vp[i] != 0);
          zero_real += (real_k[i] && kp[i] == 0) + (real_v[i] && vp[i] == 0);
        }
      }
    }
    EXPECT_EQ(nonzero_padding, 0u);
    EXPECT_LT(zero_real, rows * dim / 100);  // the real lanes hold the (random) rows
    EXPECT_EQ(kv.KAt(bs + 7, 1, dim - 1), nk[dim - 1]);
    EXPECT_EQ(kv.VAt(bs + 7, 1, 0), nv[0]);
    std::vector<bf16> k2(k.size()), v2(v.size());
    kv.ExportSeedLayout(k2.data(), v2.data());
    const size_t row = (1 * heads + 1) * bs + 7;
    for (size_t d = 0; d < dim; ++d) {
      EXPECT_EQ(k2[row * dim + d], nk[d]);
      EXPECT_EQ(v2[row * dim + d], nv[d]);
    }
    EXPECT_EQ(k2[(row + 1) * dim], k[(row + 1) * dim]);
  }
}

TEST(KvCacheTest, BadShapesAreErrors) {
  EXPECT_THROW(PagedKvCache(0, 8, 128, 128), Error);
  EXPECT_THROW(PagedKvCache(4, 8, 0, 128), Error);
  EXPECT_THROW(PagedKvCache(4, 8, 258, 128), Error);
  EXPECT_THROW(PagedKvCache(4, 8, 128, 100), Error);
  EXPECT_THROW(PagedKvCache(4, 8, 128, 512), Error);
}

}  // namespace
}  // namespace qwen3
