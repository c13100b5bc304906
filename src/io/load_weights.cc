#include "io/load_weights.h"

#include <cstring>

#include "base/error.h"
#include "io/hf_checkpoint.h"

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

HostMatrix Host(const std::string& name, const TensorView& t, const Bf16Source& src) {
  return {name, WeightType::kBf16, src.data(), t.shape[0], t.shape[1], false};
}

std::unique_ptr<Weight> Norm(const HfCheckpoint& ck, const std::string& name, Executor& x) {
  const AlignedBuffer<float> f = ck.Get(name).ToF32();
  return x.PackNorm(f.data(), f.size(), name);
}

std::unique_ptr<Weight> Linear(const HfCheckpoint& ck, const std::string& name, WeightRole role,
                               Executor& x, const LoadOptions& o) {
  const TensorView& t = ck.Get(name);
  const Bf16Source src(t);
  return x.PackLinear(Host(name, t, src), role, o.quantize);
}

}  // namespace

ModelWeights LoadModelWeights(const HfCheckpoint& ck, Executor& x, const LoadOptions& o) {
  ModelWeights w;
  const Qwen3Config& c = ck.config();
  w.config = c;
  for (int i = 0; i < c.layers; ++i) {
    const auto name = [&](const char* leaf) { return HfNames::Layer(i, leaf); };
    LayerWeights l;
    l.input_norm = Norm(ck, name("input_layernorm.weight"), x);
    l.post_norm = Norm(ck, name("post_attention_layernorm.weight"), x);
    l.q_norm = Norm(ck, name("self_attn.q_norm.weight"), x);
    l.k_norm = Norm(ck, name("self_attn.k_norm.weight"), x);
    l.wq = Linear(ck, name("self_attn.q_proj.weight"), WeightRole::kQ, x, o);
    l.wk = Linear(ck, name("self_attn.k_proj.weight"), WeightRole::kK, x, o);
    l.wv = Linear(ck, name("self_attn.v_proj.weight"), WeightRole::kV, x, o);
    l.wo = Linear(ck, name("self_attn.o_proj.weight"), WeightRole::kO, x, o);
    {
      const std::string gn = name("mlp.gate_proj.weight"), un = name("mlp.up_proj.weight");
      const TensorView &gt = ck.Get(gn), &ut = ck.Get(un);
      const Bf16Source gate(gt), up(ut);
      l.w_gate_up = x.PackGateUp(Host(gn, gt, gate), Host(un, ut, up), o.quantize);
    }
    l.w_down = Linear(ck, name("mlp.down_proj.weight"), WeightRole::kDown, x, o);
    w.layers.push_back(std::move(l));
  }
  w.lm.final_norm = Norm(ck, HfNames::FinalNorm(), x);
  w.lm.rows = c.vocab;
  const std::string head = c.tied_embeddings ? HfNames::Embed() : HfNames::LmHead();
  w.lm.weight = Linear(ck, head, WeightRole::kLmHead, x, o);
  if (!c.tied_embeddings) {
    const TensorView& e = ck.Get(HfNames::Embed());
    const Bf16Source src(e);
    w.embed = x.PackEmbedding(Host(HfNames::Embed(), e, src));
  }
  return w;
}

}  // namespace qwen3
