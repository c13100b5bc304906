// A GGUF checkpoint's tensors packed into the model's weights: Q8_0 / Q4_0 / Q4_K / Q6_K
// matrices repacked once for the int8 kernels (no dequantization: memory ~ the file's bytes,
// quant_matrix.h), BF16 ones packed for the bf16 kernels straight from the mapping, F16/F32
// ones rounded to bf16 (or quantized with LoadOptions::quantize), norm vectors as fp32. A tied
// model's LM head is its token embedding, stored once.
#include <cstring>

#include "base/error.h"
#include "base/f16.h"
#include "io/gguf_checkpoint.h"
#include "io/load_weights.h"
#include "kernels/cpu/weight_matrix.h"
#include "model/layer_weights.h"

namespace qwen3 {
namespace {

// The weight type a GGUF type is held as; bf16 for the float types (GgufCheckpoint::Open
// admitted only F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K).
cpu::WeightType HeldAs(GgmlType t) {
  switch (t) {
    case GgmlType::kQ8_0:
      return cpu::WeightType::kQ8_0;
    case GgmlType::kQ4_0:
      return cpu::WeightType::kQ4_0;
    case GgmlType::kQ4_K:
      return cpu::WeightType::kQ4_K;
    case GgmlType::kQ6_K:
      return cpu::WeightType::kQ6_K;
    default:
      return cpu::WeightType::kBf16;
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

AlignedBuffer<float> Norm(const GgufCheckpoint& ck, const std::string& name) {
  const GgufTensor& t = ck.Get(name);
  AlignedBuffer<float> f(t.Elements());
  for (size_t i = 0; i < f.size(); ++i) f[i] = GgufBf16::ValueAt(t, i);
  return CopyFinite(f.data(), f.size(), name);
}

// A [out, in] linear (ggml dims [in, out]) as [in -> out].
cpu::WeightMatrix Linear(const GgufCheckpoint& ck, const std::string& name, ThreadPool& pool,
                         const LoadOptions& o) {
  const GgufTensor& t = ck.Get(name);
  const size_t k = t.dims[0], n = t.dims[1];
  const cpu::WeightType held = HeldAs(t.type);
  if (held != cpu::WeightType::kBf16) {
    return cpu::QuantMatrix::FromGguf(held, t.data, n, k, name, pool);
  }
  const GgufBf16 src(t);
  if (o.quantize) return cpu::QuantMatrix::Quantize(src.data(), n, k, *o.quantize, name, pool);
  return cpu::PackedMatrix::FromOutIn(src.data(), n, k, name, pool);
}

cpu::WeightMatrix GateUp(const GgufCheckpoint& ck, const std::string& gn, const std::string& un,
                         ThreadPool& pool, const LoadOptions& o) {
  const GgufTensor& g = ck.Get(gn);
  const GgufTensor& u = ck.Get(un);
  const size_t k = g.dims[0], n = g.dims[1];
  const cpu::WeightType hg = HeldAs(g.type), hu = HeldAs(u.type);
  if (hg != cpu::WeightType::kBf16 && hu != cpu::WeightType::kBf16) {
    return cpu::QuantMatrix::FromGgufInterleaved(hg, g.data, hu, u.data, n, k, gn, un, pool);
  }
  if (hg != cpu::WeightType::kBf16 || hu != cpu::WeightType::kBf16) {
    throw Error(g.Where() + ": " + ToString(g.type) + " with " + un + " " + ToString(u.type) +
                ": expected both quantized or both float (they are computed as one matrix)");
  }
  const GgufBf16 a(g), b(u);
  if (o.quantize) {
    return cpu::QuantMatrix::QuantizeInterleaved(a.data(), b.data(), n, k, *o.quantize, gn, un,
                                                 pool);
  }
  return cpu::PackedMatrix::FromOutInInterleaved(a.data(), b.data(), n, k, gn, un, pool);
}

}  // namespace

ModelWeights LoadModelWeights(const GgufCheckpoint& ck, ThreadPool& pool, const LoadOptions& o) {
  ModelWeights w;
  const Qwen3Config& c = ck.config();
  w.config = c;
  for (int i = 0; i < c.layers; ++i) {
    const auto name = [&](const char* leaf) { return GgufNames::Layer(i, leaf); };
    LayerWeights l;
    l.input_norm = Norm(ck, name("attn_norm.weight"));
    l.post_norm = Norm(ck, name("ffn_norm.weight"));
    l.q_norm = Norm(ck, name("attn_q_norm.weight"));
    l.k_norm = Norm(ck, name("attn_k_norm.weight"));
    l.wq = Linear(ck, name("attn_q.weight"), pool, o);
    l.wk = Linear(ck, name("attn_k.weight"), pool, o);
    l.wv = Linear(ck, name("attn_v.weight"), pool, o);
    l.wo = Linear(ck, name("attn_output.weight"), pool, o);
    l.w_gate_up = GateUp(ck, name("ffn_gate.weight"), name("ffn_up.weight"), pool, o);
    l.w_down = Linear(ck, name("ffn_down.weight"), pool, o);
    w.layers.push_back(std::move(l));
  }
  w.lm.final_norm = Norm(ck, GgufNames::FinalNorm());
  w.lm.rows = c.vocab;
  const GgufTensor& embed = ck.Get(GgufNames::Embed());
  if (c.tied_embeddings) {  // one table: the LM head, whose columns are the embedding rows
    w.lm.weight = Linear(ck, GgufNames::Embed(), pool, o);
    return w;
  }
  w.lm.weight = Linear(ck, GgufNames::LmHead(), pool, o);
  const cpu::WeightType held = HeldAs(embed.type);
  if (held != cpu::WeightType::kBf16) {  // read a row per token: kept as the file has it
    w.embed_q = cpu::QuantMatrix::FromGguf(held, embed.data, c.vocab, c.hidden,
                                           GgufNames::Embed(), pool);
    return w;
  }
  const GgufBf16 src(embed);
  w.embed = CopyFiniteBf16(src.data(), c.vocab, c.hidden, GgufNames::Embed());
  return w;
}

}  // namespace qwen3
