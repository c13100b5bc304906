#include "exec/reference/reference_executor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "exec/cpu/quant_matrix.h"
#include "exec/finite.h"
#include "exec/moe_routing.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

// A matrix [out][in] (row o: output o's weights), or a vector (norms: out = 1).
class RefWeight final : public Weight {
 public:
  std::vector<float> w;
  size_t out = 0, in = 0;
  WeightType source = WeightType::kBf16;

  size_t bytes() const override { return w.size() * sizeof(float); }
  WeightType type() const override { return source; }
  const float* Row(size_t o) const { return w.data() + o * in; }
};

const RefWeight& AsRef(const Weight& w) {
  const auto* r = dynamic_cast<const RefWeight*>(&w);
  if (r == nullptr) throw Error("a weight packed by another executor was given to the reference");
  return *r;
}

// KV of one layer in the seed's order: [block][kv_head][token][head_dim] fp32.
class RefKvCache final : public KvCache {
 public:
  RefKvCache(size_t num_blocks, size_t kv_heads, size_t head_dim, size_t block_size)
      : num_blocks_(num_blocks), kv_heads_(kv_heads), head_dim_(head_dim), block_size_(block_size),
        k(num_blocks * kv_heads * block_size * head_dim), v(k.size()) {
    if (num_blocks == 0) throw Error("KV cache: num_blocks = 0: expected at least 1");
  }
  size_t num_blocks() const override { return num_blocks_; }
  size_t kv_heads() const override { return kv_heads_; }
  size_t head_dim() const override { return head_dim_; }
  size_t block_size() const override { return block_size_; }
  size_t bytes() const override { return (k.size() + v.size()) * sizeof(float); }
  // The row of (slot, head).
  size_t At(size_t slot, size_t head) const {
    return ((slot / block_size_ * kv_heads_ + head) * block_size_ + slot % block_size_) * head_dim_;
  }

 private:
  size_t num_blocks_, kv_heads_, head_dim_, block_size_;

 public:
  std::vector<float> k, v;
};

// Element (o, i) of a host matrix as fp32: bf16 exactly; a quantized type through its exact
// decoding (the values gguf-py's dequantize gives).
class HostReader {
 public:
  HostReader(const HostMatrix& m, std::optional<WeightType> quantize, ThreadPool& pool) : m_(m) {
    if (m.type != WeightType::kBf16) {
      q_ = cpu::QuantMatrix::FromGguf(m.type, static_cast<const uint8_t*>(m.data), m.out, m.in,
                                      m.name, pool);
    } else if (quantize) {
      if (m.in_out) throw Error("tensor " + m.name + ": the seed's [in, out] layout is bf16 only");
      q_ = cpu::QuantMatrix::Quantize(static_cast<const bf16*>(m.data), m.out, m.in, *quantize,
                                      m.name, pool);
    }
    quantized_ = m.type != WeightType::kBf16 || quantize.has_value();
    type_ = m.type != WeightType::kBf16 ? m.type : quantize.value_or(WeightType::kBf16);
  }
  float At(size_t o, size_t i) const {
    if (quantized_) return q_.At(i, o);
    const bf16* p = static_cast<const bf16*>(m_.data);
    return Bf16ToF32(m_.in_out ? p[i * m_.out + o] : p[o * m_.in + i]);
  }
  WeightType type() const { return type_; }

 private:
  const HostMatrix& m_;
  cpu::QuantMatrix q_;
  bool quantized_ = false;
  WeightType type_ = WeightType::kBf16;
};

// Rows [row0, row0 + rows) of w from r, checked finite.
void Fill(RefWeight& w, size_t row0, const HostMatrix& m, const HostReader& r) {
  for (size_t o = 0; o < m.out; ++o) {
    for (size_t i = 0; i < m.in; ++i) {
      const float x = r.At(o, i);
      if (!std::isfinite(x)) {
        throw Error("tensor " + m.name + ": element [" + std::to_string(o) + ", " +
                    std::to_string(i) + "] is not finite: expected finite weights");
      }
      w.w[(row0 + o) * w.in + i] = x;
    }
  }
}

