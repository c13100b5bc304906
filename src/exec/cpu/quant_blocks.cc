#include "exec/cpu/quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/f16.h"

namespace qwen3::cpu {
namespace {

float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return F16ToF32(h);
}

void PutHalf(uint8_t* p, float f) {
  const uint16_t h = F32ToF16(f);
  std::memcpy(p, &h, sizeof(h));
}

// Q4_K's 6-bit scale and min of sub-block j (ggml's get_scale_min_k4).
void ScaleMinK4(const uint8_t* q, int j, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace

QuantFormat FormatOf(WeightType type) {
  switch (type) {
    case WeightType::kQ8_0:
      return {8, 32, 128, QuantScales::kF16};
    case WeightType::kQ4_0:
      return {4, 32, 8, QuantScales::kF16};
    case WeightType::kQ4_K:
      return {4, 32, 0, QuantScales::kK};
    case WeightType::kQ6_K:
      return {6, 16, 32, QuantScales::kK};
    case WeightType::kQ5_0:
      return {8, 32, 16, QuantScales::kF16};
    case WeightType::kQ4_1:
      return {4, 32, 0, QuantScales::kF32};
    case WeightType::kQ5_1:
    case WeightType::kQ5_K:
      return {8, 32, 0, QuantScales::kF32};
    case WeightType::kBf16:
      break;
  }
  throw Error("FormatOf: bf16 is not a quantized type");
}

size_t BlockElems(WeightType type) {
  return type == WeightType::kQ4_K || type == WeightType::kQ5_K || type == WeightType::kQ6_K ? 256
                                                                                             : 32;
}

size_t BlockBytes(WeightType type) {
  switch (type) {
    case WeightType::kQ8_0:
      return 34;
    case WeightType::kQ4_0:
      return 18;
    case WeightType::kQ4_K:
      return 144;
    case WeightType::kQ6_K:
      return 210;
    case WeightType::kQ4_1:
      return 20;
    case WeightType::kQ5_0:
      return 22;
    case WeightType::kQ5_1:
      return 24;
    case WeightType::kQ5_K:
      return 176;
    case WeightType::kBf16:
      break;
  }
  throw Error("BlockBytes: bf16 is not a quantized type");
}

void DecodeBlock(WeightType type, const uint8_t* b, SubBlock* out) {
  switch (type) {
    case WeightType::kQ8_0: {  // d, int8 q[32]: w = d q = d (q + 128) - 128 d
      const float d = HalfAt(b);
      out->scale = d;
      out->bias = -128.0f * d;
      for (int i = 0; i < 32; ++i) out->codes[i] = static_cast<uint8_t>(b[2 + i] ^ 0x80);
      return;
    }
    case WeightType::kQ4_0: {  // d, nibbles: low = weights 0..15, high = 16..31; w = d (q - 8)
      const float d = HalfAt(b);
      out->scale = d;
      out->bias = -8.0f * d;
      for (int i = 0; i < 16; ++i) {
        out->codes[i] = b[2 + i] & 0xf;
        out->codes[16 + i] = b[2 + i] >> 4;
      }
      return;
    }
    case WeightType::kQ4_1: {  // d, m, nibbles as Q4_0: w = d q + m
      out->scale = HalfAt(b);
      out->bias = HalfAt(b + 2);
      for (int i = 0; i < 16; ++i) {
        out->codes[i] = b[4 + i] & 0xf;
        out->codes[16 + i] = b[4 + i] >> 4;
      }
      return;
    }
    case WeightType::kQ5_0:    // d, qh (bit 4 of each weight), nibbles: w = d (q - 16)
    case WeightType::kQ5_1: {  // d, m, qh, nibbles: w = d q + m
      const bool q5_1 = type == WeightType::kQ5_1;
      const float d = HalfAt(b);
      const uint8_t* qh = b + (q5_1 ? 4 : 2);
      const uint8_t* qs = qh + 4;
      uint32_t high;
      std::memcpy(&high, qh, sizeof(high));
      out->scale = d;
      out->bias = q5_1 ? HalfAt(b + 2) : -16.0f * d;
      for (int i = 0; i < 16; ++i) {
        out->codes[i] = static_cast<uint8_t>((qs[i] & 0xf) | (((high >> i) & 1) << 4));
        out->codes[16 + i] = static_cast<uint8_t>((qs[i] >> 4) | (((high >> (i + 16)) & 1) << 4));
      }
      return;
    }
    case WeightType::kQ4_K:    // d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
    case WeightType::kQ5_K: {  // the same, then qh[32] (bit 4) before the nibbles
      const bool q5 = type == WeightType::kQ5_K;
      const float d = HalfAt(b), dmin = HalfAt(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* qh = b + 16;
      const uint8_t* q = b + (q5 ? 48 : 16);
      for (int chunk = 0; chunk < 4; ++chunk) {  // 64 weights: low nibbles, then high
        for (int half = 0; half < 2; ++half) {
          const int j = chunk * 2 + half;
          uint8_t sc, m;
          ScaleMinK4(scales, j, sc, m);
          SubBlock& s = out[j];
          s.scale = d * sc;
          s.bias = -(dmin * m);
          s.d = d;
          s.dmin = dmin;
          s.sc = sc;
          s.m = m;
          for (int i = 0; i < 32; ++i) {
            const uint8_t nibble = half ? q[chunk * 32 + i] >> 4 : q[chunk * 32 + i] & 0xf;
            const uint8_t high = q5 ? ((qh[i] >> j) & 1) << 4 : 0;  // bit j of qh[i]
            s.codes[i] = static_cast<uint8_t>(nibble | high);
          }
        }
      }
      return;
    }
    case WeightType::kQ6_K: {  // ql[128], qh[64], int8 scales[16], d; w = d sc (q - 32)
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = HalfAt(b + 208);
      for (int i = 0; i < 16; ++i) {
        out[i].scale = d * sc[i];
        out[i].bias = -32.0f * out[i].scale;
        out[i].d = d;
        out[i].sc = sc[i];
      }
      for (int n = 0; n < 2; ++n) {  // 128 weights each, as ggml's dequantize_row_q6_K
        const uint8_t* l = ql + n * 64;
        const uint8_t* h = qh + n * 32;
        for (int i = 0; i < 32; ++i) {
          const int base = n * 128 + i;
          const uint8_t q[4] = {static_cast<uint8_t>((l[i] & 0xf) | ((h[i] & 3) << 4)),
                                static_cast<uint8_t>((l[i + 32] & 0xf) | (((h[i] >> 2) & 3) << 4)),
                                static_cast<uint8_t>((l[i] >> 4) | (((h[i] >> 4) & 3) << 4)),
                                static_cast<uint8_t>((l[i + 32] >> 4) | (((h[i] >> 6) & 3) << 4))};
          for (int t = 0; t < 4; ++t) {
            const int w = base + 32 * t;  // weight index in the block
            out[w / 16].codes[w % 16] = q[t];
          }
        }
      }
      return;
    }
    case WeightType::kBf16:
      break;
  }
  throw Error("DecodeBlock: bf16 is not a quantized type");
}

// roundf (half away from zero) for |v| < 2^31 without libm's call (an 8-bit KV cache quantizes
// every token's K and V): truncate, then step by the exact remainder.
static inline int RoundHalfAway(float v) {
  const int i = static_cast<int>(v);
  const float frac = v - static_cast<float>(i);
  return i + (frac >= 0.5f) - (frac <= -0.5f);
}

float QuantizeSymmetric8(const float* x, size_t n, int8_t* q) {
  float amax = 0;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  for (size_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(RoundHalfAway(x[i] * id));
  return d;
}

void QuantizeBlockQ8_0(const float* x, uint8_t* out) {
  PutHalf(out, QuantizeSymmetric8(x, 32, reinterpret_cast<int8_t*>(out + 2)));
}

void QuantizeBlockQ4_0(const float* x, uint8_t* out) {
  float amax = 0, max = 0;  // max: the weight of largest magnitude, with its sign
  for (int i = 0; i < 32; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
  PutHalf(out, d);
  for (int i = 0; i < 16; ++i) {
    const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[i] * id + 8.5f)));
    const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[16 + i] * id + 8.5f)));
    out[2 + i] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

namespace {

float RoundedHalf(float f) { return F16ToF32(F32ToF16(f)); }

}  // namespace

void QuantizeBlockQ4_K(const float* x, uint8_t* out) {
  float scale[8], neg_min[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {  // x ~ scale * q - neg_min, q in 0..15
    float lo = 0, hi = 0;
    for (int i = 0; i < 32; ++i) {
      lo = std::min(lo, x[32 * j + i]);
      hi = std::max(hi, x[32 * j + i]);
    }
    scale[j] = (hi - lo) / 15;
    neg_min[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, neg_min[j]);
  }
  const float d = RoundedHalf(max_scale / 63), dmin = RoundedHalf(max_min / 63);
  PutHalf(out, d);
  PutHalf(out + 2, dmin);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = d > 0 ? static_cast<uint8_t>(std::min(63.0f, std::nearbyint(scale[j] / d))) : 0;
    m[j] = dmin > 0 ? static_cast<uint8_t>(std::min(63.0f, std::nearbyint(neg_min[j] / dmin))) : 0;
  }
  uint8_t* q = out + 4;  // the inverse of ScaleMinK4
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
  }
  uint8_t* codes = out + 16;
  for (int chunk = 0; chunk < 4; ++chunk) {
    for (int l = 0; l < 32; ++l) {
      uint8_t byte = 0;
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * chunk + half;
        const float ds = d * sc[j], dm = dmin * m[j];
        const float v = ds > 0 ? std::nearbyint((x[32 * j + l] + dm) / ds) : 0;
        byte |= static_cast<uint8_t>(std::clamp(v, 0.0f, 15.0f)) << (4 * half);
      }
      codes[chunk * 32 + l] = byte;
    }
  }
}

