#include "exec/cpu/cpu_executor.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <cstring>
#include <string>

#include "base/error.h"
#include "exec/cpu/attention.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/cpu_weight.h"
#include "exec/finite.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {
namespace {

float Widen(float v) { return v; }
float Widen(bf16 v) { return Bf16ToF32(v); }
void StoreAs(float v, float* dst) { *dst = v; }
void StoreAs(float v, bf16* dst) { *dst = F32ToBf16(v); }

size_t PaddedRows(size_t rows) { return (rows + kTileM - 1) / kTileM * kTileM; }

// Row stride of attn_out: q_dim padded to whole k-tiles, as it is out_proj's A operand and the
// kernel reads k_tiles * 32 columns of each row (the padding stays zero, times zero rows of
// wo; heads * head_dim is not a multiple of 32 for every even head_dim).
size_t AttnStride(const ModelDims& d) { return (d.q_dim() + kTileK - 1) / kTileK * kTileK; }

// Weights [0, m) as one dispatch over all their 64-column groups: epi(m, row, col, acc) for
// weight m's output column col, on each C block while it is hot in L1.
template <typename Epi>
void Project(ThreadPool& pool, const CpuKernels& k, Stage stage, const MatmulInput& x,
             size_t rows, std::span<const WeightMatrix* const> w, Epi epi) {
  size_t groups[4] = {}, total = 0;
  QW_ASSERT(w.size() <= 4);
  for (size_t m = 0; m < w.size(); ++m) total += groups[m] = Groups(*w[m]);
  pool.Spmd(
      total,
      [&](size_t block, size_t) {
        size_t m = 0, g = block;
        while (g >= groups[m]) g -= groups[m++];
        const ColumnGroup cg = GroupOf(*w[m], g);
        MatmulGroup(k, x, rows, *w[m], cg.j0, cg.nb,
                    [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                      epi(m, row0, tile_rows, cg.col0, cg.cols, c, ldc);
                    });
      },
      ToString(stage));
}

void ProjectGateUp(ThreadPool& pool, const CpuKernels& k, const MatmulInput& x, size_t rows,
                   const WeightMatrix& w, bf16* mlp, size_t inter) {
  pool.Spmd(
      Groups(w), [&](size_t g, size_t) { GateUpGroup(k, x, rows, w, g, mlp, inter); },
      ToString(Stage::kGateUpSilu));
}

}  // namespace

CpuExecutor::CpuExecutor(const ModelDims& dims, const CpuKernels& kernels, ThreadPool& pool,
                         size_t max_rows, KvType kv_type)
    : dims_(dims), kernels_(kernels), pool_(pool), kv_type_(kv_type) {
  Reserve(max_rows);
}

std::string CpuExecutor::name() const { return std::string("cpu (") + ToString(kernels_.path) + ")"; }

bool CpuExecutor::Supports(Op op, const OpShape& s) const {
  switch (op) {
    case Op::kAttention:
    case Op::kQkNormRopeKv:
      return s.block_size > 0 && s.block_size % kTileK == 0 && s.block_size <= kMaxBlockSize &&
             dims_.head_dim % 2 == 0 && dims_.head_dim <= kMaxHeadDim;
    case Op::kMoeFfn:
      return dims_.experts > 0 && dims_.experts_used >= 1 &&
             dims_.experts_used <= dims_.experts && dims_.moe_intermediate % kTileK == 0;
    default:
      return true;
  }
}

std::unique_ptr<Weight> CpuExecutor::PackLinear(const HostMatrix& m, WeightRole,
                                                std::optional<WeightType> quantize) {
  auto w = std::make_unique<CpuWeight>();
  w->matrix = PackLinearMatrix(m, quantize, pool_);
  return w;
}

std::unique_ptr<Weight> CpuExecutor::PackGateUp(const HostMatrix& gate, const HostMatrix& up,
                                                std::optional<WeightType> quantize) {
  auto w = std::make_unique<CpuWeight>();
  w->matrix = PackGateUpMatrix(gate, up, quantize, pool_);
  return w;
}

std::unique_ptr<Weight> CpuExecutor::PackNorm(const float* v, size_t n, const std::string& name) {
  auto w = std::make_unique<CpuWeight>();
  w->vec = CopyFinite(v, n, name);
  return w;
}

