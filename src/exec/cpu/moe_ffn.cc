// The CPU executor's mixture-of-experts FFN (Executor::MoeFfn):
//   route: ONE dispatch over (row, slice of the experts): the fp32 router logits of the fp32
//          normed row (the residual through the norm, as llama.cpp's router sees it: not the
//          bf16 matmul input, whose rounding flipped a near-tie routing decision into a 0.46
//          rel-L2 step on tiny-moe-a; 0.07 without), dots in 16 fixed lanes summed in a fixed
//          tree; slice 0 also quantizes the row for the int8 kernels. Then, on the caller,
//          RouteTopK per row and the rows' copies gathered expert by expert (ascending expert id,
//          rows in order), as bf16 or as the quantized rows (copied, not quantized again);
//   experts: with enough routed experts to share out (at least 2 per worker), ONE dispatch in
//          which each worker runs whole experts, balanced by cost: gate|up (SiLU.up fused, as
//          the dense FFN) into its own scratch, those rows quantized, down into fp32 rows.
//          With fewer (batch 1 on many cores), one dispatch over every routed expert's gate|up
//          column groups, then one over their down column groups. Each expert's weights are read
//          once for all of its rows either way;
//   sum: hidden[r] = bf16(resid[r] + sum_j w_j * y[copy j of r]), j in routed order.
// A row's gathered copy is computed as any row of a matmul (rows are independent in every
// kernel: quantized per row, same accumulation order for any row count; both strategies run
// the same kernels on it), and its sum reads only its own copies, so its result never depends
// on the other rows (batch invariance).
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
// The router's experts are split in this many slices per row: a batch-1 step still has work
// for every worker (128 experts' logits are 1 MiB of fp32 weights).
constexpr size_t kRouterSlices = 8;

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
  const bf16* xs = static_cast<const bf16*>(x.data);
  bool any_bf16 = false;
  moe_quant_x_ = false;
  for (const Weight* g : w.gate_up) (MatrixOf(*g).quantized() ? moe_quant_x_ : any_bf16) = true;
  const size_t slices = std::min(kRouterSlices, experts), per = (experts + slices - 1) / slices;
  pool_.Spmd(
      n * slices,
      [&](size_t i, size_t worker) {
        const size_t r = i / slices, e0 = i % slices * per, e1 = std::min(experts, e0 + per);
        // The normed row in fp32: x * g / rms(x), the sum of squares in 16 fixed lanes.
        const float* xr = static_cast<const float*>(res.data) + r * h;
        float* normed = moe_router_in_.data() + worker * h;
        const float inv = 1.0f / std::sqrt(Dot(xr, xr, h) / static_cast<float>(h) + dims_.eps);
        for (size_t j = 0; j < h; ++j) normed[j] = xr[j] * inv * norm[j];
        float* logits = moe_logits_.data() + r * experts;
        for (size_t e = e0; e < e1; ++e) logits[e] = Dot(normed, router + e * h, h);
        if (e0 == 0 && moe_quant_x_) moe_xq_.QuantizeRow(kernels_, xs + r * h, r);
      },
      ToString(Stage::kMoeRouter));
  for (size_t r = 0; r < n; ++r) {
    RouteTopK(moe_logits_.data() + r * experts, experts, k, dims_.norm_topk,
              moe_probs_.data() + r * experts, moe_ids_.data() + r * k,
              moe_weights_.data() + r * k);
  }
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
      if (any_bf16) std::memcpy(gathered + row * h, xs + r * h, h * sizeof(bf16));
      if (moe_quant_x_) moe_xg_.CopyRow(moe_xq_, r, row);
    }
  }
  // The rows past the last segment that a 16-row bf16 tile may read: zeros.
  if (any_bf16) std::memset(gathered + n * k * h, 0, kTileM * h * sizeof(bf16));
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

void CpuExecutor::DownGroup(const MatmulInput& xd, size_t rows, const WeightMatrix& down,
                            size_t g, size_t r0) {
  const size_t h = dims_.hidden;
  const ColumnGroup cg = GroupOf(down, g);
  MatmulGroup(kernels_, xd, rows, down, cg.j0, cg.nb,
              [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                for (size_t r = 0; r < tile_rows; ++r) {
                  std::memcpy(moe_y_.data() + (r0 + row0 + r) * h + cg.col0, c + r * ldc,
                              cg.cols * sizeof(float));
                }
              });
}

