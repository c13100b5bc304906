#include "io/load_weights.h"

#include <cstring>

#include "base/error.h"
#include "io/hf_checkpoint.h"
#include "io/mapped_file.h"

namespace qwen3 {
namespace {

class HfSource final : public TensorSource {
 public:
  explicit HfSource(const HfCheckpoint& ck) : ck_(ck) {}
  const Qwen3Config& config() const override { return ck_.config(); }
  const std::string& Name(const TensorSpec& t) const override { return t.hf; }

  // The mapped bytes themselves when they are BF16 and 2-byte aligned, else a copy converted
  // with round-to-nearest-even.
  HostMatrix Matrix(const TensorSpec& t, AlignedBuffer<bf16>& owned) const override {
    return Of(t.hf, owned);
  }
  HostMatrix ExpertMatrix(const TensorSpec& t, int e, AlignedBuffer<bf16>& owned) const override {
    return Of(t.HfExpert(e), owned);
  }
  AlignedBuffer<float> Vector(const TensorSpec& t) const override { return ck_.Get(t.hf).ToF32(); }
  void Release(const TensorSpec& t) const override {
    for (const std::string& name : t.HfTensors()) {
      const TensorView& v = ck_.Get(name);
      DropMappedPages(v.data, v.bytes);
    }
  }

 private:
  HostMatrix Of(const std::string& name, AlignedBuffer<bf16>& owned) const {
    const TensorView& v = ck_.Get(name);
    const bf16* data = reinterpret_cast<const bf16*>(v.data);
    if (v.dtype != DType::kBF16 || reinterpret_cast<uintptr_t>(v.data) % alignof(bf16) != 0) {
      owned = v.ToBf16();
      data = owned.data();
    }
    return {name, WeightType::kBf16, data, v.shape[0], v.shape[1], false};
  }

  const HfCheckpoint& ck_;
};

}  // namespace

ModelWeights LoadModelWeights(const HfCheckpoint& ck, Executor& x, const LoadOptions& o) {
  return BuildModelWeights(HfSource(ck), x, o);
}

}  // namespace qwen3
