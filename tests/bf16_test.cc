// bf16 conversions, exhaustive where the domain is small (all 65536 bf16 patterns, each with
// the fp32 low halves that matter for rounding: 0, 1, just below / at / just above the tie,
// all ones), checked against an independent round-to-nearest-even reference computed by
// bracketing |f| between neighbouring bf16 values in double arithmetic. Also CounterRng.
#include "base/bf16.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "base/rng.h"

namespace qwen3 {
namespace {

uint32_t F32Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

float F32FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

bool IsNanBf16(bf16 h) { return (h & 0x7fffu) > 0x7f80u; }

// The value of bf16 bits h from the IEEE-754 definition (sign, 8-bit exponent with bias 127,
// 7-bit fraction; exponent 0 is subnormal), not from bit shifting.
double DecodeBf16(bf16 h) {
  const int exp = (h >> 7) & 0xff;
  const int frac = h & 0x7f;
  double v;
  if (exp == 0xff) {
    v = frac == 0 ? std::numeric_limits<double>::infinity()
                  : std::numeric_limits<double>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(static_cast<double>(frac), -133);  // 0.frac * 2^-126
  } else {
    v = std::ldexp(static_cast<double>(128 + frac), exp - 134);  // 1.frac * 2^(exp - 127)
  }
  return (h & 0x8000u) ? -v : v;
}

// Independent RNE reference for non-NaN f: the bf16 spacing at |f| (2^(e-7) in binade
// [2^e, 2^(e+1)), 2^-133 below 2^-126), the lower neighbour by floor in double (exact: all
// quantities are dyadic and well inside double's range), then nearest, ties to an even
// significand; results at or above 2^128 are Inf.
bf16 RefF32ToBf16(float f) {
  const bf16 sign = std::signbit(f) ? 0x8000 : 0;
  if (std::isinf(f)) return sign | 0x7f80;
  const double a = std::fabs(static_cast<double>(f));
  double ulp;
  if (a < 0x1p-126) {
    ulp = 0x1p-133;
  } else {
    int e;
    std::frexp(a, &e);  // a in [2^(e-1), 2^e)
    ulp = std::ldexp(1.0, e - 1 - 7);
  }
  const double q = std::floor(a / ulp);
  const double rem = a - q * ulp;
  double r;
  if (rem < ulp / 2) {
    r = q * ulp;
  } else if (rem > ulp / 2) {
    r = (q + 1) * ulp;
  } else {
    r = std::fmod(q, 2.0) == 0.0 ? q * ulp : (q + 1) * ulp;
  }
  if (r >= 0x1p128) return sign | 0x7f80;
  const uint32_t bits = F32Bits(static_cast<float>(r));
  EXPECT_EQ(bits & 0xffffu, 0u) << "reference produced a non-bf16 value for " << f;
  return static_cast<bf16>(sign | (bits >> 16));
}

// Checks F32ToBf16 (and RoundBf16) on one fp32 pattern; returns true if it passed.
bool CheckOne(uint32_t bits) {
  const float f = F32FromBits(bits);
  const bf16 got = F32ToBf16(f);
  if (std::isnan(f)) {
    const bool ok = IsNanBf16(got) && (got & 0x0040u) && ((got ^ (bits >> 16)) & 0x8000u) == 0 &&
                    std::isnan(RoundBf16(f));
    EXPECT_TRUE(ok) << std::hex << "NaN 0x" << bits << " -> 0x" << got
                    << " (expected a quiet NaN with the same sign)";
    return ok;
  }
  const bf16 want = RefF32ToBf16(f);
  const float round_want = Bf16ToF32(want);
  const bool ok = got == want && F32Bits(RoundBf16(f)) == F32Bits(round_want);
  EXPECT_TRUE(ok) << std::hex << "F32ToBf16(bits 0x" << bits << " = " << std::defaultfloat << f
                  << std::hex << ") = 0x" << got << ", expected 0x" << want;
  return ok;
}

TEST(Bf16Test, DecodeMatchesIeeeDefinitionForAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Bf16ToF32(static_cast<bf16>(h));
    const double want = DecodeBf16(static_cast<bf16>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << "0x" << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << "0x" << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << std::hex << "0x" << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << "0x" << h;
    }
  }
}

TEST(Bf16Test, RoundTripsAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bf16 back = F32ToBf16(Bf16ToF32(static_cast<bf16>(h)));
    if (IsNanBf16(static_cast<bf16>(h))) {
      ASSERT_TRUE(IsNanBf16(back)) << std::hex << "0x" << h << " -> 0x" << back;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u) << std::hex << "0x" << h << " -> 0x" << back;
      ASSERT_TRUE(back & 0x0040u) << std::hex << "0x" << h << " -> 0x" << back << " not quiet";
      // A quiet NaN is already canonical for the conversion: it must come back unchanged.
      if (h & 0x0040u) {
        ASSERT_EQ(back, h) << std::hex << "0x" << h;
      }
    } else {
      ASSERT_EQ(back, h) << std::hex << "0x" << h;
    }
  }
}

