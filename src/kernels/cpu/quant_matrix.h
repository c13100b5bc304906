// A quantized weight matrix packed once, at load, as the B operand of the int8 kernels
// (CpuKernels::qmatmul): logical [k, n] (k inputs, n outputs), in the sub-blocks of its
// QuantFormat: per output column and sub-block of 16 or 32 inputs, unsigned codes u (4 or 8
// bits) and an fp32 scale s and bias b, weight = s * u + b (quant_blocks.h).
//
// Layout: 16-column blocks in groups of 4 (the last group may be smaller), like the bf16
// TileOrder, and within a group one record per sub-block, in K order:
//   [codes of block 0] ... [codes of block nb-1] [s[16], b[16] of block 0] ... [of block nb-1]
// (s as fp16 and no b for Q8_0 / Q4_0: QuantFormat::offset)
// so a call over one group streams one linear range. A block's codes for a sub-block are
// 64-byte vectors, one per 4 consecutive k (the vpdpbusd operand: byte 4c + i of vector v is
// column c at k = 4v + i); 4-bit codes pack vector v (low nibbles) with v + 4 (high nibbles).
// Memory: Q4_0 4.5 bits per weight and Q8_0 8.5 (fp16 d, as in the file); with fp32 s and b,
// Q4_K 6 and Q6_K 12.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "base/f16.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quant_blocks.h"

namespace qwen3 {
class ThreadPool;
}

namespace qwen3::cpu {

// Code i (k within the sub-block) of column c in one block's codes of a sub-block record.
inline uint32_t QuantCodeAt(const uint8_t* codes, uint32_t bits, size_t i, size_t c) {
  if (bits == 8) return codes[(i / 4) * 64 + c * 4 + i % 4];
  const uint8_t byte = codes[((i % 16) / 4) * 64 + c * 4 + i % 4];
  return i < 16 ? byte & 0xf : byte >> 4;
}

// Column c's s and b in one block's scales of a sub-block record (QuantFormat::offset).
inline void QuantScaleBias(const uint8_t* scales, uint32_t offset, size_t c, float& s, float& b) {
  if (offset) {
    uint16_t h;
    __builtin_memcpy(&h, scales + c * sizeof(h), sizeof(h));
    s = F16ToF32(h);
    b = s * -static_cast<float>(offset);  // exact: a power of two
  } else {
    __builtin_memcpy(&s, scales + c * sizeof(float), sizeof(float));
    __builtin_memcpy(&b, scales + (kTileN + c) * sizeof(float), sizeof(float));
  }
}

class QuantMatrix {
 public:
  QuantMatrix() = default;
  // n rows of k weights in ggml blocks of `type` (a GGUF tensor [n][k], ne0 = k): nn.Linear's
  // [out, in]. k must be a multiple of BlockElems(type).
  static QuantMatrix FromGguf(WeightType type, const uint8_t* data, size_t n, size_t k,
                              const std::string& name, ThreadPool& pool);
  // Two such [n][k] matrices as one [k, 2n], interleaved by 32 columns like
  // PackedMatrix::FromOutInInterleaved (gate and up). Differing formats are widened to one that
  // holds both exactly (8-bit codes, 16-weight sub-blocks).
  static QuantMatrix FromGgufInterleaved(WeightType type_a, const uint8_t* a, WeightType type_b,
                                         const uint8_t* b, size_t n, size_t k,
                                         const std::string& name_a, const std::string& name_b,
                                         ThreadPool& pool);
  // bf16 [n][k] quantized to type (Q8_0 or Q4_0) as llama-quantize does; k a multiple of 32.
  static QuantMatrix Quantize(const bf16* src, size_t n, size_t k, WeightType type,
                              const std::string& name, ThreadPool& pool);
  static QuantMatrix QuantizeInterleaved(const bf16* a, const bf16* b, size_t n, size_t k,
                                         WeightType type, const std::string& name_a,
                                         const std::string& name_b, ThreadPool& pool);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  size_t n_blocks() const { return n_blocks_; }
  size_t subs() const { return k_ / format_.sub; }
  QuantFormat format() const { return format_; }
  WeightType type() const { return type_; }  // the source type (the widest, if mixed)
  size_t bytes() const { return data_.size(); }
  bool empty() const { return data_.size() == 0; }
  // The group of blocks [j0, j0 + nb): j0 a multiple of 4, nb up to the group's size.
  QuantGroup Group(size_t j0, size_t nb) const;
  // Weight (k, n), fl(s * u + b) as gguf-py dequantizes it.
  float At(size_t kk, size_t nn) const;
  // Bytes of one 16-column block's codes, and of a sub-block record of a group of nb blocks.
  size_t CodeBytes() const { return format_.sub * kTileN * format_.bits / 8; }
  size_t RecordBytes(size_t nb) const {
    return nb * (CodeBytes() + QuantScaleBytes(format_.offset));
  }

 private:
  // sub(nn, s, out): sub-block s of output column nn, in this matrix's format.
  template <typename Source>
  static QuantMatrix Pack(size_t k, size_t n, QuantFormat format, WeightType type, Source sub,
                          ThreadPool& pool);
  size_t GroupOffset(size_t j0) const { return j0 * subs() * RecordBytes(1); }

  size_t k_ = 0, n_ = 0, n_blocks_ = 0;
  QuantFormat format_;
  WeightType type_ = WeightType::kQ8_0;
  AlignedBuffer<uint8_t> data_;
};

}  // namespace qwen3::cpu
