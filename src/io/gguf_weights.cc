// A GGUF checkpoint's tensors as host data for the executor: Q8_0 / Q4_0 / Q4_K / Q6_K blocks
// as the file has them (the CPU executor repacks them for its int8 kernels, no dequantization),
// BF16 straight from the mapping, F16/F32 rounded to bf16, norm vectors as fp32.
#include <cstring>

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

// A float tensor's element i as fp32.
float ValueAt(const GgufTensor& t, size_t i) {
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

// A float tensor's values as bf16: the mapping itself when BF16 and aligned, else `owned`.
const bf16* Bf16Values(const GgufTensor& t, AlignedBuffer<bf16>& owned) {
  if (t.type == GgmlType::kBF16 && reinterpret_cast<uintptr_t>(t.data) % alignof(bf16) == 0) {
    return reinterpret_cast<const bf16*>(t.data);
  }
  owned = AlignedBuffer<bf16>(t.Elements());
  for (size_t i = 0; i < owned.size(); ++i) owned[i] = F32ToBf16(ValueAt(t, i));
  return owned.data();
}

class GgufSource final : public TensorSource {
 public:
  explicit GgufSource(const GgufCheckpoint& ck) : ck_(ck) {}
  const Qwen3Config& config() const override { return ck_.config(); }
  const std::string& Name(const TensorSpec& t) const override { return t.gguf; }

  // [out, in] (ggml dims [in, out]): a quantized type's blocks as the file has them, a float
  // type's values as bf16.
  HostMatrix Matrix(const TensorSpec& t, AlignedBuffer<bf16>& owned) const override {
    const GgufTensor& g = ck_.Get(t.gguf);
    const WeightType held = HeldAs(g.type);
    if (held != WeightType::kBf16) return {t.gguf, held, g.data, g.dims[1], g.dims[0], false};
    return {t.gguf, WeightType::kBf16, Bf16Values(g, owned), g.dims[1], g.dims[0], false};
  }
  AlignedBuffer<float> Vector(const TensorSpec& t) const override {
    const GgufTensor& g = ck_.Get(t.gguf);
    AlignedBuffer<float> f(g.Elements());
    for (size_t i = 0; i < f.size(); ++i) f[i] = ValueAt(g, i);
    return f;
  }
  void CheckGateUp(const TensorSpec& gate, const TensorSpec& up) const override {
    const GgufTensor& g = ck_.Get(gate.gguf);
    const GgufTensor& u = ck_.Get(up.gguf);
    if ((HeldAs(g.type) != WeightType::kBf16) != (HeldAs(u.type) != WeightType::kBf16)) {
      throw Error(g.Where() + ": " + ToString(g.type) + " with " + up.gguf + " " +
                  ToString(u.type) + ": expected both quantized or both float (they are computed " +
                  "as one matrix)");
    }
  }

 private:
  const GgufCheckpoint& ck_;
};

}  // namespace

ModelWeights LoadModelWeights(const GgufCheckpoint& ck, Executor& x, const LoadOptions& o) {
  return BuildModelWeights(GgufSource(ck), x, o);
}

}  // namespace qwen3