// Every bf16 pattern with the low fp32 halves that decide rounding: exact, 1 above, just below
// the tie, the tie, just above the tie, all ones, and two arbitrary ones. NaN patterns whose
// payload is only in the low half (0x7f800001) must not truncate to Inf.
TEST(Bf16Test, RoundsToNearestEvenForAllPatternsAndLowHalves) {
  const uint32_t lows[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234, 0xc3a5};
  size_t failures = 0;
  for (uint32_t h = 0; h < 65536 && failures < 20; ++h) {
    for (uint32_t low : lows) failures += !CheckOne((h << 16) | low);
  }
  EXPECT_EQ(failures, 0u);
}

TEST(Bf16Test, RoundsRandomFp32) {
  CounterRng rng(1, 0);
  size_t failures = 0;
  for (uint64_t i = 0; i < 1000000 && failures < 20; ++i) {
    failures += !CheckOne(static_cast<uint32_t>(rng.Bits(i)));
  }
  EXPECT_EQ(failures, 0u);
}

// Neighbours of every tie by nextafter, in double as well as fp32 bits: the value just below a
// tie rounds down, just above rounds up, the tie itself to even.
TEST(Bf16Test, NeighboursOfTiesViaNextafter) {
  CounterRng rng(2, 0);
  uint64_t j = 0;
  for (int n = 0; n < 20000; ++n) {
    bf16 h;  // a finite bf16 whose successor is finite too
    do {
      h = static_cast<bf16>(rng.Bits(j++) & 0x7fffu);
    } while (h >= 0x7f7f);
    for (bf16 sign : {bf16{0}, bf16{0x8000}}) {
      const bf16 lo = sign | h, hi = sign | static_cast<bf16>(h + 1);
      const float tie = static_cast<float>((DecodeBf16(lo) + DecodeBf16(hi)) / 2);
      ASSERT_EQ(F32Bits(tie) & 0xffffu, 0x8000u);
      const bf16 even = (lo & 1) ? hi : lo;
      EXPECT_EQ(F32ToBf16(tie), even) << std::hex << "tie 0x" << F32Bits(tie);
      const float toward_zero = std::nextafter(tie, 0.0f);
      const float away = std::nextafter(tie, sign ? -INFINITY : INFINITY);
      EXPECT_EQ(F32ToBf16(toward_zero), lo) << std::hex << "0x" << F32Bits(toward_zero);
      EXPECT_EQ(F32ToBf16(away), hi) << std::hex << "0x" << F32Bits(away);
    }
  }
}

