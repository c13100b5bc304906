#include "golden/reference.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

constexpr size_t kColChunk = 256;

std::vector<float> ToF32(const bf16* x, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = Bf16ToF32(x[i]);
  return out;
}

// sum_i a[i] * b[i] in fp32, in 16 interleaved partial sums so plain loops vectorize.
template <typename B>
float Dot(const float* a, const B* b, size_t n) {
  auto at = [](const B* p, size_t i) {
    if constexpr (sizeof(B) == sizeof(bf16)) {
      return Bf16ToF32(p[i]);
    } else {
      return p[i];
    }
  };
  float lanes[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (size_t l = 0; l < 16; ++l) lanes[l] += a[i + l] * at(b, i + l);
  }
  for (; i < n; ++i) lanes[0] += a[i] * at(b, i);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// out[m][n] = sum_k a[m][k] * w[k][n], w row-major [k, n] bf16, fp32 accumulation in k order.
std::vector<float> MatmulInOut(const std::vector<float>& a, size_t rows, const bf16* w, size_t k,
                               size_t n, ThreadPool& pool) {
  std::vector<float> out(rows * n, 0.0f);
  pool.Spmd((n + kColChunk - 1) / kColChunk, [&](size_t chunk, size_t) {
    const size_t n0 = chunk * kColChunk, n1 = std::min(n, n0 + kColChunk);
    std::vector<float> wrow(n1 - n0);
    for (size_t kk = 0; kk < k; ++kk) {
      for (size_t j = n0; j < n1; ++j) wrow[j - n0] = Bf16ToF32(w[kk * n + j]);
      for (size_t m = 0; m < rows; ++m) {
        const float av = a[m * k + kk];
        float* o = out.data() + m * n + n0;
        for (size_t j = 0; j < n1 - n0; ++j) o[j] += av * wrow[j];
      }
    }
  });
  return out;
}

// out[m][v] = sum_k a[m][k] * w[v][k], w row-major [v, k] (the LM head's [vocab, hidden]).
void MatmulOutIn(const std::vector<float>& a, size_t rows, const bf16* w, size_t k, size_t v,
                 float* out, size_t ld_out, ThreadPool& pool) {
  pool.Spmd((v + kColChunk - 1) / kColChunk, [&](size_t chunk, size_t) {
    const size_t v0 = chunk * kColChunk, v1 = std::min(v, v0 + kColChunk);
    std::vector<float> wrow(k);
    for (size_t j = v0; j < v1; ++j) {
      for (size_t kk = 0; kk < k; ++kk) wrow[kk] = Bf16ToF32(w[j * k + kk]);
      for (size_t m = 0; m < rows; ++m) out[m * ld_out + j] = Dot(a.data() + m * k, wrow.data(), k);
    }
  });
}

// normed = bf16(x / sqrt(mean(x^2) + eps) * w), returned as fp32 values.
std::vector<float> RmsNormBf16(const std::vector<float>& x, size_t rows, size_t n,
                               const float* w, float eps) {
  std::vector<float> out(rows * n);
  for (size_t r = 0; r < rows; ++r) {
    float sq = 0.0f;
    for (size_t i = 0; i < n; ++i) sq += x[r * n + i] * x[r * n + i];
    const float inv = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
    for (size_t i = 0; i < n; ++i) out[r * n + i] = RoundBf16(x[r * n + i] * inv * w[i]);
  }
  return out;
}

// One head: RMSNorm (fp32) then the half rotation, rounded to bf16.
void NormRopeHead(const float* x, const float* w, const float* cos, const float* sin, size_t dim,
                  float eps, float* out) {
  float sq = 0.0f;
  for (size_t d = 0; d < dim; ++d) sq += x[d] * x[d];
  const float inv = 1.0f / std::sqrt(sq / static_cast<float>(dim) + eps);
  std::vector<float> y(dim);
  for (size_t d = 0; d < dim; ++d) y[d] = x[d] * inv * w[d];
  const size_t half = dim / 2;
  for (size_t d = 0; d < half; ++d) {
    out[d] = RoundBf16(y[d] * cos[d] - y[d + half] * sin[d]);
    out[d + half] = RoundBf16(y[d + half] * cos[d + half] + y[d] * sin[d + half]);
  }
}

}  // namespace