void QuantizeBlockQ6_K(const float* x, uint8_t* out) {
  float scale[16], max_scale = 0;
  for (int j = 0; j < 16; ++j) {  // x ~ scale * (q - 32), q in 0..63
    float amax = 0;
    for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * j + i]));
    scale[j] = amax / 31;
    max_scale = std::max(max_scale, scale[j]);
  }
  const float d = RoundedHalf(max_scale / 127);
  int8_t* sc = reinterpret_cast<int8_t*>(out + 192);
  uint8_t q[256];
  for (int j = 0; j < 16; ++j) {
    sc[j] = d > 0 ? static_cast<int8_t>(std::min(127.0f, std::nearbyint(scale[j] / d))) : 0;
    const float ds = d * sc[j];
    for (int i = 0; i < 16; ++i) {
      const float v = ds > 0 ? std::nearbyint(x[16 * j + i] / ds) + 32 : 32;
      q[16 * j + i] = static_cast<uint8_t>(std::clamp(v, 0.0f, 63.0f));
    }
  }
  PutHalf(out + 208, d);
  uint8_t* ql = out;
  uint8_t* qh = out + 128;
  for (int n = 0; n < 2; ++n) {  // the inverse of ggml's dequantize_row_q6_K
    for (int l = 0; l < 32; ++l) {
      const uint8_t* w = q + n * 128 + l;
      ql[n * 64 + l] = static_cast<uint8_t>((w[0] & 0xf) | ((w[64] & 0xf) << 4));
      ql[n * 64 + l + 32] = static_cast<uint8_t>((w[32] & 0xf) | ((w[96] & 0xf) << 4));
      qh[n * 32 + l] = static_cast<uint8_t>((w[0] >> 4) | ((w[32] >> 4) << 2) |
                                            ((w[64] >> 4) << 4) | ((w[96] >> 4) << 6));
    }
  }
}

void QuantizeRow(WeightType type, const float* x, size_t k, uint8_t* out) {
  const size_t elems = BlockElems(type), bytes = BlockBytes(type);
  QW_ASSERT(k % elems == 0);
  for (size_t b = 0; b < k / elems; ++b) {
    const float* xb = x + b * elems;
    uint8_t* ob = out + b * bytes;
    switch (type) {
      case WeightType::kQ8_0:
        QuantizeBlockQ8_0(xb, ob);
        break;
      case WeightType::kQ4_0:
        QuantizeBlockQ4_0(xb, ob);
        break;
      case WeightType::kQ4_K:
        QuantizeBlockQ4_K(xb, ob);
        break;
      case WeightType::kQ6_K:
        QuantizeBlockQ6_K(xb, ob);
        break;
      default:
        throw Error(std::string("QuantizeRow: ") + ToString(type) +
                    ": expected q8_0, q4_0, q4_k or q6_k");
    }
  }
}

}  // namespace qwen3::cpu