double Dot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// y = x / rms(x) * w over n values.
void Normalize(const float* x, const float* w, size_t n, float eps, float* y) {
  const double inv = 1.0 / std::sqrt(Dot(x, x, n) / static_cast<double>(n) + eps);
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] * inv * w[i]);
}

// RMSNorm then RoPE (rotate-half) of one head in place.
void NormRope(float* x, const float* w, const float* cos, const float* sin, size_t n, float eps) {
  float normed[512];
  Normalize(x, w, n, eps, normed);
  const size_t half = n / 2;
  for (size_t i = 0; i < half; ++i) {
    const double lo = normed[i], hi = normed[i + half];
    x[i] = static_cast<float>(lo * cos[i] - hi * sin[i]);
    x[i + half] = static_cast<float>(hi * cos[i + half] + lo * sin[i + half]);
  }
}

}  // namespace

ReferenceExecutor::ReferenceExecutor(const ModelDims& dims, ThreadPool& pool, size_t max_rows)
    : dims_(dims), pool_(pool) {
  Reserve(max_rows);
}

bool ReferenceExecutor::Supports(Op op, const OpShape& s) const {
  switch (op) {
    case Op::kAttention:
    case Op::kQkNormRopeKv:
      return s.block_size > 0 && dims_.head_dim % 2 == 0 && dims_.head_dim <= 512;
    case Op::kMoeFfn:
      return dims_.experts > 0 && dims_.experts_used >= 1 && dims_.experts_used <= dims_.experts;
    default:
      return true;
  }
}

std::unique_ptr<Weight> ReferenceExecutor::PackLinear(const HostMatrix& m, WeightRole,
                                                      std::optional<WeightType> quantize) {
  const HostReader r(m, quantize, pool_);
  auto w = std::make_unique<RefWeight>();
  w->out = m.out;
  w->in = m.in;
  w->source = r.type();
  w->w.resize(m.out * m.in);
  Fill(*w, 0, m, r);
  return w;
}

// Rows [0, intermediate) are gate, [intermediate, 2 intermediate) up.
std::unique_ptr<Weight> ReferenceExecutor::PackGateUp(const HostMatrix& gate, const HostMatrix& up,
                                                      std::optional<WeightType> quantize) {
  const HostReader g(gate, quantize, pool_), u(up, quantize, pool_);
  auto w = std::make_unique<RefWeight>();
  w->out = gate.out + up.out;
  w->in = gate.in;
  w->source = g.type() != WeightType::kBf16 ? g.type() : u.type();
  w->w.resize(w->out * w->in);
  Fill(*w, 0, gate, g);
  Fill(*w, gate.out, up, u);
  return w;
}

std::unique_ptr<Weight> ReferenceExecutor::PackNorm(const float* v, size_t n,
                                                    const std::string& name) {
  const AlignedBuffer<float> checked = CopyFinite(v, n, name);
  auto w = std::make_unique<RefWeight>();
  w->out = 1;
  w->in = n;
  w->w.assign(checked.data(), checked.data() + n);
  return w;
}

std::unique_ptr<Weight> ReferenceExecutor::PackEmbedding(const HostMatrix& table) {
  return PackLinear(table, WeightRole::kEmbedding, std::nullopt);
}

std::unique_ptr<Weight> ReferenceExecutor::PackRouter(const float* v, size_t experts,
                                                      size_t hidden, const std::string& name) {
  const AlignedBuffer<float> checked = CopyFinite(v, experts * hidden, name);
  auto w = std::make_unique<RefWeight>();
  w->out = experts;
  w->in = hidden;
  w->w.assign(checked.data(), checked.data() + checked.size());
  return w;
}

std::unique_ptr<KvCache> ReferenceExecutor::NewKvCache(size_t num_blocks, size_t block_size) {
  return std::make_unique<RefKvCache>(num_blocks, dims_.kv_heads, dims_.head_dim, block_size);
}

size_t ReferenceExecutor::KvBytesPerToken() const {
  return 2 * dims_.kv_heads * dims_.head_dim * sizeof(float);
}

