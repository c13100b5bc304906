// The int8 kernel of the AVX-512 paths (kernels.h: QMatmulFn) up to its format dispatch: Run,
// over the int32 dot of 4 k's that the includer defines first, Dot4 (4-bit codes) and Dot8
// (8-bit codes): (acc, u8 codes, s8 activations) -> acc + the 4-product dots per int32 lane.
// Include inside an anonymous namespace only: qmatmul_avx512.cc (vpmaddubsw + vpmaddwd) and
// qmatmul_avx512vnni.cc (vpdpbusd) each get their own copy, compiled with their own ISA flags,
// and each dispatch to Run per format in their exported function.
//
// Register tiles of R rows x NB blocks hold fp32 accumulators across a chunk of sub-blocks and
// an int32 dot per sub-block; a sub-block's epilogue (kernels.h) folds the dot into the fp32
// sum. K runs in chunks of 256 weights over all row tiles, so a chunk of the group's codes is
// loaded into L1 once per call, and the next chunk is prefetched under the current one (past
// the call's end too: a worker's next group follows in memory).

constexpr size_t kChunkWeights = 256;
constexpr size_t kLine = 64;

inline __m512 Half16(const uint8_t* p) {  // 16 fp16s (the maskz form: GCC 12 warns, wrongly,
  // that plain _mm512_cvtph_ps's undefined source is used uninitialized)
  return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <bool SIGNED>
inline __m512 Bytes16(const uint8_t* p) {  // 16 i8s or u8s as floats
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm512_cvtepi32_ps(SIGNED ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v));
}

inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return _mm512_set1_epi32(v);
}

