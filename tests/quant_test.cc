// Quantized weights and activations (exec/cpu/quant_blocks.h, quant_matrix.h, quant_rows.h)
// and the int8 kernel of every path (CpuKernels::qmatmul).
//
// The block decoders are checked against ggml's reference dequantization loops, rewritten here
// from ggml's dequantize_row_* in their own shape (a different code path from DecodeBlock), and
// against llama.cpp's GGUF files in gguf_model_test. Every path's qmatmul must equal the scalar
// twin bit for bit (the integer dots are exact and the fp32 steps are the same fmas), and the
// scalar twin must equal a double-precision sum of dequantized weights times dequantized
// activations to fp32 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "base/f16.h"
#include "base/rng.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/qmatmul.h"
#include "exec/cpu/quant_blocks.h"
#include "exec/cpu/quant_matrix.h"
#include "exec/cpu/quant_rows.h"
#include "runtime/thread_pool.h"
#include "tests/error_matchers.h"

namespace qwen3::cpu {
namespace {

ThreadPool& Pool() {
  static ThreadPool pool(2);
  return pool;
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

TEST(F16Test, RoundTripsEveryHalfAndRoundsMidpointsToEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << std::hex << h;
    if ((h & 0x7fff) >= 0x7bff) continue;  // the next half up is Inf
    const float up = F16ToF32(static_cast<uint16_t>(h + 1));
    const double mid = (static_cast<double>(f) + up) / 2;  // exact in fp32 for halves
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    ASSERT_EQ(F32ToF16(static_cast<float>(mid)), even) << std::hex << h;
  }
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(1e-10f), 0);
}

// Random ggml blocks: random bytes with a finite fp16 scale (and min) in [2^-10, 2^-4].
std::vector<uint8_t> RandomBlocks(WeightType type, size_t blocks, uint64_t seed) {
  const CounterRng rng(seed, 1);
  std::vector<uint8_t> data(blocks * BlockBytes(type));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(rng.Bits(i));
  const auto half = [&](size_t at, uint64_t i) {
    const uint16_t h = F32ToF16(std::ldexp(1.0f + rng.Uniform(i), -static_cast<int>(rng.Int(i + 1, 4, 10))));
    std::memcpy(data.data() + at, &h, 2);
  };
  for (size_t b = 0; b < blocks; ++b) {
    const size_t at = b * BlockBytes(type);
    switch (type) {
      case WeightType::kQ8_0:
      case WeightType::kQ4_0:
        half(at, 1000000 + 2 * b);
        break;
      case WeightType::kQ4_K:
        half(at, 2000000 + 4 * b);
        half(at + 2, 2000002 + 4 * b);
        break;
      case WeightType::kQ6_K:
        half(at + 208, 3000000 + 2 * b);
        break;
      case WeightType::kQ5_0:
        half(at, 4000000 + 2 * b);
        break;
      case WeightType::kQ4_1:
      case WeightType::kQ5_1:
      case WeightType::kQ5_K:  // d and m (dmin)
        half(at, 5000000 + 4 * b);
        half(at + 2, 5000002 + 4 * b);
        break;
      case WeightType::kBf16:
        break;
    }
  }
  return data;
}

// ggml's dequantize_row_* loops, one block, as float32.
void ReferenceDequantize(WeightType type, const uint8_t* b, float* y) {
  const auto half = [](const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return F16ToF32(h);
  };
  if (type == WeightType::kQ8_0) {
    for (int j = 0; j < 32; ++j) y[j] = half(b) * static_cast<int8_t>(b[2 + j]);
  } else if (type == WeightType::kQ4_0) {
    for (int j = 0; j < 16; ++j) {
      y[j] = half(b) * ((b[2 + j] & 0xf) - 8);
      y[j + 16] = half(b) * ((b[2 + j] >> 4) - 8);
    }
  } else if (type == WeightType::kQ4_1) {
    for (int j = 0; j < 16; ++j) {
      y[j] = (b[4 + j] & 0xf) * half(b) + half(b + 2);
      y[j + 16] = (b[4 + j] >> 4) * half(b) + half(b + 2);
    }
  } else if (type == WeightType::kQ5_0 || type == WeightType::kQ5_1) {
    const bool q5_1 = type == WeightType::kQ5_1;
    const uint8_t* qs = b + (q5_1 ? 8 : 6);
    uint32_t qh;
    std::memcpy(&qh, b + (q5_1 ? 4 : 2), 4);
    for (int j = 0; j < 16; ++j) {
      const uint8_t xh_0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
      const uint8_t xh_1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      const int x0 = (qs[j] & 0x0f) | xh_0, x1 = (qs[j] >> 4) | xh_1;
      if (q5_1) {
        y[j] = x0 * half(b) + half(b + 2);
        y[j + 16] = x1 * half(b) + half(b + 2);
      } else {
        y[j] = (x0 - 16) * half(b);
        y[j + 16] = (x1 - 16) * half(b);
      }
    }
  } else if (type == WeightType::kQ4_K || type == WeightType::kQ5_K) {
    const bool q5 = type == WeightType::kQ5_K;
    const float d = half(b), min = half(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* q = b + (q5 ? 48 : 16);
    uint8_t u1 = 1, u2 = 2;
    auto scale_min = [&](int j, int& sc, int& m) {
      if (j < 4) {
        sc = scales[j] & 63;
        m = scales[j + 4] & 63;
      } else {
        sc = (scales[j + 4] & 0xf) | ((scales[j - 4] >> 6) << 4);
        m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
      }
    };
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
      int sc, m;
      scale_min(is, sc, m);
      const float d1 = d * sc, m1 = min * m;
      scale_min(is + 1, sc, m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xf) + (q5 && (qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) + (q5 && (qh[l] & u2) ? 16 : 0)) - m2;
      q += 32;
      is += 2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  } else if (type == WeightType::kQ6_K) {
    const float d = half(b + 208);
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    for (int n = 0; n < 256; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

class QuantTypeTest : public testing::TestWithParam<WeightType> {};

TEST_P(QuantTypeTest, PackedMatrixHoldsGgmlsDequantizationExactly) {
  const WeightType type = GetParam();
  const size_t n = 37, k = 2 * BlockElems(type) + (BlockElems(type) == 32 ? 32 * 5 : 0);
  const size_t per_row = k / BlockElems(type);
  const std::vector<uint8_t> data = RandomBlocks(type, n * per_row, 7);
  const QuantMatrix m = QuantMatrix::FromGguf(type, data.data(), n, k, "w", Pool());
  EXPECT_EQ(m.n(), n);
  EXPECT_EQ(m.k(), k);
  EXPECT_EQ(m.format(), FormatOf(type));
  std::vector<float> y(BlockElems(type));
  for (size_t r = 0; r < n; ++r) {
    for (size_t blk = 0; blk < per_row; ++blk) {
      ReferenceDequantize(type, data.data() + (r * per_row + blk) * BlockBytes(type), y.data());
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_TRUE(m.At(blk * BlockElems(type) + i, r) == y[i])  // +0 for ggml's -0: no matter
            << ToString(type) << " row " << r << " k " << blk * BlockElems(type) + i << ": "
            << m.At(blk * BlockElems(type) + i, r) << " vs " << y[i];
      }
    }
  }
}

TEST_P(QuantTypeTest, InterleavedMatrixHoldsBothSourcesWidened) {
  const WeightType type = GetParam();
  const WeightType other = WeightType::kQ6_K;  // the widest: 8-bit codes, 16-weight sub-blocks
  const size_t n = 64, k = 256;
  const std::vector<uint8_t> a = RandomBlocks(type, n * k / BlockElems(type), 3);
  const std::vector<uint8_t> b = RandomBlocks(other, n * k / BlockElems(other), 4);
  const QuantMatrix qa = QuantMatrix::FromGguf(type, a.data(), n, k, "a", Pool());
  const QuantMatrix qb = QuantMatrix::FromGguf(other, b.data(), n, k, "b", Pool());
  const QuantMatrix m =
      QuantMatrix::FromGgufInterleaved(type, a.data(), other, b.data(), n, k, "a", "b", Pool());
  const QuantFormat widened = {8, 16, 0, QuantScales::kF32};  // s * u + b holds both
  EXPECT_EQ(m.format(), type == other ? FormatOf(other) : widened);
  EXPECT_EQ(m.n(), 2 * n);
  for (size_t nn = 0; nn < 2 * n; ++nn) {
    const size_t col = nn / 64 * 32 + nn % 32;
    const QuantMatrix& src = nn % 64 >= 32 ? qb : qa;
    for (size_t kk = 0; kk < k; ++kk) ASSERT_TRUE(SameBits(m.At(kk, nn), src.At(kk, col)));
  }
}

TEST_P(QuantTypeTest, TakesAboutTheFilesBitsPerWeight) {
  // Q8_0 / Q4_0 exactly the file's; Q4_K 4.625 for 4.5 (a byte per sub-block's sc and m);
  // Q6_K exactly the file's 6.5625.
  const WeightType type = GetParam();
  const size_t n = 64, k = 512;
  const std::vector<uint8_t> data = RandomBlocks(type, n * k / BlockElems(type), 5);
  const QuantMatrix m = QuantMatrix::FromGguf(type, data.data(), n, k, "w", Pool());
  const double bits = 8.0 * static_cast<double>(m.bytes()) / static_cast<double>(n * k);
  const double file_bits = 8.0 * static_cast<double>(BlockBytes(type)) / static_cast<double>(BlockElems(type));
  // Q5_0 8.5 for 5.5 (5-bit codes in bytes); Q4_1 6 for 5, Q5_1 10 for 6 and Q5_K 10 for 5.5
  // (fp32 s and b per 32 weights, 5-bit codes in bytes).
  double extra = 0;
  switch (type) {
    case WeightType::kQ4_K: extra = 0.125; break;
    case WeightType::kQ6_K: extra = 0.0; break;
    case WeightType::kQ5_0: extra = 3.0; break;
    case WeightType::kQ4_1: extra = 1.0; break;
    case WeightType::kQ5_1: extra = 4.0; break;
    case WeightType::kQ5_K: extra = 4.5; break;
    default: break;
  }
  EXPECT_DOUBLE_EQ(bits, file_bits + extra) << ToString(type);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantTypeTest,
                         testing::Values(WeightType::kQ8_0, WeightType::kQ4_0, WeightType::kQ4_K,
                                         WeightType::kQ6_K, WeightType::kQ4_1, WeightType::kQ5_0,
                                         WeightType::kQ5_1, WeightType::kQ5_K),
                         [](const auto& info) { return std::string(ToString(info.param)); });

TEST(QuantizeTest, MatchesLlamaCppsReferenceQuantizers) {
  // Q8_0: d = amax / 127, q = roundf(x / d); Q4_0: d = -max / 8 (max: the signed extreme),
  // q = min(15, trunc(x / d + 8.5)).
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = (i - 13) * 0.37f;  // extreme -4.81 at i = 0, 6.66 at 31
  uint8_t q8[34], q4[18];
  QuantizeBlockQ8_0(x, q8);
  QuantizeBlockQ4_0(x, q4);
  uint16_t d8, d4;
  std::memcpy(&d8, q8, 2);
  std::memcpy(&d4, q4, 2);
  EXPECT_EQ(d8, F32ToF16(6.66f / 127.0f));
  EXPECT_EQ(d4, F32ToF16(6.66f / -8.0f));
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 31]), 127);
  EXPECT_EQ(static_cast<int8_t>(q8[2 + 0]), static_cast<int8_t>(std::roundf(x[0] * (127.0f / 6.66f))));
  EXPECT_EQ(q4[2 + 15] >> 4, 0);  // x[31] / d = -8 -> 0
  EXPECT_EQ(q4[2 + 0] & 0xf, std::min(15, static_cast<int>(static_cast<int8_t>(x[0] / (6.66f / -8.0f) + 8.5f))));
}

TEST(QuantizeTest, QuantizeRejectsBadShapesTypesAndNonFiniteWeights) {
  std::vector<bf16> w(64 * 48, F32ToBf16(0.5f));
  EXPECT_TRUE(ThrowsError(
      [&] { (void)QuantMatrix::Quantize(w.data(), 64, 48, WeightType::kQ8_0, "blk.w", Pool()); },
      {"tensor blk.w: 48 inputs per row: expected a multiple of 32"}));
  EXPECT_TRUE(ThrowsError(
      [&] { (void)QuantMatrix::Quantize(w.data(), 48, 64, WeightType::kQ4_K, "blk.w", Pool()); },
      {"--quantize q4_k: expected q8_0 or q4_0"}));
  w[3 * 64 + 5] = 0x7fc0;
  EXPECT_TRUE(ThrowsError(
      [&] { (void)QuantMatrix::Quantize(w.data(), 48, 64, WeightType::kQ4_0, "blk.w", Pool()); },
      {"tensor blk.w: element [3, 5] is not finite"}));
  EXPECT_TRUE(ThrowsError([&] { (void)ParseQuantizeType("q5_k"); },
                          {"--quantize q5_k: expected q8_0 or q4_0"}));
}

TEST(QuantRowsTest, QuantizesPerRowBlockToNearestEven) {
  const size_t k = 64;
  std::vector<bf16> x(2 * k);
  for (size_t i = 0; i < x.size(); ++i) x[i] = F32ToBf16((static_cast<float>(i % 37) - 18.0f) / 8);
  x[5] = F32ToBf16(0.0f);
  for (size_t i = k; i < k + 16; ++i) x[i] = 0;  // an all-zero block: scale 0, codes 0
  QuantizedRows q;
  q.Quantize(GetCpuKernels(CpuPath::kScalar), x.data(), k, 2, k, Pool());
  const QuantRows v = q.view();
  for (size_t r = 0; r < 2; ++r) {
    for (size_t b = 0; b < k / 16; ++b) {
      float amax = 0;
      for (size_t i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(Bf16ToF32(x[r * k + b * 16 + i])));
      EXPECT_TRUE(SameBits(v.scale[r * v.ld16 + b], amax / 127.0f));
      int32_t sum = 0;
      for (size_t i = 0; i < 16; ++i) {
        const float want =
            amax > 0 ? std::nearbyint(Bf16ToF32(x[r * k + b * 16 + i]) * (127.0f / amax)) : 0;
        const int8_t got = v.q[r * v.ldq + b * 16 + i];
        ASSERT_EQ(got, static_cast<int8_t>(want)) << r << " " << b << " " << i;
        sum += got;
      }
      EXPECT_EQ(v.sum16[r * v.ld16 + b], sum);
      EXPECT_TRUE(SameBits(v.bias16[r * v.ld16 + b], v.scale[r * v.ld16 + b] * static_cast<float>(sum)));
    }
    for (size_t b = 0; b < k / 32; ++b) {
      EXPECT_TRUE(SameBits(v.bias32[r * v.ld32 + b],
                           v.bias16[r * v.ld16 + 2 * b] + v.bias16[r * v.ld16 + 2 * b + 1]));
    }
  }
}

// Random activations with magnitudes over 2^-3 .. 2^3 (bf16), quantized.
std::vector<bf16> RandomActivations(size_t rows, size_t k, uint64_t seed) {
  const CounterRng rng(seed, 2);
  std::vector<bf16> x(rows * k);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = F32ToBf16(std::ldexp(rng.Uniform(2 * i) * 2 - 1, static_cast<int>(rng.Int(2 * i + 1, -3, 3))));
  }
  return x;
}

