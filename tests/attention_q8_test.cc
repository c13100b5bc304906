// Attention over 8-bit KV pages (attention_q8.h) on every CPU path: the page layout against
// ggml's Q8_0 blocks, the partials against the exact softmax(q K^T * scale) V in double over
// the stored (dequantized) K and V, and a query block against each query alone, bit for bit.
//
// The reference shares the stored K and V and the quantized q (their error is the accuracy
// of --kv-type q8_0, measured by replay: docs/ACCURACY.md); the tolerance covers the rest, the
// quantized probabilities of P.V (ExactRow).
#include "exec/cpu/attention_q8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "base/bf16.h"
#include "base/error.h"
#include "base/f16.h"
#include "base/rng.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kv_cache_q8.h"
#include "exec/cpu/quant_blocks.h"
#include "runtime/thread_pool.h"
#include "tests/attention_util.h"

namespace qwen3::cpu {
namespace {

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

// One scale for all of a token's values, Q8_0's rule (how V is stored).
std::vector<float> PerTokenQ8(const std::vector<float>& x) {
  float amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(v));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  std::vector<float> out;
  for (float v : x) out.push_back(d * static_cast<float>(static_cast<int>(std::roundf(v * id))));
  return out;
}

// ggml's dequantized Q8_0 value of x[d] (d < head_dim) for a token's values (how K is stored).
std::vector<float> GgmlQ8_0(const std::vector<float>& x, size_t head_dim) {
  const size_t pdim = PaddedHeadDim(head_dim);
  std::vector<float> in(pdim, 0.0f), out(head_dim);
  std::copy(x.begin(), x.end(), in.begin());
  for (size_t b = 0; b < pdim / 32; ++b) {
    uint8_t block[34];
    QuantizeBlockQ8_0(in.data() + b * 32, block);
    uint16_t h;
    std::memcpy(&h, block, 2);
    for (size_t i = 0; i < 32 && b * 32 + i < head_dim; ++i) {
      out[b * 32 + i] = F16ToF32(h) * static_cast<float>(static_cast<int8_t>(block[2 + i]));
    }
  }
  return out;
}

// One KV head's tokens in pages of the layout; k and v hold the stored (dequantized) values.
struct KvHeadQ8 {
  KvQ8Layout layout;
  size_t ctx = 0, num_pages = 0;
  std::vector<float> k, v;  // [ctx][head_dim]
  std::vector<std::vector<uint8_t>> k_pages, v_pages;
  std::vector<const uint8_t*> k_ptrs, v_ptrs;

