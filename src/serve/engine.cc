#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>

#include "io/gguf_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/load_weights.h"
#include "exec/executor.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "serve/kv_block_pool.h"
#include "serve/model_source.h"
#include "serve/scheduler.h"
#include "serve/stop_strings.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// MemAvailable of /proc/meminfo in bytes (0 if unknown).
size_t AvailableMemory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

}  // namespace

const char* ToString(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kEos: return "eos";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

bool RequestStream::Wait(StreamEvent& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  out = StreamEvent{};
  while (!events_.empty()) {
    StreamEvent& e = events_.front();
    out.text += e.text;
    for (TokenOutput& t : e.tokens) out.tokens.push_back(std::move(t));
    if (e.finished()) {
      out.finish = e.finish;
      out.error = std::move(e.error);
      out.usage = e.usage;
    }
    events_.pop_front();
  }
  return true;
}

void RequestStream::Cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
}

bool RequestStream::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

void RequestStream::Push(StreamEvent&& e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// One choice of a request on the engine thread.
struct Engine::Seq : ScheduledSeq {
  GenerationRequest req;
  std::shared_ptr<RequestStream> out;
  std::unique_ptr<Sampler> sampler;
  std::vector<float> raw;  // a logits row before logit_bias (for logprobs)
  std::string text;  // generated so far (raw bytes, without the stop string)
  size_t emitted = 0;
  Clock::time_point arrival, first_token, last_token;
  bool has_token = false, counted_in_queue = true;
};

struct Engine::State {
  State(size_t num_blocks, size_t block_size, const Scheduler::Options& so)
      : kv(num_blocks, block_size), scheduler(kv, so) {}
  KvBlockPool kv;
  Scheduler scheduler;
  std::vector<std::unique_ptr<Seq>> live;  // running or waiting
  std::vector<Model::PagedRow> rows;
  std::vector<uint8_t> want;
  std::vector<float> logits;    // [max_running, vocab]
  std::vector<TokenOutput> chosen;  // this step's sampled tokens, in row order
  std::vector<Seq*> sample;     // this step's sequences with a logits row, in row order
};

Engine::Engine(const EngineOptions& options) : options_(options) {}

std::unique_ptr<Engine> Engine::Open(const EngineOptions& o) { return Open(o, nullptr); }

std::unique_ptr<Engine> Engine::Open(const EngineOptions& o, std::unique_ptr<Tokenizer> tokenizer) {
  const auto t0 = Clock::now();
  LoadOptions load;
  if (!o.quantize.empty()) load.quantize = ParseQuantizeType(o.quantize);
  std::unique_ptr<Engine> e(new Engine(o));
  e->tokenizer_ = std::move(tokenizer);
  // Cheap checks first: the tokenizer and the checkpoint's headers before any weight is packed.
  const ModelSource source = ModelSource::Resolve(o.model_dir);
  if (o.need_tokenizer && !e->tokenizer_) e->tokenizer_ = source.OpenTokenizer(o.tokenizer);
  if (e->tokenizer_) {
    source.CheckChatTemplate();
    for (const char* t : {"<|im_end|>", "<|endoftext|>"}) {
      const int32_t id = e->tokenizer_->TokenId(t);
      if (id >= 0) e->eos_.push_back(id);
    }
  }
  // The checkpoint's headers, checked; the weights are packed further down.
  std::optional<HfCheckpoint> hf;
  std::optional<GgufCheckpoint> gguf;
  if (source.gguf()) {
    gguf.emplace(GgufCheckpoint::Open(source.gguf_file()));
  } else {
    hf.emplace(HfCheckpoint::Open(o.model_dir));
  }
  const Qwen3Config& c = gguf ? gguf->config() : hf->config();
  if (e->tokenizer_ && e->tokenizer_->size() > static_cast<size_t>(c.vocab)) {
    throw Error("model directory " + o.model_dir + ": tokenizer has " +
                std::to_string(e->tokenizer_->size()) + " tokens: expected at most the model's " +
                "vocab_size " + std::to_string(c.vocab));
  }
  EngineOptions& eo = e->options_;
  if (eo.max_seq == 0) {
    eo.max_seq = std::min<size_t>(static_cast<size_t>(c.max_position_embeddings), 32768);
  }
  if (eo.serve) {
    const auto bad = [](const std::string& what) { throw Error(what); };
    if (eo.block_size == 0 || eo.block_size % kKvDimAlign != 0 || eo.block_size > kMaxBlockSize) {
      bad("--block-size " + std::to_string(eo.block_size) + ": expected a multiple of " +
          std::to_string(kKvDimAlign) + " up to " + std::to_string(kMaxBlockSize));
    }
    if (eo.max_running == 0) bad("--max-running 0: expected at least 1");
    if (eo.max_batch_tokens < eo.max_running) {
      bad("--max-batch-tokens " + std::to_string(eo.max_batch_tokens) +
          ": expected at least --max-running (" + std::to_string(eo.max_running) + ")");
    }
    if (eo.kv_memory_gb < 0 || !std::isfinite(eo.kv_memory_gb)) {
      bad("--kv-memory " + std::to_string(eo.kv_memory_gb) + ": expected a size in GB > 0");
    }
  }
  e->pool_ = std::make_unique<ThreadPool>(o.threads);
  ExecutorOptions xo;
  xo.device = o.device;
  xo.kv_type = ParseKvType(o.kv_type);
  e->executor_ = MakeExecutor(DimsOf(c), xo, *e->pool_);
  e->weights_ = std::make_unique<ModelWeights>(gguf ? LoadModelWeights(*gguf, *e->executor_, load)
                                                    : LoadModelWeights(*hf, *e->executor_, load));
  e->allowed_vocab_ = e->tokenizer_ ? std::min(e->tokenizer_->size(), static_cast<size_t>(c.vocab))
                                    : static_cast<size_t>(c.vocab);
  if (eo.serve) {
    const size_t block_bytes =
        e->executor_->KvBytesPerToken() * static_cast<size_t>(c.layers) * eo.block_size;
    if (eo.kv_blocks == 0) {
      const double bytes = eo.kv_memory_gb > 0 ? eo.kv_memory_gb * 1e9
                                               : kKvMemoryFraction * static_cast<double>(AvailableMemory());
      eo.kv_blocks = static_cast<size_t>(bytes / static_cast<double>(block_bytes));
      if (eo.kv_blocks == 0) {
        throw Error("KV pool: " + std::to_string(bytes / 1e9) + " GB holds no block of " +
                    std::to_string(block_bytes) + " bytes: expected more --kv-memory");
      }
    }
    Model::Options mo;
    mo.max_users = 0;
    mo.max_seq = eo.max_seq;
    mo.block_size = eo.block_size;
    mo.max_rows = eo.max_batch_tokens;
    mo.num_blocks = eo.kv_blocks;
    e->model_ = std::make_unique<Model>(*e->weights_, mo, *e->executor_);
    Scheduler::Options so;
    so.max_running = eo.max_running;
    so.max_batch_tokens = eo.max_batch_tokens;
    so.idle_prefill_tokens = eo.idle_prefill_tokens;
    e->state_ = std::make_unique<State>(eo.kv_blocks, eo.block_size, so);
    e->state_->logits.resize(eo.max_running * static_cast<size_t>(c.vocab));
    e->state_->rows.reserve(eo.max_batch_tokens);
    e->state_->want.reserve(eo.max_batch_tokens);
    e->metrics_.SetState({0, 0, 0, eo.kv_blocks, 0, eo.kv_blocks});
    e->thread_ = std::thread([engine = e.get()] { engine->Loop(); });
  }
  e->load_seconds_ = Seconds(Clock::now() - t0);
  return e;
}

Engine::~Engine() { Shutdown(true); }

const Qwen3Config& Engine::config() const { return weights_->config; }

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_) throw Error("engine: opened without a tokenizer");
  return *tokenizer_;
}