void CpuExecutor::MoeExpertsWhole(const MoeWeights& w, const MatmulInput& xg) {
  const size_t inter = dims_.moe_intermediate;
  pool_.SpmdRanges(
      moe_bounds_,
      [&](size_t u, size_t worker) {
        const size_t e = moe_units_[u], r0 = moe_start_[e], rows = moe_start_[e + 1] - r0;
        bf16* mlp = moe_mlp_w_.data() + worker * (max_rows_ + kTileM) * inter;
        const WeightMatrix& gate_up = MatrixOf(*w.gate_up[e]);
        QuantRows shifted;
        const MatmulInput x = RowsFrom(xg, r0, shifted);
        for (size_t g = 0; g < Groups(gate_up); ++g) {
          GateUpGroup(kernels_, x, rows, gate_up, g, mlp, inter);
        }
        const WeightMatrix& down = MatrixOf(*w.down[e]);
        QuantRows mlp_view;
        MatmulInput xd{mlp, inter, nullptr};
        if (down.quantized()) {
          QuantizedRows& q = moe_mlp_q_[worker];
          for (size_t r = 0; r < rows; ++r) q.QuantizeRow(kernels_, mlp + r * inter, r);
          mlp_view = q.view();
          xd.q = &mlp_view;
        }
        for (size_t g = 0; g < Groups(down); ++g) DownGroup(xd, rows, down, g, r0);
      },
      ToString(Stage::kMoeExperts));
}

void CpuExecutor::MoeExpertsByGroups(const MoeWeights& w, const MatmulInput& xg, size_t n) {
  const size_t inter = dims_.moe_intermediate, routed = n * dims_.experts_used;
  const WeightMatrix* quant_gate = nullptr;
  const WeightMatrix* quant_down = nullptr;
  ListExpertGroups(w.gate_up, quant_gate);
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
  const std::span<const WeightMatrix* const> q(&quant_down, quant_down ? 1 : 0);
  const MatmulInput xd = Input(moe_mlp_.data(), inter, routed, q);
  pool_.Spmd(
      moe_items_.size(),
      [&](size_t i, size_t) {
        const MoeItem it = moe_items_[i];
        const size_t r0 = moe_start_[it.expert], rows = moe_start_[it.expert + 1] - r0;
        QuantRows shifted;
        DownGroup(RowsFrom(xd, r0, shifted), rows, MatrixOf(*w.down[it.expert]), it.group, r0);
      },
      ToString(Stage::kMoeExperts));
}

void CpuExecutor::MoeExperts(const MoeWeights& w, Act resid, Act out, size_t n) {
  const size_t h = dims_.hidden, k = dims_.experts_used;
  // Whole experts per worker when there are enough to balance: each costs its weights' bytes
  // plus, per row, an eighth of a byte per weight (the int8 dot's time relative to the stream:
  // ~60 GB/s against ~0.5-1 Tops here); KiB units.
  moe_units_.clear();
  moe_cost_.clear();
  for (size_t e = 0; e < dims_.experts; ++e) {
    const size_t rows = moe_start_[e + 1] - moe_start_[e];
    if (rows == 0) continue;
    const WeightMatrix& gu = MatrixOf(*w.gate_up[e]);
    const WeightMatrix& dn = MatrixOf(*w.down[e]);
    const size_t weights = gu.k() * gu.n() + dn.k() * dn.n();
    moe_units_.push_back(static_cast<uint32_t>(e));
    moe_cost_.push_back(static_cast<uint32_t>((gu.bytes() + dn.bytes() + rows * weights / 8) >> 10));
  }
  // The routed copies as gathered by MoeRoute (bf16, and quantized when a gate|up is).
  const QuantRows xg_view = moe_xg_.view();
  const MatmulInput xg{moe_x_.data(), h, moe_quant_x_ ? &xg_view : nullptr};
  const size_t workers = pool_.NumWorkers();
  if (moe_units_.size() >= 2 * workers || workers == 1) {
    BalancedRanges(moe_cost_, workers, moe_bounds_);
    MoeExpertsWhole(w, xg);
  } else {
    MoeExpertsByGroups(w, xg, n);
  }

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