TEST(Bf16Test, NamedCases) {
  struct Case {
    uint32_t f32;
    bf16 want;
  };
  const Case cases[] = {
      {0x3f800000, 0x3f80},                        // 1.0 exact
      {0x3f808000, 0x3f80},                        // tie, even below
      {0x3f818000, 0x3f82},                        // tie, odd below: up
      {0x3f808001, 0x3f81},                        // just above a tie
      {0x3f807fff, 0x3f80},                        // just below a tie
      {0xbf808000, 0xbf80},                        // negative tie, even
      {0xbf818000, 0xbf82},                        // negative tie, odd: away from zero
      {0x3f80ffff, 0x3f81}, {0x3fffffff, 0x4000},  // carries into the exponent
      {0x00000000, 0x0000},                        // +0
      {0x80000000, 0x8000},                        // -0 keeps its sign
      {0x00000001, 0x0000},                        // smallest fp32 denormal rounds to +0
      {0x80000001, 0x8000},                        // ... and -0
      {0x00008000, 0x0000},                        // denormal tie, even
      {0x00018000, 0x0002},                        // denormal tie, odd
      {0x00010000, 0x0001},                        // smallest bf16 denormal
      {0x007fffff, 0x0080},  // largest fp32 denormal rounds to the smallest normal
      {0x007f7fff, 0x007f},  // largest bf16 denormal
      {0x00800000, 0x0080},  // smallest normal
      {0x7f7f0000, 0x7f7f},  // largest finite bf16
      {0x7f7f7fff, 0x7f7f}, {0x7f7f8000, 0x7f80},  // tie at the top, odd: overflows to Inf
      {0x7f7fffff, 0x7f80},                        // FLT_MAX overflows to Inf
      {0xff7fffff, 0xff80},                        // -FLT_MAX to -Inf
      {0x7f800000, 0x7f80},                        // +Inf
      {0xff800000, 0xff80},                        // -Inf
  };
  for (const Case& c : cases) {
    EXPECT_EQ(F32ToBf16(F32FromBits(c.f32)), c.want) << std::hex << "0x" << c.f32;
    EXPECT_EQ(RefF32ToBf16(F32FromBits(c.f32)), c.want) << std::hex << "reference, 0x" << c.f32;
  }
}

