#include "tools/bench_variants.h"

#include <cstring>

#include "base/error.h"
#include "exec/cpu/cpu_weight.h"
#include "runtime/thread_pool.h"

namespace qwen3 {

void UnfusedEpilogueExecutor::Linear(Stage stage, std::span<const Weight* const> w, Act in,
                                     Act out, size_t n, Epilogue epi) {
  if (epi.kind == Epilogue::Kind::kStore) return CpuExecutor::Linear(stage, w, in, out, n, epi);
  QW_ASSERT(w.size() == 1);
  const cpu::WeightMatrix* m = &cpu::MatrixOf(*w[0]);
  const size_t cols = m->n();
  if (scratch_.size() < n * cols) scratch_ = AlignedBuffer<float>(n * cols);
  float* scratch = scratch_.data();
  const Rows a = RowsOf(in), y = RowsOf(out);
  const Rows res = RowsOf(epi.residual);
  Timed(times_, stage, [&] {
    const cpu::MatmulInput x = Input(static_cast<const bf16*>(a.data), a.ld, n, {&m, 1});
    pool_.Spmd(
        cpu::Groups(*m),
        [&](size_t g, size_t) {
          const cpu::ColumnGroup cg = cpu::GroupOf(*m, g);
          cpu::MatmulGroup(kernels_, x, n, *m, cg.j0, cg.nb,
                           [&](size_t row0, size_t rows, const float* c, size_t ldc) {
                             for (size_t r = 0; r < rows; ++r) {
                               std::memcpy(scratch + (row0 + r) * cols + cg.col0, c + r * ldc,
                                           cg.cols * sizeof(float));
                             }
                           });
        },
        ToString(stage));
    pool_.Spmd(
        n,
        [&](size_t r, size_t) {
          const float* acc = scratch + r * cols;
          if (epi.kind == Epilogue::Kind::kSiluMul) {  // groups of 32 gate then 32 up columns
            constexpr size_t kHalf = cpu::kTileK;
            for (size_t col = 0; col < cols / 2; col += kHalf) {
              kernels_.silu_mul(acc + col * 2, acc + col * 2 + kHalf, kHalf,
                                static_cast<bf16*>(y.data) + r * y.ld + col);
            }
          } else if (y.f32) {  // out_proj: resid = acc + hidden
            const bf16* add = static_cast<const bf16*>(res.data) + r * res.ld;
            float* dst = static_cast<float*>(y.data) + r * y.ld;
            for (size_t c = 0; c < cols; ++c) dst[c] = acc[c] + Bf16ToF32(add[c]);
          } else {  // down_proj: next hidden = bf16(acc + resid)
            const float* add = static_cast<const float*>(res.data) + r * res.ld;
            bf16* dst = static_cast<bf16*>(y.data) + r * y.ld;
            for (size_t c = 0; c < cols; ++c) dst[c] = F32ToBf16(acc[c] + add[c]);
          }
        },
        ToString(stage));
  });
}

void PerUserAttentionExecutor::Attention(const KvCache& kv_cache, const DecodeBatch& batch,
                                         const AttentionOptions& options, Act out) {
  const KvCache& kv = kv_cache;
  const Rows y = RowsOf(out);
  const size_t heads_kv = dims_.kv_heads;
  Timed(times_, Stage::kAttention, [&] {
    PlanAndReserve(kv, batch, options);
    for (size_t blk = 0; blk + 1 < plan_.block_items.size(); ++blk) {
      AttentionPartials(kv, batch, plan_.block_items[blk], plan_.block_items[blk + 1], false);
    }
  });
  Timed(times_, Stage::kAttentionMerge, [&] {
    for (size_t b = 0; b < batch.batch; ++b) {
      pool_.Spmd(
          heads_kv,
          [&](size_t i, size_t) {
            AttentionMergeOne(batch, b, i, static_cast<bf16*>(y.data), y.ld);
          },
          ToString(Stage::kAttentionMerge));
    }
  });
}

}  // namespace qwen3
