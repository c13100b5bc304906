// Continuous batching (vLLM v1's policy, with a bound on what runs): each step, one decode row
// for every running sequence first, then prefill chunks — of running sequences still in their
// prompt, then of waiting ones admitted in order — up to a token budget (a larger one when
// nothing decodes), all to run as ONE Model::ForwardPaged. Sequences join and leave at step boundaries. A sequence is its token
// list (prompt, then generated tokens) and how many of them have their K/V in the cache
// (`computed`); every step computes tokens [computed, computed + count) of the sequences it
// schedules, so prefill, decode and recompute after preemption are the same operation.
//
// When the KV pool runs out of blocks, the most recently admitted running sequence is preempted:
// its blocks are released (its full blocks stay in the prefix cache), it goes to the front of
// the waiting queue and is recomputed when readmitted; nothing fails because another sequence
// grew. A sequence with a leader (choice k > 0 of an `n` request) waits until the leader's
// prompt is computed, so it finds the shared prompt in the prefix cache.
//
// Not thread-safe: the engine thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "serve/kv_block_pool.h"

namespace qwen3 {

struct ScheduledSeq {
  std::vector<int32_t> tokens;  // prompt, then generated
  size_t prompt_len = 0;
  size_t computed = 0;          // tokens whose K/V are in the cache
  SeqBlocks blocks;
  const ScheduledSeq* leader = nullptr;  // wait until its prompt is computed (or it is gone)
  bool admitted_once = false;
  size_t cached_tokens = 0;     // prompt tokens found in the prefix cache at first admission
  size_t preemptions = 0;
  bool PromptComputed() const { return computed >= prompt_len; }
};

struct ScheduledWork {
  ScheduledSeq* seq;
  size_t start, count;  // tokens [start, start + count) run this step
  bool wants_logits;    // the last known token runs: sample the next one
};

class Scheduler {
 public:
  struct Options {
    size_t max_running = 32;       // sequences in the running batch
    size_t max_batch_tokens = 256; // rows per step while sequences decode (>= max_running)
    // Rows of a step in which nothing decodes: no inter-token latency to protect, so a prompt
    // arriving at an idle engine is prefilled in one step (the model runs it in passes of
    // max_batch_tokens rows), as fast as a bare prefill.
    size_t idle_prefill_tokens = 4096;
  };
  Scheduler(KvBlockPool& pool, const Options& options);

  // Queues seq at the back of the waiting queue (its tokens set, nothing computed).
  void Add(ScheduledSeq* seq);
  // Takes seq out (finished or cancelled), wherever it is, and releases its blocks.
  void Remove(ScheduledSeq* seq);

  // This step's work, decode rows first; may preempt (see preempted()) and admit (admitted()).
  const std::vector<ScheduledWork>& Schedule();
  // After the step ran: advances each scheduled sequence's `computed` and registers its newly
  // full blocks in the prefix cache.
  void Complete();

  const std::vector<ScheduledSeq*>& preempted() const { return preempted_; }
  const std::vector<ScheduledSeq*>& admitted() const { return admitted_; }  // first admissions
  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size(); }
  bool empty() const { return running_.empty() && waiting_.empty(); }
  const Options& options() const { return options_; }

 private:
  void Preempt(ScheduledSeq* victim);

  KvBlockPool& pool_;
  Options options_;
  std::vector<ScheduledSeq*> running_;  // admission order
  std::deque<ScheduledSeq*> waiting_;
  std::vector<ScheduledWork> work_;
  std::vector<ScheduledSeq*> preempted_, admitted_;
};

}  // namespace qwen3
