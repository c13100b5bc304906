#include "tools/layer_harness.h"

#include "base/error.h"
#include "golden/synthetic.h"

namespace qwen3 {

LayerHarness::LayerHarness(const LayerHarnessOptions& o) : options_(o) {
  shape_.config = ResolveConfig(o.config);
  if (o.vocab < 0) throw Error("--vocab " + std::to_string(o.vocab) + ": expected a positive size");
  if (o.vocab > 0) shape_.config.vocab = o.vocab;
  shape_.batch = o.batch;
  shape_.max_seq = o.max_seq;
  shape_.block_size = o.block_size;
  if (o.batch < 1) throw Error("batch " + std::to_string(o.batch) + ": expected at least 1");
  if (o.max_seq < 1) throw Error("max_seq " + std::to_string(o.max_seq) + ": expected at least 1");
  if (o.block_size == 0 || o.block_size % kKvDimAlign != 0 || o.block_size > kMaxBlockSize) {
    throw Error("block size " + std::to_string(o.block_size) +
                ": expected a multiple of 32 up to " + std::to_string(kMaxBlockSize));
  }
  const size_t mb = shape_.MaxBlocksPerSeq();
  shape_.num_blocks = o.kv_blocks ? o.kv_blocks : o.batch * mb;
  if (o.batch * mb > shape_.num_blocks) {
    throw Error("batch " + std::to_string(o.batch) + " needs " + std::to_string(o.batch) + " x " +
                std::to_string(mb) + " = " + std::to_string(o.batch * mb) +
                " KV blocks, but the pool has " + std::to_string(shape_.num_blocks) +
                " (--kv-blocks)");
  }
  if (!o.seq_lens.empty()) {
    if (o.seq_lens.size() != o.batch) {
      throw Error("--seq-lens has " + std::to_string(o.seq_lens.size()) +
                  " values: expected one per user (batch " + std::to_string(o.batch) + ")");
    }
    for (size_t b = 0; b < o.batch; ++b) {
      if (o.seq_lens[b] < 1 || static_cast<size_t>(o.seq_lens[b]) > o.max_seq) {
        throw Error("seq_lens[" + std::to_string(b) + "] = " + std::to_string(o.seq_lens[b]) +
                    ": expected 1.." + std::to_string(o.max_seq));
      }
    }
  }
  pool_ = std::make_unique<ThreadPool>(o.threads);
  executor_ = std::make_unique<cpu::CpuExecutor>(
      DimsOf(shape_.config), cpu::GetCpuKernels(cpu::SelectCpuPath()), *pool_, o.batch);

  SyntheticOptions syn;
  syn.seed = o.seed;
  syn.all_max_seq = o.all_max_seq;
  syn.lm_head = o.lm_head;
  tensors_ = MakeSyntheticLayer(shape_, syn, *pool_);
  if (!o.seq_lens.empty()) {
    for (size_t b = 0; b < o.batch; ++b) {
      const size_t pos = static_cast<size_t>(o.seq_lens[b]) - 1;
      tensors_.seq_lens[b] = o.seq_lens[b];
      tensors_.slot_mapping[b] = static_cast<int32_t>(
          tensors_.block_table[b * mb + pos / o.block_size] * o.block_size + pos % o.block_size);
    }
  }
  weights_ = LayerWeights::FromSeedLayout(shape_.config, tensors_, *executor_);
  lm_head_ = LmHeadWeights::FromSeedLayout(shape_.config, tensors_, *executor_);
  rope_ = RopeTable::FromTables(tensors_.rope_cos.data(), tensors_.rope_sin.data(), o.max_seq,
                                shape_.config.head_dim);
  kv_ = executor_->NewKvCache(shape_.num_blocks, o.block_size);
  executor_->ImportKv(*kv_, tensors_.k_cache.data(), tensors_.v_cache.data());
  layer_ = std::make_unique<DecodeLayer>(shape_.config, layer_options(), *executor_);
  next_hidden_.assign(o.batch * shape_.config.hidden, 0);
  out_.assign(o.batch * static_cast<size_t>(shape_.config.vocab), 0.0f);
}

DecodeBatch LayerHarness::batch() const {
  DecodeBatch b;
  b.batch = shape_.batch;
  b.seq_lens = tensors_.seq_lens.data();
  b.block_table = tensors_.block_table.data();
  b.max_blocks_per_seq = shape_.MaxBlocksPerSeq();
  b.slot_mapping = tensors_.slot_mapping.data();
  return b;
}

DecodeLayer::Options LayerHarness::layer_options() const {
  DecodeLayer::Options lo;
  lo.max_batch = options_.batch;
  lo.max_seq = options_.max_seq;
  lo.pages_per_split = options_.pages_per_split;
  return lo;
}

size_t LayerHarness::PagesPerSplit() const {
  return cpu::PagesPerSplit(batch(), options_.block_size, shape_.config.kv_heads,
                            pool_->NumWorkers(), layer_->attention_options());
}

void LayerHarness::StepWith(DecodeLayer& layer, StageTimes* times) {
  layer.Run(weights_, rope_, *kv_, batch(), tensors_.hidden.data(), next_hidden_.data(), times);
  layer.RunLmHead(lm_head_, next_hidden_.data(), shape_.batch, out_.data(), shape_.config.vocab,
                  times);
}

HarnessCheck LayerHarness::Check(double rtol, double atol) {
  const GoldenOutputs golden = GoldenDecodeLayer(shape_, tensors_, *pool_);
  HarnessCheck check;
  check.logits = AllClose(out_.data(), golden.out.data(), out_.size(), rtol, atol);
  std::vector<float> actual(next_hidden_.size()), expected(next_hidden_.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    actual[i] = Bf16ToF32(next_hidden_[i]);
    expected[i] = Bf16ToF32(golden.next_hidden[i]);
  }
  // next_hidden is bf16: one rounding flip between two correct fp32 sums is one ulp (2^-8
  // relative), so its relative tolerance is one ulp on top of the seed's.
  check.next_hidden =
      AllClose(actual.data(), expected.data(), actual.size(), rtol + 1.0 / 128, atol);
  return check;
}

}  // namespace qwen3
