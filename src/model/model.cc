#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.h"

namespace qwen3 {
namespace {

DecodeLayer::Options LayerOptions(const Model::Options& o) {
  DecodeLayer::Options lo;
  lo.max_batch = o.max_rows;
  lo.max_seq = o.max_seq;
  lo.pages_per_split = o.pages_per_split;
  lo.per_row_splits = true;
  return lo;
}

void CheckDistinct(std::span<const int32_t> users, const char* what) {
  for (size_t i = 0; i < users.size(); ++i) {  // n <= max_users: quadratic is fine, no allocation
    for (size_t j = 0; j < i; ++j) {
      if (users[i] == users[j]) {
        throw Error(std::string(what) + ": user " + std::to_string(users[i]) +
                    " appears twice: expected distinct users");
      }
    }
  }
}

}  // namespace

Model::Model(const ModelWeights& weights, const Options& options, Executor& executor)
    : w_(weights),
      options_(options),
      x_(executor),
      blocks_per_seq_(options.block_size == 0
                          ? 0
                          : (options.max_seq + options.block_size - 1) / options.block_size),
      num_blocks_(options.num_blocks ? options.num_blocks : options.max_users * blocks_per_seq_),
      layer_(weights.config, LayerOptions(options), executor) {
  const Qwen3Config& c = weights.config;
  const auto bad = [](const std::string& what) { throw Error("model options: " + what); };
  if (options.max_users == 0 && options.num_blocks == 0) {
    bad("max_users = 0 and num_blocks = 0: expected user slots or a KV pool");
  }
  if (options.num_blocks != 0 && options.num_blocks < options.max_users * blocks_per_seq_) {
    bad("num_blocks = " + std::to_string(options.num_blocks) + ": expected at least " +
        std::to_string(options.max_users * blocks_per_seq_) + " for " +
        std::to_string(options.max_users) + " user slots of max_seq " +
        std::to_string(options.max_seq));
  }
  if (num_blocks_ > static_cast<size_t>(INT32_MAX) / options.block_size) {
    bad("num_blocks = " + std::to_string(num_blocks_) + ": too many slots for int32 slot ids");
  }
  if (options.max_seq == 0) bad("max_seq = 0: expected at least 1");
  const ModelDims dims = DimsOf(c);
  if (options.block_size == 0 || options.block_size % kKvDimAlign != 0 ||
      options.block_size > kMaxBlockSize ||
      !executor.Supports(Op::kAttention, {&dims, options.max_rows, options.block_size})) {
    bad("block_size = " + std::to_string(options.block_size) + ": expected a multiple of " +
        std::to_string(kKvDimAlign) + " up to " + std::to_string(kMaxBlockSize));
  }
  if (weights.layers.size() != static_cast<size_t>(c.layers)) {
    bad(std::to_string(weights.layers.size()) + " layers of weights: expected " +
        std::to_string(c.layers));
  }
  rope_ = RopeTable::FromTheta(c.rope_theta, options.max_seq, c.head_dim);
  kv_.reserve(c.layers);
  for (int l = 0; l < c.layers; ++l) {
    kv_.push_back(executor.NewKvCache(num_blocks_, options.block_size));
  }
  slot_tables_.resize(options.max_users * blocks_per_seq_);
  for (size_t i = 0; i < slot_tables_.size(); ++i) slot_tables_[i] = static_cast<int32_t>(i);
  slot_rows_.reserve(options.max_rows);
  lengths_.assign(options.max_users, 0);
  pending_.assign(options.max_users, 0);
  const size_t h = c.hidden, rows = options.max_rows;
  observed_ = AlignedBuffer<bf16>(rows * h);
  observed_experts_.resize(rows * static_cast<size_t>(c.experts_used));
  tokens_.resize(rows);
  lm_rows_.reserve(rows);
  seq_lens_.resize(rows);
  slots_.resize(rows);
  block_table_.resize(rows * blocks_per_seq_);
}

void Model::Reset(size_t user) { lengths_.at(user) = 0; }
void Model::ResetAll() { std::fill(lengths_.begin(), lengths_.end(), 0); }

size_t Model::kv_bytes() const {
  size_t n = 0;
  for (const auto& kv : kv_) n += kv->bytes();
  return n;
}

void Model::ForwardPaged(std::span<const PagedRow> rows, std::span<const uint8_t> want_logits,
                         float* logits, const Observer* observer, StageTimes* times) {
  if (want_logits.size() != rows.size()) {
    throw Error("want_logits has " + std::to_string(want_logits.size()) + " entries: expected " +
                std::to_string(rows.size()) + " (one per row)");
  }
  const size_t bs = options_.block_size;
  for (size_t r = 0; r < rows.size(); ++r) {
    const PagedRow& row = rows[r];
    if (row.token < 0 || row.token >= w_.config.vocab) {
      throw Error("row " + std::to_string(r) + ": token id " + std::to_string(row.token) +
                  ": expected 0.." + std::to_string(w_.config.vocab - 1));
    }
    if (row.pos < 0 || static_cast<size_t>(row.pos) >= options_.max_seq) {
      throw Error("row " + std::to_string(r) + ": position " + std::to_string(row.pos) +
                  ": expected 0.." + std::to_string(options_.max_seq - 1) + " (max_seq " +
                  std::to_string(options_.max_seq) + ")");
    }
    const size_t need = static_cast<size_t>(row.pos) / bs + 1;
    if (row.num_blocks < need || row.num_blocks > blocks_per_seq_) {
      throw Error("row " + std::to_string(r) + ": block table of " +
                  std::to_string(row.num_blocks) + " blocks at position " +
                  std::to_string(row.pos) + ": expected " + std::to_string(need) + ".." +
                  std::to_string(blocks_per_seq_));
    }
    for (size_t b = 0; b < need; ++b) {
      if (row.blocks[b] < 0 || static_cast<size_t>(row.blocks[b]) >= num_blocks_) {
        throw Error("row " + std::to_string(r) + ": block " + std::to_string(row.blocks[b]) +
                    ": expected 0.." + std::to_string(num_blocks_ - 1) + " (the KV pool)");
      }
    }
  }
  for (size_t row0 = 0; row0 < rows.size(); row0 += options_.max_rows) {
    const size_t n = std::min(options_.max_rows, rows.size() - row0);
    Pass(rows.subspan(row0, n), row0, want_logits.subspan(row0, n), logits, observer, times);
  }
}

void Model::Forward(std::span<const Row> rows, std::span<const uint8_t> want_logits,
                    float* logits, const Observer* observer, StageTimes* times) {
  if (want_logits.size() != rows.size()) {
    throw Error("want_logits has " + std::to_string(want_logits.size()) + " entries: expected " +
                std::to_string(rows.size()) + " (one per row)");
  }
  std::fill(pending_.begin(), pending_.end(), 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    if (row.user < 0 || static_cast<size_t>(row.user) >= options_.max_users) {
      throw Error("row " + std::to_string(r) + ": user " + std::to_string(row.user) +
                  ": expected 0.." + std::to_string(options_.max_users - 1));
    }
    const size_t u = static_cast<size_t>(row.user);  // tokens: checked by ForwardPaged
    if (lengths_[u] + ++pending_[u] > options_.max_seq) {
      throw Error("user " + std::to_string(u) + ": " + std::to_string(lengths_[u] + pending_[u]) +
                  " tokens: expected at most max_seq = " + std::to_string(options_.max_seq));
    }
  }
  saved_lengths_.assign(lengths_.begin(), lengths_.end());  // reuses its capacity
  slot_rows_.clear();
  for (const Row& row : rows) {
    const size_t u = static_cast<size_t>(row.user);
    slot_rows_.push_back({row.token, static_cast<int32_t>(lengths_[u]++),
                          slot_tables_.data() + u * blocks_per_seq_, blocks_per_seq_});
  }
  try {
    ForwardPaged(slot_rows_, want_logits, logits, observer, times);
  } catch (...) {
    lengths_.assign(saved_lengths_.begin(), saved_lengths_.end());  // past a length: never read
    throw;
  }
}

void Model::Pass(std::span<const PagedRow> rows, size_t row0, std::span<const uint8_t> want,
                 float*& logits, const Observer* observer, StageTimes* times) {
  const size_t n = rows.size(), bs = options_.block_size;
  const size_t bps = blocks_per_seq_;
  for (size_t r = 0; r < n; ++r) {
    const PagedRow& row = rows[r];
    const size_t pos = static_cast<size_t>(row.pos);
    seq_lens_[r] = row.pos + 1;
    int32_t* table = block_table_.data() + r * bps;
    std::copy(row.blocks, row.blocks + row.num_blocks, table);
    std::fill(table + row.num_blocks, table + bps, 0);  // past the row's length: never read
    slots_[r] = static_cast<int32_t>(static_cast<size_t>(row.blocks[pos / bs]) * bs + pos % bs);
    tokens_[r] = row.token;
  }
  const DecodeBatch batch{n, seq_lens_.data(), block_table_.data(), bps, slots_.data()};
  const auto observe = [&](size_t depth, const int32_t* experts) {
    if (observer == nullptr) return;
    x_.Download(Act::kHidden, n, observed_.data());
    (*observer)(row0, n, depth, observed_.data(), experts);
  };
  x_.Embed(w_.embedding(), {tokens_.data(), n}, Act::kHidden);
  observe(0, nullptr);
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const bool routed = observer != nullptr && w_.layers[l].moe();
    int32_t* chosen = routed ? observed_experts_.data() : nullptr;
    layer_.Forward(w_.layers[l], rope_, *kv_[l], batch, times, chosen);
    observe(l + 1, chosen);
  }
  lm_rows_.clear();
  for (size_t r = 0; r < n; ++r) {
    if (want[r]) lm_rows_.push_back(static_cast<uint32_t>(r));
  }
  if (!lm_rows_.empty()) {
    layer_.LmHead(w_.lm, lm_rows_, logits, w_.config.vocab, times);
    logits += lm_rows_.size() * w_.config.vocab;
  }
}

