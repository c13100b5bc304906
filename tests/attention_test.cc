// Paged decode attention (AttentionPartial + AttentionMerge) on every CPU path against the exact
// single-pass answer softmax(q K^T * scale) V computed in double over all context tokens, for
// split-KV with {1, 2, 7, all} pages per split (STYLE.md: "split-KV vs single pass").
//
// Tolerance: the kernel rounds each probability p = exp(s - m_page) to bf16 (relative error
// <= 2^-8, at most half an ulp of 8 significant bits) before P.V and before summing l, so the
// normalized weights sum(p~ v) / sum(p~) are off by at most 2^-8 * max_t |v_t| per output
// column; the bf16 output adds <= 2^-8 |out|. fp32 scores and merges add ~1e-6, covered by a
// 1e-5 * max|v| term. Splits only re-associate fp32 merges, so they agree to 1 bf16 ulp.
#include "exec/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/bf16.h"
#include "base/rng.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kernels.h"
#include "tests/attention_util.h"

namespace qwen3::cpu {
namespace {

constexpr float kCanaryF32 = -1234.5f;
constexpr bf16 kCanaryBf16 = 0xdead;  // finite, never an attention output for |v| <= 2

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

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

int64_t UlpDistanceBf16(bf16 a, bf16 b) {
  auto ordered = [](bf16 h) -> int64_t {
    return (h & 0x8000u) ? -static_cast<int64_t>(h & 0x7fffu) : static_cast<int64_t>(h);
  };
  return std::abs(ordered(a) - ordered(b));
}

// The KV cache of one KV head: ctx tokens in pages of layout.block_size, each page its own
// allocation (so ASan sees a read past a page). Tokens past valid_last in the last page, and
// the padding lanes [head_dim, padded_dim) of every page, hold `pad` in both K and V: any
// finite value there must leave the result unchanged (the cache keeps them zero).
struct KvHead {
  KvPageLayout layout;
  size_t ctx = 0, num_pages = 0, valid_last = 0;
  std::vector<float> k, v;  // [ctx][head_dim], the bf16 values
  std::vector<std::vector<bf16>> k_pages, v_pages;
  std::vector<const bf16*> k_ptrs, v_ptrs;