size_t Engine::kv_bytes() const { return model_ ? model_->kv_bytes() : 0; }

EngineStats Engine::stats() const {
  const MetricsSnapshot m = metrics_.state();
  EngineStats s;
  s.running = m.running;
  s.waiting = m.waiting;
  s.blocks_total = m.kv_blocks_total;
  s.blocks_free = m.kv_blocks_free;
  s.blocks_cached = m.kv_blocks_cached;
  s.preemptions = metrics_.preemptions();
  s.steps = steps_.load();
  return s;
}

void Engine::Validate(const GenerationRequest& r) const {
  const size_t vocab = static_cast<size_t>(config().vocab);
  if (r.prompt.empty()) throw Error("prompt is empty: expected at least 1 token");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || static_cast<size_t>(r.prompt[i]) >= allowed_vocab_) {
      throw Error("prompt token " + std::to_string(i) + " = " + std::to_string(r.prompt[i]) +
                  ": expected a token id in 0.." + std::to_string(allowed_vocab_ - 1));
    }
  }
  if (r.max_tokens == 0) throw Error("max_tokens = 0: expected at least 1");
  if (r.prompt.size() + r.max_tokens > options_.max_seq) {
    throw Error("this model's maximum context length is " + std::to_string(options_.max_seq) +
                " tokens; the request has " + std::to_string(r.prompt.size()) +
                " prompt tokens + max_tokens " + std::to_string(r.max_tokens) + " = " +
                std::to_string(r.prompt.size() + r.max_tokens));
  }
  const size_t blocks = (r.prompt.size() + r.max_tokens + options_.block_size - 1) / options_.block_size;
  if (blocks > options_.kv_blocks) {
    throw Error("the request needs " + std::to_string(blocks) + " KV blocks (" +
                std::to_string(r.prompt.size()) + " prompt tokens + max_tokens " +
                std::to_string(r.max_tokens) + "): the pool has " +
                std::to_string(options_.kv_blocks));
  }
  ValidateSampling(r.sampling);
  if (r.top_logprobs > 20) {
    throw Error("top_logprobs = " + std::to_string(r.top_logprobs) + ": expected 0..20");
  }
  for (const std::string& s : r.stop) {
    if (s.empty()) throw Error("stop: an empty stop string: expected text");
  }
  for (const auto& [id, bias] : r.logit_bias) {
    if (id < 0 || static_cast<size_t>(id) >= vocab) {
      throw Error("logit_bias: token id " + std::to_string(id) + ": expected 0.." +
                  std::to_string(vocab - 1));
    }
    if (!(bias >= -100 && bias <= 100)) {
      throw Error("logit_bias of token " + std::to_string(id) + " = " + std::to_string(bias) +
                  ": expected -100..100");
    }
  }
}

