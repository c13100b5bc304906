#include "io/load_weights.h"

#include <cstring>

#include "base/error.h"
#include "io/hf_checkpoint.h"
#include "kernels/cpu/weight_matrix.h"

namespace qwen3 {
namespace {

// A tensor's values as bf16: the mapped bytes themselves when they are BF16 and 2-byte
// aligned, else an owned copy (converted with round-to-nearest-even).
class Bf16Source {
 public:
  explicit Bf16Source(const TensorView& t) {
    if (t.dtype == DType::kBF16 && reinterpret_cast<uintptr_t>(t.data) % alignof(bf16) == 0) {
      ptr_ = reinterpret_cast<const bf16*>(t.data);
    } else {
      owned_ = t.ToBf16();
      ptr_ = owned_.data();
    }
  }
  const bf16* data() const { return ptr_; }

 private:
  AlignedBuffer<bf16> owned_;
  const bf16* ptr_ = nullptr;
};

AlignedBuffer<float> NormWeight(const HfCheckpoint& ck, const std::string& name) {
  const TensorView& t = ck.Get(name);
  const AlignedBuffer<float> f = t.ToF32();
  return CopyFinite(f.data(), f.size(), name);
}

cpu::WeightMatrix Linear(const HfCheckpoint& ck, const std::string& name, ThreadPool& pool,
                         const LoadOptions& o) {
  const TensorView& t = ck.Get(name);
  const Bf16Source src(t);
  if (o.quantize) {
    return cpu::QuantMatrix::Quantize(src.data(), t.shape[0], t.shape[1], *o.quantize, name, pool);
  }
  return cpu::PackedMatrix::FromOutIn(src.data(), t.shape[0], t.shape[1], name, pool);
}

}  // namespace

ModelWeights LoadModelWeights(const HfCheckpoint& ck, ThreadPool& pool, const LoadOptions& o) {
  ModelWeights w;
  const Qwen3Config& c = ck.config();
  w.config = c;
  for (int i = 0; i < c.layers; ++i) {
    const auto name = [&](const char* leaf) { return HfNames::Layer(i, leaf); };
    LayerWeights l;
    l.input_norm = NormWeight(ck, name("input_layernorm.weight"));
    l.post_norm = NormWeight(ck, name("post_attention_layernorm.weight"));
    l.q_norm = NormWeight(ck, name("self_attn.q_norm.weight"));
    l.k_norm = NormWeight(ck, name("self_attn.k_norm.weight"));
    l.wq = Linear(ck, name("self_attn.q_proj.weight"), pool, o);
    l.wk = Linear(ck, name("self_attn.k_proj.weight"), pool, o);
    l.wv = Linear(ck, name("self_attn.v_proj.weight"), pool, o);
    l.wo = Linear(ck, name("self_attn.o_proj.weight"), pool, o);
    {
      const std::string gn = name("mlp.gate_proj.weight"), un = name("mlp.up_proj.weight");
      const Bf16Source gate(ck.Get(gn)), up(ck.Get(un));
      if (o.quantize) {
        l.w_gate_up = cpu::QuantMatrix::QuantizeInterleaved(
            gate.data(), up.data(), c.intermediate, c.hidden, *o.quantize, gn, un, pool);
      } else {
        l.w_gate_up = cpu::PackedMatrix::FromOutInInterleaved(
            gate.data(), up.data(), c.intermediate, c.hidden, gn, un, pool);
      }
    }
    l.w_down = Linear(ck, name("mlp.down_proj.weight"), pool, o);
    w.layers.push_back(std::move(l));
  }
  w.lm.final_norm = NormWeight(ck, HfNames::FinalNorm());
  w.lm.rows = c.vocab;
  const std::string head = c.tied_embeddings ? HfNames::Embed() : HfNames::LmHead();
  w.lm.weight = Linear(ck, head, pool, o);
  if (!c.tied_embeddings) {
    const TensorView& e = ck.Get(HfNames::Embed());
    const Bf16Source src(e);
    w.embed = CopyFiniteBf16(src.data(), c.vocab, c.hidden, HfNames::Embed());
  }
  return w;
}

}  // namespace qwen3