std::unique_ptr<Weight> CpuExecutor::PackEmbedding(const HostMatrix& table) {
  auto w = std::make_unique<CpuWeight>();
  if (table.type != WeightType::kBf16) {  // read a row per token: kept as the file has it
    w->matrix = QuantMatrix::FromGguf(table.type, static_cast<const uint8_t*>(table.data),
                                      table.out, table.in, table.name, pool_);
  } else {
    w->table = CopyFiniteBf16(static_cast<const bf16*>(table.data), table.out, table.in,
                              table.name);
  }
  return w;
}

std::unique_ptr<Weight> CpuExecutor::PackRouter(const float* v, size_t experts, size_t hidden,
                                                const std::string& name) {
  auto w = std::make_unique<CpuWeight>();
  w->vec = CopyFinite(v, experts * hidden, name, Pages::kHuge);  // read every step
  return w;
}

std::unique_ptr<KvCache> CpuExecutor::NewKvCache(size_t num_blocks, size_t block_size) {
  if (kv_type_ == KvType::kQ8_0) {
    return std::make_unique<PagedKvCacheQ8>(num_blocks, dims_.kv_heads, dims_.head_dim, block_size);
  }
  return std::make_unique<PagedKvCache>(num_blocks, dims_.kv_heads, dims_.head_dim, block_size);
}

size_t CpuExecutor::KvBytesPerToken() const {
  if (kv_type_ == KvType::kQ8_0) {  // per page: K's and V's bytes over block_size tokens
    const KvQ8Layout q8{KvQ8Layout::kSub, dims_.head_dim};
    return dims_.kv_heads * (q8.KPageBytes() + q8.VPageBytes()) / q8.block_size;
  }
  return 2 * dims_.kv_heads * PaddedHeadDim(dims_.head_dim) * sizeof(bf16);
}

void CpuExecutor::Reserve(size_t max_rows) {
  if (max_rows <= max_rows_) return;
  max_rows_ = max_rows;
  const size_t rows = PaddedRows(max_rows);
  const size_t h = dims_.hidden, heads_kv = dims_.kv_heads;
  hidden_ = AlignedBuffer<bf16>(rows * h);
  normed_ = AlignedBuffer<bf16>(rows * h);
  qkv_ = AlignedBuffer<float>(rows * (dims_.q_dim() + 2 * dims_.kv_dim()));
  q_tiles_ = AlignedBuffer<bf16>(heads_kv * QTileRowsPerHead() * PaddedHeadDim(dims_.head_dim));
  attn_out_ = AlignedBuffer<bf16>(rows * AttnStride(dims_));
  resid_ = AlignedBuffer<float>(rows * h);
  mlp_ = AlignedBuffer<bf16>(rows * dims_.intermediate);
  lm_rows_ = AlignedBuffer<bf16>(rows * h);
  // Partials are indexed by attention item; the buffers start at 16 splits per (row, KV head)
  // and grow at the first pass that needs more (a pass of many long rows split finely), so a
  // wide pass for prefill does not reserve max_seq / 32 splits for every row up front.
  part_capacity_ = 0;
  ReserveParts(max_rows * heads_kv * 16);
  if (dims_.experts > 0) {
    const size_t k = dims_.experts_used, routed = max_rows * k + kTileM;
    moe_ids_.resize(max_rows * k);
    moe_weights_.resize(max_rows * k);
    moe_slot_.resize(max_rows * k);
    moe_start_.resize(dims_.experts + 1);
    moe_fill_.resize(dims_.experts);
    const size_t workers = pool_.NumWorkers(), inter = dims_.moe_intermediate;
    moe_probs_ = AlignedBuffer<float>(max_rows * dims_.experts);
    moe_router_in_ = AlignedBuffer<float>(workers * h);
    moe_xq_.Reserve(max_rows, h);
    moe_xg_.Reserve(max_rows * k, h);
    moe_mlp_w_ = AlignedBuffer<bf16>(workers * (max_rows + kTileM) * inter);
    moe_mlp_q_.resize(workers);
    for (QuantizedRows& q : moe_mlp_q_) q.Reserve(max_rows, inter);
    moe_units_.reserve(dims_.experts);
    moe_cost_.reserve(dims_.experts);
    const size_t groups = std::max(2 * dims_.moe_intermediate, h) / kGroupCols + 1;
    moe_items_.reserve(dims_.experts * groups);
    moe_logits_ = AlignedBuffer<float>(max_rows * dims_.experts);
    moe_x_ = AlignedBuffer<bf16>(routed * h);
    moe_mlp_ = AlignedBuffer<bf16>(routed * dims_.moe_intermediate);
    moe_y_ = AlignedBuffer<float>(routed * h);
  }
  plan_.row_pps.reserve(max_rows);
  plan_.row_parts.reserve(max_rows + 1);
  plan_.block_items.reserve(max_rows + 1);
}

