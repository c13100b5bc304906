#include "model/decode_layer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "base/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/fused_matmul.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

using cpu::kMaxBlocksPerCall;
using cpu::kTileM;
using cpu::kTileN;
using cpu::MatmulInput;
using cpu::WeightMatrix;

size_t Groups(const WeightMatrix& w, size_t blocks_per_group = kMaxBlocksPerCall) {
  return (w.n_blocks() + blocks_per_group - 1) / blocks_per_group;
}

// Column group g of w: its first block and block count, first column and valid columns.
struct ColumnGroup {
  size_t j0, nb, col0, cols;
};

ColumnGroup GroupOf(const WeightMatrix& w, size_t g, size_t blocks_per_group = kMaxBlocksPerCall) {
  const size_t j0 = g * blocks_per_group, nb = std::min(blocks_per_group, w.n_blocks() - j0);
  const size_t col0 = j0 * kTileN;
  return {j0, nb, col0, std::min(nb * kTileN, w.n() - col0)};
}

// A projection a . w whose epilogue epi(row, col, acc) runs on each C block while it is hot in
// L1 (fused), or, given an fp32 [rows, w.n()] scratch (the benchmark's unfused variant: the
// schedule PR #387 replaced), after the whole matmul as a second dispatch over the scratch.
template <typename Epi>
void Project(ThreadPool& pool, const cpu::CpuKernels& k, const char* name, const MatmulInput& x,
             size_t rows, const WeightMatrix& w, float* scratch, Epi epi) {
  const size_t n = w.n();
  pool.Spmd(
      Groups(w),
      [&](size_t block, size_t) {
        const ColumnGroup cg = GroupOf(w, block);
        cpu::MatmulGroup(k, x, rows, w, cg.j0, cg.nb,
                         [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                           for (size_t r = 0; r < tile_rows; ++r) {
                             for (size_t j = 0; j < cg.cols; ++j) {
                               const float acc = c[r * ldc + j];
                               if (scratch) {
                                 scratch[(row0 + r) * n + cg.col0 + j] = acc;
                               } else {
                                 epi(row0 + r, cg.col0 + j, acc);
                               }
                             }
                           }
                         });
      },
      name);
  if (scratch == nullptr) return;
  pool.Spmd(
      rows,
      [&](size_t r, size_t) {
        for (size_t col = 0; col < n; ++col) epi(r, col, scratch[r * n + col]);
      },
      name);
}

// gate and up interleaved in one matrix (PackedMatrix::FromInOutInterleaved): the C block of
// each 64-column group holds 32 gate columns, then the up columns of the same 32 outputs, so
// one K loop feeds both. epi(row, col, gate, up, count) for outputs [col, col + count) of a
// row; the unfused variant uses an fp32 [rows, w.n()] scratch.
template <typename Epi>
void ProjectGateUp(ThreadPool& pool, const cpu::CpuKernels& k, const char* name,
                   const MatmulInput& x, size_t rows, const WeightMatrix& w, float* scratch,
                   Epi epi) {
  constexpr size_t kHalf = cpu::kTileK;  // 32 outputs per group
  const size_t n = w.n();
  pool.Spmd(
      Groups(w),
      [&](size_t g, size_t) {                  // one column group per block
        const ColumnGroup cg = GroupOf(w, g);  // always 64 columns: n is a multiple of 64
        cpu::MatmulGroup(k, x, rows, w, cg.j0, cg.nb,
                         [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                           for (size_t r = 0; r < tile_rows; ++r) {
                             if (scratch) {
                               std::memcpy(scratch + (row0 + r) * n + cg.col0, c + r * ldc,
                                           cg.cols * sizeof(float));
                             } else {
                               epi(row0 + r, g * kHalf, c + r * ldc, c + r * ldc + kHalf, kHalf);
                             }
                           }
                         });
      },
      name);
  if (scratch == nullptr) return;
  pool.Spmd(
      rows,
      [&](size_t r, size_t) {
        for (size_t col = 0; col < n / 2; col += kHalf) {
          const float* group = scratch + r * n + col * 2;
          epi(r, col, group, group + kHalf, kHalf);
        }
      },
      name);
}