class QMatmulTest : public testing::TestWithParam<CpuPath> {};

struct QCase {
  WeightType type;
  size_t n, k;
};

TEST_P(QMatmulTest, EqualsTheScalarTwinBitForBitAndTheDequantizedSum) {
  const CpuKernels& kernels = GetCpuKernels(GetParam());
  for (const QCase& qc : {QCase{WeightType::kQ8_0, 64, 96}, QCase{WeightType::kQ4_0, 48, 288},
                          QCase{WeightType::kQ4_K, 64, 512}, QCase{WeightType::kQ6_K, 56, 256},
                          QCase{WeightType::kQ4_0, 16, 32}, QCase{WeightType::kQ8_0, 64, 2560},
                          QCase{WeightType::kQ4_K, 80, 768}, QCase{WeightType::kQ6_K, 72, 512},
                          QCase{WeightType::kQ4_1, 48, 96},  QCase{WeightType::kQ5_0, 64, 128},
                          QCase{WeightType::kQ5_1, 40, 64},  QCase{WeightType::kQ5_K, 64, 512}}) {
    const std::vector<uint8_t> data = RandomBlocks(qc.type, qc.n * qc.k / BlockElems(qc.type), 11);
    const QuantMatrix w = QuantMatrix::FromGguf(qc.type, data.data(), qc.n, qc.k, "w", Pool());
    for (size_t rows : {1, 2, 3, 4, 5, 7, 8, 13, 16, 37, 128}) {
      const std::vector<bf16> x = RandomActivations(rows, qc.k, rows);
      QuantizedRows q;
      q.Quantize(kernels, x.data(), qc.k, rows, qc.k, Pool());
      const QuantRows a = q.view();
      for (size_t j0 = 0; j0 < w.n_blocks(); j0 += 4) {
        for (size_t nb = 1; nb <= std::min<size_t>(4, w.n_blocks() - j0); ++nb) {
          const QuantGroup g = w.Group(j0, std::min<size_t>(4, w.n_blocks() - j0));
          QuantGroup part = g;
          part.nb = nb;  // a prefix of the group's blocks, as a caller with fewer columns
          if (nb != g.nb) continue;  // records are laid out for the whole group
          std::vector<float> got(rows * 64, -1.0f), want(rows * 64, -2.0f);
          kernels.qmatmul(a, rows, part, got.data(), 64);
          QMatmulScalar(a, rows, part, want.data(), 64);
          for (size_t r = 0; r < rows; ++r) {
            for (size_t col = 0; col < nb * 16; ++col) {
              ASSERT_TRUE(SameBits(got[r * 64 + col], want[r * 64 + col]))
                  << ToString(qc.type) << " rows " << rows << " r " << r << " col " << col
                  << ": " << got[r * 64 + col] << " vs scalar " << want[r * 64 + col];
            }
          }
          if (GetParam() != CpuPath::kScalar) continue;
          for (size_t r = 0; r < rows; ++r) {  // the scalar twin vs dequantized sums
            for (size_t col = 0; col < nb * 16 && (j0 * 16 + col) < qc.n; ++col) {
              double sum = 0, mag = 0;
              for (size_t kk = 0; kk < qc.k; ++kk) {
                const double xv = static_cast<double>(a.scale[r * a.ld16 + kk / 16]) * a.q[r * a.ldq + kk];
                sum += xv * w.At(kk, j0 * 16 + col);
                mag += std::fabs(xv * w.At(kk, j0 * 16 + col));
              }
              ASSERT_NEAR(want[r * 64 + col], sum, 4e-6 * mag + 1e-30) << r << " " << col;
            }
          }
        }
      }
    }
  }
}

