// A GGUF checkpoint's tensors packed into the model's weights: Q8_0 / Q4_0 / Q4_K / Q6_K
// matrices repacked once for the int8 kernels (no dequantization: memory ~ the file's bytes,
// quant_matrix.h), BF16 ones packed for the bf16 kernels straight from the mapping, F16/F32
// ones rounded to bf16 (or quantized with LoadOptions::quantize), norm vectors as fp32. A tied
// model's LM head is its token embedding, stored once.
#include <cstring>
#include <optional>

#include "base/error.h"
#include "base/f16.h"
#include "io/gguf_checkpoint.h"
#include "io/load_weights.h"

namespace qwen3 {
namespace {

// The weight type a GGUF type is held as; bf16 for the float types (GgufCheckpoint::Open
// admitted only F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K).
WeightType HeldAs(GgmlType t) {
  switch (t) {
    case GgmlType::kQ8_0:
      return WeightType::kQ8_0;
    case GgmlType::kQ4_0:
      return WeightType::kQ4_0;
    case GgmlType::kQ4_K:
      return WeightType::kQ4_K;
    case GgmlType::kQ6_K:
      return WeightType::kQ6_K;
    default:
      return WeightType::kBf16;
  }
}

// A float tensor's values as bf16 (BF16: the mapping itself when aligned).
class GgufBf16 {
 public:
  explicit GgufBf16(const GgufTensor& t) {
    const size_t n = t.Elements();
    if (t.type == GgmlType::kBF16 && reinterpret_cast<uintptr_t>(t.data) % alignof(bf16) == 0) {
      ptr_ = reinterpret_cast<const bf16*>(t.data);
      return;
    }
    owned_ = AlignedBuffer<bf16>(n);
    for (size_t i = 0; i < n; ++i) owned_[i] = F32ToBf16(ValueAt(t, i));
    ptr_ = owned_.data();
  }
  const bf16* data() const { return ptr_; }

  static float ValueAt(const GgufTensor& t, size_t i) {
    switch (t.type) {
      case GgmlType::kF32: {
        float f;
        std::memcpy(&f, t.data + 4 * i, 4);
        return f;
      }
      case GgmlType::kF16: {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        return F16ToF32(h);
      }
      case GgmlType::kBF16: {
        bf16 b;
        std::memcpy(&b, t.data + 2 * i, 2);
        return Bf16ToF32(b);
      }
      default:
        throw Error(t.Where() + ": type " + ToString(t.type) + " is not a float type");
    }
  }

 private:
  AlignedBuffer<bf16> owned_;
  const bf16* ptr_ = nullptr;
};

std::unique_ptr<Weight> Norm(const GgufCheckpoint& ck, const std::string& name, Executor& x) {
  const GgufTensor& t = ck.Get(name);
  AlignedBuffer<float> f(t.Elements());
  for (size_t i = 0; i < f.size(); ++i) f[i] = GgufBf16::ValueAt(t, i);
  return x.PackNorm(f.data(), f.size(), name);
}

// A [out, in] matrix (ggml dims [in, out]): a quantized type's blocks as the file has them, a
// float type's values as bf16 (src, which must outlive the packing).
HostMatrix Host(const GgufCheckpoint& ck, const std::string& name, std::optional<GgufBf16>& src) {
  const GgufTensor& t = ck.Get(name);
  const WeightType held = HeldAs(t.type);
  if (held != WeightType::kBf16) return {name, held, t.data, t.dims[1], t.dims[0], false};
  src.emplace(t);
  return {name, WeightType::kBf16, src->data(), t.dims[1], t.dims[0], false};
}

std::unique_ptr<Weight> Linear(const GgufCheckpoint& ck, const std::string& name, WeightRole role,
                               Executor& x, const LoadOptions& o) {
  std::optional<GgufBf16> src;
  const HostMatrix m = Host(ck, name, src);
  // Quantized tensors are repacked as they are: --quantize applies to float tensors only.
  return x.PackLinear(m, role, m.type == WeightType::kBf16 ? o.quantize : std::nullopt);
}

std::unique_ptr<Weight> GateUp(const GgufCheckpoint& ck, const std::string& gn,
                               const std::string& un, Executor& x, const LoadOptions& o) {
  const GgufTensor& g = ck.Get(gn);
  const GgufTensor& u = ck.Get(un);
  const bool qg = HeldAs(g.type) != WeightType::kBf16, qu = HeldAs(u.type) != WeightType::kBf16;
  if (qg != qu) {
    throw Error(g.Where() + ": " + ToString(g.type) + " with " + un + " " + ToString(u.type) +
                ": expected both quantized or both float (they are computed as one matrix)");
  }
  std::optional<GgufBf16> gs, us;
  const HostMatrix hg = Host(ck, gn, gs), hu = Host(ck, un, us);
  return x.PackGateUp(hg, hu, qg ? std::nullopt : o.quantize);
}

}  // namespace

ModelWeights LoadModelWeights(const GgufCheckpoint& ck, Executor& x, const LoadOptions& o) {
  ModelWeights w;
  const Qwen3Config& c = ck.config();
  w.config = c;
  for (int i = 0; i < c.layers; ++i) {
    const auto name = [&](const char* leaf) { return GgufNames::Layer(i, leaf); };
    LayerWeights l;
    l.input_norm = Norm(ck, name("attn_norm.weight"), x);
    l.post_norm = Norm(ck, name("ffn_norm.weight"), x);
    l.q_norm = Norm(ck, name("attn_q_norm.weight"), x);
    l.k_norm = Norm(ck, name("attn_k_norm.weight"), x);
    l.wq = Linear(ck, name("attn_q.weight"), WeightRole::kQ, x, o);
    l.wk = Linear(ck, name("attn_k.weight"), WeightRole::kK, x, o);
    l.wv = Linear(ck, name("attn_v.weight"), WeightRole::kV, x, o);
    l.wo = Linear(ck, name("attn_output.weight"), WeightRole::kO, x, o);
    l.w_gate_up = GateUp(ck, name("ffn_gate.weight"), name("ffn_up.weight"), x, o);
    l.w_down = Linear(ck, name("ffn_down.weight"), WeightRole::kDown, x, o);
    w.layers.push_back(std::move(l));
  }
  w.lm.final_norm = Norm(ck, GgufNames::FinalNorm(), x);
  w.lm.rows = c.vocab;
  if (c.tied_embeddings) {  // one table: the LM head, whose columns are the embedding rows
    w.lm.weight = Linear(ck, GgufNames::Embed(), WeightRole::kLmHead, x, o);
    return w;
  }
  w.lm.weight = Linear(ck, GgufNames::LmHead(), WeightRole::kLmHead, x, o);
  std::optional<GgufBf16> src;  // read a row per token: a quantized table is kept as it is
  w.embed = x.PackEmbedding(Host(ck, GgufNames::Embed(), src));
  return w;
}

}  // namespace qwen3
