// The int8 kernel on AVX2: vpmaddubsw + vpmaddwd on nibbles (4-bit products stay inside int16;
// 8-bit codes run as two nibble halves), 8 columns per register, tiles of up to 2 rows x one
// 16-column block (16 ymm registers). The same integers and fp32 steps as QMatmulScalar.
#include <immintrin.h>

#include <algorithm>

#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace {

inline __m256i Dot(__m256i acc, __m256i u, __m256i x, bool wide) {
  const __m256i ones = _mm256_set1_epi16(1);
  if (!wide) return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), ones));
  const __m256i nib = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(u, nib);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(u, 4), nib);
  const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x), ones);
  const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x), ones);
  return _mm256_add_epi32(acc, _mm256_add_epi32(plo, _mm256_slli_epi32(phi, 4)));
}

inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

__m256 Half8(const uint8_t* p) {  // 8 fp16s
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__m256 Bytes8(const uint8_t* p, bool is_signed) {  // 8 u8s or i8s as floats
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_cvtepi32_ps(is_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
}

// Columns 8h .. 8h + 7's s and b (kernels.h, QuantScales; b unused with an offset).
void ScalesOf(const QuantGroup& b, const uint8_t* header, const uint8_t* sb, size_t h, __m256& ws,
              __m256& wb) {
  wb = _mm256_setzero_ps();
  switch (b.scales) {
    case QuantScales::kF32:
      ws = _mm256_loadu_ps(reinterpret_cast<const float*>(sb) + h * 8);
      wb = _mm256_loadu_ps(reinterpret_cast<const float*>(sb) + kTileN + h * 8);
      return;
    case QuantScales::kF16:
      ws = Half8(sb + h * 16);
      return;
    case QuantScales::kK:
      ws = _mm256_mul_ps(Half8(header + h * 16), Bytes8(sb + h * 8, b.offset != 0));
      if (!b.offset) {
        wb = _mm256_mul_ps(Half8(header + 2 * kTileN + h * 16), Bytes8(sb + kTileN + h * 8, false));
        wb = _mm256_xor_ps(wb, _mm256_set1_ps(-0.0f));  // -(dmin m), as the scalar twin
      }
      return;
  }
}

template <size_t R>
void Tile(const QuantRows& a, size_t r0, const QuantGroup& b, size_t j, float* c, size_t ldc) {
  const size_t code_bytes = QuantCodeBytes(b);
  const size_t scale_bytes = QuantScaleBytes(b.scales, b.offset);
  const size_t header_bytes = QuantHeaderBytes(b.scales, b.offset);
  const bool wide = b.bits == 8;
  const __m256i nib = _mm256_set1_epi8(0x0f), top2 = _mm256_set1_epi8(0x30);
  __m256 acc[R][2];
  for (size_t r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (size_t s = 0; s < b.subs; ++s) {
    const uint8_t* rec = b.data + QuantRecordOffset(b, s);
    const uint8_t* codes = rec + j * code_bytes;
    const int8_t* x[R];
    for (size_t r = 0; r < R; ++r) x[r] = a.q + (r0 + r) * a.ldq + s * b.sub;
    __m256 t[R][2];  // (zeroed only to quiet GCC: g == 0 writes it first)
    for (size_t r = 0; r < R; ++r) t[r][0] = t[r][1] = _mm256_setzero_ps();
    for (size_t g = 0; g < b.sub / 16; ++g) {  // each 16 codes has its own activation scale
      __m256i dot[R][2];
      for (size_t r = 0; r < R; ++r) {
        dot[r][0] = dot[r][1] = _mm256_set1_epi32(QuantRowOffsetDot(a, r0 + r, s * b.sub / 16 + g, b.offset));
      }
      for (size_t v = 0; v < 4; ++v) {
        for (size_t h = 0; h < 2; ++h) {  // columns 8h .. 8h + 7
          const size_t vec = wide ? g * 4 + v : b.bits == 6 ? v % 2 : v;
          __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + vec * 64 + h * 32));
          if (b.bits == 6) {  // nibbles | top 2 bits << 4 (QuantCodeAt)
            const __m256i top = _mm256_srli_epi16(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 128 + h * 32)),
                static_cast<int>(2 * v));
            u = _mm256_or_si256(_mm256_and_si256(v < 2 ? u : _mm256_srli_epi16(u, 4), nib),
                                _mm256_and_si256(_mm256_slli_epi16(top, 4), top2));
          } else if (!wide) {
            u = _mm256_and_si256(g == 0 ? u : _mm256_srli_epi16(u, 4), nib);
          }
          for (size_t r = 0; r < R; ++r) {
            dot[r][h] = Dot(dot[r][h], u, Broadcast4(x[r] + g * 16 + 4 * v), wide);
          }
        }
      }
      for (size_t r = 0; r < R; ++r) {
        const __m256 xs = _mm256_set1_ps(QuantRowScale(a, r0 + r, s * b.sub / 16 + g));
        for (size_t h = 0; h < 2; ++h) {
          const __m256 d = _mm256_cvtepi32_ps(dot[r][h]);
          t[r][h] = g == 0 ? _mm256_mul_ps(xs, d) : _mm256_fmadd_ps(xs, d, t[r][h]);
        }
      }
    }
    const uint8_t* sb = rec + b.nb * code_bytes + j * scale_bytes;
    const uint8_t* hd = b.data + QuantHeaderOffset(b, s) + j * header_bytes;
    __m256 ws[2], wb[2];
    for (size_t h = 0; h < 2; ++h) ScalesOf(b, hd, sb, h, ws[h], wb[h]);
    for (size_t r = 0; r < R; ++r) {
      for (size_t h = 0; h < 2; ++h) acc[r][h] = _mm256_fmadd_ps(ws[h], t[r][h], acc[r][h]);
      if (b.offset) continue;
      const __m256 xb = _mm256_set1_ps(QuantRowBias(a, r0 + r, s, b.sub));
      for (size_t h = 0; h < 2; ++h) acc[r][h] = _mm256_fmadd_ps(wb[h], xb, acc[r][h]);
    }
  }
  for (size_t r = 0; r < R; ++r) {
    for (size_t h = 0; h < 2; ++h) _mm256_storeu_ps(c + r * ldc + j * kTileN + h * 8, acc[r][h]);
  }
}

}  // namespace

void QMatmulAvx2(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  CheckQuantOperands(rows, b);
  for (size_t r0 = 0; r0 < rows;) {
    const size_t rt = rows - r0 >= 2 ? 2 : 1;
    for (size_t j = 0; j < b.nb; ++j) {
      if (rt == 2) {
        Tile<2>(a, r0, b, j, c + r0 * ldc, ldc);
      } else {
        Tile<1>(a, r0, b, j, c + r0 * ldc, ldc);
      }
    }
    r0 += rt;
  }
}

}  // namespace qwen3::cpu