std::vector<std::shared_ptr<RequestStream>> Engine::Submit(std::vector<GenerationRequest> choices) {
  if (!state_) throw Error("engine: opened without serving (EngineOptions::serve)");
  if (choices.empty()) throw Error("no choices: expected at least 1");
  if (choices.size() > options_.max_queue) {
    throw Error(std::to_string(choices.size()) + " choices in one request: expected at most " +
                "--max-queue (" + std::to_string(options_.max_queue) + ")");
  }
  for (const GenerationRequest& r : choices) Validate(r);
  std::vector<std::unique_ptr<Seq>> seqs;
  std::vector<std::shared_ptr<RequestStream>> streams;
  const auto now = Clock::now();
  for (GenerationRequest& r : choices) {
    auto s = std::make_unique<Seq>();
    s->tokens = r.prompt;
    s->prompt_len = r.prompt.size();
    s->sampler = std::make_unique<Sampler>(r.sampling, allowed_vocab_);
    s->req = std::move(r);
    s->out = std::make_shared<RequestStream>();
    s->arrival = now;
    if (!seqs.empty()) s->leader = seqs.front().get();
    streams.push_back(s->out);
    seqs.push_back(std::move(s));
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw Error("the server is shutting down");
    if (queued_ + seqs.size() > options_.max_queue) {
      throw QueueFullError("the queue is full (" + std::to_string(queued_) + " waiting, " +
                           "--max-queue " + std::to_string(options_.max_queue) +
                           "): retry later");
    }
    queued_ += seqs.size();
    metrics_.AddSubmitted(seqs.size());
    for (auto& s : seqs) incoming_.push_back(std::move(s));
  }
  cv_.notify_all();
  return streams;
}

void Engine::Shutdown(bool cancel) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cancel_all_ = cancel_all_ || cancel;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::Loop() {
  State& st = *state_;
  for (;;) {
    bool cancel_all = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !incoming_.empty() || stopping_ || !st.scheduler.empty(); });
      for (auto& s : incoming_) {
        st.scheduler.Add(s.get());
        st.live.push_back(std::move(s));
      }
      incoming_.clear();
      cancel_all = cancel_all_;
      if (stopping_ && st.scheduler.empty()) break;
    }
    // Cancelled requests leave before the step: also in the middle of a chunked prefill.
    for (size_t i = 0; i < st.live.size();) {
      Seq& s = *st.live[i];
      if (cancel_all || s.out->cancelled()) {
        Finish(s, FinishReason::kCancelled);  // erases st.live[i]
      } else {
        ++i;
      }
    }
    const bool ran = !st.scheduler.empty() && Step();
    PublishState();
    if (!ran && !st.scheduler.empty()) {
      // Nothing could run (should not happen: a lone request always fits the pool): do not spin.
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
  }
  // Shut down: whatever is left (nothing, unless cancelled) ends now.
  while (!st.live.empty()) Finish(*st.live.front(), FinishReason::kCancelled);
}

