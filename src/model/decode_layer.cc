#include "model/decode_layer.h"

#include <algorithm>
#include <string>

#include "base/error.h"

namespace qwen3 {
namespace {

// Stage times go to `times` while this lives (also when a stage throws).
class TimesScope {
 public:
  TimesScope(Executor& x, StageTimes* times) : x_(x) { x.set_times(times); }
  ~TimesScope() { x_.set_times(nullptr); }
  TimesScope(const TimesScope&) = delete;
  TimesScope& operator=(const TimesScope&) = delete;

 private:
  Executor& x_;
};

}  // namespace

DecodeLayer::DecodeLayer(const Qwen3Config& config, const Options& options, Executor& executor)
    : config_(config), options_(options), x_(executor) {
  ValidateConfig(config);
  if (options.max_batch == 0) throw Error("decode layer: max_batch = 0: expected at least 1");
  if (options.pages_per_split > kMaxPagesPerSplit) {
    throw Error("decode layer: pages_per_split = " + std::to_string(options.pages_per_split) +
                ": expected 0 (auto) or 1.." + std::to_string(kMaxPagesPerSplit));
  }
  x_.Reserve(options.max_batch);
  validate_slots_.reserve(options.max_batch);
  expert_ptrs_.resize(2 * static_cast<size_t>(config.experts));
  const ModelDims dims = DimsOf(config);
  if (config.moe() && !x_.Supports(Op::kMoeFfn, {&dims, options.max_batch})) {
    throw Error("executor " + x_.name() + " cannot run a mixture-of-experts FFN (" +
                std::to_string(config.experts) + " experts, top-" +
                std::to_string(config.experts_used) + ")");
  }
}

// Spec §3: one call per stage, each over the whole batch.
void DecodeLayer::ProgramStages(const LayerWeights& w, const RopeTable& rope, KvCache& kv,
                                const DecodeBatch& batch, int32_t* chosen) {
  const size_t n = batch.batch;
  x_.RmsNorm(Stage::kInputNorm, *w.input_norm, Act::kHidden, Act::kNormed, n);
  const Weight* qkv[] = {w.wq.get(), w.wk.get(), w.wv.get()};
  x_.Linear(Stage::kQkvProj, qkv, Act::kNormed, Act::kQkv, n, Epilogue::Store());
  x_.QkNormRopeKv(*w.q_norm, *w.k_norm, rope, kv, batch);
  x_.Attention(kv, batch, attention_options(), Act::kAttn);
  const Weight* wo[] = {w.wo.get()};
  x_.Linear(Stage::kOutProj, wo, Act::kAttn, Act::kResid, n, Epilogue::AddResidual(Act::kHidden));
  x_.RmsNorm(Stage::kPostNorm, *w.post_norm, Act::kResid, Act::kNormed, n);
  if (w.moe()) return MoeFfn(w, n, chosen);
  const Weight* gate_up[] = {w.w_gate_up.get()};
  x_.Linear(Stage::kGateUpSilu, gate_up, Act::kNormed, Act::kMlp, n, Epilogue::SiluMul());
  const Weight* down[] = {w.w_down.get()};
  x_.Linear(Stage::kDownProj, down, Act::kMlp, Act::kHidden, n, Epilogue::AddResidual(Act::kResid));
}

void DecodeLayer::MoeFfn(const LayerWeights& w, size_t n, int32_t* chosen) {
  const size_t e = w.expert_gate_up.size();
  QW_ASSERT(e == w.expert_down.size() && 2 * e == expert_ptrs_.size());
  for (size_t i = 0; i < e; ++i) {
    expert_ptrs_[i] = w.expert_gate_up[i].get();
    expert_ptrs_[e + i] = w.expert_down[i].get();
  }
  const std::span<const Weight* const> ptrs(expert_ptrs_);
  x_.MoeFfn({w.router.get(), w.post_norm.get(), ptrs.first(e), ptrs.subspan(e)}, Act::kNormed,
            Act::kResid, Act::kHidden, n, chosen);
}

void DecodeLayer::Run(const LayerWeights& w, const RopeTable& rope, KvCache& kv,
                      const DecodeBatch& batch, const bf16* hidden, bf16* next_hidden,
                      StageTimes* times) {
  Validate(batch, kv, rope, hidden);
  x_.Upload(Act::kHidden, hidden, batch.batch);
  {
    const TimesScope scope(x_, times);
    ProgramStages(w, rope, kv, batch, nullptr);
  }
  x_.Download(Act::kHidden, batch.batch, next_hidden);
}

void DecodeLayer::Forward(const LayerWeights& w, const RopeTable& rope, KvCache& kv,
                          const DecodeBatch& batch, StageTimes* times, int32_t* chosen) {
  Validate(batch, kv, rope, nullptr);
  x_.CheckFinite(Act::kHidden, batch.batch);
  const TimesScope scope(x_, times);
  ProgramStages(w, rope, kv, batch, chosen);
}

void DecodeLayer::RunLmHead(const LmHeadWeights& lm, const bf16* hidden, size_t batch,
                            float* logits, size_t ld_logits, StageTimes* times) {
  if (batch < 1 || batch > options_.max_batch) {
    throw Error("batch = " + std::to_string(batch) + ": expected 1.." +
                std::to_string(options_.max_batch));
  }
  x_.Upload(Act::kLmRows, hidden, batch);
  const TimesScope scope(x_, times);
  x_.RmsNorm(Stage::kFinalNorm, *lm.final_norm, Act::kLmRows, Act::kNormed, batch);
  if (lm.rows > 0) x_.Logits(*lm.weight, Act::kNormed, batch, logits, ld_logits);
}

void DecodeLayer::LmHead(const LmHeadWeights& lm, std::span<const uint32_t> rows, float* logits,
                         size_t ld_logits, StageTimes* times) {
  QW_ASSERT(!rows.empty() && rows.size() <= options_.max_batch);
  x_.SelectRows(Act::kHidden, rows, Act::kLmRows);
  const TimesScope scope(x_, times);
  x_.RmsNorm(Stage::kFinalNorm, *lm.final_norm, Act::kLmRows, Act::kNormed, rows.size());
  if (lm.rows > 0) x_.Logits(*lm.weight, Act::kNormed, rows.size(), logits, ld_logits);
}

void DecodeLayer::Validate(const DecodeBatch& batch, const KvCache& kv, const RopeTable& rope,
                           const bf16* hidden) const {
  const size_t n = batch.batch, bs = kv.block_size();
  if (n < 1 || n > options_.max_batch) {
    throw Error("batch = " + std::to_string(n) + ": expected 1.." +
                std::to_string(options_.max_batch) + " (the layer's max batch)");
  }
  if (kv.kv_heads() != static_cast<size_t>(config_.kv_heads) ||
      kv.head_dim() != static_cast<size_t>(config_.head_dim)) {
    throw Error("KV cache has " + std::to_string(kv.kv_heads()) + " heads of " +
                std::to_string(kv.head_dim()) + ": expected " +
                std::to_string(config_.kv_heads) + " of " + std::to_string(config_.head_dim));
  }
  if (rope.head_dim != static_cast<size_t>(config_.head_dim)) {
    throw Error("rope table head_dim = " + std::to_string(rope.head_dim) + ": expected " +
                std::to_string(config_.head_dim));
  }
  const size_t max_seq = std::min(options_.max_seq, rope.max_seq);
  if (batch.max_blocks_per_seq * bs < max_seq) {
    throw Error("block_table has " + std::to_string(batch.max_blocks_per_seq) +
                " blocks per user: expected at least " + std::to_string((max_seq + bs - 1) / bs) +
                " for max_seq " + std::to_string(max_seq));
  }
  std::vector<std::pair<int32_t, size_t>>& slots = validate_slots_;  // reserved: no allocation
  slots.resize(n);
  for (size_t b = 0; b < n; ++b) {
    const int32_t len = batch.seq_lens[b];
    if (len < 1 || static_cast<size_t>(len) > max_seq) {
      throw Error("seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) +
                  ": expected 1.." + std::to_string(max_seq));
    }
    const size_t pages = (static_cast<size_t>(len) + bs - 1) / bs;
    const int32_t* row = batch.block_table + b * batch.max_blocks_per_seq;
    for (size_t sb = 0; sb < pages; ++sb) {
      if (row[sb] < 0 || static_cast<size_t>(row[sb]) >= kv.num_blocks()) {
        throw Error("block_table[" + std::to_string(b) + ", " + std::to_string(sb) +
                    "] = " + std::to_string(row[sb]) + ": expected a block in 0.." +
                    std::to_string(kv.num_blocks() - 1) + " (the KV pool)");
      }
    }
    const size_t pos = static_cast<size_t>(len) - 1;
    const int64_t expected = static_cast<int64_t>(row[pos / bs]) * bs + pos % bs;
    if (batch.slot_mapping[b] != expected) {
      throw Error("slot_mapping[" + std::to_string(b) +
                  "] = " + std::to_string(batch.slot_mapping[b]) + ": expected " +
                  std::to_string(expected) + " (block_table[" + std::to_string(b) + ", " +
                  std::to_string(pos / bs) + "] * " + std::to_string(bs) + " + " +
                  std::to_string(pos % bs) + " for seq_len " + std::to_string(len) + ")");
    }
    slots[b] = {batch.slot_mapping[b], b};
  }
  std::sort(slots.begin(), slots.end());
  for (size_t i = 1; i < n; ++i) {
    if (slots[i].first == slots[i - 1].first) {
      throw Error("users " + std::to_string(slots[i - 1].second) + " and " +
                  std::to_string(slots[i].second) + " both write KV slot " +
                  std::to_string(slots[i].first) + ": expected distinct slots");
    }
  }
  const size_t h = config_.hidden;
  for (size_t i = 0; hidden != nullptr && i < n * h; ++i) {
    if (!IsFiniteBf16(hidden[i])) {
      throw Error("hidden_states[" + std::to_string(i / h) + ", " + std::to_string(i % h) +
                  "] is " + ((hidden[i] & 0x7f) ? "NaN" : "Inf") + ": expected finite values");
    }
  }
}

}  // namespace qwen3
