// The CPU executor's mixture-of-experts FFN (Executor::MoeFfn):
//   route: per row, fp32 router logits of the fp32 normed row (the residual through the norm,
//          as llama.cpp's router sees it: not the bf16 matmul input, whose rounding flipped a
//          near-tie routing decision into a 0.46 rel-L2 step on tiny-moe-a; 0.07 without),
//          dots in 16 fixed lanes summed in a fixed tree, then RouteTopK; the rows' copies grouped expert by expert (ascending expert id,
//          rows in order) into one gathered matrix;
//   experts: ONE dispatch over every routed expert's gate|up column groups (SiLU.up fused, as
//          the dense FFN), then ONE over their down column groups (fp32 out), each expert's
//          weights read once for all of its rows;
//   sum: hidden[r] = bf16(resid[r] + sum_j w_j * y[copy j of r]), j in routed order.
// A row's gathered copy is computed as any row of a matmul (rows are independent in every
// kernel: quantized per row, same accumulation order for any row count), and its sum reads
// only its own copies, so its result never depends on the other rows (batch invariance).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cpu/cpu_weight.h"
#include "exec/moe_routing.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {
namespace {

constexpr size_t kLanes = 16;

// x . w over n values (n a multiple of 16): 16 lanes, then their sum in a fixed tree.
float Dot(const float* x, const float* w, size_t n) {
  float acc[kLanes] = {};
  for (size_t i = 0; i < n; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) acc[l] += x[i + l] * w[i + l];
  }
  for (size_t half = kLanes / 2; half > 0; half /= 2) {
    for (size_t l = 0; l < half; ++l) acc[l] += acc[l + half];
  }
  return acc[0];
}

}  // namespace

void CpuExecutor::MoeRoute(const MoeWeights& w, Act in, Act resid, size_t n) {
  const size_t h = dims_.hidden, experts = dims_.experts, k = dims_.experts_used;
  const Rows x = RowsOf(in), res = RowsOf(resid);
  QW_ASSERT(!x.f32 && x.ld == h && res.f32 && res.ld == h);
  const float* router = AsCpu(*w.router).vec.data();
  const float* norm = AsCpu(*w.norm).vec.data();
  pool_.Spmd(
      n,
      [&](size_t r, size_t) {
        // The normed row in fp32: x * g / rms(x), the sum of squares in 16 fixed lanes.
        const float* xr = static_cast<const float*>(res.data) + r * h;
        float* normed = moe_router_in_.data() + r * h;
        const float inv = 1.0f / std::sqrt(Dot(xr, xr, h) / static_cast<float>(h) + dims_.eps);
        for (size_t i = 0; i < h; ++i) normed[i] = xr[i] * inv * norm[i];
        float* logits = moe_logits_.data() + r * experts;
        for (size_t e = 0; e < experts; ++e) logits[e] = Dot(normed, router + e * h, h);
        RouteTopK(logits, experts, k, dims_.norm_topk, moe_probs_.data() + r * experts,
                  moe_ids_.data() + r * k, moe_weights_.data() + r * k);
      },
      ToString(Stage::kMoeRouter));
  // Segments: expert e's copies at [moe_start_[e], moe_start_[e + 1]), rows in order.
  std::fill(moe_start_.begin(), moe_start_.end(), 0);
  for (size_t i = 0; i < n * k; ++i) ++moe_start_[static_cast<size_t>(moe_ids_[i]) + 1];
  for (size_t e = 0; e < experts; ++e) moe_start_[e + 1] += moe_start_[e];
  std::vector<uint32_t>& fill = moe_fill_;  // per expert, its next row
  std::copy(moe_start_.begin(), moe_start_.end() - 1, fill.begin());
  bf16* gathered = moe_x_.data();
  for (size_t r = 0; r < n; ++r) {
    for (size_t j = 0; j < k; ++j) {
      const uint32_t row = fill[static_cast<size_t>(moe_ids_[r * k + j])]++;
      moe_slot_[r * k + j] = row;
      std::memcpy(gathered + row * h, static_cast<const bf16*>(x.data) + r * h, h * sizeof(bf16));
    }
  }
  // The rows past the last segment that a 16-row tile may read: zeros.
  std::memset(gathered + n * k * h, 0, kTileM * h * sizeof(bf16));
}

void CpuExecutor::ListExpertGroups(std::span<const Weight* const> weights,
                                   const WeightMatrix*& quantized) {
  moe_items_.clear();
  for (size_t e = 0; e < dims_.experts; ++e) {
    if (moe_start_[e] == moe_start_[e + 1]) continue;  // not routed: never read
    const WeightMatrix& m = MatrixOf(*weights[e]);
    if (m.quantized()) quantized = &m;
    for (size_t g = 0; g < Groups(m); ++g) {
      moe_items_.push_back({static_cast<uint32_t>(e), static_cast<uint32_t>(g)});
    }
  }
}

