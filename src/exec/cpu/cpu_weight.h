// The CPU executor's weights: a projection or LM head as a WeightMatrix (bf16 VNNI tiles or
// int8 blocks), a norm as fp32, an embedding table as bf16 rows, packed from host matrices.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/weight_matrix.h"
#include "exec/executor.h"

namespace qwen3 {

class ThreadPool;

namespace cpu {

class CpuWeight final : public Weight {
 public:
  WeightMatrix matrix;        // projections, LM head
  AlignedBuffer<float> vec;   // norms
  AlignedBuffer<bf16> table;  // an embedding's rows [vocab, hidden]

  size_t bytes() const override;
  WeightType type() const override { return matrix.type(); }
};

// The CPU weight behind w (an Error if another executor packed it).
const CpuWeight& AsCpu(const Weight& w);
inline const WeightMatrix& MatrixOf(const Weight& w) { return AsCpu(w).matrix; }

WeightMatrix PackLinearMatrix(const HostMatrix& m, std::optional<WeightType> quantize,
                              ThreadPool& pool);
WeightMatrix PackGateUpMatrix(const HostMatrix& gate, const HostMatrix& up,
                              std::optional<WeightType> quantize, ThreadPool& pool);

}  // namespace cpu
}  // namespace qwen3
