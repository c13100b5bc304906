#include "exec/cpu/attention_q8.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/f16.h"
#include "exec/cpu/quant_blocks.h"

namespace qwen3::cpu {
namespace {

constexpr uint16_t kHalfOne = 0x3c00;  // fp16 1.0: the V groups' own scale
constexpr size_t kBlockBytes = 2 + KvQ8Layout::kSub;  // a ggml Q8_0 block: fp16 d, int8 q[32]

void PutHalf(uint8_t* p, uint16_t h) { std::memcpy(p, &h, sizeof(h)); }
uint16_t GetHalf(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof(h));
  return h;
}

// Sub-block s's record of a group of nb blocks starting at `group`, and in it block jj's codes
// byte of (k i within the sub-block, column c), and block jj's scale of column c.
template <typename Byte>  // uint8_t or const uint8_t
Byte* Record(Byte* group, size_t nb, size_t s) {
  return group + s * nb * KvQ8Layout::kBlockRecord;
}
size_t CodeOffset(size_t jj, size_t i, size_t c) {
  return jj * KvQ8Layout::kCodeBytes + (i / 4) * 64 + c * 4 + i % 4;
}
size_t ScaleOffset(size_t nb, size_t jj, size_t c) {
  return nb * KvQ8Layout::kCodeBytes + jj * KvQ8Layout::kScaleBytes + c * sizeof(uint16_t);
}

// One token's head_dim values as ggml Q8_0 blocks of 32 (zeros past head_dim).
void QuantizeToken(const bf16* x, size_t head_dim, size_t pdim, uint8_t* blocks) {
  float f[KvQ8Layout::kSub];
  for (size_t b = 0; b * KvQ8Layout::kSub < pdim; ++b) {
    for (size_t i = 0; i < KvQ8Layout::kSub; ++i) {
      const size_t d = b * KvQ8Layout::kSub + i;
      f[i] = d < head_dim ? Bf16ToF32(x[d]) : 0.0f;
    }
    QuantizeBlockQ8_0(f, blocks + b * kBlockBytes);
  }
}

// The rows of one int8 operand of at most 16 rows x kMaxBlockSize values, on the stack.
struct RowsQ8 {
  alignas(64) int8_t q[kTileM * kMaxBlockSize];
  float scale[kTileM * kMaxBlockSize / 16], bias16[kTileM * kMaxBlockSize / 16];
  int32_t sum16[kTileM * kMaxBlockSize / 16];
  float bias32[kTileM * kMaxBlockSize / 32];

  static constexpr size_t kL16 = kMaxBlockSize / 16, kL32 = kMaxBlockSize / 32;
  void Quantize(const CpuKernels& kernels, const bf16* x, size_t lda, size_t rows, size_t k) {
    for (size_t r = 0; r < rows; ++r) {
      kernels.quantize_row(x + r * lda, k, q + r * kMaxBlockSize, scale + r * kL16,
                           sum16 + r * kL16, bias16 + r * kL16, bias32 + r * kL32);
    }
  }
  // Rows of x * mul (mul shared by every row).
  void QuantizeScaled(const CpuKernels& kernels, const bf16* x, size_t lda, const float* mul,
                      size_t rows, size_t k) {
    for (size_t r = 0; r < rows; ++r) {
      kernels.quantize_scaled_row(x + r * lda, mul, k, q + r * kMaxBlockSize, scale + r * kL16,
                                  sum16 + r * kL16, bias16 + r * kL16, bias32 + r * kL32);
    }
  }
  QuantRows view() const {
    return {q, kMaxBlockSize, scale, bias16, sum16, kMaxBlockSize / 16, bias32, kMaxBlockSize / 32};
  }
};

// Software prefetch of a next page's K then V bytes, `per_step` lines at each Step.
struct Prefetch {
  const uint8_t* k = nullptr;
  size_t k_bytes = 0;
  const uint8_t* v = nullptr;
  size_t v_bytes = 0;
  size_t per_step = 0;
  size_t done = 0;  // bytes

