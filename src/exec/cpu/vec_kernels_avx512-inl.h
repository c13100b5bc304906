// The vec kernels (kernels.h: SoftmaxTileFn, SiluMulFn) in AVX-512F, for the amx,
// avx512bf16 and avx512 paths. The softmax tile: 16 columns per vector, the masked tail handled by
// AVX-512 masks. exp is Cephes' expf (range reduction by ln2 in two parts, degree-5 polynomial)
// with the scaling by 2^n done by vscalefps; it matches the scalar path's ExpF32 within
// 2 ulp. bf16 rounding is round-to-nearest-even: vcvtneps2bf16 where AVX512_BF16 is there,
// else on the integer bits.
// Include inside a path namespace only: every path gets its own copy.

static inline __m512 Exp16(__m512 x) {
  const __m512 xc = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512 e = _mm512_scalef_ps(p, n);
  // Below the clamp the scalar twin returns 0 (the golden's exp is a denormal there).
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ), e);
}

// fp32 -> bf16 (RNE), 16 lanes; also returns the rounded values as fp32. Inputs are finite.
static inline __m256i RoundToBf16x16(__m512 v, __m512* rounded) {
#ifdef __AVX512BF16__
  const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
  *rounded = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return h;
#else
  __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  bits = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  bits = _mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
  *rounded = _mm512_castsi512_ps(bits);
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16));
#endif
}

// Horizontal reductions through memory (GCC 12's _mm512_reduce_* trip -Wmaybe-uninitialized).
static inline float ReduceMax16(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float m = t[0];
  for (int i = 1; i < 16; ++i) m = t[i] > m ? t[i] : m;
  return m;
}

static inline float ReduceAdd16(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float sum = 0.0f;
  for (int i = 0; i < 16; ++i) sum += t[i];
  return sum;
}

