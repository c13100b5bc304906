// bf16 storage type and conversions (round-to-nearest-even), shared by every layer.
#pragma once

#include <cstdint>
#include <cstring>

namespace qwen3 {

// Raw bf16 bits: the top half of an IEEE-754 binary32.
using bf16 = uint16_t;

inline float Bf16ToF32(bf16 h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Round-to-nearest-even, as torch's .to(bfloat16). NaN stays NaN (quiet, sign kept);
// overflow rounds to Inf like any RNE cast.
inline bf16 F32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16>((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<bf16>(bits >> 16);
}

// The fp32 value an fp32 -> bf16 -> fp32 round trip yields.
inline float RoundBf16(float f) { return Bf16ToF32(F32ToBf16(f)); }

inline bool IsFiniteBf16(bf16 h) { return (h & 0x7f80u) != 0x7f80u; }

}  // namespace qwen3