TEST_P(QMatmulTest, QuantizeRowEqualsTheScalarTwin) {
  const size_t k = 5120;
  std::vector<bf16> x = RandomActivations(3, k, 4);
  for (size_t i = 32; i < 48; ++i) x[i] = 0;  // an all-zero block
  x[100] = F32ToBf16(-1e30f);                  // a huge value beside small ones
  QuantizedRows got, want;
  got.Quantize(GetCpuKernels(GetParam()), x.data(), k, 3, k, Pool());
  want.Quantize(GetCpuKernels(CpuPath::kScalar), x.data(), k, 3, k, Pool());
  const QuantRows g = got.view(), w = want.view();
  for (size_t r = 0; r < 3; ++r) {
    ASSERT_EQ(std::memcmp(g.q + r * g.ldq, w.q + r * w.ldq, k), 0) << r;
    for (size_t b = 0; b < k / 16; ++b) {
      ASSERT_TRUE(SameBits(g.scale[r * g.ld16 + b], w.scale[r * w.ld16 + b])) << r << " " << b;
      ASSERT_TRUE(SameBits(g.bias16[r * g.ld16 + b], w.bias16[r * w.ld16 + b])) << r << " " << b;
      ASSERT_EQ(g.sum16[r * g.ld16 + b], w.sum16[r * w.ld16 + b]) << r << " " << b;
    }
    for (size_t b = 0; b < k / 32; ++b) {
      ASSERT_TRUE(SameBits(g.bias32[r * g.ld32 + b], w.bias32[r * w.ld32 + b])) << r << " " << b;
    }
  }
}