// QuantizeRowFn (kernels.h): one 16-value block per vector, the same steps as the scalar twin.
// Lane i of the result: the max (Max4x16) or sum (Add4x16) of the 16 lanes of input i, by
// shuffles in registers (four such reductions through memory were most of a row's quantization).
static inline __m128 Max4x16(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 a01 = _mm512_max_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 a23 = _mm512_max_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  // 128-bit lane i: four partial maxima of input i.
  const __m512 b = _mm512_max_ps(_mm512_shuffle_f32x4(a01, a23, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(a01, a23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 c = _mm512_max_ps(b, _mm512_permute_ps(b, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m512 d = _mm512_max_ps(c, _mm512_permute_ps(c, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), d));
}
static inline __m128i Add4x16(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  const __m512i a01 = _mm512_add_epi32(_mm512_shuffle_i32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                       _mm512_shuffle_i32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512i a23 = _mm512_add_epi32(_mm512_shuffle_i32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                       _mm512_shuffle_i32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512i b = _mm512_add_epi32(_mm512_shuffle_i32x4(a01, a23, _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_i32x4(a01, a23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i c = _mm512_add_epi32(b, _mm512_shuffle_epi32(b, _MM_PERM_CDAB));
  const __m512i d = _mm512_add_epi32(c, _mm512_shuffle_epi32(c, _MM_PERM_BADC));
  return _mm512_castsi512_si128(
      _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), d));
}

// QuantizeRow of x, or (MUL) of x * mul: four 16-value blocks at a time (the reductions and
// divisions of four blocks in one vector each), then any last two one by one. Max and integer
// sums are exact in any order and the divisions are the same IEEE ones, so every bit is the
// scalar twin's.
template <bool MUL>
static inline __m512 QuantInput(const bf16* x, const float* mul, size_t b) {
  __m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(
      _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + b * 16))), 16));
  if constexpr (MUL) v = _mm512_mul_ps(v, _mm512_loadu_ps(mul + b * 16));
  return v;
}
template <bool MUL>
static void QuantizeRowOf(const bf16* x, const float* mul, size_t k, int8_t* q, float* scale,
                          int32_t* sum16, float* bias16, float* bias32) {
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  size_t b = 0;
  for (; b + 4 <= k / 16; b += 4) {
    __m512 v[4];
    for (size_t i = 0; i < 4; ++i) v[i] = QuantInput<MUL>(x, mul, b + i);
    const __m128 amax = Max4x16(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1]), _mm512_abs_ps(v[2]),
                                _mm512_abs_ps(v[3]));
    // 127 / amax where amax > 0, else 0 (the masked lanes' inf never escapes).
    const __m128 inv = _mm_and_ps(_mm_div_ps(_mm_set1_ps(127.0f), amax),
                                  _mm_cmpgt_ps(amax, _mm_setzero_ps()));
    const __m128 sc = _mm_div_ps(amax, _mm_set1_ps(127.0f));
    __m512i c[4];
    for (size_t i = 0; i < 4; ++i) {
      const __m512 vi = _mm512_permutexvar_ps(_mm512_set1_epi32(static_cast<int>(i)),
                                              _mm512_castps128_ps512(inv));
      c[i] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v[i], vi)), lo), hi);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + (b + i) * 16), _mm512_cvtepi32_epi8(c[i]));
    }
    const __m128i sums = Add4x16(c[0], c[1], c[2], c[3]);
    const __m128 b16 = _mm_mul_ps(sc, _mm_cvtepi32_ps(sums));
    _mm_storeu_ps(scale + b, sc);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(sum16 + b), sums);
    _mm_storeu_ps(bias16 + b, b16);
    const __m128 b32 = _mm_add_ps(b16, _mm_permute_ps(b16, _MM_SHUFFLE(2, 3, 0, 1)));
    bias32[b / 2] = _mm_cvtss_f32(b32);
    bias32[b / 2 + 1] = _mm_cvtss_f32(_mm_movehl_ps(b32, b32));
  }
  for (; b < k / 16; ++b) {
    const __m512 v = QuantInput<MUL>(x, mul, b);
    const float amax = ReduceMax16(_mm512_abs_ps(v));
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    scale[b] = amax / 127.0f;
    const __m512i c =
        _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, _mm512_set1_ps(inv))), lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * 16), _mm512_cvtepi32_epi8(c));
    const int32_t sum = _mm512_reduce_add_epi32(c);
    sum16[b] = sum;
    bias16[b] = scale[b] * static_cast<float>(sum);
    if (b % 2 == 1) bias32[b / 2] = bias16[b - 1] + bias16[b];
  }
}
static void QuantizeRow(const bf16* x, size_t k, int8_t* q, float* scale, int32_t* sum16,
                        float* bias16, float* bias32) {
  QuantizeRowOf<false>(x, nullptr, k, q, scale, sum16, bias16, bias32);
}
static void QuantizeScaledRow(const bf16* x, const float* mul, size_t k, int8_t* q, float* scale,
                              int32_t* sum16, float* bias16, float* bias32) {
  QuantizeRowOf<true>(x, mul, k, q, scale, sum16, bias16, bias32);
}

static void SoftmaxTile(const float* raw, size_t ldr, size_t rows, size_t valid, size_t cols,
                        float scale, bf16* p, size_t ldp, float* row_max, float* row_sum) {
  QW_ASSERT(rows <= kTileM && valid <= cols && cols % kTileN == 0);
  const __m512 vscale = _mm512_set1_ps(scale);
  for (size_t r = 0; r < rows; ++r) {
    const float* rr = raw + r * ldr;
    bf16* pr = p + r * ldp;
    // max(raw * scale) = max(raw) * scale: rounding is monotonic and scale > 0.
    __m512 vmax = _mm512_set1_ps(-3.402823466e38f);
    for (size_t c = 0; c < valid; c += 16) {
      const __mmask16 k =
          valid - c >= 16 ? 0xffff : static_cast<__mmask16>((1u << (valid - c)) - 1);
      vmax = _mm512_mask_max_ps(vmax, k, vmax, _mm512_maskz_loadu_ps(k, rr + c));
    }
    const float m = ReduceMax16(vmax) * scale;
    const __m512 vm = _mm512_set1_ps(m);
    __m512 vsum = _mm512_setzero_ps();
    size_t c = 0;
    for (; c < valid; c += 16) {
      const __mmask16 k =
          valid - c >= 16 ? 0xffff : static_cast<__mmask16>((1u << (valid - c)) - 1);
      const __m512 s = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, rr + c), vscale);
      const __m512 e = _mm512_maskz_mov_ps(k, Exp16(_mm512_sub_ps(s, vm)));
      __m512 rounded;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(pr + c), RoundToBf16x16(e, &rounded));
      vsum = _mm512_add_ps(vsum, rounded);  // tail lanes are 0
    }
    for (; c < cols; ++c) pr[c] = 0;
    row_max[r] = m;
    row_sum[r] = ReduceAdd16(vsum);
  }
}