size_t ReferenceExecutor::Width(Act act) const {
  switch (act) {
    case Act::kQkv:
      return dims_.q_dim() + 2 * dims_.kv_dim();
    case Act::kAttn:
      return dims_.q_dim();
    case Act::kMlp:
      return dims_.intermediate;
    default:
      return dims_.hidden;
  }
}

std::vector<float>& ReferenceExecutor::Buffer(Act act) {
  switch (act) {
    case Act::kHidden:
      return hidden_;
    case Act::kNormed:
      return normed_;
    case Act::kQkv:
      return qkv_;
    case Act::kAttn:
      return attn_;
    case Act::kResid:
      return resid_;
    case Act::kMlp:
      return mlp_;
    case Act::kLmRows:
      return lm_rows_;
  }
  throw Error("unknown activation");
}

void ReferenceExecutor::Reserve(size_t max_rows) {
  if (max_rows <= max_rows_) return;
  max_rows_ = max_rows;
  for (Act a : {Act::kHidden, Act::kNormed, Act::kQkv, Act::kAttn, Act::kResid, Act::kMlp,
                Act::kLmRows}) {
    Buffer(a).assign(max_rows * Width(a), 0.0f);
  }
  q_.assign(max_rows * dims_.q_dim(), 0.0f);
}

void ReferenceExecutor::Upload(Act act, const bf16* rows, size_t n) {
  QW_ASSERT(n <= max_rows_);
  std::vector<float>& b = Buffer(act);
  for (size_t i = 0; i < n * Width(act); ++i) b[i] = Bf16ToF32(rows[i]);
}

void ReferenceExecutor::Download(Act act, size_t n, bf16* rows) {
  const std::vector<float>& b = Buffer(act);
  for (size_t i = 0; i < n * Width(act); ++i) rows[i] = F32ToBf16(b[i]);
}

void ReferenceExecutor::CheckFinite(Act act, size_t n) {
  const std::vector<float>& b = Buffer(act);
  const size_t w = Width(act);
  for (size_t i = 0; i < n * w; ++i) {
    if (!std::isfinite(b[i])) {
      throw Error("hidden_states[" + std::to_string(i / w) + ", " + std::to_string(i % w) +
                  "] is " + (std::isnan(b[i]) ? "NaN" : "Inf") + ": expected finite values");
    }
  }
}

void ReferenceExecutor::ImportKv(KvCache& kv, const bf16* k_rows, const bf16* v_rows) {
  auto& c = static_cast<RefKvCache&>(kv);
  for (size_t i = 0; i < c.k.size(); ++i) {
    c.k[i] = Bf16ToF32(k_rows[i]);
    c.v[i] = Bf16ToF32(v_rows[i]);
  }
}

void ReferenceExecutor::ExportKv(const KvCache& kv, bf16* k_rows, bf16* v_rows) {
  const auto& c = static_cast<const RefKvCache&>(kv);
  for (size_t i = 0; i < c.k.size(); ++i) {
    k_rows[i] = F32ToBf16(c.k[i]);
    v_rows[i] = F32ToBf16(c.v[i]);
  }
}

void ReferenceExecutor::Embed(const Weight& table, std::span<const int32_t> tokens, Act out) {
  const RefWeight& t = AsRef(table);
  float* y = Buffer(out).data();
  for (size_t r = 0; r < tokens.size(); ++r) {
    std::memcpy(y + r * dims_.hidden, t.Row(static_cast<size_t>(tokens[r])),
                dims_.hidden * sizeof(float));
  }
}

void ReferenceExecutor::RmsNorm(Stage stage, const Weight& w, Act in, Act out, size_t n) {
  const float* x = Buffer(in).data();
  float* y = Buffer(out).data();
  const size_t h = dims_.hidden;
  Timed(times_, stage, [&] {
    for (size_t r = 0; r < n; ++r) Normalize(x + r * h, AsRef(w).w.data(), h, dims_.eps, y + r * h);
  });
}