  void Step() {
    for (size_t n = 0; n < per_step && done < k_bytes + v_bytes; ++n, done += 64) {
      __builtin_prefetch(done < k_bytes ? k + done : v + (done - k_bytes), 0, 3);
    }
  }
};

}  // namespace

QuantGroup KvQ8Layout::KGroup(const uint8_t* page, size_t j0) const {
  const size_t blocks = block_size / kTileN;
  QW_DASSERT(j0 % kGroup == 0 && j0 < blocks);
  return {page + j0 * dim_blocks() * kBlockRecord, std::min(kGroup, blocks - j0), dim_blocks(),
          8, kSub, 128, QuantScales::kF16};
}

QuantGroup KvQ8Layout::VGroup(const uint8_t* page, size_t j0, size_t subs) const {
  QW_DASSERT(j0 % kGroup == 0 && j0 < v_blocks() && subs >= 1 && subs <= token_subs());
  return {page + j0 * token_subs() * kBlockRecord, std::min(kGroup, v_blocks() - j0), subs, 8,
          kSub, 128, QuantScales::kF16};
}

void KvQ8Layout::WriteK(uint8_t* page, size_t t, const bf16* k) const {
  uint8_t blocks[kMaxHeadDim / kSub * kBlockBytes];
  QuantizeToken(k, head_dim, padded_dim(), blocks);
  const size_t j = t / kTileN, c = t % kTileN, j0 = j / kGroup * kGroup;
  const size_t nb = std::min(kGroup, block_size / kTileN - j0);
  uint8_t* group = page + j0 * dim_blocks() * kBlockRecord;
  for (size_t s = 0; s < dim_blocks(); ++s) {
    uint8_t* rec = Record(group, nb, s);
    const uint8_t* blk = blocks + s * kBlockBytes;
    for (size_t i = 0; i < kSub; ++i) rec[CodeOffset(j - j0, i, c)] = blk[2 + i] ^ 0x80;  // q + 128
    PutHalf(rec + ScaleOffset(nb, j - j0, c), GetHalf(blk));
  }
}

void KvQ8Layout::WriteV(uint8_t* page, size_t t, const bf16* v) const {
  float f[kMaxHeadDim];
  int8_t q[kMaxHeadDim];
  for (size_t d = 0; d < padded_dim(); ++d) f[d] = d < head_dim ? Bf16ToF32(v[d]) : 0.0f;
  const float scale = QuantizeSymmetric8(f, padded_dim(), q);
  const size_t s = t / kSub, i = t % kSub;
  for (size_t j0 = 0; j0 < v_blocks(); j0 += kGroup) {
    const size_t nb = std::min(kGroup, v_blocks() - j0);
    uint8_t* rec = Record(page + j0 * token_subs() * kBlockRecord, nb, s);
    for (size_t jj = 0; jj < nb; ++jj) {
      for (size_t c = 0; c < kTileN; ++c) {
        rec[CodeOffset(jj, i, c)] = static_cast<uint8_t>(q[(j0 + jj) * kTileN + c]) ^ 0x80;
        // The kernel's own scales: 1, set by the sub-block's first token only (a sequence
        // writes its tokens from a block's start, and other tokens of the sub-block may be
        // written by other workers at the same time); untouched pages stay untouched memory.
        if (i == 0) PutHalf(rec + ScaleOffset(nb, jj, c), kHalfOne);
      }
    }
  }
  reinterpret_cast<float*>(page + VCodesBytes())[t] = scale;
}

float KvQ8Layout::KAt(const uint8_t* page, size_t t, size_t d) const {
  const size_t j = t / kTileN, c = t % kTileN, j0 = j / kGroup * kGroup;
  const size_t nb = std::min(kGroup, block_size / kTileN - j0);
  const uint8_t* rec = Record(page + j0 * dim_blocks() * kBlockRecord, nb, d / kSub);
  const float scale = F16ToF32(GetHalf(rec + ScaleOffset(nb, j - j0, c)));
  return scale * static_cast<float>(static_cast<int>(rec[CodeOffset(j - j0, d % kSub, c)]) - 128);
}

