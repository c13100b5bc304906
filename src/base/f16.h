// IEEE binary16 (the scale type of ggml's quantized blocks and safetensors' F16) to and from
// fp32, round-to-nearest-even, bit-exact with F16C's vcvtph2ps / vcvtps2ph (imm 0).
#pragma once

#include <cstdint>
#include <cstring>

namespace qwen3 {

inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | ((112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;   // NaN (quiet)
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to Inf
  if (ax >= 0x38800000u) {                        // a normal half: round the 13 dropped bits
    const uint32_t t = ax + 0x0fffu + ((ax >> 13) & 1u);
    return sign | static_cast<uint16_t>((t - 0x38000000u) >> 13);
  }
  // A subnormal half (or zero): round m * 2^(e - 150) to a multiple of 2^-24.
  const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | (e ? 0x800000u : 0u);
  const uint32_t shift = 126 - (e ? e : 1);
  if (shift > 24) return sign;
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return sign | static_cast<uint16_t>(q);
}

}  // namespace qwen3