// quantize_scaled_row (an 8-bit KV cache's P.V): x * mul in fp32, then as quantize_row; the
// scalar twin equals quantize_row of the products where they are bf16 already.
TEST_P(QMatmulTest, QuantizeScaledRowEqualsTheScalarTwin) {
  const size_t k = 288;  // 18 blocks of 16: the vector paths' 4 at a time, then 2
  std::vector<bf16> x = RandomActivations(1, k, 6);
  std::vector<float> mul(k);
  for (size_t i = 0; i < k; ++i) mul[i] = std::ldexp(1.0f + 0.01f * static_cast<float>(i % 7), static_cast<int>(i % 9) - 6);
  for (size_t i = 16; i < 32; ++i) x[i] = 0;  // an all-zero block
  const auto run = [&](const CpuKernels& kernels, const float* m, const bf16* in) {
    std::vector<int8_t> q(k);
    std::vector<float> scale(k / 16), b16(k / 16), b32(k / 32);
    std::vector<int32_t> sum16(k / 16);
    if (m) {
      kernels.quantize_scaled_row(in, m, k, q.data(), scale.data(), sum16.data(), b16.data(), b32.data());
    } else {
      kernels.quantize_row(in, k, q.data(), scale.data(), sum16.data(), b16.data(), b32.data());
    }
    std::vector<float> all(scale);
    for (int8_t c : q) all.push_back(c);
    for (int32_t v : sum16) all.push_back(static_cast<float>(v));
    all.insert(all.end(), b16.begin(), b16.end());
    all.insert(all.end(), b32.begin(), b32.end());
    return all;
  };
  const auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  const CpuKernels& scalar = GetCpuKernels(CpuPath::kScalar);
  EXPECT_TRUE(same(run(GetCpuKernels(GetParam()), mul.data(), x.data()), run(scalar, mul.data(), x.data())));
  // Powers of two: the products are exact bf16s, so quantize_row of them is the same.
  std::vector<float> pow2(k);
  std::vector<bf16> prod(k);
  for (size_t i = 0; i < k; ++i) {
    pow2[i] = std::ldexp(1.0f, static_cast<int>(i % 9) - 6);
    prod[i] = F32ToBf16(Bf16ToF32(x[i]) * pow2[i]);
  }
  EXPECT_TRUE(same(run(GetCpuKernels(GetParam()), pow2.data(), x.data()), run(scalar, nullptr, prod.data())));
}

