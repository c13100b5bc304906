// The CPU executor: each stage of the program as ONE flat SPMD dispatch of independent blocks
// over the whole batch (ThreadPool::Spmd), on one CPU path's kernel table (kernels.h).
// Projections run their epilogues on the L1 accumulator block (fused_matmul.h); attention is
// split-KV partials over the paged cache then their merge (attention.h, attention_plan.h).
// Activations are rows padded to whole 16-row tiles; padded rows are computed but never
// written to an output. A pass allocates nothing once the workspace has grown to its shape.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/attention_plan.h"
#include "exec/cpu/fused_matmul.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/kv_cache.h"
#include "exec/cpu/kv_cache_q8.h"
#include "exec/cpu/quant_rows.h"
#include "exec/executor.h"

namespace qwen3::cpu {

class CpuExecutor : public Executor {
 public:
  CpuExecutor(const ModelDims& dims, const CpuKernels& kernels, ThreadPool& pool,
              size_t max_rows = kTileM, KvType kv_type = KvType::kBf16);

  std::string name() const override;
  bool Supports(Op op, const OpShape& shape) const override;

  std::unique_ptr<Weight> PackLinear(const HostMatrix& m, WeightRole role,
                                     std::optional<WeightType> quantize) override;
  std::unique_ptr<Weight> PackGateUp(const HostMatrix& gate, const HostMatrix& up,
                                     std::optional<WeightType> quantize) override;
  std::unique_ptr<Weight> PackNorm(const float* w, size_t n, const std::string& name) override;
  std::unique_ptr<Weight> PackEmbedding(const HostMatrix& table) override;
  std::unique_ptr<Weight> PackRouter(const float* w, size_t experts, size_t hidden,
                                     const std::string& name) override;
  std::unique_ptr<KvCache> NewKvCache(size_t num_blocks, size_t block_size) override;
  size_t KvBytesPerToken() const override;
  void Reserve(size_t max_rows) override;
  size_t max_rows() const override { return max_rows_; }

  void Upload(Act act, const bf16* rows, size_t n) override;
  void Download(Act act, size_t n, bf16* rows) override;
  void CheckFinite(Act act, size_t n) override;
  void ImportKv(KvCache& kv, const bf16* k_rows, const bf16* v_rows) override;
  void ExportKv(const KvCache& kv, bf16* k_rows, bf16* v_rows) override;

  void Embed(const Weight& table, std::span<const int32_t> tokens, Act out) override;
  void RmsNorm(Stage stage, const Weight& w, Act in, Act out, size_t n) override;
  void Linear(Stage stage, std::span<const Weight* const> w, Act in, Act out, size_t n,
              Epilogue epi) override;
  void QkNormRopeKv(const Weight& q_norm, const Weight& k_norm, const RopeTable& rope,
                    KvCache& kv, const DecodeBatch& batch) override;
  void Attention(const KvCache& kv, const DecodeBatch& batch, const AttentionOptions& options,
                 Act out) override;
  void MoeFfn(const MoeWeights& w, Act in, Act resid, Act out, size_t n,
              int32_t* chosen) override;
  void SelectRows(Act in, std::span<const uint32_t> rows, Act out) override;
  void Logits(const Weight& lm_head, Act in, size_t n, float* logits, size_t ld) override;

  const CpuKernels& kernels() const { return kernels_; }
  ThreadPool& pool() { return pool_; }
  const ModelDims& dims() const { return dims_; }

 protected:
  // For the benchmark's variants (tools/bench_variants.h): an activation's rows and stride.
  struct Rows {
    void* data;
    size_t ld;  // elements per row
    bool f32;   // fp32, else bf16
  };
  Rows RowsOf(Act act);
  // The A operand of a stage's weights: rows [0, rows) of a, quantized per row when any of the
  // weights is (once for all of them: they share k).
  MatmulInput Input(const bf16* a, size_t lda, size_t rows,
                    std::span<const WeightMatrix* const> weights);
  // Partials of every item of plan_ (already planned for batch), dispatched over [i0, i1).
  // kv: a PagedKvCache, or a PagedKvCacheQ8 with the q8_0 KV type.
  void AttentionPartials(const KvCache& kv, const DecodeBatch& batch, size_t i0, size_t i1,
                         bool balanced);
  // Merges row b, KV head kvh's partials into out.
  void AttentionMergeOne(const DecodeBatch& batch, size_t b, size_t kvh, bf16* out, size_t ld);
  void PlanAndReserve(const KvCache& kv, const DecodeBatch& batch, const AttentionOptions& o);

