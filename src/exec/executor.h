// The executor seam: what one stage of the decode program (spec §3) does over a batch of rows,
// on some device. The model (model/) holds the program and the schema; an executor holds the
// memory and the kernels: it packs weights from host tensors into its own layout, allocates its
// KV pools and the activations of a pass, and runs each stage over rows [0, n) of them. It
// says no (Supports) to what it cannot run, as ggml's backends do.
//
// Executors: "cpu" (exec/cpu: the packed bf16 / int8 kernels of every CPU path) and
// "reference" (exec/reference: plain float32 loops, the engine's own truth). A new device is a
// new folder and one row of MakeExecutor's table. How the interface admits a mixture-of-experts
// FFN and tensor parallelism: docs/ARCHITECTURE.md, "The executor seam".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/bf16.h"
#include "exec/decode_batch.h"
#include "exec/host_matrix.h"
#include "exec/rope_table.h"
#include "exec/stage.h"
#include "exec/weight_type.h"

namespace qwen3 {

class ThreadPool;

// The shapes every stage of one model shares (model/ derives them from its config).
struct ModelDims {
  size_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  float eps = 1e-6f;  // RMSNorm epsilon
  // Mixture of experts (0 experts: dense): each row's top experts_used of experts, each an FFN
  // moe_intermediate wide; norm_topk renormalizes their weights to sum 1.
  size_t experts = 0, experts_used = 0, moe_intermediate = 0;
  bool norm_topk = false;

  size_t q_dim() const { return heads * head_dim; }
  size_t kv_dim() const { return kv_heads * head_dim; }
  size_t group() const { return heads / kv_heads; }
};

// The activations of a pass, executor-owned: [max_rows, width] each, in the executor's element
// type and layout (the CPU's bf16 / fp32 per the seed's rounding points; the reference's fp32).
enum class Act {
  kHidden,  // [hidden]: the layer's input, then (in place) its output
  kNormed,  // [hidden]: an RMSNorm's output, the next projection's input
  kQkv,     // [q_dim + 2 kv_dim]: q, k and v before their norms
  kAttn,    // [q_dim]: the attention output
  kResid,   // [hidden]: hidden + attention (the residual inside a layer)
  kMlp,     // [intermediate]: silu(gate) * up
  kLmRows,  // [hidden]: the rows of hidden that want logits, gathered
};

// What a weight is for: a tensor-parallel executor shards by it (columns of kQ/kK/kV/kGateUp,
// rows of kO/kDown, the vocabulary of kLmHead); others may ignore it.
// An MoE layer's experts are kGateUp and kDown weights each, its router kRouter.
enum class WeightRole { kQ, kK, kV, kO, kGateUp, kDown, kLmHead, kEmbedding, kNorm, kRouter };

// A weight packed by an executor (opaque to the model).
class Weight {
 public:
  virtual ~Weight() = default;
  virtual size_t bytes() const = 0;  // resident bytes
  virtual WeightType type() const = 0;  // the matrices' type (bf16 for vectors)
};

// How a KV cache stores K and V: bf16 (the seed's), or 8-bit codes (--kv-type q8_0, as
// llama.cpp's -ctk/-ctv q8_0: K with a scale per 32 dims of a token, V one per token), 0.54x
// the bytes (exec/cpu/attention_q8.h).
enum class KvType { kBf16, kQ8_0 };
// "bf16" | "q8_0" (the --kv-type flag); an Error naming the value and the choices otherwise.
KvType ParseKvType(const std::string& name);
const char* KvTypeName(KvType type);

// The KV cache of one layer: num_blocks blocks of block_size tokens, every KV head.
class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual size_t num_blocks() const = 0;
  virtual size_t kv_heads() const = 0;
  virtual size_t head_dim() const = 0;
  virtual size_t block_size() const = 0;
  virtual size_t bytes() const = 0;
};

// A projection's epilogue, run on the accumulators: store them, add a residual activation
// (the result is the output's element type: out_proj's fp32 resid, down_proj's next hidden),
// or bf16(silu(gate) * up) of a gate|up weight (PackGateUp).
struct Epilogue {
  enum class Kind { kStore, kAddResidual, kSiluMul };
  Kind kind = Kind::kStore;
  Act residual = Act::kHidden;

  static Epilogue Store() { return {}; }
  static Epilogue AddResidual(Act a) { return {Kind::kAddResidual, a}; }
  static Epilogue SiluMul() { return {Kind::kSiluMul, Act::kHidden}; }
};

// An MoE layer's FFN weights: the router [experts, hidden] (PackRouter), the RMSNorm weight
// that made the FFN's input from the residual (PackNorm), and per expert a PackGateUp and a
// PackLinear (down) weight.
struct MoeWeights {
  const Weight* router = nullptr;
  const Weight* norm = nullptr;
  std::span<const Weight* const> gate_up, down;
};

// What Supports is asked about. kMoeFfn is the mixture-of-experts FFN stage (router, top-k,
// per-expert gate|up and down over the rows routed to each expert, weighted sum).
enum class Op { kRmsNorm, kLinear, kQkNormRopeKv, kAttention, kEmbed, kLogits, kMoeFfn };
struct OpShape {
  const ModelDims* dims = nullptr;
  size_t rows = 0;        // rows per pass
  size_t block_size = 0;  // KV block (kAttention, kQkNormRopeKv)
  WeightType weight = WeightType::kBf16;  // kLinear, kLogits, kEmbed
};

