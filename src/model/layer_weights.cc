#include "model/layer_weights.h"

#include <cmath>
#include <cstring>

#include "base/error.h"
#include "runtime/thread_pool.h"

namespace qwen3 {

AlignedBuffer<float> CopyFinite(const float* src, size_t n, const std::string& name) {
  AlignedBuffer<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(src[i])) {
      throw Error("tensor " + name + ": element " + std::to_string(i) + " is " +
                  (std::isnan(src[i]) ? "NaN" : "Inf") + ": expected finite values");
    }
    out[i] = src[i];
  }
  return out;
}

AlignedBuffer<bf16> CopyFiniteBf16(const bf16* src, size_t rows, size_t cols,
                                   const std::string& name) {
  AlignedBuffer<bf16> out(rows * cols);
  std::memcpy(out.data(), src, rows * cols * sizeof(bf16));
  for (size_t i = 0; i < out.size(); ++i) {
    if (!IsFiniteBf16(out[i])) {
      throw Error("tensor " + name + ": element [" + std::to_string(i / cols) + ", " +
                  std::to_string(i % cols) + "] is not finite: expected finite weights");
    }
  }
  return out;
}

LayerWeights LayerWeights::FromSeedLayout(const Qwen3Config& c, const LayerTensors& t,
                                          ThreadPool& pool) {
  const size_t h = c.hidden, q = c.QDim(), kv = c.KvDim(), inter = c.intermediate;
  LayerWeights w;
  w.input_norm = CopyFinite(t.input_rms_weight.data(), h, "input_rms_weight");
  w.post_norm = CopyFinite(t.post_rms_weight.data(), h, "post_rms_weight");
  w.q_norm = CopyFinite(t.q_norm_weight.data(), c.head_dim, "q_norm_weight");
  w.k_norm = CopyFinite(t.k_norm_weight.data(), c.head_dim, "k_norm_weight");
  w.wq = cpu::PackedMatrix::FromInOut(t.wq.data(), h, q, "wq", pool);
  w.wk = cpu::PackedMatrix::FromInOut(t.wk.data(), h, kv, "wk", pool);
  w.wv = cpu::PackedMatrix::FromInOut(t.wv.data(), h, kv, "wv", pool);
  w.wo = cpu::PackedMatrix::FromInOut(t.wo.data(), q, h, "wo", pool);
  w.w_gate_up = cpu::PackedMatrix::FromInOutInterleaved(t.w_gate.data(), t.w_up.data(), h, inter,
                                                        "w_gate", "w_up", pool);
  w.w_down = cpu::PackedMatrix::FromInOut(t.w_down.data(), inter, h, "w_down", pool);
  return w;
}

size_t LayerWeights::bytes() const {
  return wq.bytes() + wk.bytes() + wv.bytes() + wo.bytes() + w_gate_up.bytes() + w_down.bytes() +
         (input_norm.size() + post_norm.size() + q_norm.size() + k_norm.size()) * 4;
}

LmHeadWeights LmHeadWeights::FromSeedLayout(const Qwen3Config& c, const LayerTensors& t,
                                            ThreadPool& pool) {
  LmHeadWeights w;
  w.final_norm = CopyFinite(t.final_norm_weight.data(), c.hidden, "final_norm_weight");
  w.rows = t.lm_rows;
  if (w.rows > 0) {
    w.weight = cpu::PackedMatrix::FromOutIn(t.lm_head.data(), w.rows, c.hidden, "lm_head", pool);
  }
  return w;
}

RopeTable RopeTable::FromTables(const float* cos, const float* sin, size_t max_seq,
                                size_t head_dim) {
  RopeTable r;
  r.max_seq = max_seq;
  r.head_dim = head_dim;
  r.cos = CopyFinite(cos, max_seq * head_dim, "rope_cos");
  r.sin = CopyFinite(sin, max_seq * head_dim, "rope_sin");
  return r;
}

RopeTable RopeTable::FromTheta(double theta, size_t max_seq, size_t head_dim) {
  RopeTable r;
  r.max_seq = max_seq;
  r.head_dim = head_dim;
  r.cos = AlignedBuffer<float>(max_seq * head_dim);
  r.sin = AlignedBuffer<float>(max_seq * head_dim);
  const size_t half = head_dim / 2;
  for (size_t i = 0; i < half; ++i) {
    // fp32 inv_freq as transformers computes it, angle in fp32 as well.
    const float inv_freq = static_cast<float>(
        1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim)));
    for (size_t pos = 0; pos < max_seq; ++pos) {
      const float angle = static_cast<float>(pos) * inv_freq;
      const float c = std::cos(angle), s = std::sin(angle);
      r.cos[pos * head_dim + i] = r.cos[pos * head_dim + i + half] = c;
      r.sin[pos * head_dim + i] = r.sin[pos * head_dim + i + half] = s;
    }
  }
  return r;
}

}  // namespace qwen3
