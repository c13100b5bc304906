#include "exec/cpu/quant_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/f16.h"
#include "exec/cpu/qmatmul.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {
namespace {

constexpr size_t kGroup = kMaxBlocksPerCall;

void CheckShape(size_t n, size_t k, size_t multiple, const std::string& name) {
  if (n == 0 || k == 0) throw Error("tensor " + name + ": empty matrix");
  if (k % multiple != 0) {
    throw Error("tensor " + name + ": " + std::to_string(k) + " inputs per row: expected a " +
                "multiple of " + std::to_string(multiple) + " for its quantized blocks");
  }
}

void CheckFinite(const SubBlock& s, const std::string& name, size_t row, size_t k0) {
  if (!std::isfinite(s.scale) || !std::isfinite(s.bias)) {
    throw Error("tensor " + name + ": row " + std::to_string(row) + ", block at column " +
                std::to_string(k0) + " has a non-finite scale: expected finite weights");
  }
}

// Re-expresses a sub-block of format `from` as the sub-blocks of the wider `to` (8-bit codes
// hold 4-bit ones; a 32-weight sub-block is two 16-weight ones with the same s and b).
void Widen(const SubBlock& in, QuantFormat from, QuantFormat to, SubBlock* out) {
  if (from == to || from.sub == to.sub) {
    out[0] = in;
    return;
  }
  for (uint32_t h = 0; h < from.sub / to.sub; ++h) {
    out[h].scale = in.scale;
    out[h].bias = in.bias;
    std::memcpy(out[h].codes, in.codes + h * to.sub, to.sub);
  }
}

// Decoded sub-blocks of one [n][k] matrix of ggml blocks, a row at a time, widened to `to`.
class GgufRows {
 public:
  GgufRows(WeightType type, const uint8_t* data, size_t k, QuantFormat to, const std::string& name)
      : type_(type), data_(data), k_(k), from_(FormatOf(type)), to_(to), name_(name) {}

  // Sub-block s (of format to_) of row nn; decodes the ggml block holding it once per row.
  const SubBlock& Get(size_t nn, size_t s) {
    const size_t per_block = BlockElems(type_) / to_.sub;
    const size_t block = s / per_block;
    if (nn != row_ || block != block_) {
      SubBlock raw[16];
      const uint8_t* src = data_ + (nn * (k_ / BlockElems(type_)) + block) * BlockBytes(type_);
      DecodeBlock(type_, src, raw);
      const size_t raws = BlockElems(type_) / from_.sub, widen = from_.sub / to_.sub;
      for (size_t i = 0; i < raws; ++i) {
        CheckFinite(raw[i], name_, nn, block * BlockElems(type_) + i * from_.sub);
        Widen(raw[i], from_, to_, subs_ + i * widen);
      }
      row_ = nn;
      block_ = block;
    }
    return subs_[s % per_block];
  }

