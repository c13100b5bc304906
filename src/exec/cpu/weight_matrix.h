// A weight matrix of any weight type, as the projections and the LM head hold it: bf16
// (PackedMatrix, the bf16 kernels) or quantized (QuantMatrix, the int8 kernels). Logical
// [k, n]: k inputs, n outputs.
#pragma once

#include <cstddef>
#include <utility>

#include "exec/cpu/packed_matrix.h"
#include "exec/cpu/quant_matrix.h"

namespace qwen3::cpu {

class WeightMatrix {
 public:
  WeightMatrix() = default;
  WeightMatrix(PackedMatrix m) : bf16_(std::move(m)) {}  // NOLINT: implicit by design
  WeightMatrix(QuantMatrix m) : quant_(std::move(m)), quantized_(true) {}  // NOLINT

  bool quantized() const { return quantized_; }
  WeightType type() const { return quantized_ ? quant_.type() : WeightType::kBf16; }
  size_t k() const { return quantized_ ? quant_.k() : bf16_.k(); }
  size_t n() const { return quantized_ ? quant_.n() : bf16_.n(); }
  size_t n_blocks() const { return quantized_ ? quant_.n_blocks() : bf16_.n_blocks(); }
  size_t bytes() const { return quantized_ ? quant_.bytes() : bf16_.bytes(); }
  const PackedMatrix& bf16() const { return bf16_; }
  const QuantMatrix& quant() const { return quant_; }
  // Weight (k, n) as fp32 (embedding lookups of a tied or quantized table, tests).
  float At(size_t kk, size_t nn) const {
    return quantized_ ? quant_.At(kk, nn) : Bf16ToF32(bf16_.At(kk, nn));
  }

 private:
  PackedMatrix bf16_;
  QuantMatrix quant_;
  bool quantized_ = false;
};

}  // namespace qwen3::cpu