// Sub-blocks [s0, s1) for rows [r0, r0 + R) and blocks [j0, j0 + NB) of the group. Every loop
// is unrolled (the pragmas): with h a constant the 4-bit nibble choice and the first-half
// multiply are straight-line code, and the tiles stay in registers.
template <size_t R, size_t NB, uint32_t BITS, uint32_t SUB, bool OFF, QuantScales SC>
inline void Tile(const QuantRows& a, size_t r0, const QuantGroup& b, size_t j0, size_t s0,
                 size_t s1, float* c, size_t ldc, bool first, const char*& prefetch,
                 size_t prefetch_lines) {
  constexpr size_t kCodeBytes = SUB * kTileN * BITS / 8;
  constexpr size_t kScaleBytes = QuantScaleBytes(SC, OFF ? 1 : 0);
  constexpr size_t kHeaderBytes = QuantHeaderBytes(SC, OFF ? 1 : 0);
  constexpr size_t kHalves = SUB / 16;
  const size_t record = b.nb * (kCodeBytes + kScaleBytes);
  // kK: the super-block's d (and -dmin) per block; [s0, s1) lies in one super-block.
  __m512 d[NB], neg_dmin[NB];
  if constexpr (SC == QuantScales::kK) {
    const uint8_t* hd = b.data + QuantHeaderOffset(b, s0) + j0 * kHeaderBytes;
#pragma GCC unroll 4
    for (size_t j = 0; j < NB; ++j) {
      d[j] = Half16(hd + j * kHeaderBytes);
      if constexpr (!OFF) {
        neg_dmin[j] = _mm512_xor_ps(Half16(hd + j * kHeaderBytes + 2 * kTileN), _mm512_set1_ps(-0.0f));
      }
    }
  }
  const __m512i nib = _mm512_set1_epi8(0x0f), top2 = _mm512_set1_epi8(0x30);
  __m512 acc[R][NB];
#pragma GCC unroll 4
  for (size_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (size_t j = 0; j < NB; ++j) {
      acc[r][j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * ldc + j * kTileN);
    }
  }
  const int8_t* x = a.q + r0 * a.ldq + s0 * SUB;
  const float* xs = a.scale + r0 * a.ld16 + s0 * kHalves;
  const int32_t* sum16 = a.sum16 + r0 * a.ld16 + s0 * kHalves;
  const float* xb = SUB == 32 ? a.bias32 + r0 * a.ld32 + s0 : a.bias16 + r0 * a.ld16 + s0;
  const size_t ldb = SUB == 32 ? a.ld32 : a.ld16;
  const uint8_t* rec = b.data + QuantRecordOffset(b, s0);
  const char* pf = prefetch;
  for (size_t s = s0; s < s1; ++s, x += SUB, xs += kHalves, sum16 += kHalves, ++xb, rec += record) {
    for (size_t i = 0; i < prefetch_lines; ++i, pf += kLine) _mm_prefetch(pf, _MM_HINT_T0);
    const uint8_t* codes = rec + j0 * kCodeBytes;
    __m512 t[R][NB];
#pragma GCC unroll 2
    for (size_t h = 0; h < kHalves; ++h) {  // each 16 codes has its own activation scale
      __m512i dot[R][NB];
#pragma GCC unroll 4
      for (size_t r = 0; r < R; ++r) {  // Q8_0 / Q4_0: start from -offset * sum(q)
        const __m512i init = OFF ? _mm512_set1_epi32(-static_cast<int32_t>(b.offset) *
                                                     sum16[r * a.ld16 + h])
                                 : _mm512_setzero_si512();
#pragma GCC unroll 4
        for (size_t j = 0; j < NB; ++j) dot[r][j] = init;
      }
#pragma GCC unroll 4
      for (size_t v = 0; v < 4; ++v) {
        __m512i u[NB];
#pragma GCC unroll 4
        for (size_t j = 0; j < NB; ++j) {
          if constexpr (BITS == 8) {
            u[j] = _mm512_loadu_si512(codes + j * kCodeBytes + (h * 4 + v) * 64);
          } else if constexpr (BITS == 6) {  // nibbles | top 2 bits << 4 (QuantCodeAt)
            const uint8_t* cj = codes + j * kCodeBytes;
            const __m512i raw = _mm512_loadu_si512(cj + (v % 2) * 64);
            const __m512i lo = _mm512_and_si512(v < 2 ? raw : _mm512_srli_epi16(raw, 4), nib);
            const __m512i top = _mm512_srli_epi16(_mm512_loadu_si512(cj + 128), 2 * v);
            u[j] = _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi16(top, 4), top2));
          } else {  // vector v: k = 4v + i in the low nibbles, 16 + 4v + i in the high
            const __m512i raw = _mm512_loadu_si512(codes + j * kCodeBytes + v * 64);
            u[j] = _mm512_and_si512(h == 0 ? raw : _mm512_srli_epi16(raw, 4), nib);
          }
        }
#pragma GCC unroll 4
        for (size_t r = 0; r < R; ++r) {
          const __m512i xv = Broadcast4(x + r * a.ldq + h * 16 + 4 * v);
#pragma GCC unroll 4
          for (size_t j = 0; j < NB; ++j) {
            // Codes below 64 (4 and 6 bits) cannot saturate vpmaddubsw's pairs.
            dot[r][j] = BITS == 8 ? Dot8(dot[r][j], u[j], xv) : Dot4(dot[r][j], u[j], xv);
          }
        }
      }
#pragma GCC unroll 4
      for (size_t r = 0; r < R; ++r) {
        const __m512 scale = _mm512_set1_ps(xs[r * a.ld16 + h]);
#pragma GCC unroll 4
        for (size_t j = 0; j < NB; ++j) {
          const __m512 d = _mm512_cvtepi32_ps(dot[r][j]);
          t[r][j] = h == 0 ? _mm512_mul_ps(scale, d) : _mm512_fmadd_ps(scale, d, t[r][j]);
        }
      }
    }
    const uint8_t* sb = rec + b.nb * kCodeBytes + j0 * kScaleBytes;
    __m512 ws[NB], wb[NB];
#pragma GCC unroll 4
    for (size_t j = 0; j < NB; ++j) {  // s and b as kernels.h's QuantScales; the offset is in the dots
      const uint8_t* sj = sb + j * kScaleBytes;
      if constexpr (SC == QuantScales::kF16) {
        ws[j] = Half16(sj);
      } else if constexpr (SC == QuantScales::kF32) {
        ws[j] = _mm512_loadu_ps(reinterpret_cast<const float*>(sj));
        wb[j] = _mm512_loadu_ps(reinterpret_cast<const float*>(sj) + kTileN);
      } else {  // s = d sc, b = -(dmin m): exact products
        ws[j] = _mm512_mul_ps(d[j], Bytes16<OFF>(sj));
        if constexpr (!OFF) wb[j] = _mm512_mul_ps(neg_dmin[j], Bytes16<false>(sj + kTileN));
      }
    }