static void SiluMul(const float* gate, const float* up, size_t n, bf16* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
    const __m512 sig =
        _mm512_div_ps(one, _mm512_add_ps(Exp16(_mm512_sub_ps(_mm512_setzero_ps(), g)), one));
    __m512 rounded;
    const __m256i h = RoundToBf16x16(
        _mm512_mul_ps(_mm512_mul_ps(g, sig), _mm512_maskz_loadu_ps(k, up + i)), &rounded);
    _mm256_mask_storeu_epi16(out + i, k, h);
  }
}

// Row norms, head norm + RoPE and the bf16 cast, 16 lanes, masked tails. Products are
// rounded one at a time (no FMA) like the scalar twin; only the order of the sum differs.
static inline __mmask16 TailMask(size_t n, size_t i) {
  return n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
}

static inline __m512 Load16(const float* x, size_t i, __mmask16 k) {
  return _mm512_maskz_loadu_ps(k, x + i);
}

static inline __m512 Load16(const bf16* x, size_t i, __mmask16 k) {
  const __m256i h = _mm256_maskz_loadu_epi16(k, x + i);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline void StoreBf16x16(bf16* out, __mmask16 k, __m512 v) {
  __m512 rounded;
  _mm256_mask_storeu_epi16(out, k, RoundToBf16x16(v, &rounded));
}

template <typename T>
static inline __m512 InvRms16(const T* x, size_t n, float eps) {
  __m512 acc = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __m512 v = Load16(x, i, TailMask(n, i));
    acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
  }
  return _mm512_set1_ps(1.0f / __builtin_sqrtf(ReduceAdd16(acc) / static_cast<float>(n) + eps));
}

template <typename T>
static inline void RmsNormRow16(const T* x, const float* weight, size_t n, float eps, bf16* out) {
  const __m512 inv = InvRms16(x, n, eps);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n, i);
    StoreBf16x16(out + i, k,
                 _mm512_mul_ps(_mm512_mul_ps(Load16(x, i, k), inv), Load16(weight, i, k)));
  }
}

static void RmsNormBf16(const bf16* x, const float* weight, size_t n, float eps, bf16* out) {
  RmsNormRow16(x, weight, n, eps, out);
}

static void RmsNormF32(const float* x, const float* weight, size_t n, float eps, bf16* out) {
  RmsNormRow16(x, weight, n, eps, out);
}

static void HeadNormRope(const float* x, const float* weight, const float* cos, const float* sin,
                         size_t n, float eps, bf16* out) {
  QW_ASSERT(n % 2 == 0 && n <= 256);
  const __m512 inv = InvRms16(x, n, eps);
  const size_t half = n / 2;
  for (size_t i = 0; i < half; i += 16) {
    const __mmask16 k = TailMask(half, i);
    const size_t j = i + half;
    const __m512 lo = _mm512_mul_ps(_mm512_mul_ps(Load16(x, i, k), inv), Load16(weight, i, k));
    const __m512 hi = _mm512_mul_ps(_mm512_mul_ps(Load16(x, j, k), inv), Load16(weight, j, k));
    StoreBf16x16(out + i, k,
                 _mm512_sub_ps(_mm512_mul_ps(lo, Load16(cos, i, k)),
                               _mm512_mul_ps(hi, Load16(sin, i, k))));
    StoreBf16x16(out + j, k,
                 _mm512_add_ps(_mm512_mul_ps(hi, Load16(cos, j, k)),
                               _mm512_mul_ps(lo, Load16(sin, j, k))));
  }
}

static void CastBf16(const float* x, size_t n, bf16* out) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = TailMask(n, i);
    StoreBf16x16(out + i, k, Load16(x, i, k));
  }
}
