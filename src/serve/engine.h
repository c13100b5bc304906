// The engine: opened once from a model directory (weights, tokenizer, chat template check,
// kernels, worker pool) and, when serving, the one owner of the paged model, the KV block pool
// and the scheduler thread. Requests (token ids + their own sampling, stops, limits) are
// submitted from any thread; one engine thread runs every step — one Model::ForwardPaged over
// all scheduled rows (serve/scheduler.h) — samples each sequence's next token and pushes its
// output to the request's stream. Nothing the consumer does blocks the engine.
//
// Batch invariance: a request's tokens and logprobs do not depend on what else runs, on a
// preemption or on a cached prefix: rows are computed independently (model/model.h), a draw is
// a function of (seed, choice, step), and a recomputed K/V is bitwise the original.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "model/config.h"
#include "serve/metrics.h"
#include "serve/request.h"

namespace qwen3 {

class Executor;
class Model;
class ThreadPool;
class Tokenizer;
struct ModelWeights;

// Submit's refusal when the waiting queue is full (HTTP 503 + Retry-After).
class QueueFullError : public Error {
 public:
  using Error::Error;
};

struct EngineOptions {
  std::string model_dir;        // a Hugging Face directory or a GGUF file (model_source.h)
  std::string tokenizer;        // tokenizer.json; empty: the model's own
  std::string quantize;         // q8_0 | q4_0: quantize bf16 weights at load; empty: as stored
  std::string device = "cpu";   // the executor (exec/executor.h): cpu | reference
  std::string kv_type = "bf16"; // the KV cache's element type (exec/executor.h, KvType): bf16 | q8_0
  bool need_tokenizer = true;   // false: weights only (replay, benchmarks)
  size_t threads = 0;           // workers (0: all cores)
  bool serve = true;            // false: no KV pool, model or engine thread
  size_t max_seq = 0;           // context length; 0: max_position_embeddings, at most 32768
  size_t kv_blocks = 0;         // KV pool blocks; 0: from kv_memory_gb
  double kv_memory_gb = 0;      // 0 with kv_blocks 0: kKvMemoryFraction of available memory
  size_t block_size = 64;       // tokens per KV block (a multiple of 32, at most 256)
  size_t max_running = 32;      // sequences decoding together
  size_t max_queue = 256;       // waiting requests before Submit refuses (QueueFullError)
  size_t max_batch_tokens = 64;  // rows per step: decode rows + prefill chunks (docs/PERFORMANCE.md)
  size_t idle_prefill_tokens = 4096;  // rows of a step in which nothing decodes
};

// Of the memory available after the weights are loaded, what a default KV pool takes.
constexpr double kKvMemoryFraction = 0.5;

struct EngineStats {
  size_t running = 0, waiting = 0;
  size_t blocks_total = 0, blocks_free = 0, blocks_cached = 0;
  uint64_t preemptions = 0, steps = 0;
};

class Engine {
 public:
  static std::unique_ptr<Engine> Open(const EngineOptions& options);
  // With the tokenizer already loaded (options.tokenizer is then ignored).
  static std::unique_ptr<Engine> Open(const EngineOptions& options,
                                      std::unique_ptr<Tokenizer> tokenizer);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Qwen3Config& config() const;
  const ModelWeights& weights() const { return *weights_; }
  ThreadPool& pool() { return *pool_; }
  Executor& executor() { return *executor_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const Tokenizer& tokenizer() const;
  const std::vector<int32_t>& eos_ids() const { return eos_; }
  const EngineOptions& options() const { return options_; }
  size_t max_seq() const { return options_.max_seq; }
  size_t kv_bytes() const;
  double load_seconds() const { return load_seconds_; }

  // Validates every choice (an Error naming the value), then queues them as one request: choice
  // k > 0 waits for choice 0's prompt and shares its cached blocks. Throws QueueFullError when
  // the queue would exceed max_queue, Error once shut down.
  std::vector<std::shared_ptr<RequestStream>> Submit(std::vector<GenerationRequest> choices);
  // Stops accepting; cancel = true cancels what runs, false lets it finish. Waits for the
  // engine thread. Idempotent.
  void Shutdown(bool cancel);

  const Metrics& metrics() const { return metrics_; }
  EngineStats stats() const;

 private:
  struct Seq;
  explicit Engine(const EngineOptions& options);
  void Validate(const GenerationRequest& r) const;
  void Loop();
  bool Step();  // false: nothing could be scheduled
  void PublishState();
  TokenOutput Choose(Seq& s, float* logits) const;  // sample (any thread)
  void Emit(Seq& s, TokenOutput out);                // append, stop, stream (engine thread)
  void Finish(Seq& s, FinishReason reason, const std::string& error = "");

  EngineOptions options_;
  double load_seconds_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ModelWeights> weights_;
  std::vector<int32_t> eos_;
  size_t allowed_vocab_ = 0;  // ids the sampler may choose (the tokenizer's)

  // Serving state (options_.serve).
  std::unique_ptr<Model> model_;
  struct State;
  std::unique_ptr<State> state_;  // the engine thread's: pool, scheduler, sequences, buffers
  Metrics metrics_;

  mutable std::mutex mu_;  // guards incoming_, queued_, stopping_, cancel_all_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Seq>> incoming_;
  size_t queued_ = 0;  // submitted, not yet admitted nor finished
  bool stopping_ = false, cancel_all_ = false;
  std::atomic<uint64_t> steps_{0};
  std::thread thread_;
};

}  // namespace qwen3