void CpuExecutor::ReserveParts(size_t parts) {
  if (parts <= part_capacity_) return;
  const size_t g = dims_.group(), d = dims_.head_dim;
  part_o_ = AlignedBuffer<float>(parts * g * d);
  part_m_ = AlignedBuffer<float>(parts * g);
  part_l_ = AlignedBuffer<float>(parts * g);
  plan_.items.reserve(parts);
  part_capacity_ = parts;
}

bf16* CpuExecutor::QTile(size_t kv_head, size_t row) {
  return q_tiles_.data() + (kv_head * QTileRowsPerHead() + row * dims_.group()) *
                               PaddedHeadDim(dims_.head_dim);
}

CpuExecutor::Rows CpuExecutor::RowsOf(Act act) {
  const size_t h = dims_.hidden;
  switch (act) {
    case Act::kHidden:
      return {hidden_.data(), h, false};
    case Act::kNormed:
      return {normed_.data(), h, false};
    case Act::kQkv:
      return {qkv_.data(), dims_.q_dim() + 2 * dims_.kv_dim(), true};
    case Act::kAttn:
      return {attn_out_.data(), AttnStride(dims_), false};
    case Act::kResid:
      return {resid_.data(), h, true};
    case Act::kMlp:
      return {mlp_.data(), dims_.intermediate, false};
    case Act::kLmRows:
      return {lm_rows_.data(), h, false};
  }
  throw Error("unknown activation");
}

void CpuExecutor::Upload(Act act, const bf16* rows, size_t n) {
  const Rows r = RowsOf(act);
  QW_ASSERT(!r.f32 && n <= max_rows_);
  const size_t width = act == Act::kAttn ? dims_.q_dim() : r.ld;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(static_cast<bf16*>(r.data) + i * r.ld, rows + i * width, width * sizeof(bf16));
  }
}

void CpuExecutor::Download(Act act, size_t n, bf16* rows) {
  const Rows r = RowsOf(act);
  QW_ASSERT(!r.f32 && n <= max_rows_);
  const size_t width = act == Act::kAttn ? dims_.q_dim() : r.ld;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(rows + i * width, static_cast<const bf16*>(r.data) + i * r.ld, width * sizeof(bf16));
  }
}

void CpuExecutor::CheckFinite(Act act, size_t n) {
  const Rows r = RowsOf(act);
  QW_ASSERT(!r.f32);
  const bf16* x = static_cast<const bf16*>(r.data);
  for (size_t i = 0; i < n * r.ld; ++i) {
    if (!IsFiniteBf16(x[i])) {
      throw Error("hidden_states[" + std::to_string(i / r.ld) + ", " + std::to_string(i % r.ld) +
                  "] is " + ((x[i] & 0x7f) ? "NaN" : "Inf") + ": expected finite values");
    }
  }
}

void CpuExecutor::ImportKv(KvCache& kv, const bf16* k_rows, const bf16* v_rows) {
  if (kv_type_ == KvType::kQ8_0) {
    static_cast<PagedKvCacheQ8&>(kv).ImportSeedLayout(k_rows, v_rows, pool_);
  } else {
    static_cast<PagedKvCache&>(kv).ImportSeedLayout(k_rows, v_rows, pool_);
  }
}

void CpuExecutor::ExportKv(const KvCache& kv, bf16* k_rows, bf16* v_rows) {
  if (kv_type_ == KvType::kQ8_0) {
    static_cast<const PagedKvCacheQ8&>(kv).ExportSeedLayout(k_rows, v_rows);
  } else {
    static_cast<const PagedKvCache&>(kv).ExportSeedLayout(k_rows, v_rows);
  }
}

