// A checkpoint's tensors packed into the model's weights by an executor, tensor by tensor of
// the schema (model/tensor_schema.h): io produces host tensors, the executor packs them.
#pragma once

#include <optional>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/executor.h"
#include "model/model_weights.h"
#include "model/tensor_schema.h"

namespace qwen3 {

struct LoadOptions {
  // Quantize every float projection and the LM head at load (--quantize q8_0|q4_0), with
  // llama.cpp's block formats; the embedding table of an untied model stays bf16 (it is read a
  // row per token, not streamed). A file's quantized tensors are packed as they are.
  std::optional<WeightType> quantize;
};

// A checkpoint's tensors as host data (HF safetensors or GGUF); every tensor of the schema was
// checked when the checkpoint was opened.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const Qwen3Config& config() const = 0;
  virtual const std::string& Name(const TensorSpec& t) const = 0;
  // A matrix [out, in]: the file's bytes, or its values rounded to bf16 into `owned`.
  virtual HostMatrix Matrix(const TensorSpec& t, AlignedBuffer<bf16>& owned) const = 0;
  // Expert e's matrix [out, in] of an experts row (t.experts > 0).
  virtual HostMatrix ExpertMatrix(const TensorSpec& t, int e, AlignedBuffer<bf16>& owned) const = 0;
  // Every value as fp32 (norms, routers).
  virtual AlignedBuffer<float> Vector(const TensorSpec& t) const = 0;
  // Throws Error when gate and up cannot be one weight (one quantized, the other float).
  virtual void CheckGateUp(const TensorSpec& gate, const TensorSpec& up) const;
  // t is packed: its file pages may leave memory (DropMappedPages).
  virtual void Release(const TensorSpec& t) const;
};

// NaN/Inf in a weight is an Error naming the tensor.
ModelWeights BuildModelWeights(const TensorSource& src, Executor& executor, const LoadOptions& o);

}  // namespace qwen3