void Engine::PublishState() {
  State& st = *state_;
  MetricsSnapshot m;
  m.running = st.scheduler.num_running();
  m.waiting = st.scheduler.num_waiting();
  {
    std::lock_guard lock(mu_);
    m.waiting += incoming_.size();
  }
  m.kv_blocks_total = st.kv.num_blocks();
  m.kv_blocks_free = st.kv.NumFree();
  m.kv_blocks_cached = st.kv.NumCached();
  m.kv_usage = static_cast<double>(st.kv.NumUsed()) / static_cast<double>(st.kv.num_blocks());
  metrics_.SetState(m);
}

bool Engine::Step() {
  State& st = *state_;
  const std::vector<ScheduledWork>& work = st.scheduler.Schedule();
  for (size_t i = 0; i < st.scheduler.preempted().size(); ++i) metrics_.AddPreemption();
  if (!st.scheduler.admitted().empty()) {
    const auto now = Clock::now();
    std::lock_guard lock(mu_);
    for (ScheduledSeq* p : st.scheduler.admitted()) {
      Seq& s = static_cast<Seq&>(*p);
      if (s.counted_in_queue) {
        s.counted_in_queue = false;
        --queued_;
      }
      metrics_.ObserveQueue(Seconds(now - s.arrival));
      metrics_.AddPrefixCache(s.prompt_len, s.cached_tokens);
      metrics_.AddPromptTokens(s.prompt_len);
    }
  }
  if (work.empty()) return false;
  st.rows.clear();
  st.want.clear();
  for (const ScheduledWork& w : work) {
    for (size_t k = 0; k < w.count; ++k) {
      const size_t pos = w.start + k;
      st.rows.push_back({w.seq->tokens[pos], static_cast<int32_t>(pos), w.seq->blocks.blocks.data(),
                         w.seq->blocks.blocks.size()});
      st.want.push_back(w.wants_logits && k + 1 == w.count);
    }
  }
  // Which sequences get a logits row, in row order (Complete() clears the work list).
  std::vector<Seq*>& sample = st.sample;
  sample.clear();
  for (const ScheduledWork& w : work) {
    if (w.wants_logits) sample.push_back(static_cast<Seq*>(w.seq));
  }
  try {
    model_->ForwardPaged(st.rows, st.want, st.logits.data());
  } catch (const std::exception& ex) {
    // A bug, not a client's mistake (requests are validated at Submit): fail what ran.
    std::vector<Seq*> failed;
    for (const ScheduledWork& w : work) failed.push_back(static_cast<Seq*>(w.seq));
    st.scheduler.Complete();
    for (Seq* s : failed) Finish(*s, FinishReason::kError, ex.what());
    return true;
  }
  st.scheduler.Complete();
  steps_.fetch_add(1);
  const size_t vocab = static_cast<size_t>(config().vocab);
  // Sampling is per sequence (its own sampler and buffers): across the workers; then the
  // outputs in order on this thread.
  st.chosen.resize(sample.size());
  pool_->Spmd(
      sample.size(),
      [&](size_t i, size_t) { st.chosen[i] = Choose(*sample[i], st.logits.data() + i * vocab); },
      "sample");
  for (size_t i = 0; i < sample.size(); ++i) Emit(*sample[i], std::move(st.chosen[i]));
  return true;
}