  ModelDims dims_;
  const CpuKernels& kernels_;
  ThreadPool& pool_;
  KvType kv_type_;

 private:
  // q_tiles_ is [kv_head][row][group][padded head_dim] plus 16 zero rows per head, so the rows
  // of consecutive queries are one A operand with 16 readable rows from any row on.
  size_t QTileRowsPerHead() const { return max_rows_ * dims_.group() + kTileM; }
  bf16* QTile(size_t kv_head, size_t row);
  void ReserveParts(size_t parts);

  size_t max_rows_ = 0;
  size_t part_capacity_ = 0;  // partials the part_* buffers hold
  // Workspace, rows padded to whole 16-row tiles.
  AlignedBuffer<bf16> hidden_;            // [rows, hidden]
  AlignedBuffer<bf16> normed_;            // [rows, hidden]
  AlignedBuffer<float> qkv_;              // [rows, q_dim + 2 kv_dim]
  AlignedBuffer<bf16> q_tiles_;           // see QTile
  AlignedBuffer<float> part_o_;           // [parts][group][head_dim]
  AlignedBuffer<float> part_m_, part_l_;  // [parts][group]
  AlignedBuffer<bf16> attn_out_;          // [rows, q_dim padded to 32], padding 0
  AlignedBuffer<float> resid_;            // [rows, hidden]
  AlignedBuffer<bf16> mlp_;               // [rows, intermediate]
  AlignedBuffer<bf16> lm_rows_;           // [rows, hidden]
  QuantizedRows quant_rows_;              // a stage's A operand, for quantized weights
  QuantRows quant_view_;
  // MoE (moe_ffn.cc): per row its experts and weights, and where each routed copy of it lies in
  // the rows gathered expert by expert ([experts' segments] + kTileM readable rows).
  struct MoeItem {
    uint32_t expert, group;
  };
  void MoeRoute(const MoeWeights& w, Act in, Act resid, size_t n);
  void MoeExperts(const MoeWeights& w, Act resid, Act out, size_t n);
  // The two strategies of the experts' matmuls (the same bits: every row through the same
  // kernels): whole experts per worker in one dispatch, or column groups in two.
  void MoeExpertsWhole(const MoeWeights& w, const MatmulInput& xg);
  void MoeExpertsByGroups(const MoeWeights& w, const MatmulInput& xg, size_t n);
  // Column group g of an expert's down for its rows [r0, r0 + rows) into moe_y_ (fp32).
  void DownGroup(const MatmulInput& xd, size_t rows, const WeightMatrix& down, size_t g,
                 size_t r0);
  // moe_items_ = the (expert, column group) blocks of the routed experts' weights; quantized =
  // one of them that is quantized, if any.
  void ListExpertGroups(std::span<const Weight* const> weights, const WeightMatrix*& quantized);
  std::vector<int32_t> moe_ids_;              // [rows, k]
  std::vector<float> moe_weights_;            // [rows, k]
  std::vector<uint32_t> moe_slot_;            // [rows, k]: its gathered row
  std::vector<uint32_t> moe_start_;           // [experts + 1]: segment starts
  std::vector<uint32_t> moe_fill_;            // [experts]: MoeRoute's next row per segment
  std::vector<MoeItem> moe_items_;            // a dispatch's (expert, column group) blocks
  std::vector<uint32_t> moe_units_, moe_cost_;  // MoeExpertsWhole: routed experts, their costs
  std::vector<size_t> moe_bounds_;            // MoeExpertsWhole: each worker's units
  bool moe_quant_x_ = false;                  // a routed gate|up is quantized: moe_xg_ is used
  AlignedBuffer<float> moe_logits_, moe_probs_;  // [rows, experts]
  AlignedBuffer<float> moe_router_in_;        // [workers, hidden]: a worker's fp32 normed row
  AlignedBuffer<bf16> moe_x_;                 // [rows * k + 16, hidden]
  QuantizedRows moe_xq_;                      // [rows, hidden]: the input rows quantized
  QuantizedRows moe_xg_;                      // [rows * k, hidden]: moe_xq_'s rows gathered
  AlignedBuffer<bf16> moe_mlp_;               // [rows * k + 16, moe_intermediate]
  AlignedBuffer<bf16> moe_mlp_w_;             // [workers][rows + 16, moe_intermediate]
  std::vector<QuantizedRows> moe_mlp_q_;      // per worker: its expert's mlp rows quantized
  AlignedBuffer<float> moe_y_;                // [rows * k + 16, hidden]

 protected:
  AttentionPlan plan_;
};

}  // namespace qwen3::cpu
