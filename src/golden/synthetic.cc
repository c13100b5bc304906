#include "golden/synthetic.h"

#include <cmath>

#include "base/rng.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

// Stream ids: one per tensor, so a tensor's values do not depend on the others' sizes.
enum Stream : uint64_t {
  kHidden = 1, kInputRms, kWq, kWk, kWv, kRopeCos, kRopeSin, kKCache, kVCache, kWo, kWGate, kWUp,
  kWDown, kLmHead, kSeqLens
};

constexpr size_t kChunk = size_t{1} << 16;

// dst[i] = cast(f(U_i)) in parallel chunks.
template <typename T, typename F>
AlignedBuffer<T> Fill(size_t n, uint64_t seed, Stream stream, ThreadPool& pool, F f) {
  AlignedBuffer<T> out(n);
  const CounterRng rng(seed, stream);
  pool.Spmd((n + kChunk - 1) / kChunk, [&](size_t c, size_t) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) {
      const float v = f(rng.Uniform(i));
      if constexpr (sizeof(T) == sizeof(bf16)) {
        out[i] = F32ToBf16(v);
      } else {
        out[i] = v;
      }
    }
  });
  return out;
}

AlignedBuffer<float> Ones(size_t n) {
  AlignedBuffer<float> out(n);
  for (float& v : out) v = 1.0f;
  return out;
}

}  // namespace

LayerTensors MakeSyntheticLayer(const LayerShape& shape, const SyntheticOptions& options,
                                ThreadPool& pool) {
  const Qwen3Config& c = shape.config;
  const size_t h = c.hidden, q = c.QDim(), kv = c.KvDim(), inter = c.intermediate;
  const size_t dim = c.head_dim, n = shape.batch, mb = shape.MaxBlocksPerSeq();
  const uint64_t seed = options.seed;
  const float s = options.proj_scale;
  const float inv_sqrt_h = 1.0f / std::sqrt(static_cast<float>(h));
  const float inv_sqrt_i = 1.0f / std::sqrt(static_cast<float>(inter));
  auto centered = [](float u) { return u - 0.5f; };
  auto proj = [=](float u) { return s * (u - 0.5f) * inv_sqrt_h; };

  LayerTensors t;
  t.hidden = Fill<bf16>(n * h, seed, kHidden, pool, centered);
  t.input_rms_weight = Fill<float>(h, seed, kInputRms, pool, centered);
  t.wq = Fill<bf16>(h * q, seed, kWq, pool, [=](float u) { return u * inv_sqrt_h; });
  t.wk = Fill<bf16>(h * kv, seed, kWk, pool, [=](float u) { return u * inv_sqrt_h; });
  t.wv = Fill<bf16>(h * kv, seed, kWv, pool, [=](float u) { return s * u * inv_sqrt_h; });
  t.q_norm_weight = Ones(dim);
  t.k_norm_weight = Ones(dim);
  t.rope_cos = Fill<float>(shape.max_seq * dim, seed, kRopeCos, pool, centered);
  t.rope_sin = Fill<float>(shape.max_seq * dim, seed, kRopeSin, pool, centered);
  t.k_cache = Fill<bf16>(shape.KvRows() * dim, seed, kKCache, pool, centered);
  t.v_cache = Fill<bf16>(shape.KvRows() * dim, seed, kVCache, pool,
                         [=](float u) { return s * (u - 0.5f); });
  t.wo = Fill<bf16>(q * h, seed, kWo, pool, proj);
  t.post_rms_weight = Ones(h);
  t.w_gate = Fill<bf16>(h * inter, seed, kWGate, pool, proj);
  t.w_up = Fill<bf16>(h * inter, seed, kWUp, pool, proj);
  t.w_down = Fill<bf16>(inter * h, seed, kWDown, pool,
                        [=](float u) { return s * (u - 0.5f) * inv_sqrt_i; });
  t.final_norm_weight = Ones(h);
  t.lm_rows = LmHeadRows(options.lm_head, c.vocab);
  t.lm_head = Fill<bf16>(t.lm_rows * h, seed, kLmHead, pool, proj);

  const CounterRng lens(seed, kSeqLens);
  t.seq_lens = AlignedBuffer<int32_t>(n);
  t.block_table = AlignedBuffer<int32_t>(n * mb);
  t.slot_mapping = AlignedBuffer<int32_t>(n);
  for (size_t b = 0; b < n; ++b) {
    const int64_t len = options.all_max_seq ? static_cast<int64_t>(shape.max_seq)
                                            : lens.Int(b, 1, static_cast<int64_t>(shape.max_seq));
    t.seq_lens[b] = static_cast<int32_t>(len);
    for (size_t sb = 0; sb < mb; ++sb) t.block_table[b * mb + sb] = static_cast<int32_t>(b * mb + sb);
    const size_t pos = static_cast<size_t>(len) - 1;
    t.slot_mapping[b] =
        static_cast<int32_t>(t.block_table[b * mb + pos / shape.block_size] * shape.block_size +
                             pos % shape.block_size);
  }
  return t;
}

}  // namespace qwen3