 private:
  WeightType type_;
  const uint8_t* data_;
  size_t k_;
  QuantFormat from_, to_;
  const std::string& name_;
  size_t row_ = SIZE_MAX, block_ = SIZE_MAX;
  SubBlock subs_[16];
};

QuantFormat Wider(QuantFormat a, QuantFormat b) {
  if (a == b) return a;
  // 8-bit codes hold any of the others (6-bit codes have no kF32 kernel).
  return {std::max(a.bits, b.bits) == 4 ? 4u : 8u, std::min(a.sub, b.sub), 0, QuantScales::kF32};
}

// Column nn of a [k, 2n] interleaved matrix: column `col` of the first or the second source.
std::pair<size_t, bool> Interleaved(size_t nn) {
  return {nn / (2 * kTileK) * kTileK + nn % kTileK, nn % (2 * kTileK) >= kTileK};
}

// bf16 [n][k] quantized to ggml blocks of type, row by row (what llama-quantize writes).
std::vector<uint8_t> QuantizeToBlocks(const bf16* src, size_t n, size_t k, WeightType type,
                                      const std::string& name, ThreadPool& pool) {
  CheckShape(n, k, 32, name);
  if (type != WeightType::kQ8_0 && type != WeightType::kQ4_0) {
    throw Error(std::string("--quantize ") + ToString(type) + ": expected q8_0 or q4_0");
  }
  const size_t blocks = k / 32, bytes = BlockBytes(type);
  std::vector<uint8_t> out(n * blocks * bytes);
  pool.Spmd(n, [&](size_t r, size_t) {
    float x[32];
    for (size_t b = 0; b < blocks; ++b) {
      for (size_t i = 0; i < 32; ++i) {
        x[i] = Bf16ToF32(src[r * k + b * 32 + i]);
        if (!std::isfinite(x[i])) {
          throw Error("tensor " + name + ": element [" + std::to_string(r) + ", " +
                      std::to_string(b * 32 + i) + "] is not finite: expected finite weights");
        }
      }
      uint8_t* dst = out.data() + (r * blocks + b) * bytes;
      type == WeightType::kQ8_0 ? QuantizeBlockQ8_0(x, dst) : QuantizeBlockQ4_0(x, dst);
    }
  });
  return out;
}

// Writes column c's s and b of a sub-block as `format` holds them (kernels.h, QuantScales):
// into the block's part of the record's scales and, for kK, of the super-block's header.
void PutScales(QuantFormat format, const SubBlock& sb, size_t c, uint8_t* header, uint8_t* scales) {
  auto put_half = [](uint8_t* p, size_t i, float f) {
    const uint16_t h = F32ToF16(f);
    QW_ASSERT(F16ToF32(h) == f);  // d and dmin are the file's fp16s
    std::memcpy(p + i * sizeof(h), &h, sizeof(h));
  };
  switch (format.scales) {
    case QuantScales::kF32: {
      float* sc = reinterpret_cast<float*>(scales);
      sc[c] = sb.scale;
      sc[kTileN + c] = sb.bias;
      return;
    }
    case QuantScales::kF16:  // d, and b = -offset d by the type's definition
      QW_ASSERT(sb.bias == -static_cast<float>(format.offset) * sb.scale);
      put_half(scales, c, sb.scale);
      return;
    case QuantScales::kK:
      put_half(header, c, sb.d);
      QW_ASSERT(sb.scale == sb.d * static_cast<float>(sb.sc));
      if (format.offset) {  // Q6_K
        QW_ASSERT(sb.sc >= -128 && sb.sc <= 127);
        scales[c] = static_cast<uint8_t>(static_cast<int8_t>(sb.sc));
      } else {  // Q4_K
        QW_ASSERT(sb.sc >= 0 && sb.sc < 256 && sb.m >= 0 && sb.m < 256 &&
                  sb.bias == -(sb.dmin * static_cast<float>(sb.m)));
        put_half(header, kTileN + c, sb.dmin);
        scales[c] = static_cast<uint8_t>(sb.sc);
        scales[kTileN + c] = static_cast<uint8_t>(sb.m);
      }
      return;
  }
}

}  // namespace

size_t QuantMatrix::ColumnBlockBytes() const {
  const QuantGroup one = {nullptr, 1, subs(), format_.bits, format_.sub, format_.offset,
                          format_.scales};
  return format_.scales == QuantScales::kK ? subs() / QuantSuperSubs(one) * QuantSuperBytes(one)
                                           : subs() * RecordBytes(1);
}

template <typename Source>
QuantMatrix QuantMatrix::Pack(size_t k, size_t n, QuantFormat format, WeightType type,
                              Source make_source, ThreadPool& pool) {
  QuantMatrix m;
  m.k_ = k;
  m.n_ = n;
  m.n_blocks_ = (n + kTileN - 1) / kTileN;
  m.format_ = format;
  m.type_ = type;
  m.data_ = AlignedBuffer<uint8_t>(m.n_blocks_ * m.ColumnBlockBytes(), Pages::kHuge);
  std::memset(m.data_.data(), 0, m.data_.size());  // padded columns: zero codes, s = b = 0
  const size_t groups = (m.n_blocks_ + kGroup - 1) / kGroup;
  const size_t code_bytes = m.CodeBytes();
  const size_t scale_bytes = QuantScaleBytes(format.scales, format.offset);
  const size_t header_bytes = QuantHeaderBytes(format.scales, format.offset);
  pool.Spmd(groups, [&](size_t g, size_t) {
    auto source = make_source();  // per worker: it caches a decoded block
    const size_t j0 = g * kGroup, nb = std::min(kGroup, m.n_blocks_ - j0);
    const QuantGroup group = m.Group(j0, nb);
    uint8_t* base = m.data_.data() + m.GroupOffset(j0);
    for (size_t nn = j0 * kTileN; nn < std::min(n, (j0 + nb) * kTileN); ++nn) {
      const size_t jb = nn / kTileN - j0, c = nn % kTileN;
      for (size_t s = 0; s < m.subs(); ++s) {
        const SubBlock& sb = source(nn, s);
        uint8_t* rec = base + QuantRecordOffset(group, s);
        uint8_t* codes = rec + jb * code_bytes;
        PutScales(format, sb, c, base + QuantHeaderOffset(group, s) + jb * header_bytes,
                  rec + nb * code_bytes + jb * scale_bytes);
        for (size_t i = 0; i < format.sub; ++i) {
          if (format.bits == 8) {
            codes[(i / 4) * 64 + c * 4 + i % 4] = sb.codes[i];
          } else if (format.bits == 6) {  // QuantCodeAt's layout
            const size_t v = i / 4, lane = c * 4 + i % 4;
            uint8_t& nibbles = codes[(v % 2) * 64 + lane];
            nibbles = static_cast<uint8_t>(v < 2 ? (nibbles & 0xf0) | (sb.codes[i] & 0xf)
                                                 : (nibbles & 0x0f) | ((sb.codes[i] & 0xf) << 4));
            codes[128 + lane] |= static_cast<uint8_t>((sb.codes[i] >> 4) << (2 * v));
          } else {  // vector v holds k = 4v + t (low nibble) and 16 + 4v + t (high)
            const size_t v = (i % 16) / 4, t = i % 4;
            uint8_t& byte = codes[v * 64 + c * 4 + t];
            byte = static_cast<uint8_t>(i < 16 ? (byte & 0xf0) | sb.codes[i]
                                               : (byte & 0x0f) | (sb.codes[i] << 4));
          }
        }
      }
    }
  });
  return m;
}

