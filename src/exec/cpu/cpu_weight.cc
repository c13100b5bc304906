#include "exec/cpu/cpu_weight.h"

#include "base/error.h"

namespace qwen3::cpu {
namespace {

const bf16* Bf16Data(const HostMatrix& m) { return static_cast<const bf16*>(m.data); }
const uint8_t* Blocks(const HostMatrix& m) { return static_cast<const uint8_t*>(m.data); }

}  // namespace

size_t CpuWeight::bytes() const {
  return matrix.bytes() + vec.size() * sizeof(float) + table.size() * sizeof(bf16);
}

const CpuWeight& AsCpu(const Weight& w) {
  const auto* c = dynamic_cast<const CpuWeight*>(&w);
  if (c == nullptr) throw Error("a weight packed by another executor was given to the CPU executor");
  return *c;
}

WeightMatrix PackLinearMatrix(const HostMatrix& m, std::optional<WeightType> quantize,
                              ThreadPool& pool) {
  if (m.type != WeightType::kBf16) {  // a file's blocks, repacked as they are
    return QuantMatrix::FromGguf(m.type, Blocks(m), m.out, m.in, m.name, pool);
  }
  if (m.in_out) {
    if (quantize) throw Error("tensor " + m.name + ": the seed's [in, out] layout is bf16 only");
    return PackedMatrix::FromInOut(Bf16Data(m), m.in, m.out, m.name, pool);
  }
  if (quantize) return QuantMatrix::Quantize(Bf16Data(m), m.out, m.in, *quantize, m.name, pool);
  return PackedMatrix::FromOutIn(Bf16Data(m), m.out, m.in, m.name, pool);
}

WeightMatrix PackGateUpMatrix(const HostMatrix& g, const HostMatrix& u,
                              std::optional<WeightType> quantize, ThreadPool& pool) {
  if (g.type != WeightType::kBf16 || u.type != WeightType::kBf16) {
    if (g.type == WeightType::kBf16 || u.type == WeightType::kBf16) {
      throw Error("tensor " + g.name + " (" + ToString(g.type) + ") with " + u.name + " (" +
                  ToString(u.type) + "): expected both quantized or both bf16");
    }
    return QuantMatrix::FromGgufInterleaved(g.type, Blocks(g), u.type, Blocks(u), g.out, g.in,
                                            g.name, u.name, pool);
  }
  if (g.in_out) {
    if (quantize) throw Error("tensor " + g.name + ": the seed's [in, out] layout is bf16 only");
    return PackedMatrix::FromInOutInterleaved(Bf16Data(g), Bf16Data(u), g.in, g.out, g.name,
                                              u.name, pool);
  }
  if (quantize) {
    return QuantMatrix::QuantizeInterleaved(Bf16Data(g), Bf16Data(u), g.out, g.in, *quantize,
                                            g.name, u.name, pool);
  }
  return PackedMatrix::FromOutInInterleaved(Bf16Data(g), Bf16Data(u), g.out, g.in, g.name, u.name,
                                            pool);
}

}  // namespace qwen3::cpu