void ReferenceExecutor::Linear(Stage stage, std::span<const Weight* const> w, Act in, Act out,
                               size_t n, Epilogue epi) {
  const float* x = Buffer(in).data();
  float* y = Buffer(out).data();
  const float* res = epi.kind == Epilogue::Kind::kAddResidual ? Buffer(epi.residual).data() : nullptr;
  const size_t k = Width(in), ld = Width(out);
  Timed(times_, stage, [&] {
    pool_.Spmd(
        n,
        [&](size_t r, size_t) {
          const float* xr = x + r * k;
          float* yr = y + r * ld;
          size_t col = 0;
          for (const Weight* wp : w) {
            const RefWeight& m = AsRef(*wp);
            if (epi.kind == Epilogue::Kind::kSiluMul) {  // gate rows, then up rows
              const size_t half = m.out / 2;
              for (size_t j = 0; j < half; ++j) {
                const double g = Dot(xr, m.Row(j), k), u = Dot(xr, m.Row(half + j), k);
                yr[j] = static_cast<float>(g / (1.0 + std::exp(-g)) * u);
              }
              continue;
            }
            for (size_t o = 0; o < m.out; ++o, ++col) {
              const double acc = Dot(xr, m.Row(o), k);
              yr[col] = static_cast<float>(res ? acc + res[r * ld + col] : acc);
            }
          }
        },
        ToString(stage));
  });
}

void ReferenceExecutor::QkNormRopeKv(const Weight& q_norm, const Weight& k_norm,
                                     const RopeTable& rope, KvCache& kv_cache,
                                     const DecodeBatch& batch) {
  auto& kv = static_cast<RefKvCache&>(kv_cache);
  const size_t dim = dims_.head_dim, q_dim = dims_.q_dim(), kv_dim = dims_.kv_dim();
  const size_t ld = q_dim + 2 * kv_dim;
  Timed(times_, Stage::kQkNormRopeCache, [&] {
    for (size_t b = 0; b < batch.batch; ++b) {
      const size_t pos = static_cast<size_t>(batch.seq_lens[b]) - 1;
      const float* cos = rope.cos.data() + pos * dim;
      const float* sin = rope.sin.data() + pos * dim;
      float* row = qkv_.data() + b * ld;
      for (size_t h = 0; h < dims_.heads; ++h) {
        float* q = q_.data() + b * q_dim + h * dim;
        std::memcpy(q, row + h * dim, dim * sizeof(float));
        NormRope(q, AsRef(q_norm).w.data(), cos, sin, dim, dims_.eps);
      }
      const size_t slot = static_cast<size_t>(batch.slot_mapping[b]);
      for (size_t h = 0; h < dims_.kv_heads; ++h) {
        float* k = kv.k.data() + kv.At(slot, h);
        std::memcpy(k, row + q_dim + h * dim, dim * sizeof(float));
        NormRope(k, AsRef(k_norm).w.data(), cos, sin, dim, dims_.eps);
        std::memcpy(kv.v.data() + kv.At(slot, h), row + q_dim + kv_dim + h * dim,
                    dim * sizeof(float));
      }
    }
  });
}

// softmax(q . K^T / sqrt(d)) . V over each row's positions 0..seq_len-1, in double.
void ReferenceExecutor::Attention(const KvCache& kv_cache, const DecodeBatch& batch,
                                  const AttentionOptions&, Act out) {
  const auto& kv = static_cast<const RefKvCache&>(kv_cache);
  const size_t dim = dims_.head_dim, bs = kv.block_size();
  float* y = Buffer(out).data();
  Timed(times_, Stage::kAttention, [&] {
    pool_.Spmd(
        batch.batch * dims_.heads,
        [&](size_t i, size_t) {
          const size_t b = i / dims_.heads, h = i % dims_.heads, kvh = h / dims_.group();
          const size_t len = static_cast<size_t>(batch.seq_lens[b]);
          const int32_t* table = batch.block_table + b * batch.max_blocks_per_seq;
          const float* q = q_.data() + b * dims_.q_dim() + h * dim;
          const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
          std::vector<double> s(len);
          double mx = -INFINITY;
          for (size_t t = 0; t < len; ++t) {
            const size_t slot = static_cast<size_t>(table[t / bs]) * bs + t % bs;
            s[t] = Dot(q, kv.k.data() + kv.At(slot, kvh), dim) * scale;
            mx = std::max(mx, s[t]);
          }
          double sum = 0;
          std::vector<double> o(dim, 0.0);
          for (size_t t = 0; t < len; ++t) {
            const size_t slot = static_cast<size_t>(table[t / bs]) * bs + t % bs;
            const double p = std::exp(s[t] - mx);
            sum += p;
            const float* v = kv.v.data() + kv.At(slot, kvh);
            for (size_t d = 0; d < dim; ++d) o[d] += p * v[d];
          }
          float* yr = y + b * dims_.q_dim() + h * dim;
          for (size_t d = 0; d < dim; ++d) yr[d] = static_cast<float>(o[d] / sum);
        },
        ToString(Stage::kAttention));
  });
}