// How attention splits a row's KV pages (exec/cpu/attention_plan.h): pages_per_split 0 picks
// automatically; per_row_splits picks each row's split length from its own length alone, so a
// row's result never depends on the other rows of its pass (batch invariance).
struct AttentionOptions {
  size_t pages_per_split = 0;
  bool per_row_splits = true;
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::string name() const = 0;  // "cpu (avx512bf16)", "reference"
  virtual bool Supports(Op op, const OpShape& shape) const = 0;

  // ---- memory
  // A projection ([out, in] or the seed's [in, out]); quantize: bf16 values to a block type.
  virtual std::unique_ptr<Weight> PackLinear(const HostMatrix& m, WeightRole role,
                                             std::optional<WeightType> quantize) = 0;
  // gate and up [intermediate, hidden] as one weight whose SiluMul epilogue gives the MLP.
  virtual std::unique_ptr<Weight> PackGateUp(const HostMatrix& gate, const HostMatrix& up,
                                             std::optional<WeightType> quantize) = 0;
  // An RMSNorm weight (fp32; NaN/Inf is an Error naming the tensor).
  virtual std::unique_ptr<Weight> PackNorm(const float* w, size_t n, const std::string& name) = 0;
  // A token embedding table [vocab, hidden], read a row per token.
  virtual std::unique_ptr<Weight> PackEmbedding(const HostMatrix& table) = 0;
  // An MoE router [experts, hidden] in fp32 (router logits are fp32 in every reference).
  virtual std::unique_ptr<Weight> PackRouter(const float* w, size_t experts, size_t hidden,
                                             const std::string& name) = 0;
  virtual std::unique_ptr<KvCache> NewKvCache(size_t num_blocks, size_t block_size) = 0;
  // KV bytes per token per layer as this executor stores them.
  virtual size_t KvBytesPerToken() const = 0;
  // Activations for passes of up to max_rows rows (grows, never shrinks).
  virtual void Reserve(size_t max_rows) = 0;
  virtual size_t max_rows() const = 0;

  // ---- host edges (tests, tools, the seed harness)
  virtual void Upload(Act act, const bf16* rows, size_t n) = 0;  // [n, width] bf16
  virtual void Download(Act act, size_t n, bf16* rows) = 0;
  // Throws Error "hidden_states[r, c] is NaN: ..." for the first non-finite value of act.
  virtual void CheckFinite(Act act, size_t n) = 0;
  // The seed's KV layout: rows of head_dim, row = (block * kv_heads + head) * block_size + t.
  virtual void ImportKv(KvCache& kv, const bf16* k_rows, const bf16* v_rows) = 0;
  virtual void ExportKv(const KvCache& kv, bf16* k_rows, bf16* v_rows) = 0;

  // ---- stages, over rows [0, n) of the activations
  // out[r] = embedding row of tokens[r] of a PackEmbedding table or a PackLinear LM head (tied).
  virtual void Embed(const Weight& table, std::span<const int32_t> tokens, Act out) = 0;
  virtual void RmsNorm(Stage stage, const Weight& w, Act in, Act out, size_t n) = 0;
  // One dispatch over every weight's columns: in . w[0] | w[1] | ..., then the epilogue.
  virtual void Linear(Stage stage, std::span<const Weight* const> w, Act in, Act out, size_t n,
                      Epilogue epi) = 0;
  // q/k RMSNorm and RoPE at each row's position (seq_lens - 1); K and V into kv at the rows'
  // slots; q kept for Attention. Reads kQkv.
  virtual void QkNormRopeKv(const Weight& q_norm, const Weight& k_norm, const RopeTable& rope,
                            KvCache& kv, const DecodeBatch& batch) = 0;
  // Each row's q over its sequence's pages (split-KV partials, then their merge) into out.
  virtual void Attention(const KvCache& kv, const DecodeBatch& batch,
                         const AttentionOptions& options, Act out) = 0;
  // The MoE FFN of rows [0, n): per row, router logits in fp32 of the normed row in fp32
  // (resid through w.norm: what `in` holds before any rounding to the executor's matmul
  // input type; llama.cpp's router sees fp32 too), softmax over all experts, the top experts_used by probability (ties: the lower
  // expert id), their weights renormalized when norm_topk; then
  //   hidden[r] = resid[r] + sum over its experts j (in that order) of w_j * down_j(silu(gate_j x) * up_j x)
  // with each expert's matmuls run once over all rows routed to it. A row's result depends
  // on its own input alone (batch invariance). chosen (may be null) receives each row's
  // experts, [n, experts_used], in the order summed.
  virtual void MoeFfn(const MoeWeights& w, Act in, Act resid, Act out, size_t n,
                      int32_t* chosen) = 0;
  // Gathers rows[i] of in into row i of out.
  virtual void SelectRows(Act in, std::span<const uint32_t> rows, Act out) = 0;
  // logits[r * ld + v] = in[r] . lm_head[:, v] (fp32, host memory) for v < the head's rows.
  virtual void Logits(const Weight& lm_head, Act in, size_t n, float* logits, size_t ld) = 0;

  // Stage times accumulate here while set (null: none).
  void set_times(StageTimes* times) { times_ = times; }

 protected:
  StageTimes* times_ = nullptr;
};

struct ExecutorOptions {
  std::string device = "cpu";  // "cpu" | "reference"
  size_t max_rows = 16;        // Reserve at construction
  KvType kv_type = KvType::kBf16;  // NewKvCache's (the reference's KV is fp32: bf16 only)
};

// The executor named options.device for a model of these dims on pool's workers; throws Error
// naming an unknown device and the known ones.
std::unique_ptr<Executor> MakeExecutor(const ModelDims& dims, const ExecutorOptions& options,
                                       ThreadPool& pool);

}  // namespace qwen3
