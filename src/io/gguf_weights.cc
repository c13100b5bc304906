// A GGUF checkpoint's tensors as host data for the executor: quantized blocks (Q8_0 ... Q6_K)
// as the file has them (the CPU executor repacks them for its int8 kernels, no dequantization),
// BF16 straight from the mapping, F16/F32 rounded to bf16, norm vectors as fp32.
#include <cstring>

#include "base/error.h"
#include "base/f16.h"
#include "io/gguf_checkpoint.h"
#include "io/load_weights.h"
#include "io/mapped_file.h"

namespace qwen3 {
namespace {

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

// Elements [first, first + count) of a float tensor as bf16: the mapping itself when BF16 and
// aligned, else `owned`.
const bf16* Bf16Values(const GgufTensor& t, size_t first, size_t count, AlignedBuffer<bf16>& owned) {
  if (t.type == GgmlType::kBF16 && reinterpret_cast<uintptr_t>(t.data) % alignof(bf16) == 0) {
    return reinterpret_cast<const bf16*>(t.data) + first;
  }
  owned = AlignedBuffer<bf16>(count);
  for (size_t i = 0; i < count; ++i) owned[i] = F32ToBf16(ValueAt(t, first + i));
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
    const WeightType held = WeightTypeOf(g.type);
    if (held != WeightType::kBf16) return {t.gguf, held, g.data, g.dims[1], g.dims[0], false};
    return {t.gguf, WeightType::kBf16, Bf16Values(g, 0, g.Elements(), owned), g.dims[1],
            g.dims[0], false};
  }
  // Expert e: the e-th [out, in] slab of the stacked tensor (dims {in, out, experts}).
  HostMatrix ExpertMatrix(const TensorSpec& t, int e, AlignedBuffer<bf16>& owned) const override {
    const GgufTensor& g = ck_.Get(t.gguf);
    const WeightType held = WeightTypeOf(g.type);
    const size_t out = g.dims[1], in = g.dims[0], ex = static_cast<size_t>(e);
    const std::string name = t.gguf + "[" + std::to_string(e) + "]";
    if (held != WeightType::kBf16) {
      return {name, held, g.data + ex * (g.bytes / g.dims[2]), out, in, false};
    }
    return {name, WeightType::kBf16, Bf16Values(g, ex * out * in, out * in, owned), out, in, false};
  }
  AlignedBuffer<float> Vector(const TensorSpec& t) const override {
    const GgufTensor& g = ck_.Get(t.gguf);
    AlignedBuffer<float> f(g.Elements());
    for (size_t i = 0; i < f.size(); ++i) f[i] = ValueAt(g, i);
    return f;
  }
  void Release(const TensorSpec& t) const override {
    const GgufTensor& g = ck_.Get(t.gguf);
    DropMappedPages(g.data, g.bytes);
  }
  void CheckGateUp(const TensorSpec& gate, const TensorSpec& up) const override {
    const GgufTensor& g = ck_.Get(gate.gguf);
    const GgufTensor& u = ck_.Get(up.gguf);
    if ((WeightTypeOf(g.type) != WeightType::kBf16) != (WeightTypeOf(u.type) != WeightType::kBf16)) {
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