QuantMatrix QuantMatrix::FromGguf(WeightType type, const uint8_t* data, size_t n, size_t k,
                                  const std::string& name, ThreadPool& pool) {
  CheckShape(n, k, BlockElems(type), name);
  const QuantFormat f = FormatOf(type);
  return Pack(
      k, n, f, type,
      [&] {
        return [rows = GgufRows(type, data, k, f, name)](size_t nn, size_t s) mutable
                   -> const SubBlock& { return rows.Get(nn, s); };
      },
      pool);
}

QuantMatrix QuantMatrix::FromGgufInterleaved(WeightType type_a, const uint8_t* a,
                                             WeightType type_b, const uint8_t* b, size_t n,
                                             size_t k, const std::string& name_a,
                                             const std::string& name_b, ThreadPool& pool) {
  CheckShape(n, k, BlockElems(type_a), name_a);
  CheckShape(n, k, BlockElems(type_b), name_b);
  if (n % kTileK != 0) {
    throw Error("tensor " + name_a + ": " + std::to_string(n) + " outputs: expected a multiple of " +
                std::to_string(kTileK) + " to interleave with " + name_b);
  }
  const QuantFormat f = Wider(FormatOf(type_a), FormatOf(type_b));
  const WeightType type = FormatOf(type_a) == f ? type_a : type_b;
  return Pack(
      k, 2 * n, f, type,
      [&] {
        return [ra = GgufRows(type_a, a, k, f, name_a), rb = GgufRows(type_b, b, k, f, name_b)](
                   size_t nn, size_t s) mutable -> const SubBlock& {
          const auto [col, second] = Interleaved(nn);
          return second ? rb.Get(col, s) : ra.Get(col, s);
        };
      },
      pool);
}

QuantMatrix QuantMatrix::Quantize(const bf16* src, size_t n, size_t k, WeightType type,
                                  const std::string& name, ThreadPool& pool) {
  const std::vector<uint8_t> blocks = QuantizeToBlocks(src, n, k, type, name, pool);
  return FromGguf(type, blocks.data(), n, k, name, pool);
}

QuantMatrix QuantMatrix::QuantizeInterleaved(const bf16* a, const bf16* b, size_t n, size_t k,
                                             WeightType type, const std::string& name_a,
                                             const std::string& name_b, ThreadPool& pool) {
  const std::vector<uint8_t> qa = QuantizeToBlocks(a, n, k, type, name_a, pool);
  const std::vector<uint8_t> qb = QuantizeToBlocks(b, n, k, type, name_b, pool);
  return FromGgufInterleaved(type, qa.data(), type, qb.data(), n, k, name_a, name_b, pool);
}

QuantGroup QuantMatrix::Group(size_t j0, size_t nb) const {
  QW_ASSERT(j0 % kGroup == 0 && nb >= 1 && j0 + nb <= n_blocks_ &&
            nb <= std::min(kGroup, n_blocks_ - j0));
  return {data_.data() + GroupOffset(j0), nb,           subs(), format_.bits, format_.sub,
          format_.offset,        format_.scales};
}

float QuantMatrix::At(size_t kk, size_t nn) const {
  QW_ASSERT(kk < k_ && nn < n_);
  const size_t j = nn / kTileN, j0 = j / kGroup * kGroup, jb = j - j0, c = nn % kTileN;
  const size_t nb = std::min(kGroup, n_blocks_ - j0), s = kk / format_.sub, i = kk % format_.sub;
  const QuantGroup g = Group(j0, nb);
  const uint8_t* rec = g.data + QuantRecordOffset(g, s);
  const uint8_t* header =
      g.data + QuantHeaderOffset(g, s) + jb * QuantHeaderBytes(format_.scales, format_.offset);
  const uint8_t* scales =
      rec + nb * CodeBytes() + jb * QuantScaleBytes(format_.scales, format_.offset);
  const uint32_t u = QuantCodeAt(rec + jb * CodeBytes(), format_.bits, i, c);
  float ws, wb;
  QuantScaleBias(format_.scales, format_.offset, header, scales, c, ws, wb);
  return std::fma(ws, static_cast<float>(u), wb);
}

}  // namespace qwen3::cpu
