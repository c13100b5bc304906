#include "exec/cpu/quant_blocks.h"

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
      return {8, 16, 32, QuantScales::kK};
    case WeightType::kBf16:
      break;
  }
  throw Error("FormatOf: bf16 is not a quantized type");
}

size_t BlockElems(WeightType type) {
  return type == WeightType::kQ4_K || type == WeightType::kQ6_K ? 256 : 32;
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
    case WeightType::kQ4_K: {  // d, dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
      const float d = HalfAt(b), dmin = HalfAt(b + 2);
      const uint8_t* scales = b + 4;
      const uint8_t* q = b + 16;
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
            s.codes[i] = half ? q[chunk * 32 + i] >> 4 : q[chunk * 32 + i] & 0xf;
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

void QuantizeBlockQ8_0(const float* x, uint8_t* out) {
  float amax = 0;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  PutHalf(out, d);
  for (int i = 0; i < 32; ++i) {
    out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[i] * id)));
  }
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

}  // namespace qwen3::cpu