void CpuExecutor::Embed(const Weight& table, std::span<const int32_t> tokens, Act out) {
  const CpuWeight& w = AsCpu(table);
  const Rows r = RowsOf(out);
  const size_t h = dims_.hidden;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const size_t t = static_cast<size_t>(tokens[i]);
    bf16* row = static_cast<bf16*>(r.data) + i * r.ld;
    if (!w.table.empty()) {
      std::memcpy(row, w.table.data() + t * h, h * sizeof(bf16));
    } else {  // a quantized table, or a tied LM head: column t is the row
      for (size_t k = 0; k < h; ++k) row[k] = F32ToBf16(w.matrix.At(k, t));
    }
  }
}

void CpuExecutor::RmsNorm(Stage stage, const Weight& w, Act in, Act out, size_t n) {
  const float* weight = AsCpu(w).vec.data();
  const Rows x = RowsOf(in), y = RowsOf(out);
  QW_ASSERT(!y.f32);
  const size_t h = dims_.hidden;
  Timed(times_, stage, [&] {
    pool_.Spmd(
        n,
        [&](size_t b, size_t) {
          bf16* dst = static_cast<bf16*>(y.data) + b * y.ld;
          if (x.f32) {
            kernels_.rms_norm_f32(static_cast<const float*>(x.data) + b * x.ld, weight, h,
                                  dims_.eps, dst);
          } else {
            kernels_.rms_norm_bf16(static_cast<const bf16*>(x.data) + b * x.ld, weight, h,
                                   dims_.eps, dst);
          }
        },
        ToString(stage));
  });
}

void CpuExecutor::Linear(Stage stage, std::span<const Weight* const> w, Act in, Act out, size_t n,
                         Epilogue epi) {
  const WeightMatrix* mats[4];
  QW_ASSERT(w.size() >= 1 && w.size() <= 4);
  for (size_t m = 0; m < w.size(); ++m) mats[m] = &MatrixOf(*w[m]);
  const std::span<const WeightMatrix* const> ms(mats, w.size());
  const Rows a = RowsOf(in), y = RowsOf(out);
  QW_ASSERT(!a.f32);
  Timed(times_, stage, [&] {
    const MatmulInput x = Input(static_cast<const bf16*>(a.data), a.ld, n, ms);
    switch (epi.kind) {
      case Epilogue::Kind::kStore: {  // the weights' columns side by side (q | k | v)
        QW_ASSERT(y.f32);
        size_t col0[4] = {};
        for (size_t m = 1; m < w.size(); ++m) col0[m] = col0[m - 1] + mats[m - 1]->n();
        float* dst = static_cast<float*>(y.data);
        Project(pool_, kernels_, stage, x, n, ms,
                [&](size_t m, size_t row0, size_t rows, size_t col, size_t cols, const float* c,
                    size_t ldc) {
                  for (size_t r = 0; r < rows; ++r) {
                    std::memcpy(dst + (row0 + r) * y.ld + col0[m] + col, c + r * ldc, cols * 4);
                  }
                });
        break;
      }
      case Epilogue::Kind::kAddResidual: {
        // out_proj: resid = acc + hidden (fp32); down_proj: next hidden = bf16(acc + resid).
        const Rows res = RowsOf(epi.residual);
        QW_ASSERT(y.f32 != res.f32);
        const auto add = [&](auto* dst, const auto* src) {
          Project(pool_, kernels_, stage, x, n, ms,
                  [&](size_t, size_t row0, size_t rows, size_t col, size_t cols, const float* c,
                      size_t ldc) {
                    for (size_t r = 0; r < rows; ++r) {
                      for (size_t j = 0; j < cols; ++j) {
                        const size_t i = (row0 + r) * y.ld + col + j;
                        StoreAs(c[r * ldc + j] + Widen(src[i]), dst + i);
                      }
                    }
                  });
        };
        if (y.f32) {
          add(static_cast<float*>(y.data), static_cast<const bf16*>(res.data));
        } else {
          add(static_cast<bf16*>(y.data), static_cast<const float*>(res.data));
        }
        break;
      }
      case Epilogue::Kind::kSiluMul:
        QW_ASSERT(w.size() == 1 && !y.f32);
        ProjectGateUp(pool_, kernels_, x, n, *mats[0], static_cast<bf16*>(y.data), y.ld);
        break;
    }
  });
}