  KvHead(size_t block_size, size_t head_dim, size_t ctx_, uint64_t seed, float pad) : ctx(ctx_) {
    layout.block_size = block_size;
    layout.head_dim = head_dim;
    num_pages = (ctx + block_size - 1) / block_size;
    valid_last = ctx - (num_pages - 1) * block_size;
    const CounterRng rng_k(seed, 1), rng_v(seed, 2);
    k.resize(ctx * head_dim);
    v.resize(ctx * head_dim);
    for (size_t i = 0; i < ctx * head_dim; ++i) {
      k[i] = RoundBf16(rng_k.Uniform(i) * 2.0f - 1.0f);
      v[i] = RoundBf16(rng_v.Uniform(i) * 4.0f - 2.0f);
    }
    const bf16 pad_bits = F32ToBf16(pad);
    k_pages.assign(num_pages, std::vector<bf16>(layout.PageElems(), pad_bits));
    v_pages.assign(num_pages, std::vector<bf16>(layout.PageElems(), pad_bits));
    for (size_t t = 0; t < ctx; ++t) {
      for (size_t d = 0; d < head_dim; ++d) {
        k_pages[t / block_size][layout.KIndex(t % block_size, d)] = F32ToBf16(k[t * head_dim + d]);
        v_pages[t / block_size][layout.VIndex(t % block_size, d)] = F32ToBf16(v[t * head_dim + d]);
      }
    }
    for (size_t i = 0; i < num_pages; ++i) {
      k_ptrs.push_back(k_pages[i].data());
      v_ptrs.push_back(v_pages[i].data());
    }
  }
};

// Element (g, d) of a QTile.
float QAt(const std::vector<bf16>& q, size_t head_dim, size_t g, size_t d) {
  return Bf16ToF32(q[g * PaddedHeadDim(head_dim) + d]);
}

// softmax(q K^T * scale) V in double, rows [0, group); also the max score and sum(exp(s - max)).
struct Reference {
  std::vector<double> out;  // [group][head_dim]
  std::vector<double> max_score, sum_exp, score_tol;
};

Reference ExactAttention(const KvHead& kv, const std::vector<bf16>& q, size_t group, double scale) {
  const size_t dim = kv.layout.head_dim;
  Reference ref;
  ref.out.assign(group * dim, 0.0);
  for (size_t g = 0; g < group; ++g) {
    std::vector<double> s(kv.ctx);
    double mx = -INFINITY, worst_abs = 0;
    for (size_t t = 0; t < kv.ctx; ++t) {
      double dot = 0, abs_dot = 0;
      for (size_t d = 0; d < dim; ++d) {
        const double prod = double{QAt(q, dim, g, d)} * kv.k[t * dim + d];
        dot += prod;
        abs_dot += std::fabs(prod);
      }
      s[t] = dot * scale;
      mx = std::max(mx, s[t]);
      worst_abs = std::max(worst_abs, abs_dot * scale);
    }
    double sum = 0;
    for (size_t t = 0; t < kv.ctx; ++t) sum += std::exp(s[t] - mx);
    for (size_t t = 0; t < kv.ctx; ++t) {
      const double w = std::exp(s[t] - mx) / sum;
      for (size_t d = 0; d < dim; ++d) ref.out[g * dim + d] += w * kv.v[t * dim + d];
    }
    ref.max_score.push_back(mx);
    ref.sum_exp.push_back(sum);
    // An fp32 dot of `dim` exact products, then * scale: (dim + 1) u sum|q k| scale.
    ref.score_tol.push_back((static_cast<double>(dim) + 1) * 0x1p-24 * worst_abs + 1e-30);
  }
  return ref;
}

struct RunResult {
  std::vector<bf16> out;      // [group][head_dim]
  std::vector<float> m0, l0;  // the first part's m and l
};

// Partials over splits of pages_per_split pages, then one merge. Part outputs sit at strides
// wider than the group (rows >= group and the gaps hold canaries that must survive).
RunResult RunSplitKv(const CpuKernels& kernels, const KvHead& kv, const std::vector<bf16>& q,
                     size_t group, size_t pages_per_split, float scale) {
  const size_t dim = kv.layout.head_dim, bs = kv.layout.block_size;
  const size_t num_parts = (kv.num_pages + pages_per_split - 1) / pages_per_split;
  const size_t o_stride = kTileM * dim + 8, ml_stride = kTileM + 1;
  std::vector<float> o(num_parts * o_stride, kCanaryF32), m(num_parts * ml_stride, kCanaryF32),
      l(num_parts * ml_stride, kCanaryF32);
  for (size_t p = 0; p < num_parts; ++p) {
    const size_t first = p * pages_per_split;
    const size_t count = std::min(pages_per_split, kv.num_pages - first);
    const size_t valid = first + count == kv.num_pages ? kv.valid_last : bs;
    AttentionPartial(kernels, kv.layout, q.data(), group, kv.k_ptrs.data() + first,
                     kv.v_ptrs.data() + first, count, valid, scale, o.data() + p * o_stride,
                     m.data() + p * ml_stride, l.data() + p * ml_stride);
    EXPECT_EQ(CountChanged(o.data() + p * o_stride + group * dim, o_stride - group * dim), 0u)
        << "part " << p << ": o written past row " << group;
    EXPECT_EQ(CountChanged(m.data() + p * ml_stride + group, ml_stride - group), 0u)
        << "part " << p << ": m written past row " << group;
    EXPECT_EQ(CountChanged(l.data() + p * ml_stride + group, ml_stride - group), 0u)
        << "part " << p << ": l written past row " << group;
  }
  constexpr size_t kGuard = 16;
  std::vector<bf16> out_buf(kTileM * dim + kGuard, kCanaryBf16);
  AttentionMerge(o.data(), m.data(), l.data(), num_parts, o_stride, ml_stride, group, dim,
                 out_buf.data());
  EXPECT_EQ(CountChanged(out_buf.data() + group * dim, (kTileM - group) * dim + kGuard), 0u)
      << "merge wrote past row " << group;
  RunResult r;
  r.out.assign(out_buf.begin(), out_buf.begin() + static_cast<ptrdiff_t>(group * dim));
  r.m0.assign(m.begin(), m.begin() + static_cast<ptrdiff_t>(group));
  r.l0.assign(l.begin(), l.begin() + static_cast<ptrdiff_t>(group));
  return r;
}

// Checks out against the exact answer; on failure names the worst (row, col).
testing::AssertionResult NearExact(const std::vector<bf16>& out, const Reference& ref,
                                   const KvHead& kv, size_t group) {
  const size_t dim = kv.layout.head_dim;
  std::vector<double> max_v(dim, 0.0);
  for (size_t t = 0; t < kv.ctx; ++t) {
    for (size_t d = 0; d < dim; ++d)
      max_v[d] = std::max(max_v[d], std::fabs(double{kv.v[t * dim + d]}));
  }
  size_t outside = 0, wr = 0, wc = 0;
  double worst = -1;
  for (size_t g = 0; g < group; ++g) {
    for (size_t d = 0; d < dim; ++d) {
      const double want = ref.out[g * dim + d], got = Bf16ToF32(out[g * dim + d]);
      const double tol = 0x1p-8 * max_v[d] + 0x1p-8 * std::fabs(want) + 1e-5 * max_v[d];
      const double ratio = std::fabs(got - want) / tol;
      if (!(ratio <= 1)) ++outside;
      if (!(ratio <= worst)) {
        worst = ratio;
        wr = g;
        wc = d;
      }
    }
  }
  if (outside == 0) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << outside << " of " << group << " x " << dim << " outside tolerance; worst at (row " << wr
         << ", col " << wc << "): expected " << ref.out[wr * dim + wc] << ", actual "
         << Bf16ToF32(out[wr * dim + wc]) << " (" << worst << " x tol)";
}

class AttentionTest : public testing::TestWithParam<CpuPath> {
 protected:
  const CpuKernels& Kernels() const { return GetCpuKernels(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Paths, AttentionTest, testing::ValuesIn(AvailableCpuPaths()),
                         [](const testing::TestParamInfo<CpuPath>& info) {
                           return std::string(ToString(info.param));
                         });

// For each shape: single pass (one split of all pages) and splits of 1, 2 and 7 pages all
// match the exact answer and each other; garbage past valid_last changes nothing.
TEST_P(AttentionTest, SplitKvMatchesExactSoftmax) {
  SCOPED_TRACE(ToString(GetParam()));
  uint64_t seed = 0;
  struct Shape {
    size_t block_size, head_dim;
  };
  // Block sizes 128 and 64 x head dims 128, 64, 32; then the extremes the cache allows
  // (block_size a multiple of 32 up to kMaxBlockSize, head_dim up to kMaxHeadDim); then even
  // head dims padded to 32 inside pages and tiles (48 -> 64, 80 and 96 -> 96, 2 -> 32, ...).
  const Shape shapes[] = {{128, 128}, {128, 64},  {128, 32},          {64, 128}, {64, 64}, {64, 32},
                          {32, 128},  {256, 128}, {256, kMaxHeadDim}, {128, 48}, {64, 80}, {32, 96},
                          {128, 40},  {64, 2},    {256, 250}};
  for (const Shape& shape : shapes) {
    const size_t bs = shape.block_size, dim = shape.head_dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
    for (size_t ctx : {size_t{1}, size_t{127}, size_t{128}, size_t{129}, size_t{300}, 3 * bs}) {
      ++seed;
      const KvHead kv(bs, dim, ctx, seed, 0.0f);
      const KvHead kv_garbage(bs, dim, ctx, seed, 1e4f);  // same tokens, huge padding
      for (size_t group : {size_t{1}, size_t{2}, size_t{5}, size_t{8}, size_t{16}}) {
        SCOPED_TRACE(testing::Message() << "block_size " << bs << ", head_dim " << dim << ", ctx "
                                        << ctx << " (" << kv.num_pages << " pages, valid_last "
                                        << kv.valid_last << "), group " << group);
        const std::vector<bf16> q = QTile(dim, group, seed * 100 + group);
        const Reference ref = ExactAttention(kv, q, group, scale);

        const RunResult single = RunSplitKv(Kernels(), kv, q, group, kv.num_pages, scale);
        EXPECT_TRUE(NearExact(single.out, ref, kv, group)) << "single pass";
        for (size_t g = 0; g < group; ++g) {
          EXPECT_NEAR(single.m0[g], ref.max_score[g], ref.score_tol[g]) << "m of row " << g;
          // l sums bf16-rounded p: within 2^-8 relative (plus the score error's effect).
          EXPECT_NEAR(single.l0[g], ref.sum_exp[g],
                      ref.sum_exp[g] * (0x1p-8 + 2 * ref.score_tol[g]))
              << "l of row " << g;
        }
        for (size_t pages_per_split : {size_t{1}, size_t{2}, size_t{7}, kv.num_pages}) {
          SCOPED_TRACE(testing::Message() << pages_per_split << " pages per split");
          const RunResult split = RunSplitKv(Kernels(), kv, q, group, pages_per_split, scale);
          EXPECT_TRUE(NearExact(split.out, ref, kv, group));
          int64_t worst_ulp = 0;
          for (size_t i = 0; i < split.out.size(); ++i) {
            worst_ulp = std::max(worst_ulp, UlpDistanceBf16(split.out[i], single.out[i]));
          }
          EXPECT_LE(worst_ulp, 1) << "split differs from the single pass by > 1 bf16 ulp";
          const RunResult padded =
              RunSplitKv(Kernels(), kv_garbage, q, group, pages_per_split, scale);
          EXPECT_EQ(padded.out, split.out) << "tokens past valid_last changed the result";
        }
        if (HasFailure()) return;
      }
    }
  }
}

// A query block (prefill: consecutive positions of one sequence, each K/V page loaded once for
// all) gives every query the same bits as AttentionPartial over its own tokens alone, also
// when queries end in different pages and for a split that starts past page 0.
TEST_P(AttentionTest, QueryBlockEqualsEachQueryAlone) {
  SCOPED_TRACE(ToString(GetParam()));
  uint64_t seed = 500;
  for (size_t bs : {size_t{32}, size_t{64}}) {
    for (size_t dim : {size_t{64}, size_t{128}}) {
      const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
      for (size_t group : {size_t{1}, size_t{2}, size_t{5}, size_t{8}}) {
        const size_t queries = kTileM / group;
        // The last query sees 3 pages + 2 tokens; the first ones end in page 2 or 3.
        const size_t last_len = 3 * bs + 2, ctx = last_len;
        const KvHead kv(bs, dim, ctx, ++seed, 0.0f);
        std::vector<bf16> block(kTileM * dim, 0);
        std::vector<std::vector<bf16>> alone(queries);
        std::vector<size_t> lens(queries);
        for (size_t qi = 0; qi < queries; ++qi) {
          lens[qi] = last_len - (queries - 1 - qi);
          alone[qi] = QTile(dim, group, seed * 100 + qi);
          std::copy_n(alone[qi].begin(), group * dim, block.begin() + qi * group * dim);
        }
        for (size_t page0 : {size_t{0}, size_t{1}}) {
          SCOPED_TRACE(testing::Message() << "block_size " << bs << ", head_dim " << dim
                                          << ", group " << group << ", page0 " << page0);
          const size_t num_pages = kv.num_pages - page0;
          std::vector<std::vector<float>> o(queries, std::vector<float>(group * dim)),
              m(queries, std::vector<float>(group)), l(queries, std::vector<float>(group));
          std::vector<float*> op, mp, lp;
          for (size_t qi = 0; qi < queries; ++qi) {
            op.push_back(o[qi].data());
            mp.push_back(m[qi].data());
            lp.push_back(l[qi].data());
          }
          AttentionPartialQueries(Kernels(), kv.layout, block.data(), dim, group, queries,
                                  lens.data(), page0, kv.k_ptrs.data() + page0,
                                  kv.v_ptrs.data() + page0, num_pages, scale, op.data(),
                                  mp.data(), lp.data());
          for (size_t qi = 0; qi < queries; ++qi) {
            const size_t own_pages = (lens[qi] + bs - 1) / bs - page0;
            const size_t valid_last = lens[qi] - (page0 + own_pages - 1) * bs;
            std::vector<float> o1(group * dim), m1(group), l1(group);
            AttentionPartial(Kernels(), kv.layout, alone[qi].data(), group,
                             kv.k_ptrs.data() + page0, kv.v_ptrs.data() + page0, own_pages,
                             valid_last, scale, o1.data(), m1.data(), l1.data());
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
}

}  // namespace
}  // namespace qwen3::cpu