TokenOutput Engine::Choose(Seq& s, float* logits) const {
  const GenerationRequest& r = s.req;
  const size_t n = allowed_vocab_;
  TokenOutput out{};
  // Logprobs of the model's distribution (before logit_bias and penalties), as vLLM reports.
  double lse = 0;
  if (r.top_logprobs >= 0) {
    const float mx = *std::max_element(logits, logits + n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    lse = static_cast<double>(mx) + std::log(sum);
    // The k best by one pass over a small sorted list (ties: lower id first).
    const size_t k = static_cast<size_t>(r.top_logprobs);
    std::vector<TopLogprob>& top = out.top;
    for (size_t i = 0; i < n && k > 0; ++i) {
      const float l = logits[i];
      if (top.size() == k && !(l > top.back().logprob)) continue;
      if (top.size() == k) top.pop_back();
      auto at = std::upper_bound(top.begin(), top.end(), l,
                                 [](float v, const TopLogprob& t) { return v > t.logprob; });
      top.insert(at, {static_cast<int32_t>(i), l});
    }
    for (TopLogprob& t : top) t.logprob = static_cast<float>(t.logprob - lse);
  }
  std::vector<float>& raw = s.raw;
  if (r.top_logprobs >= 0 && !r.logit_bias.empty()) raw.assign(logits, logits + n);
  for (const auto& [id, bias] : r.logit_bias) logits[id] += bias;
  const size_t generated = s.tokens.size() - s.prompt_len;
  const int32_t token = s.sampler->Sample(std::span<const float>(logits, n), s.tokens,
                                          s.prompt_len, r.sampler_stream, generated);
  out.token = token;
  if (r.top_logprobs >= 0) {
    const float l = r.logit_bias.empty() ? logits[token] : raw[token];
    out.logprob = static_cast<float>(l - lse);
  }
  return out;
}

void Engine::Emit(Seq& s, TokenOutput out) {
  const GenerationRequest& r = s.req;
  const int32_t token = out.token;
  const auto now = Clock::now();
  s.tokens.push_back(token);
  if (!s.has_token) {
    s.has_token = true;
    s.first_token = now;
    metrics_.ObserveTtft(Seconds(now - s.arrival));
  } else {
    metrics_.ObserveItl(Seconds(now - s.last_token));
  }
  s.last_token = now;
  metrics_.AddGenerationTokens(1);

  FinishReason finish = FinishReason::kNone;
  if (std::find(r.stop_ids.begin(), r.stop_ids.end(), token) != r.stop_ids.end()) {
    finish = FinishReason::kEos;
  } else {
    const size_t before = s.text.size();
    if (!tokenizer_ || !tokenizer_->IsSpecial(token)) {
      s.text += tokenizer_ ? tokenizer_->TokenBytes(token) : std::string();
    }
    // Earlier steps found none: a stop now ends inside the new bytes.
    const size_t stop_at = FindStopString(s.text, before, r.stop);
    if (stop_at != std::string::npos) {
      s.text.resize(stop_at);
      finish = FinishReason::kStop;
    } else if (s.tokens.size() - s.prompt_len >= r.max_tokens) {
      finish = FinishReason::kLength;
    }
  }
  // Stream what is final: not a possible start of a stop string, whole UTF-8 characters (U+FFFD
  // for an invalid subpart, exactly as the whole text is sanitized).
  const bool done = finish != FinishReason::kNone;
  const size_t limit = done ? s.text.size() : s.text.size() - StopHeldBack(s.text, r.stop);
  StreamEvent e;
  s.emitted = TakeCompleteUtf8(s.text, s.emitted, limit, done, e.text);
  e.tokens.push_back(std::move(out));
  s.out->Push(std::move(e));
  if (done) Finish(s, finish);
}

void Engine::Finish(Seq& s, FinishReason reason, const std::string& error) {
  State& st = *state_;
  st.scheduler.Remove(&s);
  const auto now = Clock::now();
  StreamEvent e;
  e.finish = reason;
  e.error = error;
  e.usage.prompt_tokens = s.prompt_len;
  e.usage.completion_tokens = s.tokens.size() - s.prompt_len;
  e.usage.cached_tokens = s.cached_tokens;
  if (reason == FinishReason::kCancelled || reason == FinishReason::kError) {
    // Whatever complete text was held back for a possible stop string is not sent.
    metrics_.AddFinished("abort");
  } else {
    metrics_.AddFinished(reason == FinishReason::kLength ? "length" : "stop");
    metrics_.ObserveE2e(Seconds(now - s.arrival));
  }
  if (s.counted_in_queue) {
    std::lock_guard lock(mu_);
    s.counted_in_queue = false;
    --queued_;
  }
  s.out->Push(std::move(e));
  const auto it = std::find_if(st.live.begin(), st.live.end(),
                               [&](const std::unique_ptr<Seq>& p) { return p.get() == &s; });
  QW_ASSERT(it != st.live.end());
  st.live.erase(it);  // s is destroyed here
}

}  // namespace qwen3