constexpr size_t kMaxPagesPerSplit = 64;

size_t PaddedRows(size_t rows) { return (rows + kTileM - 1) / kTileM * kTileM; }

// Row stride of attn_out: q_dim padded to whole k-tiles, as it is out_proj's A operand and
// the kernel reads k_tiles * 32 columns of each row (the padding stays zero, times zero rows
// of wo; heads * head_dim is not a multiple of 32 for every even head_dim).
size_t AttnStride(const Qwen3Config& c) {
  return (static_cast<size_t>(c.QDim()) + cpu::kTileK - 1) / cpu::kTileK * cpu::kTileK;
}

template <typename F>
void Timed(StageTimes* times, Stage stage, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  if (times != nullptr) {
    times->seconds[static_cast<size_t>(stage)] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

}  // namespace

const char* ToString(Stage stage) {
  static constexpr const char* kNames[kNumStages] = {
      "input_rmsnorm", "qkv_proj",        "qk_norm_rope_cache",
      "attention",     "attention_merge", "out_proj_residual",
      "post_rmsnorm",  "gate_up_silu",    "down_proj_residual",
      "final_rmsnorm", "lm_head"};
  const size_t i = static_cast<size_t>(stage);
  return i < kNumStages ? kNames[i] : "?";
}

double StageTimes::Total() const {
  double total = 0;
  for (double s : seconds) total += s;
  return total;
}

DecodeLayer::DecodeLayer(const Qwen3Config& config, const Options& options,
                         const cpu::CpuKernels& kernels, ThreadPool& pool)
    : config_(config), options_(options), kernels_(kernels), pool_(pool) {
  ValidateConfig(config);
  if (options.max_batch == 0) throw Error("decode layer: max_batch = 0: expected at least 1");
  if (options.pages_per_split > kMaxPagesPerSplit) {
    throw Error("decode layer: pages_per_split = " + std::to_string(options.pages_per_split) +
                ": expected 0 (auto) or 1.." + std::to_string(kMaxPagesPerSplit));
  }
  const size_t rows = PaddedRows(options.max_batch);
  const size_t h = config.hidden, q = config.QDim(), kv = config.KvDim();
  const size_t pdim = cpu::PaddedHeadDim(config.head_dim);
  const size_t heads_kv = static_cast<size_t>(config.kv_heads);
  // Partials are indexed by attention item; the buffers start at 16 splits per (row, KV head)
  // and grow at the first Run that needs more (a pass of many long rows split finely), so a
  // wide pass for prefill does not reserve max_seq / 32 splits for every row up front.
  const size_t parts = options.max_batch * heads_kv * 16;
  normed_ = AlignedBuffer<bf16>(rows * h);
  q_proj_ = AlignedBuffer<float>(rows * q);
  k_proj_ = AlignedBuffer<float>(rows * kv);
  v_proj_ = AlignedBuffer<float>(rows * kv);
  q_tiles_ = AlignedBuffer<bf16>(heads_kv * QTileRowsPerHead() * pdim);
  ReserveParts(parts);
  attn_out_ = AlignedBuffer<bf16>(rows * AttnStride(config));
  resid1_ = AlignedBuffer<float>(rows * h);
  post_normed_ = AlignedBuffer<bf16>(rows * h);
  mlp_ = AlignedBuffer<bf16>(rows * config.intermediate);
  final_normed_ = AlignedBuffer<bf16>(rows * h);
  validate_slots_.reserve(options.max_batch);
  block_items_.reserve(options.max_batch + 1);
  row_parts_.reserve(options.max_batch + 1);
  row_pps_.reserve(options.max_batch);
  if (!options.fused_epilogues) {
    unfused_scratch_ = AlignedBuffer<float>(
        rows * std::max<size_t>(h, 2 * static_cast<size_t>(config.intermediate)));
  }
}

namespace {

// Auto split length for `pages` KV pages of work: the longest splits that still leave
// kItemsPerWorker partials per worker. Long splits stream consecutive pages with the next one
// prefetched under the current one's math, and write fewer partials; measured on this machine
// kind (docs/PERFORMANCE.md): 32 pages per split run ~1.15x faster than 8 and ~1.2x faster than 1.
size_t AutoPagesPerSplit(size_t pages, size_t workers) {
  constexpr size_t kItemsPerWorker = 8;
  return std::clamp<size_t>(pages / (kItemsPerWorker * workers), 1, kMaxPagesPerSplit);
}

}  // namespace

size_t DecodeLayer::PagesPerSplit(const DecodeBatch& batch, size_t block_size) const {
  if (options_.pages_per_split > 0) return options_.pages_per_split;
  if (options_.per_row_splits) {
    size_t longest = 1;
    for (size_t b = 0; b < batch.batch; ++b) {
      longest = std::max(longest, RowPagesPerSplit(batch, b, block_size));
    }
    return longest;
  }
  size_t pages = 0;
  for (size_t b = 0; b < batch.batch; ++b) {
    pages += (static_cast<size_t>(batch.seq_lens[b]) + block_size - 1) / block_size;
  }
  return AutoPagesPerSplit(pages * static_cast<size_t>(config_.kv_heads), pool_.NumWorkers());
}

size_t DecodeLayer::RowPagesPerSplit(const DecodeBatch& batch, size_t row,
                                     size_t block_size) const {
  if (options_.pages_per_split > 0 || !options_.per_row_splits) {
    return PagesPerSplit(batch, block_size);
  }
  const size_t pages = (static_cast<size_t>(batch.seq_lens[row]) + block_size - 1) / block_size;
  return AutoPagesPerSplit(pages * static_cast<size_t>(config_.kv_heads), pool_.NumWorkers());
}

void DecodeLayer::ReserveParts(size_t parts) {
  if (parts <= part_capacity_) return;
  const size_t g = config_.GroupSize(), d = config_.head_dim;
  part_o_ = AlignedBuffer<float>(parts * g * d);
  part_m_ = AlignedBuffer<float>(parts * g);
  part_l_ = AlignedBuffer<float>(parts * g);
  items_.reserve(parts);
  part_capacity_ = parts;
}

size_t DecodeLayer::Splits(int32_t seq_len, size_t block_size, size_t pages_per_split) {
  const size_t pages = (static_cast<size_t>(seq_len) + block_size - 1) / block_size;
  return (pages + pages_per_split - 1) / pages_per_split;
}

void DecodeLayer::Validate(const DecodeBatch& batch, const PagedKvCache& kv, const RopeTable& rope,
                           const bf16* hidden) const {
  const size_t n = batch.batch, bs = kv.layout().block_size;
  if (n < 1 || n > options_.max_batch) {
    throw Error("batch = " + std::to_string(n) + ": expected 1.." +
                std::to_string(options_.max_batch) + " (the layer's max batch)");
  }
  if (kv.kv_heads() != static_cast<size_t>(config_.kv_heads) ||
      kv.layout().head_dim != static_cast<size_t>(config_.head_dim)) {
    throw Error("KV cache has " + std::to_string(kv.kv_heads()) + " heads of " +
                std::to_string(kv.layout().head_dim) + ": expected " +
                std::to_string(config_.kv_heads) + " of " + std::to_string(config_.head_dim));
  }
  if (rope.head_dim != static_cast<size_t>(config_.head_dim)) {
    throw Error("rope table head_dim = " + std::to_string(rope.head_dim) + ": expected " +
                std::to_string(config_.head_dim));
  }
  const size_t max_seq = std::min(options_.max_seq, rope.max_seq);
  if (batch.max_blocks_per_seq * bs < max_seq) {
    throw Error("block_table has " + std::to_string(batch.max_blocks_per_seq) +
                " blocks per user: expected at least " + std::to_string((max_seq + bs - 1) / bs) +
                " for max_seq " + std::to_string(max_seq));
  }
  std::vector<std::pair<int32_t, size_t>>& slots = validate_slots_;  // reserved: no allocation
  slots.resize(n);
  for (size_t b = 0; b < n; ++b) {
    const int32_t len = batch.seq_lens[b];
    if (len < 1 || static_cast<size_t>(len) > max_seq) {
      throw Error("seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) +
                  ": expected 1.." + std::to_string(max_seq));
    }
    const size_t pages = (static_cast<size_t>(len) + bs - 1) / bs;
    const int32_t* row = batch.block_table + b * batch.max_blocks_per_seq;
    for (size_t sb = 0; sb < pages; ++sb) {
      if (row[sb] < 0 || static_cast<size_t>(row[sb]) >= kv.num_blocks()) {
        throw Error("block_table[" + std::to_string(b) + ", " + std::to_string(sb) +
                    "] = " + std::to_string(row[sb]) + ": expected a block in 0.." +
                    std::to_string(kv.num_blocks() - 1) + " (the KV pool)");
      }
    }
    const size_t pos = static_cast<size_t>(len) - 1;
    const int64_t expected = static_cast<int64_t>(row[pos / bs]) * bs + pos % bs;
    if (batch.slot_mapping[b] != expected) {
      throw Error("slot_mapping[" + std::to_string(b) +
                  "] = " + std::to_string(batch.slot_mapping[b]) + ": expected " +
                  std::to_string(expected) + " (block_table[" + std::to_string(b) + ", " +
                  std::to_string(pos / bs) + "] * " + std::to_string(bs) + " + " +
                  std::to_string(pos % bs) + " for seq_len " + std::to_string(len) + ")");
    }
    slots[b] = {batch.slot_mapping[b], b};
  }
  std::sort(slots.begin(), slots.end());
  for (size_t i = 1; i < n; ++i) {
    if (slots[i].first == slots[i - 1].first) {
      throw Error("users " + std::to_string(slots[i - 1].second) + " and " +
                  std::to_string(slots[i].second) + " both write KV slot " +
                  std::to_string(slots[i].first) + ": expected distinct slots");
    }
  }
  const size_t h = config_.hidden;
  for (size_t i = 0; i < n * h; ++i) {
    if (!IsFiniteBf16(hidden[i])) {
      throw Error("hidden_states[" + std::to_string(i / h) + ", " + std::to_string(i % h) +
                  "] is " + ((hidden[i] & 0x7f) ? "NaN" : "Inf") + ": expected finite values");
    }
  }
}

void DecodeLayer::Run(const LayerWeights& w, const RopeTable& rope, PagedKvCache& kv,
                      const DecodeBatch& batch, const bf16* hidden, bf16* next_hidden,
                      StageTimes* times) {
  Validate(batch, kv, rope, hidden);
  const size_t n = batch.batch;
  const size_t h = config_.hidden, q_dim = config_.QDim(), kv_dim = config_.KvDim();
  const size_t dim = config_.head_dim, group = config_.GroupSize(), inter = config_.intermediate;
  const size_t pdim = kv.layout().padded_dim(), attn_ld = AttnStride(config_);
  const size_t heads_kv = config_.kv_heads;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const cpu::CpuKernels& k = kernels_;

  Timed(times, Stage::kInputNorm, [&] {
    pool_.Spmd(
        n,
        [&](size_t b, size_t) {
          k.rms_norm_bf16(hidden + b * h, w.input_norm.data(), h, eps, normed_.data() + b * h);
        },
        ToString(Stage::kInputNorm));
  });

  // q, k and v: one dispatch over the 64-column groups of all three.
  Timed(times, Stage::kQkvProj, [&] {
    const WeightMatrix* mats[3] = {&w.wq, &w.wk, &w.wv};
    const MatmulInput x = Input(normed_.data(), h, n, {mats, 3});
    float* outs[3] = {q_proj_.data(), k_proj_.data(), v_proj_.data()};
    const size_t lds[3] = {q_dim, kv_dim, kv_dim};
    const size_t groups[3] = {Groups(w.wq), Groups(w.wk), Groups(w.wv)};
    pool_.Spmd(
        groups[0] + groups[1] + groups[2],
        [&](size_t block, size_t) {
          size_t m = 0, g = block;
          while (g >= groups[m]) g -= groups[m++];
          const ColumnGroup cg = GroupOf(*mats[m], g);
          float* out = outs[m];
          const size_t ld = lds[m];
          cpu::MatmulGroup(k, x, n, *mats[m], cg.j0, cg.nb,
                           [&](size_t row0, size_t rows, const float* c, size_t ldc) {
                             for (size_t r = 0; r < rows; ++r) {
                               std::memcpy(out + (row0 + r) * ld + cg.col0, c + r * ldc,
                                           cg.cols * 4);
                             }
                           });
        },
        ToString(Stage::kQkvProj));
  });

  // Per (user, KV head): q/k RMSNorm, RoPE at the current position, bf16; K/V into the cache,
  // the group's q heads into their rows of q_tiles_ (only real dims are ever written).
  Timed(times, Stage::kQkNormRopeCache, [&] {
    pool_.Spmd(
        n * heads_kv,
        [&](size_t i, size_t) {
          const size_t b = i / heads_kv, kvh = i % heads_kv;
          const size_t pos = static_cast<size_t>(batch.seq_lens[b]) - 1;
          const float* cos = rope.cos.data() + pos * dim;
          const float* sin = rope.sin.data() + pos * dim;
          bf16 kb[cpu::kMaxHeadDim], vb[cpu::kMaxHeadDim];
          k.head_norm_rope(k_proj_.data() + b * kv_dim + kvh * dim, w.k_norm.data(), cos, sin, dim,
                           eps, kb);
          k.cast_bf16(v_proj_.data() + b * kv_dim + kvh * dim, dim, vb);
          kv.Write(static_cast<size_t>(batch.slot_mapping[b]), kvh, kb, vb);
          bf16* tile = QTile(kvh, b);
          for (size_t g = 0; g < group; ++g) {
            k.head_norm_rope(q_proj_.data() + b * q_dim + (kvh * group + g) * dim, w.q_norm.data(),
                             cos, sin, dim, eps, tile + g * pdim);
          }
        },
        ToString(Stage::kQkNormRopeCache));
  });

  // Split-KV partials: one flat dispatch over every (query block, KV head, split). A query
  // block is consecutive rows of one sequence at consecutive positions (a prefill chunk; a
  // decode row is a block of one) with the same split length: it loads each K/V page once for
  // up to 16 / group queries. A row's partials are the same bits as it computed alone.
  const size_t bs = kv.layout().block_size;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  row_pps_.resize(n);
  if (options_.per_row_splits && options_.pages_per_split == 0) {
    for (size_t b = 0; b < n; ++b) row_pps_[b] = RowPagesPerSplit(batch, b, bs);
  } else {
    std::fill(row_pps_.begin(), row_pps_.end(), PagesPerSplit(batch, bs));
  }
  const size_t max_queries = std::max<size_t>(1, kTileM / group);
  const auto row_splits = [&](size_t b) { return Splits(batch.seq_lens[b], bs, row_pps_[b]); };
  // Whether row b continues the block that ends with row b - 1.
  const auto continues = [&](size_t b) {
    if (batch.seq_lens[b] != batch.seq_lens[b - 1] + 1 || row_pps_[b] != row_pps_[b - 1]) {
      return false;
    }
    const int32_t* prev = batch.block_table + (b - 1) * batch.max_blocks_per_seq;
    const int32_t* cur = batch.block_table + b * batch.max_blocks_per_seq;
    const size_t prev_pages = (static_cast<size_t>(batch.seq_lens[b - 1]) + bs - 1) / bs;
    return std::equal(prev, prev + prev_pages, cur);  // the same sequence's pages
  };
  // The pages [p0, p1) of an item's split: its block's last (longest) row's.
  const auto item_pages = [&](const AttentionItem& it) {
    const size_t last = it.row0 + it.queries - 1;
    const size_t pages = (static_cast<size_t>(batch.seq_lens[last]) + bs - 1) / bs;
    const size_t p0 = it.split * row_pps_[last];
    return std::pair<size_t, size_t>{p0, std::min(pages, p0 + row_pps_[last])};
  };
  Timed(times, Stage::kAttention, [&] {
    items_.clear();
    block_items_.clear();
    row_parts_.clear();
    size_t parts = 0;
    for (size_t b = 0; b < n; ++b) {
      row_parts_.push_back(parts);
      parts += heads_kv * row_splits(b);
    }
    row_parts_.push_back(parts);
    for (size_t b0 = 0; b0 < n;) {
      size_t queries = 1;
      while (b0 + queries < n && queries < max_queries && continues(b0 + queries)) ++queries;
      block_items_.push_back(items_.size());
      const size_t splits = row_splits(b0 + queries - 1);  // the longest row's
      for (size_t kvh = 0; kvh < heads_kv; ++kvh) {
        for (size_t s = 0; s < splits; ++s) {
          items_.push_back({static_cast<uint32_t>(b0), static_cast<uint32_t>(queries),
                            static_cast<uint32_t>(kvh), static_cast<uint32_t>(s)});
        }
      }
      b0 += queries;
    }
    block_items_.push_back(items_.size());
    ReserveParts(parts);
    // Static ranges balanced by pages (rows of a pass differ in length): each item costs its
    // pages plus one for its fixed work (the softmax of its first page, writing the partial).
    item_cost_.resize(items_.size());
    for (size_t i = 0; i < items_.size(); ++i) {
      const auto [p0, p1] = item_pages(items_[i]);
      item_cost_[i] = static_cast<uint32_t>(p1 - p0 + 1);
    }
    auto partial = [&](size_t i) {
      const AttentionItem it = items_[i];
      const size_t last = it.row0 + it.queries - 1;
      const auto [p0, p1] = item_pages(it);
      const int32_t* table = batch.block_table + last * batch.max_blocks_per_seq;
      const bf16* k_pages[kMaxPagesPerSplit];
      const bf16* v_pages[kMaxPagesPerSplit];
      for (size_t p = p0; p < p1; ++p) {
        k_pages[p - p0] = kv.KPage(table[p], it.kv_head);
        v_pages[p - p0] = kv.VPage(table[p], it.kv_head);
      }
      size_t lens[kTileM];
      float* o[kTileM];
      float* m[kTileM];
      float* l[kTileM];
      for (size_t qi = 0; qi < it.queries; ++qi) {
        const size_t b = it.row0 + qi, splits = row_splits(b);
        lens[qi] = static_cast<size_t>(batch.seq_lens[b]);
        const size_t part = row_parts_[b] + it.kv_head * splits + it.split;
        const bool has = it.split < splits;  // a shorter row may end a split earlier
        o[qi] = has ? part_o_.data() + part * group * dim : nullptr;
        m[qi] = has ? part_m_.data() + part * group : nullptr;
        l[qi] = has ? part_l_.data() + part * group : nullptr;
      }
      cpu::AttentionPartialQueries(k, kv.layout(), QTile(it.kv_head, it.row0), pdim, group,
                                   it.queries, lens, p0, k_pages, v_pages, p1 - p0, scale, o, m, l);
    };
    if (!options_.attention_per_user) {
      BalancedRanges(item_cost_, pool_.NumWorkers(), item_bounds_);
      pool_.SpmdRanges(
          item_bounds_, [&](size_t i, size_t) { partial(i); }, ToString(Stage::kAttention));
    } else {  // the benchmark's variant: one dispatch per user (block), as before PR #387
      for (size_t blk = 0; blk + 1 < block_items_.size(); ++blk) {
        const size_t first = block_items_[blk];
        pool_.Spmd(
            block_items_[blk + 1] - first, [&](size_t i, size_t) { partial(first + i); },
            ToString(Stage::kAttention));
      }
    }
  });

  Timed(times, Stage::kAttentionMerge, [&] {
    auto merge = [&](size_t i) {
      const size_t b = i / heads_kv, kvh = i % heads_kv;
      const size_t splits = row_splits(b);
      const size_t part = row_parts_[b] + kvh * splits;  // parts: row, then head, then split
      cpu::AttentionMerge(part_o_.data() + part * group * dim, part_m_.data() + part * group,
                          part_l_.data() + part * group, splits, group * dim, group, group, dim,
                          attn_out_.data() + b * attn_ld + kvh * group * dim);
    };
    if (!options_.attention_per_user) {
      pool_.Spmd(
          n * heads_kv, [&](size_t i, size_t) { merge(i); }, ToString(Stage::kAttentionMerge));
    } else {
      for (size_t b = 0; b < n; ++b) {
        pool_.Spmd(
            heads_kv, [&](size_t i, size_t) { merge(b * heads_kv + i); },
            ToString(Stage::kAttentionMerge));
      }
    }
  });

  // out_proj with the residual in its epilogue: resid1 = attn . wo + hidden (fp32).
  float* scratch = options_.fused_epilogues ? nullptr : unfused_scratch_.data();
  float* resid1 = resid1_.data();
  Timed(times, Stage::kOutProj, [&] {
    Project(pool_, k, ToString(Stage::kOutProj), Input(attn_out_.data(), attn_ld, n, w.wo), n,
            w.wo, scratch,
            [=](size_t r, size_t c, float acc) {
              resid1[r * h + c] = acc + Bf16ToF32(hidden[r * h + c]);
            });
  });

  Timed(times, Stage::kPostNorm, [&] {
    pool_.Spmd(
        n,
        [&](size_t b, size_t) {
          k.rms_norm_f32(resid1 + b * h, w.post_norm.data(), h, eps, post_normed_.data() + b * h);
        },
        ToString(Stage::kPostNorm));
  });

  // gate and up in one K loop; mlp = bf16(silu(gate) * up) in the epilogue.
  bf16* mlp = mlp_.data();
  Timed(times, Stage::kGateUpSilu, [&] {
    ProjectGateUp(pool_, k, ToString(Stage::kGateUpSilu),
                  Input(post_normed_.data(), h, n, w.w_gate_up), n, w.w_gate_up, scratch,
                  [&](size_t r, size_t c, const float* gate, const float* up, size_t count) {
                    k.silu_mul(gate, up, count, mlp + r * inter + c);
                  });
  });

  // down_proj with the residual: next_hidden = bf16(mlp . w_down + resid1).
  Timed(times, Stage::kDownProj, [&] {
    Project(pool_, k, ToString(Stage::kDownProj), Input(mlp, inter, n, w.w_down), n, w.w_down,
            scratch,
            [=](size_t r, size_t c, float acc) {
              next_hidden[r * h + c] = F32ToBf16(acc + resid1[r * h + c]);
            });
  });
}

MatmulInput DecodeLayer::Input(const bf16* a, size_t lda, size_t rows,
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

MatmulInput DecodeLayer::Input(const bf16* a, size_t lda, size_t rows, const WeightMatrix& w) {
  const WeightMatrix* p = &w;
  return Input(a, lda, rows, {&p, 1});
}

void DecodeLayer::RunLmHead(const LmHeadWeights& lm, const bf16* hidden, size_t batch,
                            float* logits, size_t ld_logits, StageTimes* times) {
  if (batch < 1 || batch > options_.max_batch) {
    throw Error("batch = " + std::to_string(batch) + ": expected 1.." +
                std::to_string(options_.max_batch));
  }
  const size_t h = config_.hidden;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  Timed(times, Stage::kFinalNorm, [&] {
    pool_.Spmd(
        batch,
        [&](size_t b, size_t) {
          kernels_.rms_norm_bf16(hidden + b * h, lm.final_norm.data(), h, eps,
                                 final_normed_.data() + b * h);
        },
        ToString(Stage::kFinalNorm));
  });
  if (lm.rows == 0) return;
  Timed(times, Stage::kLmHead, [&] {
    Project(pool_, kernels_, ToString(Stage::kLmHead), Input(final_normed_.data(), h, batch, lm.weight),
            batch, lm.weight, nullptr, [=](size_t r, size_t c, float acc) { logits[r * ld_logits + c] = acc; });
  });
}

}  // namespace qwen3