TEST_P(QMatmulTest, ARowsResultDoesNotDependOnTheRowsBesideIt) {
  const CpuKernels& kernels = GetCpuKernels(GetParam());
  const size_t n = 64, k = 512;
  const std::vector<uint8_t> data = RandomBlocks(WeightType::kQ4_K, n * k / 256, 5);
  const QuantMatrix w = QuantMatrix::FromGguf(WeightType::kQ4_K, data.data(), n, k, "w", Pool());
  const std::vector<bf16> x = RandomActivations(16, k, 9);
  QuantizedRows all, one;
  all.Quantize(kernels, x.data(), k, 16, k, Pool());
  std::vector<float> c_all(16 * 64), c_one(64);
  kernels.qmatmul(all.view(), 16, w.Group(0, 4), c_all.data(), 64);
  for (size_t r = 0; r < 16; ++r) {
    one.Quantize(kernels, x.data() + r * k, k, 1, k, Pool());
    kernels.qmatmul(one.view(), 1, w.Group(0, 4), c_one.data(), 64);
    for (size_t col = 0; col < 64; ++col) ASSERT_TRUE(SameBits(c_all[r * 64 + col], c_one[col]));
  }
}

TEST_P(QMatmulTest, ChecksItsPreconditions) {
  const CpuKernels& kernels = GetCpuKernels(GetParam());
  const std::vector<uint8_t> data = RandomBlocks(WeightType::kQ8_0, 16, 1);
  const QuantMatrix w = QuantMatrix::FromGguf(WeightType::kQ8_0, data.data(), 16, 32, "w", Pool());
  QuantizedRows q;
  const std::vector<bf16> x = RandomActivations(1, 32, 1);
  q.Quantize(kernels, x.data(), 32, 1, 32, Pool());
  float c[16];
  QuantGroup g = w.Group(0, 1);
  EXPECT_DEATH(kernels.qmatmul(q.view(), 0, g, c, 16), "rows >= 1");
  g.nb = 5;
  EXPECT_DEATH(kernels.qmatmul(q.view(), 1, g, c, 16), "b.nb <= kMaxBlocksPerCall");
}

INSTANTIATE_TEST_SUITE_P(Paths, QMatmulTest, testing::ValuesIn(AvailableCpuPaths()),
                         [](const auto& info) { return std::string(ToString(info.param)); });

}  // namespace
}  // namespace qwen3::cpu
