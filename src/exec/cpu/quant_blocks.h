// Weight types, and ggml's quantized block formats (the GGUF types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q4_K, Q5_K, Q6_K)
// decoded into the engine's quantized form: per sub-block of 16 or 32 weights along K,
// unsigned codes u and an fp32 scale s and bias b with weight = s * u + b. The decoding is
// exact: gguf-py (llama.cpp's reference dequantizer) computes fl(s * u + b) for every type, and
// so does QuantMatrix::At.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "exec/cpu/kernels.h"
#include "exec/weight_type.h"

namespace qwen3::cpu {

using ::qwen3::ParseQuantizeType;
using ::qwen3::ToString;
using ::qwen3::WeightType;

// How a quantized type is held: bits per code (4 or 8), weights per sub-block (16 or 32), the
// code offset of weight = s * (u - offset) (0: weight = s * u + b), and how s and b are stored
// (kernels.h, QuantScales): Q8_0 {8, 32, 128, kF16}, Q4_0 {4, 32, 8, kF16}, Q4_K {4, 32, 0, kK},
// Q6_K {6, 16, 32, kK} (its 6-bit codes as the file has them), Q5_0 {8, 32, 16, kF16}, Q4_1 {4, 32, 0, kF32}, Q5_1 and Q5_K
// {8, 32, 0, kF32} (5-bit codes in bytes; s = d sc and b = -dmin m precomputed: exact, as
// ggml computes them); a pair of differing types interleaved is widened to {8, 16, 0, kF32}.
struct QuantFormat {
  uint32_t bits = 8, sub = 32, offset = 0;
  QuantScales scales = QuantScales::kF32;
  bool operator==(const QuantFormat&) const = default;
};
QuantFormat FormatOf(WeightType type);  // not kBf16
size_t BlockElems(WeightType type);     // weights per ggml block: 32 (Q8_0, Q4_0) or 256
size_t BlockBytes(WeightType type);     // bytes per ggml block: Q8_0 34, Q4_0 18, Q4_K 144, ...

struct SubBlock {
  float scale = 0, bias = 0;
  uint8_t codes[32] = {};  // [0, sub)
  // K types: the super-block's d and dmin, and this sub-block's sc and m (scale = d * sc,
  // bias = -(dmin * m) for Q4_K; bias = -32 * scale for Q6_K, whose sc is signed).
  float d = 0, dmin = 0;
  int32_t sc = 0, m = 0;
};

// The BlockElems(type) / sub sub-blocks of one ggml block, in K order.
void DecodeBlock(WeightType type, const uint8_t* block, SubBlock* out);

// llama.cpp's reference quantizers (quantize_row_q8_0_ref / q4_0_ref) of 32 weights: what
// llama-quantize writes, so --quantize gives the same blocks as a converted GGUF file.
void QuantizeBlockQ8_0(const float* x, uint8_t* out);
// Q8_0's rule over any n values: d = max|x| / 127, q = round-half-away(x / d) (0 where d is 0);
// returns d in fp32 (Q8_0 stores it as fp16).
float QuantizeSymmetric8(const float* x, size_t n, int8_t* q);
void QuantizeBlockQ4_0(const float* x, uint8_t* out);
// Q4_K and Q6_K blocks of 256 weights, by a plain min/max fit per sub-block (llama.cpp's
// quantizers search the scales; any block these write is a valid one, decoded by the same
// rules): for the synthetic GGUF files of make-checkpoint, not for quantizing real models.
void QuantizeBlockQ4_K(const float* x, uint8_t* out);
void QuantizeBlockQ6_K(const float* x, uint8_t* out);
// A row of k weights (a multiple of BlockElems(type)) as ggml blocks of type (Q8_0, Q4_0,
// Q4_K or Q6_K).
void QuantizeRow(WeightType type, const float* x, size_t k, uint8_t* out);

}  // namespace qwen3::cpu
