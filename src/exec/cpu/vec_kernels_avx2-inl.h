// The vec kernels (kernels.h: SoftmaxTileFn, SiluMulFn) in AVX2 + FMA for the avx2 path, 8
// lanes at a time; tails (and the exp below the clamp) go through the plain-loop twins of
// vec_kernels-inl.h, which must be included first. Same exp (Cephes) and RNE bf16 rounding.
// Include inside a path namespace only.

static inline __m256 Exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_floor_ps(
      _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  return _mm256_and_ps(e, _mm256_cmp_ps(x, lo, _CMP_GE_OQ));  // 0 below the clamp
}

// fp32 -> bf16 bits (RNE) in the high halves of 8 lanes; *rounded = their fp32 values.
static inline __m256i RoundToBf16x8(__m256 v, __m256* rounded) {
  __m256i bits = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  bits = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  bits = _mm256_and_si256(bits, _mm256_set1_epi32(static_cast<int>(0xffff0000u)));
  *rounded = _mm256_castsi256_ps(bits);
  return bits;
}

// Stores the 8 bf16 (high halves of bits) at out.
static inline void StoreBf16x8(__m256i bits, bf16* out) {
  const __m256i h = _mm256_srli_epi32(bits, 16);
  const __m128i packed =
      _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), packed);
}

static inline float HorizontalMax8(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  float m = t[0];
  for (int i = 1; i < 8; ++i) m = t[i] > m ? t[i] : m;
  return m;
}

static inline float HorizontalAdd8(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  float s = 0.0f;
  for (int i = 0; i < 8; ++i) s += t[i];
  return s;
}

static void SoftmaxTileAvx2(const float* raw, size_t ldr, size_t rows, size_t valid, size_t cols,
                            float scale, bf16* p, size_t ldp, float* row_max, float* row_sum) {
  QW_ASSERT(rows <= kTileM && valid <= cols && cols % kTileN == 0);
  const __m256 vscale = _mm256_set1_ps(scale);
  const size_t full = valid / 8 * 8;
  for (size_t r = 0; r < rows; ++r) {
    const float* rr = raw + r * ldr;
    bf16* pr = p + r * ldp;
    // max(raw * scale) = max(raw) * scale: rounding is monotonic and scale > 0.
    __m256 vmax = _mm256_set1_ps(-3.402823466e38f);
    for (size_t c = 0; c < full; c += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(rr + c));
    float mr = HorizontalMax8(vmax);
    for (size_t c = full; c < valid; ++c) mr = rr[c] > mr ? rr[c] : mr;
    const float m = mr * scale;
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (size_t c = 0; c < full; c += 8) {
      const __m256 s = _mm256_mul_ps(_mm256_loadu_ps(rr + c), vscale);
      __m256 rounded;
      StoreBf16x8(RoundToBf16x8(Exp8(_mm256_sub_ps(s, vm)), &rounded), pr + c);
      vsum = _mm256_add_ps(vsum, rounded);
    }
    float sum = HorizontalAdd8(vsum);
    for (size_t c = full; c < valid; ++c) {
      pr[c] = RoundToBf16Bits(ExpF32(rr[c] * scale - m));
      sum += Bf16ToF32(pr[c]);
    }
    for (size_t c = valid; c < cols; ++c) pr[c] = 0;
    row_max[r] = m;
    row_sum[r] = sum;
  }
}

static void SiluMulAvx2(const float* gate, const float* up, size_t n, bf16* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const size_t full = n / 8 * 8;
  for (size_t i = 0; i < full; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 sig =
        _mm256_div_ps(one, _mm256_add_ps(Exp8(_mm256_sub_ps(_mm256_setzero_ps(), g)), one));
    __m256 rounded;
    StoreBf16x8(
        RoundToBf16x8(_mm256_mul_ps(_mm256_mul_ps(g, sig), _mm256_loadu_ps(up + i)), &rounded),
        out + i);
  }
  SiluMul(gate + full, up + full, n - full, out + full);
}
