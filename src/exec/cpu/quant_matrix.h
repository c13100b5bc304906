// A quantized weight matrix packed once, at load, as the B operand of the int8 kernels
// (CpuKernels::qmatmul): logical [k, n] (k inputs, n outputs), in the sub-blocks of its
// QuantFormat: per output column and sub-block of 16 or 32 inputs, unsigned codes u (4 or 8
// bits) and a scale s and bias b, weight = s * u + b (quant_blocks.h), held as
// QuantFormat::scales says (kernels.h, QuantScales).
//
// Layout: 16-column blocks in groups of 4 (the last group may be smaller), like the bf16
// TileOrder, and within a group, per super-block of 256 weights along K, the blocks' headers
// (kK only) and then one record per sub-block, in K order:
//   [codes of block 0] ... [codes of block nb-1] [scales of block 0] ... [of block nb-1]
// so a call over one group streams one linear range. A block's codes for a sub-block are
// 64-byte vectors, one per 4 consecutive k (the vpdpbusd operand: byte 4c + i of vector v is
// column c at k = 4v + i); 4-bit codes pack vector v (low nibbles) with v + 4 (high nibbles);
// 6-bit codes (Q6_K, 16 weights) are two such nibble vectors (v low, v + 2 high) and one vector
// of their top 2 bits (bits 2v, 2v + 1 of byte 4c + i: vector v's code's bits 4 and 5).
// Memory in bits per weight (the file's in parentheses): Q4_0 4.5 (4.5), Q8_0 8.5 (8.5), Q4_K
// 4.625 (4.5), Q6_K 6.5625 (6.5625), Q5_0 8.5 (5.5), Q4_1 6 (5), Q5_1 and Q5_K 10 (6 and 5.5),
// and a widened (kF32) interleaved pair 12.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "base/f16.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/quant_blocks.h"

namespace qwen3 {
class ThreadPool;
}

namespace qwen3::cpu {

// Code i (k within the sub-block) of column c in one block's codes of a sub-block record.
inline uint32_t QuantCodeAt(const uint8_t* codes, uint32_t bits, size_t i, size_t c) {
  if (bits == 8) return codes[(i / 4) * 64 + c * 4 + i % 4];
  if (bits == 6) {  // 16 weights: nibbles (vector v low, v + 2 high), then 2 bits each
    const size_t v = i / 4, lane = c * 4 + i % 4;
    const uint8_t nibbles = codes[(v % 2) * 64 + lane];
    return (v < 2 ? nibbles & 0xf : nibbles >> 4) | (((codes[128 + lane] >> (2 * v)) & 3u) << 4);
  }
  const uint8_t byte = codes[((i % 16) / 4) * 64 + c * 4 + i % 4];
  return i < 16 ? byte & 0xf : byte >> 4;
}

// Column c's s and b (kernels.h, QuantScales): `header` is the block's part of its super-block
// header (kK only), `scales` the block's part of the sub-block record. For an offset format
// b = -offset * s.
inline void QuantScaleBias(QuantScales kind, uint32_t offset, const uint8_t* header,
                           const uint8_t* scales, size_t c, float& s, float& b) {
  auto half = [](const uint8_t* p, size_t i) {
    uint16_t h;
    __builtin_memcpy(&h, p + i * sizeof(h), sizeof(h));
    return F16ToF32(h);
  };
  if (kind == QuantScales::kF32) {
    __builtin_memcpy(&s, scales + c * sizeof(float), sizeof(float));
    __builtin_memcpy(&b, scales + (kTileN + c) * sizeof(float), sizeof(float));
    return;
  }
  if (kind == QuantScales::kF16) {
    s = half(scales, c);
  } else if (offset) {  // Q6_K: int8 sc
    s = half(header, c) * static_cast<float>(static_cast<int8_t>(scales[c]));
  } else {  // Q4_K: u8 sc, m
    s = half(header, c) * static_cast<float>(scales[c]);
    b = -(half(header, kTileN + c) * static_cast<float>(scales[kTileN + c]));
    return;
  }
  b = s * -static_cast<float>(offset);  // exact: the offsets are powers of two
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
    return nb * (CodeBytes() + QuantScaleBytes(format_.scales, format_.offset));
  }

 private:
  // sub(nn, s, out): sub-block s of output column nn, in this matrix's format.
  template <typename Source>
  static QuantMatrix Pack(size_t k, size_t n, QuantFormat format, WeightType type, Source sub,
                          ThreadPool& pool);
  // One 16-column block's bytes over all of K: its records and its super-block headers.
  size_t ColumnBlockBytes() const;
  size_t GroupOffset(size_t j0) const { return j0 * ColumnBlockBytes(); }

  size_t k_ = 0, n_ = 0, n_blocks_ = 0;
  QuantFormat format_;
  WeightType type_ = WeightType::kQ8_0;
  AlignedBuffer<uint8_t> data_;
};

}  // namespace qwen3::cpu
