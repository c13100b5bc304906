// The reference executor (--device reference): every stage as plain loops, no SIMD, float32
// throughout: weights as stored (bf16 values exactly; quantized types dequantized exactly to
// the values llama.cpp's block formats define), activations, KV cache and residual in fp32,
// dot products and norms accumulated in double. Rows are computed independently, so it is
// batch invariant too. It is the engine's own truth: it reproduces transformers' and gguf-py's
// float32 references (../shared/testdata) to ~1e-5, where the CPU executor's bf16 / int8
// recipe is ~1e-2 off; new architectures are checked against it first. Slow by design.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "exec/executor.h"

namespace qwen3 {

class ReferenceExecutor final : public Executor {
 public:
  ReferenceExecutor(const ModelDims& dims, ThreadPool& pool, size_t max_rows = 16);

  std::string name() const override { return "reference"; }
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

 private:
  std::vector<float>& Buffer(Act act);
  size_t Width(Act act) const;

  ModelDims dims_;
  ThreadPool& pool_;
  size_t max_rows_ = 0;
  std::vector<float> hidden_, normed_, qkv_, q_, attn_, resid_, mlp_, lm_rows_;
};

}  // namespace qwen3