void Model::Prefill(std::span<const int32_t> users,
                    const std::vector<std::vector<int32_t>>& prompts, float* logits,
                    StageTimes* times) {
  if (users.size() != prompts.size()) {
    throw Error("prefill: " + std::to_string(users.size()) + " users for " +
                std::to_string(prompts.size()) + " prompts: expected one user per prompt");
  }
  CheckDistinct(users, "prefill");
  std::vector<Row> rows;
  std::vector<uint8_t> want;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) {
      throw Error("prefill: prompt " + std::to_string(i) + " is empty: expected at least 1 token");
    }
    for (size_t j = 0; j < prompts[i].size(); ++j) {
      rows.push_back({users[i], prompts[i][j]});
      want.push_back(j + 1 == prompts[i].size());
    }
  }
  Forward(rows, want, logits, nullptr, times);
}

void Model::Decode(std::span<const int32_t> users, std::span<const int32_t> tokens,
                   float* logits, StageTimes* times) {
  if (users.size() != tokens.size()) {
    throw Error("decode: " + std::to_string(users.size()) + " users for " +
                std::to_string(tokens.size()) + " tokens: expected one token per user");
  }
  CheckDistinct(users, "decode");
  decode_rows_.resize(users.size());  // reused: a decode step allocates nothing
  for (size_t i = 0; i < users.size(); ++i) decode_rows_[i] = {users[i], tokens[i]};
  decode_want_.assign(users.size(), 1);
  Forward(decode_rows_, decode_want_, logits, nullptr, times);
}

}  // namespace qwen3
