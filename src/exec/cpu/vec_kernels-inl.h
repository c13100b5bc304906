// The vec kernels (kernels.h) as plain loops: the scalar twins, also used by the avx2 path.
// Include inside a path namespace only: every path gets its own copy, never an ODR-merged one.
//
// ExpF32 is Cephes' expf (range reduction by ln2 in two parts, degree-5 polynomial): within
// 2 ulp of std::exp over the range that matters here (x <= 0), and branch-free so it vectorizes.

static inline float ExpF32(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const float xc = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  const float n = __builtin_floorf(xc * kLog2e + 0.5f);
  const float r = xc - n * kLn2Hi - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return x < -87.3f ? 0.0f : p * scale;
}

static inline uint16_t RoundToBf16Bits(float f) {
  uint32_t bits;
  __builtin_memcpy(&bits, &f, sizeof(bits));
  bits += 0x7fffu + ((bits >> 16) & 1u);  // inputs are finite here
  return static_cast<uint16_t>(bits >> 16);
}

[[maybe_unused]] static void SoftmaxTile(const float* raw, size_t ldr, size_t rows, size_t valid, size_t cols,
                        float scale, bf16* p, size_t ldp, float* row_max, float* row_sum) {
  QW_ASSERT(rows <= kTileM && valid <= cols && cols % kTileN == 0);
  constexpr size_t kLanes = 16;
  for (size_t r = 0; r < rows; ++r) {
    const float* rr = raw + r * ldr;
    bf16* pr = p + r * ldp;
    // max(raw * scale) = max(raw) * scale: rounding is monotonic and scale > 0.
    float lane_max[kLanes];
    for (size_t l = 0; l < kLanes; ++l) lane_max[l] = -3.402823466e38f;
    for (size_t c = 0; c < valid; ++c) {
      lane_max[c % kLanes] = rr[c] > lane_max[c % kLanes] ? rr[c] : lane_max[c % kLanes];
    }
    float m = lane_max[0];
    for (size_t l = 1; l < kLanes; ++l) m = lane_max[l] > m ? lane_max[l] : m;
    m *= scale;

    float lane_sum[kLanes] = {};
    for (size_t c = 0; c < valid; ++c) {
      const uint16_t e = RoundToBf16Bits(ExpF32(rr[c] * scale - m));
      pr[c] = e;
      const uint32_t eb = static_cast<uint32_t>(e) << 16;
      float ef;
      __builtin_memcpy(&ef, &eb, sizeof(ef));
      lane_sum[c % kLanes] += ef;
    }
    for (size_t c = valid; c < cols; ++c) pr[c] = 0;
    float sum = 0.0f;
    for (size_t l = 0; l < kLanes; ++l) sum += lane_sum[l];
    row_max[r] = m;
    row_sum[r] = sum;
  }
}

// cvtss2si rounds to nearest even under the default MXCSR, as the vector paths' vcvtps2dq; an
// intrinsic, so no compiler can fuse the product into something else (std::nearbyint was a
// libm call per element).
// QuantizeRow of x, or (MUL) of x * mul.
template <bool MUL>
static void QuantizeRowOf(const bf16* x, const float* mul, size_t k, int8_t* q, float* scale,
                          int32_t* sum16, float* bias16, float* bias32) {
  for (size_t b = 0; b < k / 16; ++b) {
    float v[16], amax = 0;
    for (size_t i = 0; i < 16; ++i) {
      v[i] = MUL ? Bf16ToF32(x[b * 16 + i]) * mul[b * 16 + i] : Bf16ToF32(x[b * 16 + i]);
      amax = std::max(amax, std::fabs(v[i]));
    }
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    scale[b] = amax / 127.0f;
    int32_t sum = 0;
    for (size_t i = 0; i < 16; ++i) {
      const int32_t c = std::clamp(_mm_cvtss_si32(_mm_set_ss(v[i] * inv)), -127, 127);
      q[b * 16 + i] = static_cast<int8_t>(c);
      sum += c;
    }
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

static void SiluMul(const float* gate, const float* up, size_t n, bf16* out) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = RoundToBf16Bits(g * (1.0f / (ExpF32(-g) + 1.0f)) * up[i]);
  }
}

// Row norms and the head norm + RoPE as plain loops; sums in 16 lanes like the vector paths.
template <typename T>
static inline float LoadF32(const T* x, size_t i) {
  if constexpr (sizeof(T) == sizeof(bf16)) {
    return Bf16ToF32(x[i]);
  } else {
    return x[i];
  }
}

template <typename T>
static inline float InvRms(const T* x, size_t n, float eps) {
  float lane[16] = {};
  for (size_t i = 0; i < n; ++i) lane[i % 16] += LoadF32(x, i) * LoadF32(x, i);
  float sq = 0.0f;
  for (float v : lane) sq += v;
  return 1.0f / __builtin_sqrtf(sq / static_cast<float>(n) + eps);
}

template <typename T>
static inline void RmsNormRow(const T* x, const float* weight, size_t n, float eps, bf16* out) {
  const float inv = InvRms(x, n, eps);
  for (size_t i = 0; i < n; ++i) out[i] = F32ToBf16(LoadF32(x, i) * inv * weight[i]);
}

[[maybe_unused]] static void RmsNormBf16(const bf16* x, const float* weight, size_t n, float eps,
                                         bf16* out) {
  RmsNormRow(x, weight, n, eps, out);
}

[[maybe_unused]] static void RmsNormF32(const float* x, const float* weight, size_t n, float eps,
                                        bf16* out) {
  RmsNormRow(x, weight, n, eps, out);
}

[[maybe_unused]] static void HeadNormRope(const float* x, const float* weight, const float* cos,
                                          const float* sin, size_t n, float eps, bf16* out) {
  QW_ASSERT(n % 2 == 0 && n <= 256);
  const float inv = InvRms(x, n, eps);
  const size_t half = n / 2;
  for (size_t i = 0; i < half; ++i) {
    const float lo = x[i] * inv * weight[i], hi = x[i + half] * inv * weight[i + half];
    out[i] = F32ToBf16(lo * cos[i] - hi * sin[i]);
    out[i + half] = F32ToBf16(hi * cos[i + half] + lo * sin[i + half]);
  }
}

[[maybe_unused]] static void CastBf16(const float* x, size_t n, bf16* out) {
  for (size_t i = 0; i < n; ++i) out[i] = F32ToBf16(x[i]);
}