GoldenOutputs GoldenDecodeLayer(const LayerShape& shape, LayerTensors& t, ThreadPool& pool) {
  const Qwen3Config& c = shape.config;
  const size_t n = shape.batch, h = c.hidden, q_dim = c.QDim(), kv_dim = c.KvDim();
  const size_t dim = c.head_dim, heads_kv = c.kv_heads, group = c.GroupSize();
  const size_t inter = c.intermediate, bs = shape.block_size, mb = shape.MaxBlocksPerSeq();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));

  const std::vector<float> x = ToF32(t.hidden.data(), n * h);
  const std::vector<float> normed = RmsNormBf16(x, n, h, t.input_rms_weight.data(), eps);
  const std::vector<float> q = MatmulInOut(normed, n, t.wq.data(), h, q_dim, pool);
  const std::vector<float> k = MatmulInOut(normed, n, t.wk.data(), h, kv_dim, pool);
  const std::vector<float> v = MatmulInOut(normed, n, t.wv.data(), h, kv_dim, pool);

  // Cache writes, then attention over every user's context (the current token included).
  std::vector<float> q_rot(n * q_dim);
  for (size_t b = 0; b < n; ++b) {
    const size_t pos = static_cast<size_t>(t.seq_lens[b]) - 1;
    const float* cos = t.rope_cos.data() + pos * dim;
    const float* sin = t.rope_sin.data() + pos * dim;
    const size_t slot = static_cast<size_t>(t.slot_mapping[b]);
    for (size_t kvh = 0; kvh < heads_kv; ++kvh) {
      std::vector<float> k_rot(dim);
      NormRopeHead(k.data() + b * kv_dim + kvh * dim, t.k_norm_weight.data(), cos, sin, dim, eps,
                   k_rot.data());
      const size_t row = ((slot / bs) * heads_kv + kvh) * bs + slot % bs;
      for (size_t d = 0; d < dim; ++d) {
        t.k_cache[row * dim + d] = F32ToBf16(k_rot[d]);
        t.v_cache[row * dim + d] = F32ToBf16(v[b * kv_dim + kvh * dim + d]);
      }
    }
    for (size_t head = 0; head < static_cast<size_t>(c.heads); ++head) {
      NormRopeHead(q.data() + b * q_dim + head * dim, t.q_norm_weight.data(), cos, sin, dim, eps,
                   q_rot.data() + b * q_dim + head * dim);
    }
  }

  std::vector<float> attn(n * q_dim);
  pool.Spmd(n * heads_kv, [&](size_t i, size_t) {
    const size_t b = i / heads_kv, kvh = i % heads_kv;
    const size_t len = static_cast<size_t>(t.seq_lens[b]);
    const size_t blocks = (len + bs - 1) / bs;
    for (size_t g = 0; g < group; ++g) {
      const float* qh = q_rot.data() + b * q_dim + (kvh * group + g) * dim;
      std::vector<float> o(dim, 0.0f), o_blk(dim), s(bs);
      float m = 0.0f, l = 0.0f;
      for (size_t sb = 0; sb < blocks; ++sb) {
        const size_t valid = std::min(bs, len - sb * bs);
        const size_t base = (static_cast<size_t>(t.block_table[b * mb + sb]) * heads_kv + kvh) * bs;
        for (size_t tok = 0; tok < bs; ++tok) {
          float raw = -FLT_MAX;  // finfo(fp32).min on the masked tail, before scaling
          if (tok < valid) {
            raw = Dot(qh, t.k_cache.data() + (base + tok) * dim, dim);
          }
          s[tok] = raw * scale;
        }
        const float m_blk = *std::max_element(s.begin(), s.end());
        float l_blk = 0.0f;
        std::fill(o_blk.begin(), o_blk.end(), 0.0f);
        for (size_t tok = 0; tok < bs; ++tok) {
          const float e = RoundBf16(std::exp(s[tok] - m_blk));
          l_blk += e;
          if (e == 0.0f) continue;
          for (size_t d = 0; d < dim; ++d) o_blk[d] += e * Bf16ToF32(t.v_cache[(base + tok) * dim + d]);
        }
        if (sb == 0) {
          m = m_blk, l = l_blk, o = o_blk;
        } else {
          const float mn = std::max(m, m_blk);
          const float a = std::exp(m - mn), bb = std::exp(m_blk - mn);
          l = a * l + bb * l_blk;
          for (size_t d = 0; d < dim; ++d) o[d] = o[d] * a + o_blk[d] * bb;
          m = mn;
        }
      }
      for (size_t d = 0; d < dim; ++d) attn[b * q_dim + (kvh * group + g) * dim + d] = RoundBf16(o[d] / l);
    }
  });

  const std::vector<float> o_proj = MatmulInOut(attn, n, t.wo.data(), q_dim, h, pool);
  std::vector<float> resid1(n * h);
  for (size_t i = 0; i < n * h; ++i) resid1[i] = o_proj[i] + x[i];
  const std::vector<float> post = RmsNormBf16(resid1, n, h, t.post_rms_weight.data(), eps);
  const std::vector<float> gate = MatmulInOut(post, n, t.w_gate.data(), h, inter, pool);
  const std::vector<float> up = MatmulInOut(post, n, t.w_up.data(), h, inter, pool);
  std::vector<float> mlp(n * inter);
  for (size_t i = 0; i < n * inter; ++i) {
    mlp[i] = RoundBf16(gate[i] * (1.0f / (1.0f + std::exp(-gate[i]))) * up[i]);
  }
  const std::vector<float> down = MatmulInOut(mlp, n, t.w_down.data(), inter, h, pool);

  GoldenOutputs result;
  result.next_hidden.resize(n * h);
  std::vector<float> final_hidden(n * h);
  for (size_t i = 0; i < n * h; ++i) {
    result.next_hidden[i] = F32ToBf16(down[i] + resid1[i]);
    final_hidden[i] = Bf16ToF32(result.next_hidden[i]);
  }
  const std::vector<float> final_normed =
      RmsNormBf16(final_hidden, n, h, t.final_norm_weight.data(), eps);
  result.out.assign(n * static_cast<size_t>(c.vocab), 0.0f);
  if (t.lm_rows > 0) {
    MatmulOutIn(final_normed, n, t.lm_head.data(), h, t.lm_rows, result.out.data(), c.vocab, pool);
  }
  return result;
}

}  // namespace qwen3