MatmulInput CpuExecutor::Input(const bf16* a, size_t lda, size_t rows,
                               std::span<const WeightMatrix* const> weights) {
  size_t k = 0;
  for (const WeightMatrix* w : weights) {
    if (w->quantized()) k = w->k();
  }
  if (k == 0) return {a, lda, nullptr};
  quant_rows_.Quantize(kernels_, a, lda, rows, k, pool_);
  quant_view_ = quant_rows_.view();
  return {a, lda, &quant_view_};
}

// Per (row, KV head): q/k RMSNorm, RoPE at the current position, bf16; K/V into the cache, the
// group's q heads into their rows of q_tiles_ (only real dims are ever written).
void CpuExecutor::QkNormRopeKv(const Weight& q_norm, const Weight& k_norm, const RopeTable& rope,
                               KvCache& kv_cache, const DecodeBatch& batch) {
  const bool q8 = kv_type_ == KvType::kQ8_0;
  const size_t heads_kv = dims_.kv_heads, dim = dims_.head_dim, group = dims_.group();
  const size_t q_dim = dims_.q_dim(), kv_dim = dims_.kv_dim(), ld = q_dim + 2 * kv_dim;
  const size_t pdim = PaddedHeadDim(dim);
  const float* qn = AsCpu(q_norm).vec.data();
  const float* kn = AsCpu(k_norm).vec.data();
  Timed(times_, Stage::kQkNormRopeCache, [&] {
    pool_.Spmd(
        batch.batch * heads_kv,
        [&](size_t i, size_t) {
          const size_t b = i / heads_kv, kvh = i % heads_kv;
          const size_t pos = static_cast<size_t>(batch.seq_lens[b]) - 1;
          const float* cos = rope.cos.data() + pos * dim;
          const float* sin = rope.sin.data() + pos * dim;
          const float* row = qkv_.data() + b * ld;
          bf16 kb[kMaxHeadDim], vb[kMaxHeadDim];
          kernels_.head_norm_rope(row + q_dim + kvh * dim, kn, cos, sin, dim, dims_.eps, kb);
          kernels_.cast_bf16(row + q_dim + kv_dim + kvh * dim, dim, vb);
          const size_t slot = static_cast<size_t>(batch.slot_mapping[b]);
          if (q8) {
            static_cast<PagedKvCacheQ8&>(kv_cache).Write(slot, kvh, kb, vb);
          } else {
            static_cast<PagedKvCache&>(kv_cache).Write(slot, kvh, kb, vb);
          }
          bf16* tile = QTile(kvh, b);
          for (size_t g = 0; g < group; ++g) {
            kernels_.head_norm_rope(row + (kvh * group + g) * dim, qn, cos, sin, dim, dims_.eps,
                                    tile + g * pdim);
          }
        },
        ToString(Stage::kQkNormRopeCache));
  });
}

void CpuExecutor::PlanAndReserve(const KvCache& kv, const DecodeBatch& batch,
                                 const AttentionOptions& o) {
  PlanAttention(batch, kv.block_size(), dims_.kv_heads, dims_.group(), pool_.NumWorkers(), o,
                plan_);
  ReserveParts(plan_.parts());
}