void CpuExecutor::MoeExperts(const MoeWeights& w, Act resid, Act out, size_t n) {
  const size_t h = dims_.hidden, k = dims_.experts_used;
  const size_t inter = dims_.moe_intermediate, routed = n * k;
  // A quantized routed expert (all of them, in practice) has the rows quantized once for all.
  const WeightMatrix* quant_gate = nullptr;
  const WeightMatrix* quant_down = nullptr;
  ListExpertGroups(w.gate_up, quant_gate);
  const auto input = [&](const bf16* a, size_t lda, const WeightMatrix* quantized) {
    const std::span<const WeightMatrix* const> q(&quantized, quantized ? 1 : 0);
    return Input(a, lda, routed + kTileM, q);  // the zero rows past the last segment too
  };
  const MatmulInput xg = input(moe_x_.data(), h, quant_gate);
  pool_.Spmd(
      moe_items_.size(),
      [&](size_t i, size_t) {
        const MoeItem it = moe_items_[i];
        const size_t r0 = moe_start_[it.expert], rows = moe_start_[it.expert + 1] - r0;
        QuantRows shifted;
        GateUpGroup(kernels_, RowsFrom(xg, r0, shifted), rows, MatrixOf(*w.gate_up[it.expert]),
                    it.group, moe_mlp_.data() + r0 * inter, inter);
      },
      ToString(Stage::kMoeExperts));
  std::memset(moe_mlp_.data() + routed * inter, 0, kTileM * inter * sizeof(bf16));

  ListExpertGroups(w.down, quant_down);
  const MatmulInput xd = input(moe_mlp_.data(), inter, quant_down);
  pool_.Spmd(
      moe_items_.size(),
      [&](size_t i, size_t) {
        const MoeItem it = moe_items_[i];
        const size_t r0 = moe_start_[it.expert], rows = moe_start_[it.expert + 1] - r0;
        const WeightMatrix& down = MatrixOf(*w.down[it.expert]);
        const ColumnGroup cg = GroupOf(down, it.group);
        QuantRows shifted;
        MatmulGroup(kernels_, RowsFrom(xd, r0, shifted), rows, down, cg.j0, cg.nb,
                    [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                      for (size_t r = 0; r < tile_rows; ++r) {
                        std::memcpy(moe_y_.data() + (r0 + row0 + r) * h + cg.col0, c + r * ldc,
                                    cg.cols * sizeof(float));
                      }
                    });
      },
      ToString(Stage::kMoeExperts));

  const Rows res = RowsOf(resid), y = RowsOf(out);
  QW_ASSERT(res.f32 && !y.f32 && res.ld == h && y.ld == h);
  // Row r's sum accumulates in its first copy's row of moe_y_ (its own scratch), so every
  // element is w_0 y_0 + w_1 y_1 + ... in that order, whatever the other rows.
  pool_.Spmd(
      n,
      [&](size_t r, size_t) {
        const float* wr = moe_weights_.data() + r * k;
        const uint32_t* slots = moe_slot_.data() + r * k;
        float* acc = moe_y_.data() + slots[0] * h;
        for (size_t o = 0; o < h; ++o) acc[o] *= wr[0];
        for (size_t j = 1; j < k; ++j) {
          const float* yj = moe_y_.data() + slots[j] * h;
          for (size_t o = 0; o < h; ++o) acc[o] += wr[j] * yj[o];
        }
        const float* rr = static_cast<const float*>(res.data) + r * h;
        bf16* dst = static_cast<bf16*>(y.data) + r * h;
        for (size_t o = 0; o < h; ++o) dst[o] = F32ToBf16(rr[o] + acc[o]);
      },
      ToString(Stage::kMoeExperts));
}

void CpuExecutor::MoeFfn(const MoeWeights& w, Act in, Act resid, Act out, size_t n,
                         int32_t* chosen) {
  QW_ASSERT(n <= max_rows() && w.gate_up.size() == dims_.experts &&
            w.down.size() == dims_.experts);
  Timed(times_, Stage::kMoeRouter, [&] { MoeRoute(w, in, resid, n); });
  Timed(times_, Stage::kMoeExperts, [&] { MoeExperts(w, resid, out, n); });
  if (chosen != nullptr) {
    std::copy(moe_ids_.begin(), moe_ids_.begin() + static_cast<ptrdiff_t>(n * dims_.experts_used),
              chosen);
  }
}

}  // namespace qwen3::cpu
