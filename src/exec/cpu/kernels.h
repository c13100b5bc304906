// The per-path CPU kernel table: the "cube" (a <= 16-row bf16 x bf16 -> fp32 matmul block on
// VNNI tiles) and the vec kernels whose cost shows in a step (the softmax of one attention
// score tile, SiLU.up, RMSNorm, the head norm + RoPE, the bf16 cast). Everything else is built
// from these in generic code (fused_matmul.h, attention.h).
//
// The B operand of every matmul is a sequence of VNNI tiles: 16 k-pairs x 16 columns x 2 bf16,
// element (k, n) of a tile at [k / 2][n][k % 2] (the layout of AMX's tdpbf16ps and of
// vdpbf16ps). Packed weights, K pages and V pages of the KV cache all use it, with different
// strides, so one kernel serves projections, LM head, q.K^T and P.V.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/bf16.h"
#include "exec/cpu/cpu_path.h"

namespace qwen3::cpu {

constexpr size_t kTileM = 16;  // rows of A / C per block (batch tile, padded query heads)
constexpr size_t kTileK = 32;  // K per tile (16 pairs)
constexpr size_t kTileN = 16;  // columns per B tile
constexpr size_t kMaxBlocksPerCall = 4;

// One 16-column block of B: its k-tiles, each 16 rows (k pairs) of 32 bf16.
struct BBlock {
  const bf16* data;     // k-tile 0, row 0
  size_t ktile_stride;  // elements from one k-tile to the next
  size_t row_stride;    // elements from one k-pair row to the next (>= 32)
};

// The tile order of a packed B operand [k_tiles * 32, n_blocks * 16] (weights and KV pages):
// column blocks in groups of 4 (the last group may be smaller), the tiles of a group
// interleaved along K: [group][k-tile][block in group][1 KiB tile]. A matmul call over one
// group then reads a single linear stream (4 KiB per k-step), which the hardware
// prefetchers follow; four separate per-block streams they did not.
struct TileOrder {
  static constexpr size_t kGroup = 4;
  static constexpr size_t kTileElems = kTileK * kTileN;

  size_t k_tiles = 0, n_blocks = 0;