// Row by row: router logits (double sums, rounded to fp32 as transformers' are), RouteTopK,
// then each chosen expert's FFN in double, summed in the routed order.
void ReferenceExecutor::MoeFfn(const MoeWeights& w, Act in, Act resid, Act out, size_t n,
                               int32_t* chosen) {
  const float* x = Buffer(in).data();
  const float* res = Buffer(resid).data();
  float* y = Buffer(out).data();
  const size_t h = dims_.hidden, e_count = dims_.experts, k = dims_.experts_used;
  const size_t inter = dims_.moe_intermediate;
  const RefWeight& router = AsRef(*w.router);
  QW_ASSERT(w.gate_up.size() == e_count && w.down.size() == e_count && router.out == e_count);
  Timed(times_, Stage::kMoeExperts, [&] {
    pool_.Spmd(
        n,
        [&](size_t r, size_t) {
          const float* xr = x + r * h;
          std::vector<float> logits(e_count), probs(e_count), weights(k), mlp(inter);
          std::vector<int32_t> ids(k);
          std::vector<double> acc(h, 0.0);
          for (size_t e = 0; e < e_count; ++e) {
            logits[e] = static_cast<float>(Dot(xr, router.Row(e), h));
          }
          RouteTopK(logits.data(), e_count, k, dims_.norm_topk, probs.data(), ids.data(),
                    weights.data());
          for (size_t j = 0; j < k; ++j) {
            const RefWeight& gu = AsRef(*w.gate_up[static_cast<size_t>(ids[j])]);
            const RefWeight& down = AsRef(*w.down[static_cast<size_t>(ids[j])]);
            for (size_t i = 0; i < inter; ++i) {
              const double g = Dot(xr, gu.Row(i), h), u = Dot(xr, gu.Row(inter + i), h);
              mlp[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * u);
            }
            for (size_t o = 0; o < h; ++o) {
              acc[o] += static_cast<double>(weights[j]) * Dot(mlp.data(), down.Row(o), inter);
            }
          }
          for (size_t o = 0; o < h; ++o) y[r * h + o] = static_cast<float>(res[r * h + o] + acc[o]);
          if (chosen != nullptr) std::copy(ids.begin(), ids.end(), chosen + r * k);
        },
        ToString(Stage::kMoeExperts));
  });
}

void ReferenceExecutor::SelectRows(Act in, std::span<const uint32_t> rows, Act out) {
  const std::vector<float>& x = Buffer(in);
  std::vector<float>& y = Buffer(out);
  const size_t w = Width(in);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memmove(y.data() + i * w, x.data() + rows[i] * w, w * sizeof(float));
  }
}

void ReferenceExecutor::Logits(const Weight& lm_head, Act in, size_t n, float* logits, size_t ld) {
  const RefWeight& m = AsRef(lm_head);
  const float* x = Buffer(in).data();
  Timed(times_, Stage::kLmHead, [&] {
    pool_.Spmd(
        n,
        [&](size_t r, size_t) {
          for (size_t v = 0; v < m.out; ++v) {
            logits[r * ld + v] = static_cast<float>(Dot(x + r * m.in, m.Row(v), m.in));
          }
        },
        ToString(Stage::kLmHead));
  });
}

}  // namespace qwen3