  KvHeadQ8(size_t block_size, size_t head_dim, size_t ctx_, uint64_t seed) : ctx(ctx_) {
    layout.block_size = block_size;
    layout.head_dim = head_dim;
    num_pages = (ctx + block_size - 1) / block_size;
    k_pages.assign(num_pages, std::vector<uint8_t>(layout.KPageBytes(), 0));
    v_pages.assign(num_pages, std::vector<uint8_t>(layout.VPageBytes(), 0));
    const CounterRng rng_k(seed, 1), rng_v(seed, 2);
    std::vector<bf16> kt(head_dim), vt(head_dim);
    for (size_t t = 0; t < ctx; ++t) {
      for (size_t d = 0; d < head_dim; ++d) {
        kt[d] = F32ToBf16(rng_k.Uniform(t * head_dim + d) * 2.0f - 1.0f);
        // Per token a different magnitude, so the per-token V scales matter.
        vt[d] = F32ToBf16((rng_v.Uniform(t * head_dim + d) * 4.0f - 2.0f) *
                          std::ldexp(1.0f, static_cast<int>(t % 5) - 2));
      }
      layout.WriteK(k_pages[t / block_size].data(), t % block_size, kt.data());
      layout.WriteV(v_pages[t / block_size].data(), t % block_size, vt.data());
      for (size_t d = 0; d < head_dim; ++d) {
        k.push_back(layout.KAt(k_pages[t / block_size].data(), t % block_size, d));
        v.push_back(layout.VAt(v_pages[t / block_size].data(), t % block_size, d));
      }
    }
    for (size_t i = 0; i < num_pages; ++i) {
      k_ptrs.push_back(k_pages[i].data());
      v_ptrs.push_back(v_pages[i].data());
    }
  }
};

// Row g of q as the int8 kernel sees it: quantized per 16 dims (quant_rows.h), dequantized.
std::vector<double> QuantizedQ(const std::vector<bf16>& q, size_t pdim, size_t g) {
  std::vector<int8_t> codes(pdim);
  std::vector<float> scale(pdim / 16), bias16(pdim / 16), bias32(pdim / 32);
  std::vector<int32_t> sum16(pdim / 16);
  GetCpuKernels(CpuPath::kScalar)
      .quantize_row(q.data() + g * pdim, pdim, codes.data(), scale.data(), sum16.data(),
                    bias16.data(), bias32.data());
  std::vector<double> out(pdim);
  for (size_t d = 0; d < pdim; ++d) out[d] = double{scale[d / 16]} * codes[d];
  return out;
}

// Row g of the exact attention over tokens [0, len) with q as quantized, and the tolerance of
// each column: P'_b = p * vscale quantized per 16 tokens moves token t's term by at most
// max16(w * vscale) / 254 * |code| (w the normalized weights, |code| = |v| / vscale); p rounded
// to bf16 (and exp's few ulp) moves it by 2^-8 w |v|; the bf16 output adds 2^-8 |out|; fp32
// scores and merges ~1e-6, covered by 1e-5 max|v|.
struct Expected {
  std::vector<double> out, tol;  // [head_dim]
};
Expected ExactRow(const KvHeadQ8& kv, const std::vector<bf16>& q, size_t g, size_t len,
                  double scale) {
  const size_t dim = kv.layout.head_dim, pdim = kv.layout.padded_dim(), bs = kv.layout.block_size;
  const std::vector<double> qq = QuantizedQ(q, pdim, g);
  std::vector<double> s(len);
  double mx = -INFINITY;
  for (size_t t = 0; t < len; ++t) {
    double dot = 0;
    for (size_t d = 0; d < dim; ++d) dot += qq[d] * kv.k[t * dim + d];
    s[t] = dot * scale;
    mx = std::max(mx, s[t]);
  }
  double sum = 0;
  for (size_t t = 0; t < len; ++t) sum += std::exp(s[t] - mx);
  Expected e;
  e.out.assign(dim, 0.0);
  e.tol.assign(dim, 0.0);
  std::vector<double> w(len);
  double max_v = 0;
  for (size_t t = 0; t < len; ++t) {
    w[t] = std::exp(s[t] - mx) / sum;
    for (size_t d = 0; d < dim; ++d) {
      e.out[d] += w[t] * kv.v[t * dim + d];
      e.tol[d] += 0x1p-8 * w[t] * std::fabs(kv.v[t * dim + d]);
      max_v = std::max(max_v, std::fabs(double{kv.v[t * dim + d]}));
    }
  }
  const auto vscale = [&](size_t t) { return double{kv.layout.VScales(kv.v_ptrs[t / bs])[t % bs]}; };
  for (size_t d = 0; d < dim; ++d) {
    for (size_t t0 = 0; t0 < len; t0 += 16) {  // 16-token groups never straddle a page
      const size_t t1 = std::min(len, t0 + 16);
      double max_p = 0, codes = 0;
      for (size_t t = t0; t < t1; ++t) {
        const double vs = vscale(t);
        max_p = std::max(max_p, w[t] * vs);
        codes += vs > 0 ? std::fabs(kv.v[t * dim + d]) / vs : 0.0;
      }
      e.tol[d] += max_p / 254 * codes;
    }
    e.tol[d] += 0x1p-8 * std::fabs(e.out[d]) + 1e-5 * max_v;
  }
  return e;
}

class AttentionQ8Test : public testing::TestWithParam<CpuPath> {
 protected:
  const CpuKernels& Kernels() const { return GetCpuKernels(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Paths, AttentionQ8Test, testing::ValuesIn(AvailableCpuPaths()),
                         [](const testing::TestParamInfo<CpuPath>& info) {
                           return std::string(ToString(info.param));
                         });

TEST(KvQ8LayoutTest, StoresKAsGgmlQ8_0BlocksAndVWithOneScalePerToken) {
  for (size_t bs : {size_t{32}, size_t{128}}) {
    for (size_t dim : {size_t{48}, size_t{128}}) {
      SCOPED_TRACE(testing::Message() << "block_size " << bs << ", head_dim " << dim);
      const KvQ8Layout layout{bs, dim};
      std::vector<uint8_t> kp(layout.KPageBytes(), 0), vp(layout.VPageBytes(), 0);
      const CounterRng rng(7, bs + dim);
      std::vector<std::vector<float>> ks(bs), vs(bs);
      for (size_t t = 0; t < bs; ++t) {  // odd order: writes must not disturb other tokens
        const size_t tok = (t * 7 + 3) % bs;
        std::vector<bf16> kb(dim), vb(dim);
        ks[tok].resize(dim);
        vs[tok].resize(dim);
        for (size_t d = 0; d < dim; ++d) {
          kb[d] = F32ToBf16((rng.Uniform(tok * dim + d) - 0.5f) * static_cast<float>(tok + 1));
          vb[d] = F32ToBf16((rng.Uniform(5000 + tok * dim + d) - 0.5f) / static_cast<float>(tok + 1));
          ks[tok][d] = Bf16ToF32(kb[d]);
          vs[tok][d] = Bf16ToF32(vb[d]);
        }
        layout.WriteK(kp.data(), tok, kb.data());
        layout.WriteV(vp.data(), tok, vb.data());
      }
      for (size_t t = 0; t < bs; ++t) {
        const std::vector<float> kw = GgmlQ8_0(ks[t], dim), vw = PerTokenQ8(vs[t]);
        for (size_t d = 0; d < dim; ++d) {
          ASSERT_TRUE(SameBits(layout.KAt(kp.data(), t, d), kw[d])) << "K token " << t << " dim " << d;
          ASSERT_TRUE(SameBits(layout.VAt(vp.data(), t, d), vw[d])) << "V token " << t << " dim " << d;
        }
      }
    }
  }
}

TEST(PagedKvCacheQ8Test, SeedLayoutRoundTripsThroughTheCodes) {
  const size_t blocks = 3, heads = 2, dim = 64, bs = 32;
  PagedKvCacheQ8 kv(blocks, heads, dim, bs);
  std::vector<bf16> k(blocks * heads * bs * dim), v(k.size());
  const CounterRng rng(11, 1);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = F32ToBf16(rng.Uniform(i) - 0.5f);
    v[i] = F32ToBf16(rng.Uniform(i + k.size()) * 3.0f);
  }
  ThreadPool pool(2);
  kv.ImportSeedLayout(k.data(), v.data(), pool);
  std::vector<bf16> k2(k.size()), v2(v.size());
  kv.ExportSeedLayout(k2.data(), v2.data());
  for (size_t row = 0; row < blocks * heads * bs; ++row) {
    std::vector<float> kr(dim), vr(dim);
    for (size_t d = 0; d < dim; ++d) {
      kr[d] = Bf16ToF32(k[row * dim + d]);
      vr[d] = Bf16ToF32(v[row * dim + d]);
    }
    const std::vector<float> kw = GgmlQ8_0(kr, dim), vw = PerTokenQ8(vr);
    for (size_t d = 0; d < dim; ++d) {
      ASSERT_EQ(k2[row * dim + d], F32ToBf16(kw[d])) << "row " << row << " dim " << d;
      ASSERT_EQ(v2[row * dim + d], F32ToBf16(vw[d])) << "row " << row << " dim " << d;
    }
  }
  EXPECT_LT(kv.bytes(), blocks * heads * bs * dim * 2 * 2 * 6 / 10);  // < 0.6x of bf16
  EXPECT_THROW(PagedKvCacheQ8(0, 8, 128, 128), Error);
  EXPECT_THROW(PagedKvCacheQ8(4, 8, 128, 100), Error);
}

TEST_P(AttentionQ8Test, PartialsMatchExactAttentionOverTheStoredValues) {
  SCOPED_TRACE(ToString(GetParam()));
  uint64_t seed = 40;
  for (size_t bs : {size_t{32}, size_t{128}}) {
    for (size_t dim : {size_t{48}, size_t{128}}) {
      for (size_t group : {size_t{1}, size_t{2}, size_t{5}, size_t{8}}) {
        for (size_t ctx : {size_t{1}, bs - 3, 2 * bs + 17}) {
          SCOPED_TRACE(testing::Message() << "block_size " << bs << ", head_dim " << dim
                                          << ", group " << group << ", ctx " << ctx);
          const KvHeadQ8 kv(bs, dim, ctx, ++seed);
          const std::vector<bf16> q = QTile(dim, group, seed);
          const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
          std::vector<float> o(group * dim), m(group), l(group);
          float* op = o.data();
          float* mp = m.data();
          float* lp = l.data();
          AttentionPartialQueriesQ8(Kernels(), kv.layout, q.data(), kv.layout.padded_dim(), group,
                                    1, &ctx, 0, kv.k_ptrs.data(), kv.v_ptrs.data(), kv.num_pages,
                                    scale, &op, &mp, &lp);
          std::vector<bf16> out(group * dim);
          AttentionMerge(o.data(), m.data(), l.data(), 1, 0, 0, group, dim, out.data());
          for (size_t g = 0; g < group; ++g) {
            const Expected e = ExactRow(kv, q, g, ctx, scale);
            for (size_t d = 0; d < dim; ++d) {
              const double got = Bf16ToF32(out[g * dim + d]);
              ASSERT_LE(std::fabs(got - e.out[d]), e.tol[d])
                  << "row " << g << " col " << d << ": expected " << e.out[d] << ", actual " << got;
            }
          }
        }
      }
    }
  }
}

TEST_P(AttentionQ8Test, QueryBlockEqualsEachQueryAlone) {
  SCOPED_TRACE(ToString(GetParam()));
  uint64_t seed = 900;
  for (size_t bs : {size_t{32}, size_t{64}}) {
    for (size_t group : {size_t{1}, size_t{2}, size_t{5}, size_t{8}}) {
      const size_t dim = 128, queries = kTileM / group, last_len = 3 * bs + 2;
      const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
      const KvHeadQ8 kv(bs, dim, last_len, ++seed);
      std::vector<bf16> block(kTileM * dim, 0);
      std::vector<std::vector<bf16>> alone(queries);
      std::vector<size_t> lens(queries);
      for (size_t qi = 0; qi < queries; ++qi) {
        lens[qi] = last_len - (queries - 1 - qi) * 3;  // some end a page earlier
        alone[qi] = QTile(dim, group, seed * 100 + qi);
        std::copy_n(alone[qi].begin(), group * dim, block.begin() + qi * group * dim);
      }
      for (size_t page0 : {size_t{0}, size_t{1}}) {
        SCOPED_TRACE(testing::Message() << "block_size " << bs << ", group " << group
                                        << ", page0 " << page0);
        std::vector<std::vector<float>> o(queries, std::vector<float>(group * dim)),
            m(queries, std::vector<float>(group)), l(queries, std::vector<float>(group));
        std::vector<float*> op, mp, lp;
        for (size_t qi = 0; qi < queries; ++qi) {
          op.push_back(o[qi].data());
          mp.push_back(m[qi].data());
          lp.push_back(l[qi].data());
        }
        AttentionPartialQueriesQ8(Kernels(), kv.layout, block.data(), dim, group, queries,
                                  lens.data(), page0, kv.k_ptrs.data() + page0,
                                  kv.v_ptrs.data() + page0, kv.num_pages - page0, scale,
                                  op.data(), mp.data(), lp.data());
        for (size_t qi = 0; qi < queries; ++qi) {
          const size_t own_pages = (lens[qi] + bs - 1) / bs - page0;
          std::vector<float> o1(group * dim), m1(group), l1(group);
          float* o1p = o1.data();
          float* m1p = m1.data();
          float* l1p = l1.data();
          AttentionPartialQueriesQ8(Kernels(), kv.layout, alone[qi].data(), dim, group, 1,
                                    &lens[qi], page0, kv.k_ptrs.data() + page0,
                                    kv.v_ptrs.data() + page0, own_pages, scale, &o1p, &m1p, &l1p);
          for (size_t i = 0; i < group * dim; ++i) {
            ASSERT_TRUE(SameBits(o[qi][i], o1[i])) << "query " << qi << " o[" << i << "]";
          }
          for (size_t g = 0; g < group; ++g) {
            ASSERT_TRUE(SameBits(m[qi][g], m1[g]) && SameBits(l[qi][g], l1[g]))
                << "query " << qi << " m/l of head " << g;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace qwen3::cpu
