// qwen3-attention-bench: where the attention partial's time goes, per KV page (64 KiB at 14B
// shapes), on every kernel path: the whole partial with its pages in cache (8 pages) and
// streamed from memory (pages spread over 1 GiB), and the in-cache split of one page into q.K^T,
// softmax and P.V (TSC ticks; the rest of the partial is its merge and bookkeeping). Then the
// same partial over 8-bit pages (--kv-type q8_0, attention_q8.h): cache and memory only.
// A tool for the attention work of issues 3 and 20; tables only.
//
//   qwen3-attention-bench [--group 5] [--head-dim 128] [--block-size 128] [--reps 2000]
//                         [--pool-mib 1024]
#include <x86intrin.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/error.h"
#include "base/rng.h"
#include "exec/cpu/attention.h"
#include "exec/cpu/attention_q8.h"
#include "exec/cpu/kernels.h"
#include "tools/summary.h"
#include "tools/tool_main.h"

namespace qwen3 {
namespace {

using namespace qwen3::cpu;

// us per page of a partial over num_pages pages (chosen from pool, page_bytes apart), median
// of 5: partial(k_pages, v_pages, num_pages).
template <typename Page, typename Partial>
double UsPerPage(const Page* k_pool, const Page* v_pool, size_t k_page, size_t v_page,
                 size_t pool_pages, size_t num_pages, size_t reps, Partial partial) {
  std::vector<const Page*> kp(num_pages), vp(num_pages);
  std::vector<double> us;
  size_t next = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t it = 0; it < reps; ++it) {
      for (size_t i = 0; i < num_pages; ++i, next = (next + 1) % pool_pages) {
        kp[i] = k_pool + next * k_page;
        vp[i] = v_pool + next * v_page;
      }
      partial(kp.data(), vp.data(), num_pages);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    us.push_back(s / static_cast<double>(reps * num_pages) * 1e6);
  }
  return Summarize(us).median;
}

// AttentionPartial over bf16 pages.
double PartialUsPerPage(const CpuKernels& k, const KvPageLayout& layout, const bf16* q,
                        size_t group, const bf16* k_pool, const bf16* v_pool, size_t pool_pages,
                        size_t num_pages, size_t reps) {
  std::vector<float> o(group * layout.head_dim), m(group), l(group);
  return UsPerPage(k_pool, v_pool, layout.PageElems(), layout.PageElems(), pool_pages, num_pages,
                   reps, [&](const bf16* const* kp, const bf16* const* vp, size_t n) {
                     AttentionPartial(k, layout, q, group, kp, vp, n, layout.block_size, 0.0884f,
                                      o.data(), m.data(), l.data());
                   });
}

// The same over 8-bit pages.
double PartialQ8UsPerPage(const CpuKernels& k, const KvQ8Layout& layout, const bf16* q,
                          size_t group, const uint8_t* k_pool, const uint8_t* v_pool,
                          size_t pool_pages, size_t num_pages, size_t reps) {
  std::vector<float> o(group * layout.head_dim), m(group), l(group);
  float* op = o.data();
  float* mp = m.data();
  float* lp = l.data();
  const size_t len = num_pages * layout.block_size;
  return UsPerPage(k_pool, v_pool, layout.KPageBytes(), layout.VPageBytes(), pool_pages,
                   num_pages, reps, [&](const uint8_t* const* kp, const uint8_t* const* vp, size_t n) {
                     AttentionPartialQueriesQ8(k, layout, q, layout.padded_dim(), group, 1, &len,
                                               0, kp, vp, n, 0.0884f, &op, &mp, &lp);
                   });
}

int Main(int argc, char** argv) {
  size_t group = 5, head_dim = 128, block_size = 128, reps = 2000, pool_mib = 1024;
  CLI::App app{"qwen3-attention-bench: the attention partial per KV page, by phase and path"};
  app.add_option("--group", group, "query heads per KV head (default 5, as 14B)");
  app.add_option("--head-dim", head_dim, "head dim (default 128)");
  app.add_option("--block-size", block_size, "tokens per page (default 128)");
  app.add_option("--reps", reps, "repetitions per measurement (default 2000)");
  app.add_option("--pool-mib", pool_mib, "KV pages streamed from memory, MiB (default 1024)");
  CLI11_PARSE(app, argc, argv);
  if (group < 1 || group > kTileM) throw Error("--group " + std::to_string(group) + ": expected 1..16");
  if (head_dim % kTileK || head_dim == 0 || head_dim > kMaxHeadDim || block_size % kTileK ||
      block_size == 0 || block_size > kMaxBlockSize) {
    throw Error("--head-dim/--block-size: expected multiples of 32 up to 256");
  }
  const KvPageLayout layout{block_size, head_dim};
  const size_t page_bytes = 2 * layout.PageElems() * sizeof(bf16);
  const size_t pool_pages = std::max<size_t>(32, (pool_mib << 20) / page_bytes);
  AlignedBuffer<bf16> k_pool(pool_pages * layout.PageElems()), v_pool(k_pool.size());
  const CounterRng rng(1, 1);
  for (size_t i = 0; i < k_pool.size(); ++i) {
    k_pool[i] = F32ToBf16(rng.Uniform(i) - 0.5f);
    v_pool[i] = F32ToBf16(rng.Uniform(i + k_pool.size()) - 0.5f);
  }
  AlignedBuffer<bf16> q(kTileM * head_dim);
  for (size_t i = 0; i < group * head_dim; ++i) q[i] = F32ToBf16(rng.Uniform(i) - 0.5f);
  std::printf("attention partial per page: group %zu, head_dim %zu, block %zu (%zu KiB K+V)\n",
              group, head_dim, block_size, page_bytes >> 10);
  std::printf("%-11s %10s %10s %12s %12s %10s %10s\n", "path", "cache us", "memory us",
              "mem GB/s/th", "q.K^T tsc", "softmax", "P.V");
  for (CpuPath path : AvailableCpuPaths()) {
    const CpuKernels& k = GetCpuKernels(path);
    const size_t r = path == CpuPath::kScalar ? std::max<size_t>(1, reps / 100) : reps;
    const double cache_us = PartialUsPerPage(k, layout, q.data(), group, k_pool.data(),
                                             v_pool.data(), 8, 8, r);
    const double mem_us = PartialUsPerPage(k, layout, q.data(), group, k_pool.data(),
                                           v_pool.data(), pool_pages, 32, r / 4 + 1);
    // Phases on one page in cache, with the partial's own calls.
    AlignedBuffer<float> s(kTileM * block_size), o(kTileM * head_dim);
    AlignedBuffer<bf16> p(kTileM * block_size);
    float m[kTileM], l[kTileM];
    unsigned long long t[3] = {};
    const bf16* kp = k_pool.data();
    const bf16* vp = v_pool.data();
    // Each call gets an empty prefetch range, as in the partial: no prefetch past the page.
    for (size_t it = 0; it < r; ++it) {
      BBlock b[kMaxBlocksPerCall];
      const auto t0 = __rdtsc();
      for (size_t j0 = 0; j0 < block_size / kTileN; j0 += kMaxBlocksPerCall) {
        const size_t nb = std::min(kMaxBlocksPerCall, block_size / kTileN - j0);
        for (size_t j = 0; j < nb; ++j) b[j] = layout.KBlock(kp, j0 + j);
        k.matmul_block(q.data(), head_dim, group, head_dim / kTileK, b, nb, s.data() + j0 * kTileN,
                       block_size, kp, 0);
      }
      const auto t1 = __rdtsc();
      k.softmax_tile(s.data(), block_size, group, block_size, block_size, 0.0884f, p.data(),
                     block_size, m, l);
      const auto t2 = __rdtsc();
      for (size_t j0 = 0; j0 < head_dim / kTileN; j0 += kMaxBlocksPerCall) {
        const size_t nb = std::min(kMaxBlocksPerCall, head_dim / kTileN - j0);
        for (size_t j = 0; j < nb; ++j) b[j] = layout.VBlock(vp, j0 + j);
        k.matmul_block(p.data(), block_size, group, block_size / kTileK, b, nb,
                       o.data() + j0 * kTileN, head_dim, vp, 0);
      }
      const auto t3 = __rdtsc();
      t[0] += t1 - t0, t[1] += t2 - t1, t[2] += t3 - t2;
    }
    const double n = static_cast<double>(r);
    std::printf("%-11s %10.2f %10.2f %12.2f %12.0f %10.0f %10.0f\n", ToString(path), cache_us,
                mem_us, page_bytes / (mem_us * 1e-6) / 1e9, t[0] / n, t[1] / n, t[2] / n);
  }

  // 8-bit pages: the same tokens, written through the cache's own quantizer.
  const KvQ8Layout q8{block_size, head_dim};
  const size_t q8_page_bytes = q8.KPageBytes() + q8.VPageBytes();
  const size_t q8_pages = std::max<size_t>(32, (pool_mib << 20) / q8_page_bytes);
  AlignedBuffer<uint8_t> kq(q8_pages * q8.KPageBytes()), vq(q8_pages * q8.VPageBytes());
  std::vector<bf16> kt(head_dim), vt(head_dim);
  for (size_t page = 0; page < q8_pages; ++page) {
    for (size_t t = 0; t < block_size; ++t) {
      for (size_t d = 0; d < head_dim; ++d) {
        const size_t i = (page * block_size + t) * head_dim + d;
        kt[d] = F32ToBf16(rng.Uniform(i) - 0.5f);
        vt[d] = F32ToBf16(rng.Uniform(i + k_pool.size()) - 0.5f);
      }
      q8.WriteK(kq.data() + page * q8.KPageBytes(), t, kt.data());
      q8.WriteV(vq.data() + page * q8.VPageBytes(), t, vt.data());
    }
  }
  std::printf("\n8-bit pages (q8_0): %zu KiB K+V per page\n", q8_page_bytes >> 10);
  std::printf("%-11s %10s %10s %12s %12s %10s %10s %10s\n", "path", "cache us", "memory us",
              "mem GB/s/th", "q.K^T tsc", "softmax", "P' quant", "P.V");
  for (CpuPath path : AvailableCpuPaths()) {
    const CpuKernels& k = GetCpuKernels(path);
    const size_t r = path == CpuPath::kScalar ? std::max<size_t>(1, reps / 100) : reps;
    const double cache_us =
        PartialQ8UsPerPage(k, q8, q.data(), group, kq.data(), vq.data(), 8, 8, r);
    const double mem_us =
        PartialQ8UsPerPage(k, q8, q.data(), group, kq.data(), vq.data(), q8_pages, 32, r / 4 + 1);
    // Phases on one page in cache, with the partial's own kernel calls.
    alignas(64) static int8_t codes[2][kTileM * kMaxBlockSize];
    static float qs[2][kTileM * kMaxBlockSize / 16], b16[2][kTileM * kMaxBlockSize / 16],
        b32[2][kTileM * kMaxBlockSize / 32];
    static int32_t s16[2][kTileM * kMaxBlockSize / 16];
    const auto quantize = [&](int which, const bf16* x, size_t lda, const float* mul, size_t n) {
      for (size_t row = 0; row < group; ++row) {
        int8_t* cq = codes[which] + row * kMaxBlockSize;
        float* sc = qs[which] + row * (kMaxBlockSize / 16);
        int32_t* su = s16[which] + row * (kMaxBlockSize / 16);
        float* bb16 = b16[which] + row * (kMaxBlockSize / 16);
        float* bb32 = b32[which] + row * (kMaxBlockSize / 32);
        if (mul) {
          k.quantize_scaled_row(x + row * lda, mul, n, cq, sc, su, bb16, bb32);
        } else {
          k.quantize_row(x + row * lda, n, cq, sc, su, bb16, bb32);
        }
      }
      return QuantRows{codes[which], kMaxBlockSize, qs[which], b16[which], s16[which],
                       kMaxBlockSize / 16, b32[which], kMaxBlockSize / 32};
    };
    AlignedBuffer<float> s(kTileM * block_size), o(kTileM * q8.padded_dim());
    AlignedBuffer<bf16> p(kTileM * block_size);
    float m[kTileM], l[kTileM];
    unsigned long long t[4] = {};
    const QuantRows qr = quantize(0, q.data(), q8.padded_dim(), nullptr, q8.padded_dim());
    for (size_t it = 0; it < r; ++it) {
      const auto t0 = __rdtsc();
      for (size_t j0 = 0; j0 < block_size / kTileN; j0 += KvQ8Layout::kGroup) {
        k.qmatmul(qr, group, q8.KGroup(kq.data(), j0), s.data() + j0 * kTileN, block_size);
      }
      const auto t1 = __rdtsc();
      k.softmax_tile(s.data(), block_size, group, block_size, block_size, 0.0884f, p.data(),
                     block_size, m, l);
      const auto t2 = __rdtsc();
      const QuantRows pr = quantize(1, p.data(), block_size, q8.VScales(vq.data()), block_size);
      const auto t3 = __rdtsc();
      for (size_t j0 = 0; j0 < q8.v_blocks(); j0 += KvQ8Layout::kGroup) {
        k.qmatmul(pr, group, q8.VGroup(vq.data(), j0, q8.token_subs()), o.data() + j0 * kTileN,
                  q8.padded_dim());
      }
      const unsigned long long quant = t3 - t2, pv = __rdtsc() - t3;
      t[0] += t1 - t0, t[1] += t2 - t1, t[2] += quant, t[3] += pv;
    }
    const double n = static_cast<double>(r);
    std::printf("%-11s %10.2f %10.2f %12.2f %12.0f %10.0f %10.0f %10.0f\n", ToString(path),
                cache_us, mem_us, q8_page_bytes / (mem_us * 1e-6) / 1e9, t[0] / n, t[1] / n,
                t[2] / n, t[3] / n);
  }
  return 0;
}

}  // namespace
}  // namespace qwen3

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3-attention-bench", argc, argv, qwen3::Main);
}