TEST(Bf16Test, NanStaysQuietNanWithSign) {
  const uint32_t nans[] = {0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7f80ffff,
                           0x7fbfffff, 0xffbf0000, 0x7fffffff, 0xffffffff, 0x7f810000};
  for (uint32_t bits : nans) {
    const bf16 h = F32ToBf16(F32FromBits(bits));
    EXPECT_TRUE(IsNanBf16(h)) << std::hex << "0x" << bits << " -> 0x" << h;
    EXPECT_TRUE(h & 0x0040u) << std::hex << "0x" << bits << " -> 0x" << h << " not quiet";
    EXPECT_EQ(h & 0x8000u, (bits >> 16) & 0x8000u) << std::hex << "0x" << bits;
    EXPECT_FALSE(IsFiniteBf16(h));
    EXPECT_TRUE(std::isnan(RoundBf16(F32FromBits(bits))));
  }
  EXPECT_TRUE(IsNanBf16(F32ToBf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(IsNanBf16(F32ToBf16(std::numeric_limits<float>::signaling_NaN())));
}

TEST(Bf16Test, IsFiniteAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    EXPECT_EQ(IsFiniteBf16(static_cast<bf16>(h)), std::isfinite(DecodeBf16(static_cast<bf16>(h))))
        << std::hex << "0x" << h;
  }
}

// RoundBf16 is a projection onto bf16 values that preserves order.
TEST(Bf16Test, RoundBf16IsIdempotentAndMonotonic) {
  CounterRng rng(3, 0);
  std::vector<float> xs;
  for (uint64_t i = 0; xs.size() < 200000; ++i) {
    const float f = F32FromBits(static_cast<uint32_t>(rng.Bits(i)));
    if (std::isfinite(f)) xs.push_back(f);
  }
  std::sort(xs.begin(), xs.end());
  float prev = -INFINITY;
  for (float f : xs) {
    const float r = RoundBf16(f);
    ASSERT_EQ(F32Bits(r) & 0xffffu, 0u) << f;
    ASSERT_EQ(F32Bits(RoundBf16(r)), F32Bits(r)) << f;
    ASSERT_GE(r, prev) << f;
    prev = r;
  }
}

TEST(CounterRngTest, SameCoordinatesSameValue) {
  for (uint64_t seed : {0ull, 1ull, 0xdeadbeefull}) {
    for (uint64_t stream : {0ull, 7ull, ~0ull}) {
      const CounterRng a(seed, stream), b(seed, stream);
      for (uint64_t i : {0ull, 1ull, 12345ull, ~0ull}) {
        EXPECT_EQ(a.Bits(i), b.Bits(i));
        EXPECT_EQ(a.Uniform(i), b.Uniform(i));
        EXPECT_EQ(a.Int(i, -5, 5), b.Int(i, -5, 5));
      }
    }
  }
  // Order does not matter: value i is the same whether computed first or last.
  const CounterRng r(42, 3);
  std::vector<uint64_t> fwd(1000), bwd(1000);
  for (size_t i = 0; i < 1000; ++i) fwd[i] = r.Bits(i);
  for (size_t i = 1000; i-- > 0;) bwd[i] = r.Bits(i);
  EXPECT_EQ(fwd, bwd);
}

TEST(CounterRngTest, StreamsAndSeedsDiffer) {
  // 64 streams x 64 indices: all 4096 values distinct (a collision has probability ~2^-40).
  std::set<uint64_t> seen;
  for (uint64_t stream = 0; stream < 64; ++stream) {
    const CounterRng r(7, stream);
    for (uint64_t i = 0; i < 64; ++i) seen.insert(r.Bits(i));
  }
  EXPECT_EQ(seen.size(), 64u * 64u);
  for (uint64_t seed = 0; seed < 64; ++seed) seen.insert(CounterRng(seed + 100, 0).Bits(0));
  EXPECT_EQ(seen.size(), 64u * 65u);
  // Streams are not shifted copies of each other.
  const CounterRng a(7, 0), b(7, 1);
  for (uint64_t i = 0; i < 64; ++i) EXPECT_NE(a.Bits(i + 1), b.Bits(i));
}

TEST(CounterRngTest, UniformInUnitInterval) {
  const CounterRng r(11, 2);
  const size_t n = 1000000;
  double sum = 0, sum_sq = 0;
  float lo = 1, hi = 0;
  size_t buckets[16] = {};
  for (uint64_t i = 0; i < n; ++i) {
    const float u = r.Uniform(i);
    ASSERT_GE(u, 0.0f) << i;
    ASSERT_LT(u, 1.0f) << i;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    sum_sq += static_cast<double>(u) * u;
    ++buckets[static_cast<size_t>(u * 16)];
  }
  EXPECT_NEAR(sum / n, 0.5, 0.003);  // sd of the mean: 0.29 / 1000
  EXPECT_NEAR(sum_sq / n, 1.0 / 3.0, 0.003);
  EXPECT_LT(lo, 1e-4f);
  EXPECT_GT(hi, 1.0f - 1e-4f);
  for (size_t b : buckets) EXPECT_NEAR(static_cast<double>(b), n / 16.0, 1500.0);  // ~6 sd
  // The largest possible value, 24 bits all ones, is still below 1.
  EXPECT_LT(static_cast<float>(0xffffffu) * (1.0f / 16777216.0f), 1.0f);
}

TEST(CounterRngTest, IntWithinBoundsAndCoversRange) {
  const CounterRng r(5, 9);
  struct Range {
    int64_t lo, hi;
  };
  for (const Range& range : {Range{0, 0}, Range{-3, 5}, Range{7, 8}, Range{-100, -90},
                             Range{0, 255}, Range{-1000, 1000}}) {
    const size_t span = static_cast<size_t>(range.hi - range.lo + 1);
    std::vector<size_t> count(span);
    const size_t n = span * 200;
    for (uint64_t i = 0; i < n; ++i) {
      const int64_t v = r.Int(i, range.lo, range.hi);
      ASSERT_GE(v, range.lo);
      ASSERT_LE(v, range.hi);
      ++count[static_cast<size_t>(v - range.lo)];
    }
    for (size_t k = 0; k < span; ++k) {
      EXPECT_GT(count[k], 100u) << "value " << range.lo + static_cast<int64_t>(k)
                                << " is under-drawn in [" << range.lo << ", " << range.hi << "]";
    }
  }
  // Wide ranges whose span still fits int64.
  const int64_t big = int64_t{1} << 61;
  bool neg = false, pos = false;
  for (uint64_t i = 0; i < 1000; ++i) {
    const int64_t v = r.Int(i, -big, big);
    ASSERT_GE(v, -big);
    ASSERT_LE(v, big);
    neg |= v < -big / 2;
    pos |= v > big / 2;
  }
  EXPECT_TRUE(neg && pos);
}

// Spans wider than INT64_MAX (the full range wraps the span to 0) must neither overflow nor
// divide by zero.
TEST(CounterRngTest, IntFullInt64Range) {
  const CounterRng r(5, 9);
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  bool neg = false, pos = false;
  for (uint64_t i = 0; i < 1000; ++i) {
    const int64_t v = r.Int(i, lo, hi);
    neg |= v < 0;
    pos |= v > 0;
  }
  EXPECT_TRUE(neg && pos);
}

}  // namespace
}  // namespace qwen3