float KvQ8Layout::VAt(const uint8_t* page, size_t t, size_t d) const {
  const size_t j = d / kTileN, j0 = j / kGroup * kGroup;
  const size_t nb = std::min(kGroup, v_blocks() - j0);
  const uint8_t* rec =
      Record(page + j0 * token_subs() * kBlockRecord, nb, t / kSub);
  return VScales(page)[t] *
         static_cast<float>(static_cast<int>(rec[CodeOffset(j - j0, t % kSub, d % kTileN)]) - 128);
}

void AttentionPartialQueriesQ8(const CpuKernels& kernels, const KvQ8Layout& layout,
                               const bf16* q_tile, size_t lda, size_t group, size_t queries,
                               const size_t* lens, size_t page0, const uint8_t* const* k_pages,
                               const uint8_t* const* v_pages, size_t num_pages, float scale,
                               float* const* o, float* const* m, float* const* l) {
  const size_t bs = layout.block_size, dim = layout.head_dim, pdim = layout.padded_dim();
  const size_t rows = queries * group;
  QW_ASSERT(bs <= kMaxBlockSize && pdim <= kMaxHeadDim && queries >= 1 && rows <= kTileM &&
            num_pages > 0 && bs % KvQ8Layout::kSub == 0);
  alignas(64) float s[kTileM * kMaxBlockSize];
  alignas(64) bf16 p[kTileM * kMaxBlockSize];
  alignas(64) float o_page[kTileM * kMaxHeadDim];
  float m_page[kTileM], l_page[kTileM];
  RowsQ8 qa, pa;
  qa.Quantize(kernels, q_tile, lda, rows, pdim);
  const QuantRows qv = qa.view(), pview = pa.view();
  size_t longest = 0;
  for (size_t qi = 0; qi < queries; ++qi) longest = std::max(longest, lens[qi]);

  for (size_t i = 0; i < num_pages; ++i) {
    const size_t first_token = (page0 + i) * bs;
    const size_t valid = std::min(bs, longest - first_token);  // the longest query's
    const size_t blocks = (valid + kTileN - 1) / kTileN;
    const size_t calls = (blocks + KvQ8Layout::kGroup - 1) / KvQ8Layout::kGroup +
                         (layout.v_blocks() + KvQ8Layout::kGroup - 1) / KvQ8Layout::kGroup;
    // The next page streams in under this one, a share after each kernel call: pages are not
    // adjacent in memory, so the hardware prefetchers stop at each page's end.
    Prefetch next;
    if (i + 1 < num_pages) {
      next = {k_pages[i + 1], layout.KPageBytes(), v_pages[i + 1], layout.VPageBytes(),
              (layout.KPageBytes() + layout.VPageBytes()) / (64 * calls) + 1};
    }
    for (size_t j0 = 0; j0 < blocks; j0 += KvQ8Layout::kGroup) {
      kernels.qmatmul(qv, rows, layout.KGroup(k_pages[i], j0), s + j0 * kTileN, bs);
      next.Step();
    }
    const bool first = i == 0;
    const size_t subs = (valid + KvQ8Layout::kSub - 1) / KvQ8Layout::kSub;
    const size_t kv = subs * KvQ8Layout::kSub;  // P's columns the V product reads
    AttentionPageSoftmax(kernels, s, bs, group, queries, lens, first_token, first, scale, o, m, l,
                         m_page, l_page, p);
    // Past a row's tokens p is zero: zero codes, an exact zero added.
    pa.QuantizeScaled(kernels, p, bs, layout.VScales(v_pages[i]), rows, kv);
    for (size_t j0 = 0; j0 < layout.v_blocks(); j0 += KvQ8Layout::kGroup) {
      kernels.qmatmul(pview, rows, layout.VGroup(v_pages[i], j0, subs), o_page + j0 * kTileN, pdim);
      next.Step();
    }
    AttentionPageMerge(o_page, pdim, dim, group, queries, lens, first_token, first, o, m, l,
                       m_page, l_page);
  }
}

}  // namespace qwen3::cpu