  size_t GroupSize(size_t j) const {
    const size_t first = j / kGroup * kGroup;
    return n_blocks - first < kGroup ? n_blocks - first : kGroup;
  }
  // Offset (elements) of tile (block j, k-tile t).
  size_t Tile(size_t j, size_t t) const {
    return ((j / kGroup) * kGroup * k_tiles + t * GroupSize(j) + j % kGroup) * kTileElems;
  }
  // Offset of logical element (k, n).
  size_t Index(size_t k, size_t n) const {
    return Tile(n / kTileN, k / kTileK) + ((k % kTileK) / 2) * kTileK + (n % kTileN) * 2 + k % 2;
  }
  BBlock Block(const bf16* base, size_t j) const {
    return {base + Tile(j, 0), GroupSize(j) * kTileElems, kTileK};
  }
};

// c[r][0, nb * 16) = a[r][0, k_tiles * 32) . [b[0] | ... | b[nb-1]] for rows r < rows (<= 16),
// fp32 accumulation in k order within each lane. a is row-major with lda elements per row and
// all 16 rows readable (callers pad with zeros); rows >= `rows` of c are unspecified. Fewer
// rows is less work where the path can skip it (AMX: tiles configured with `rows` rows; the
// attention runs its 5 query heads of a 14B group, not 16). c has ldc floats per row and is
// overwritten. 1 <= nb <= kMaxBlocksPerCall. prefetch == nullptr: the kernel streams B itself
// (a path may prefetch past the call: packed weights continue into the worker's next group).
// Otherwise the caller paces the stream: the kernel prefetches [prefetch, prefetch +
// prefetch_bytes) into L2 (0 bytes: none) and nothing past the call's own B, spread over its
// k-steps so the prefetches overlap the math (attention hands it the next KV page; past a page
// lies another user's).
using MatmulBlockFn = void (*)(const bf16* a, size_t lda, size_t rows, size_t k_tiles,
                               const BBlock* b, size_t nb, float* c, size_t ldc,
                               const void* prefetch, size_t prefetch_bytes);

// The rows of a prefill pass (a panel) in one call: c[r][0, nb * 16) as matmul_block computes
// it, for r < rows <= kMaxPanelRows, so a path can load each chunk of B once for all rows
// instead of once per 16-row tile. Every row is the same bits as through matmul_block. a has
// rows rounded up to 16 readable rows; c has as many rows (those >= rows unspecified).
constexpr size_t kMaxPanelRows = 128;
using MatmulRowsFn = void (*)(const bf16* a, size_t lda, size_t rows, size_t k_tiles,
                              const BBlock* b, size_t nb, float* c, size_t ldc);

// matmul_rows for paths whose block kernel is already as good: its 16-row tiles in turn.
template <MatmulBlockFn Block>
void MatmulRowsByTiles(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                       size_t nb, float* c, size_t ldc) {
  for (size_t r0 = 0; r0 < rows; r0 += kTileM) {
    const size_t tile = rows - r0 < kTileM ? rows - r0 : kTileM;
    Block(a + r0 * lda, lda, tile, k_tiles, b, nb, c + r0 * ldc, ldc, nullptr, 0);
  }
}

// The int8 kernels (quantized weights, quant_matrix.h): B is one group of a QuantMatrix,
// A is activations quantized per row (quant_rows.h).
//
// How a group holds each sub-block's weight scale s and bias b (weight = s * u + b, or
// s * (u - offset) where QuantGroup::offset is set):
//   kF32: per sub-block record and block, fp32 s[16] then b[16];
//   kF16: fp16 d[16], s = d (Q8_0, Q4_0; the bias is the offset);
//   kK:   ggml's K-quant scales. Every 256 weights (a super-block) start with a header per
//         block of fp16 d[16] and, without an offset, fp16 dmin[16]; each sub-block record then
//         holds u8 sc[16] and u8 m[16] (Q4_K: s = d * sc, b = -(dmin * m)) or, with an offset,
//         int8 sc[16] (Q6_K: s = d * sc). Both products are exact in fp32, so s and b are the
//         values gguf-py computes, and the file's bits per weight are nearly kept.
enum class QuantScales : uint32_t { kF32, kF16, kK };
struct QuantGroup {
  const uint8_t* data;  // the group's first super-block (header, then sub-block records)
  size_t nb;            // 16-column blocks, 1..kMaxBlocksPerCall
  size_t subs;          // sub-blocks along K
  uint32_t bits, sub;   // codes of 4, 6 (Q6_K) or 8 bits; 16 or 32 weights per sub-block
  uint32_t offset;      // 0, or the code offset of s * (u - offset) (128, 8 or 32)
  QuantScales scales;
};
constexpr size_t kQuantSuperWeights = 256;  // a K-quant super-block, and the kernels' K chunk
// Bytes of one block's scales in a sub-block record, and of its super-block header.
constexpr size_t QuantScaleBytes(QuantScales scales, uint32_t offset) {
  return scales == QuantScales::kF32   ? 2 * kTileN * sizeof(float)
         : scales == QuantScales::kF16 ? kTileN * sizeof(uint16_t)
         : offset                      ? kTileN
                                       : 2 * kTileN;
}
constexpr size_t QuantHeaderBytes(QuantScales scales, uint32_t offset) {
  return scales != QuantScales::kK ? 0 : (offset ? 1 : 2) * kTileN * sizeof(uint16_t);
}
struct QuantRows {
  const int8_t* q;      // [rows][ldq] int8 codes, k = subs * sub of them per row
  size_t ldq;
  const float* scale;   // [rows][ld16]: per 16 codes, x ~= scale * q
  const float* bias16;  // [rows][ld16]: per 16 codes, scale * their sum
  const int32_t* sum16; // [rows][ld16]: per 16 codes, their sum
  size_t ld16;
  const float* bias32;  // [rows][ld32]: per 32 codes, bias16 of the first 16 + of the second
  size_t ld32;
};
// c[r][0, nb * 16) for rows r < rows (1..kMaxPanelRows): per output, over the sub-blocks s in
// K order, with s and b as QuantScales says and the exact integer dot d_h of each 16 codes h
// of the sub-block,
//   t = scale[h0] * float(d_h0);  t = fma(scale[h1], float(d_h1), t)  (32-weight sub-blocks)
// and then, for weights s * (u - offset) (Q8_0, Q4_0, Q6_K),
//   d_h = sum(u * q) - offset * sum16[h];  acc = fma(s_s, t, acc)
// or for weights s * u + b (Q4_K, and any widened kF32 format),
//   d_h = sum(u * q);  acc = fma(s_s, t, acc);  acc = fma(b_s, bias16 or bias32 of s, acc)
// (sum of weight * x over the sub-block; the offset is taken exactly, in the integers, which
// also saves the second fma). Every path computes exactly this, so all paths give the same
// bits and a row's result never depends on its neighbours.
using QMatmulFn = void (*)(const QuantRows& a, size_t rows, const QuantGroup& b, float* c,
                           size_t ldc);

// One row of activations for the int8 kernels (quant_rows.h), k a multiple of 32: per 16 values
// scale = max|x| / 127, q = round-to-nearest-even(x * (127 / max|x|)) (an all-zero block: scale
// 0, q 0), sum16 = sum(q), bias16 = scale * sum16; per 32, bias32 = bias16 of its first 16 +
// of its second. Every path gives the same bits (its rounding is cvtss2si / vcvtps2dq under
// the default MXCSR).
using QuantizeRowFn = void (*)(const bf16* x, size_t k, int8_t* q, float* scale, int32_t* sum16,
                               float* bias16, float* bias32);
// The same for the values fp32(x[i]) * mul[i] (one fp32 product, never rounded to bf16): the
// probabilities of an 8-bit KV cache's P.V times each token's V scale (attention_q8.h).
using QuantizeScaledRowFn = void (*)(const bf16* x, const float* mul, size_t k, int8_t* q,
                                     float* scale, int32_t* sum16, float* bias16, float* bias32);

// Softmax numerator of one attention score tile (spec §3 stage 5), rows [0, rows):
// s = raw * scale over columns [0, valid); m = max(s); p = bf16(exp(s - m)); l = sum(fp32(p)).
// Columns [valid, cols) of p are zero (the masked tail); cols is a multiple of 16. raw is
// [rows][ldr] fp32 (read only), p is [rows][ldp] bf16.
using SoftmaxTileFn = void (*)(const float* raw, size_t ldr, size_t rows, size_t valid, size_t cols,
                               float scale, bf16* p, size_t ldp, float* row_max, float* row_sum);

// out[i] = bf16(silu(gate[i]) * up[i]) with the seed's sigmoid 1 / (exp(-g) + 1) (spec §3
// stage 9): the gate/up epilogue, vectorized because it runs once per intermediate output.
using SiluMulFn = void (*)(const float* gate, const float* up, size_t n, bf16* out);

// RMSNorm of one row (spec §3 stages 1 and 7, the final norm): out[i] = bf16(x[i] *
// rsqrt(mean(x^2) + eps) * weight[i]), x bf16 (the hidden state) or fp32 (the residual).
using RmsNormBf16Fn = void (*)(const bf16* x, const float* weight, size_t n, float eps, bf16* out);
using RmsNormF32Fn = void (*)(const float* x, const float* weight, size_t n, float eps, bf16* out);

// One head's q/k RMSNorm then half-rotation RoPE (spec §3 stage 4), n = head_dim (even,
// <= 256): y = x * rsqrt(mean(x^2) + eps) * weight; out[i] = bf16(y[i] cos[i] - y[i+h] sin[i]),
// out[i+h] = bf16(y[i+h] cos[i+h] + y[i] sin[i+h]) for i < h = n / 2.
using HeadNormRopeFn = void (*)(const float* x, const float* weight, const float* cos,
                                const float* sin, size_t n, float eps, bf16* out);

// out[i] = bf16(x[i]) (round to nearest even), the V of stage 4.
using CastBf16Fn = void (*)(const float* x, size_t n, bf16* out);

// The row-wise vec ops are O(batch x hidden) per stage, but at batch 16 on a small model
// (0.6B) they were 7% of a decode step as plain loops: they are per-path kernels too.
struct CpuKernels {
  CpuPath path;
  MatmulBlockFn matmul_block;
  MatmulRowsFn matmul_rows;
  QMatmulFn qmatmul;
  QuantizeRowFn quantize_row;
  QuantizeScaledRowFn quantize_scaled_row;
  SoftmaxTileFn softmax_tile;
  SiluMulFn silu_mul;
  RmsNormBf16Fn rms_norm_bf16;
  RmsNormF32Fn rms_norm_f32;
  HeadNormRopeFn head_norm_rope;
  CastBf16Fn cast_bf16;
};

// Each path's table is written with designated initializers and passed through Complete(),
// so an entry left out is a compile error, never a null pointer found at run time.
consteval CpuKernels Complete(CpuKernels k) {
  if (k.path == CpuPath::kSentinel || !k.matmul_block || !k.matmul_rows || !k.qmatmul || !k.quantize_row || !k.quantize_scaled_row ||
      !k.softmax_tile ||
      !k.silu_mul || !k.rms_norm_bf16 || !k.rms_norm_f32 || !k.head_norm_rope || !k.cast_bf16) {
    throw "CpuKernels: every entry must be set";  // not a constant expression: does not compile
  }
  return k;
}

// The table of a path; the path must be supported (IsSupported), else Error.
const CpuKernels& GetCpuKernels(CpuPath path);

// The AMX path configures each thread's tiles once. Code that runs another AMX user on our
// threads (a peer library) calls InvalidateTileConfigs() afterwards so every thread reloads
// its configuration before its next tile instruction.
void InvalidateTileConfigs();
uint64_t TileConfigEpoch();  // starts at 1

}  // namespace qwen3::cpu