void CpuExecutor::AttentionPartials(const KvCache& kv_cache, const DecodeBatch& batch, size_t i0,
                                    size_t i1, bool balanced) {
  const size_t group = dims_.group(), dim = dims_.head_dim;
  const size_t pdim = PaddedHeadDim(dim);
  const bool q8 = kv_type_ == KvType::kQ8_0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const auto partial = [&](size_t i) {
    const AttentionItem it = plan_.items[i];
    const size_t last = it.row0 + it.queries - 1;
    const std::pair<size_t, size_t> pages = plan_.Pages(batch, it);
    const size_t p0 = pages.first, p1 = pages.second;  // (clang: no structured binding captured by the lambda below)
    const int32_t* table = batch.block_table + last * batch.max_blocks_per_seq;
    size_t lens[kTileM];
    float* o[kTileM];
    float* m[kTileM];
    float* l[kTileM];
    for (size_t qi = 0; qi < it.queries; ++qi) {
      const size_t b = it.row0 + qi, splits = plan_.Splits(batch, b);
      lens[qi] = static_cast<size_t>(batch.seq_lens[b]);
      const size_t part = plan_.row_parts[b] + it.kv_head * splits + it.split;
      const bool has = it.split < splits;  // a shorter row may end a split earlier
      o[qi] = has ? part_o_.data() + part * group * dim : nullptr;
      m[qi] = has ? part_m_.data() + part * group : nullptr;
      l[qi] = has ? part_l_.data() + part * group : nullptr;
    }
    // The split's pages of either cache type, then its partial.
    const auto run = [&](const auto& kv, auto partial_fn) {
      using Page = std::remove_cvref_t<decltype(*kv.KPage(0, 0))>;
      const Page* k_pages[kMaxPagesPerSplit];
      const Page* v_pages[kMaxPagesPerSplit];
      for (size_t p = p0; p < p1; ++p) {
        k_pages[p - p0] = kv.KPage(table[p], it.kv_head);
        v_pages[p - p0] = kv.VPage(table[p], it.kv_head);
      }
      partial_fn(kernels_, kv.layout(), QTile(it.kv_head, it.row0), pdim, group, it.queries, lens,
                 p0, k_pages, v_pages, p1 - p0, scale, o, m, l);
    };
    if (q8) {
      run(static_cast<const PagedKvCacheQ8&>(kv_cache), AttentionPartialQueriesQ8);
    } else {
      run(static_cast<const PagedKvCache&>(kv_cache), AttentionPartialQueries);
    }
  };
  if (balanced) {
    pool_.SpmdRanges(
        plan_.bounds, [&](size_t i, size_t) { partial(i); }, ToString(Stage::kAttention));
  } else {
    pool_.Spmd(
        i1 - i0, [&](size_t i, size_t) { partial(i0 + i); }, ToString(Stage::kAttention));
  }
}

void CpuExecutor::AttentionMergeOne(const DecodeBatch& batch, size_t b, size_t kvh, bf16* out,
                                    size_t ld) {
  const size_t group = dims_.group(), dim = dims_.head_dim;
  const size_t splits = plan_.Splits(batch, b);
  const size_t part = plan_.row_parts[b] + kvh * splits;  // parts: row, then head, then split
  AttentionMerge(part_o_.data() + part * group * dim, part_m_.data() + part * group,
                 part_l_.data() + part * group, splits, group * dim, group, group, dim,
                 out + b * ld + kvh * group * dim);
}

// Split-KV partials: one flat dispatch over every (query block, KV head, split), in static
// ranges balanced by pages; then one over (row, KV head) merging each row's partials.
void CpuExecutor::Attention(const KvCache& kv_cache, const DecodeBatch& batch,
                            const AttentionOptions& options, Act out) {
  const KvCache& kv = kv_cache;
  const Rows y = RowsOf(out);
  const size_t heads_kv = dims_.kv_heads;
  Timed(times_, Stage::kAttention, [&] {
    PlanAndReserve(kv, batch, options);
    AttentionPartials(kv, batch, 0, plan_.items.size(), true);
  });
  Timed(times_, Stage::kAttentionMerge, [&] {
    pool_.Spmd(
        batch.batch * heads_kv,
        [&](size_t i, size_t) {
          AttentionMergeOne(batch, i / heads_kv, i % heads_kv, static_cast<bf16*>(y.data), y.ld);
        },
        ToString(Stage::kAttentionMerge));
  });
}

void CpuExecutor::SelectRows(Act in, std::span<const uint32_t> rows, Act out) {
  const Rows x = RowsOf(in), y = RowsOf(out);
  QW_ASSERT(!x.f32 && !y.f32 && x.ld == y.ld);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] == i && x.data == y.data) continue;
    std::memcpy(static_cast<bf16*>(y.data) + i * y.ld,
                static_cast<const bf16*>(x.data) + rows[i] * x.ld, x.ld * sizeof(bf16));
  }
}

void CpuExecutor::Logits(const Weight& lm_head, Act in, size_t n, float* logits, size_t ld) {
  const WeightMatrix* w = &MatrixOf(lm_head);
  const Rows a = RowsOf(in);
  Timed(times_, Stage::kLmHead, [&] {
    const MatmulInput x = Input(static_cast<const bf16*>(a.data), a.ld, n, {&w, 1});
    Project(pool_, kernels_, Stage::kLmHead, x, n, {&w, 1},
            [&](size_t, size_t row0, size_t rows, size_t col, size_t cols, const float* c,
                size_t ldc) {
              for (size_t r = 0; r < rows; ++r) {
                std::memcpy(logits + (row0 + r) * ld + col, c + r * ldc, cols * sizeof(float));
              }
            });
  });
}

}  // namespace qwen3::cpu
