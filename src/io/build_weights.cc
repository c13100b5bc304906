#include "io/build_weights.h"

namespace qwen3 {

void TensorSource::CheckGateUp(const TensorSpec&, const TensorSpec&) const {}
void TensorSource::Release(const TensorSpec&) const {}

ModelWeights BuildModelWeights(const TensorSource& src, Executor& x, const LoadOptions& o) {
  const Qwen3Config& c = src.config();
  ModelWeights w;
  w.config = c;
  w.layers.resize(static_cast<size_t>(c.layers));
  w.lm.rows = static_cast<size_t>(c.vocab);
  // A file's quantized tensors are packed as they are: --quantize applies to float ones.
  const auto quantize = [&](const HostMatrix& m) {
    return m.type == WeightType::kBf16 ? o.quantize : std::nullopt;
  };
  const auto slot = [&](const TensorSpec& t) -> std::unique_ptr<Weight>& {
    if (t.layer >= 0) return w.layers[static_cast<size_t>(t.layer)].*t.slot;
    return t.role == TensorRole::kFinalNorm ? w.lm.final_norm : w.lm.weight;
  };
  const TensorSpec* gate = nullptr;
  for (const TensorSpec& t : TensorSchema(c)) {
    AlignedBuffer<bf16> owned;
    switch (t.kind) {
      case TensorKind::kNorm: {
        const AlignedBuffer<float> v = src.Vector(t);
        slot(t) = x.PackNorm(v.data(), v.size(), src.Name(t));
        break;
      }
      case TensorKind::kRouter: {
        const AlignedBuffer<float> v = src.Vector(t);
        slot(t) = x.PackRouter(v.data(), t.shape[0], t.shape[1], src.Name(t));
        break;
      }
      case TensorKind::kLinear:
        if (t.experts > 0) {
          auto& experts = w.layers[static_cast<size_t>(t.layer)].*t.experts_slot;
          for (int e = 0; e < t.experts; ++e) {
            const HostMatrix m = src.ExpertMatrix(t, e, owned);
            experts.push_back(x.PackLinear(m, t.weight_role, quantize(m)));
          }
        } else {
          const HostMatrix m = src.Matrix(t, owned);
          slot(t) = x.PackLinear(m, t.weight_role, quantize(m));
        }
        break;
      case TensorKind::kGate:
        gate = &t;  // the next row is its up
        break;
      case TensorKind::kUp: {
        src.CheckGateUp(*gate, t);
        AlignedBuffer<bf16> gate_owned;
        if (t.experts > 0) {
          auto& experts = w.layers[static_cast<size_t>(t.layer)].*t.experts_slot;
          for (int e = 0; e < t.experts; ++e) {
            const HostMatrix g = src.ExpertMatrix(*gate, e, gate_owned);
            const HostMatrix u = src.ExpertMatrix(t, e, owned);
            experts.push_back(x.PackGateUp(g, u, quantize(g)));
          }
          break;
        }
        const HostMatrix g = src.Matrix(*gate, gate_owned), u = src.Matrix(t, owned);
        slot(t) = x.PackGateUp(g, u, quantize(g));
        break;
      }
      case TensorKind::kEmbedding: {
        const HostMatrix m = src.Matrix(t, owned);
        if (c.tied_embeddings) {  // one table: the LM head, whose columns are the embedding rows
          w.lm.weight = x.PackLinear(m, WeightRole::kLmHead, quantize(m));
        } else {  // read a row per token: kept as the file has it
          w.embed = x.PackEmbedding(m);
        }
        break;
      }
    }
    if (t.kind != TensorKind::kGate) src.Release(t);  // gate: with its up
    if (t.kind == TensorKind::kUp) src.Release(*gate);
  }
  return w;
}

}  // namespace qwen3