#pragma GCC unroll 4
    for (size_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (size_t j = 0; j < NB; ++j) {
        acc[r][j] = _mm512_fmadd_ps(ws[j], t[r][j], acc[r][j]);
        if constexpr (!OFF) acc[r][j] = _mm512_fmadd_ps(wb[j], _mm512_set1_ps(xb[r * ldb]), acc[r][j]);
      }
    }
  }
  prefetch = pf;
#pragma GCC unroll 4
  for (size_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (size_t j = 0; j < NB; ++j) _mm512_storeu_ps(c + r * ldc + j * kTileN, acc[r][j]);
  }
}

// A row tile of R rows over all nb blocks: NB <= 2 for 4 rows (16 accumulators + 16 dots
// would not fit the 32 registers), up to 4 for fewer rows.
template <size_t R, uint32_t BITS, uint32_t SUB, bool OFF, QuantScales SC>
inline void RowTile(const QuantRows& a, size_t r0, const QuantGroup& b, size_t s0, size_t s1,
                    float* c, size_t ldc, bool first, const char*& pf, size_t lines) {
  constexpr size_t kMaxNb = R >= 4 ? 2 : 4;
  for (size_t j0 = 0; j0 < b.nb;) {
    const size_t nb = std::min(kMaxNb, b.nb - j0);
    float* cj = c + j0 * kTileN;
    switch (nb) {
      case 4:
        if constexpr (kMaxNb >= 4) Tile<R, 4, BITS, SUB, OFF, SC>(a, r0, b, j0, s0, s1, cj, ldc, first, pf, lines);
        break;
      case 3:
        if constexpr (kMaxNb >= 3) Tile<R, 3, BITS, SUB, OFF, SC>(a, r0, b, j0, s0, s1, cj, ldc, first, pf, lines);
        break;
      case 2:
        Tile<R, 2, BITS, SUB, OFF, SC>(a, r0, b, j0, s0, s1, cj, ldc, first, pf, lines);
        break;
      default:
        Tile<R, 1, BITS, SUB, OFF, SC>(a, r0, b, j0, s0, s1, cj, ldc, first, pf, lines);
        break;
    }
    j0 += nb;
    lines = 0;  // the first pass over a chunk prefetches the next one
  }
}

template <uint32_t BITS, uint32_t SUB, bool OFF, QuantScales SC>
void Run(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  constexpr size_t kChunkSubs = kChunkWeights / SUB;
  static_assert(kChunkWeights == kQuantSuperWeights, "a chunk is one super-block");
  const size_t lines = (QuantSuperBytes(b) / kChunkSubs + kLine - 1) / kLine;
  for (size_t s0 = 0; s0 < b.subs; s0 += kChunkSubs) {
    const size_t s1 = std::min(b.subs, s0 + kChunkSubs);
    const char* pf = reinterpret_cast<const char*>(b.data) + QuantHeaderOffset(b, s0 + kChunkSubs);
    for (size_t r0 = 0; r0 < rows;) {
      const size_t rest = rows - r0;
      const size_t rt = rest >= 4 ? 4 : rest >= 2 ? 2 : 1;
      const size_t l = r0 == 0 ? lines : 0;
      float* cr = c + r0 * ldc;
      if (rt == 4) {
        RowTile<4, BITS, SUB, OFF, SC>(a, r0, b, s0, s1, cr, ldc, s0 == 0, pf, l);
      } else if (rt == 2) {
        RowTile<2, BITS, SUB, OFF, SC>(a, r0, b, s0, s1, cr, ldc, s0 == 0, pf, l);
      } else {
        RowTile<1, BITS, SUB, OFF, SC>(a, r0, b, s0, s1, cr, ldc, s0 == 0, pf, l);
      }
      r0 += rt;
    }
  }
}
