#include "serve/scheduler.h"

#include <algorithm>
#include <string>

#include "base/error.h"

namespace qwen3 {

Scheduler::Scheduler(KvBlockPool& pool, const Options& options) : pool_(pool), options_(options) {
  if (options.max_running == 0) throw Error("scheduler: max_running = 0: expected at least 1");
  if (options.max_batch_tokens < options.max_running) {
    throw Error("scheduler: max_batch_tokens = " + std::to_string(options.max_batch_tokens) +
                ": expected at least max_running = " + std::to_string(options.max_running) +
                " (every running sequence decodes one row per step)");
  }
  running_.reserve(options.max_running);
  work_.reserve(options.max_running);
}

void Scheduler::Add(ScheduledSeq* seq) {
  QW_ASSERT(seq->blocks.blocks.empty() && seq->computed == 0);
  waiting_.push_back(seq);
}

void Scheduler::Remove(ScheduledSeq* seq) {
  pool_.Release(seq->blocks);
  seq->computed = 0;
  std::erase(running_, seq);
  std::erase(waiting_, seq);
  for (ScheduledSeq* w : waiting_) {
    if (w->leader == seq) w->leader = nullptr;
  }
  for (ScheduledSeq* r : running_) {
    if (r->leader == seq) r->leader = nullptr;
  }
}

void Scheduler::Preempt(ScheduledSeq* victim) {
  pool_.Release(victim->blocks);
  victim->computed = 0;
  ++victim->preemptions;
  std::erase(running_, victim);
  waiting_.push_front(victim);
  preempted_.push_back(victim);
}

const std::vector<ScheduledWork>& Scheduler::Schedule() {
  work_.clear();
  preempted_.clear();
  admitted_.clear();
  const size_t bs = pool_.block_size();
  // Decode rows are reserved before any prefill chunk takes the budget.
  size_t decodes = 0;
  for (const ScheduledSeq* s : running_) decodes += s->tokens.size() - s->computed == 1;
  size_t prefill_budget =
      decodes == 0 ? std::max(options_.max_batch_tokens, options_.idle_prefill_tokens)
                   : options_.max_batch_tokens - std::min(decodes, options_.max_batch_tokens);

  for (size_t i = 0; i < running_.size();) {
    ScheduledSeq* s = running_[i];
    const size_t remaining = s->tokens.size() - s->computed;
    const bool decode = remaining == 1;
    size_t k = decode ? 1 : std::min(remaining, prefill_budget);
    if (k == 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!pool_.Grow(s->blocks, s->computed + k)) {
      if (!decode) {  // a prefill chunk shrinks to what the free blocks hold first
        const size_t fit = (s->blocks.blocks.size() + pool_.NumFree()) * bs - s->computed;
        if (fit > 0 && fit < k) {
          k = fit;
          continue;
        }
      }
      ScheduledSeq* victim = running_.back();  // the most recently admitted
      Preempt(victim);
      if (victim == s) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;  // s was the last running sequence
    if (!decode) prefill_budget -= k;
    work_.push_back({s, s->computed, k, s->computed + k == s->tokens.size()});
    ++i;
  }

  // Admit waiting sequences in order while there is room and budget.
  for (size_t j = 0; j < waiting_.size() && running_.size() < options_.max_running &&
                     prefill_budget > 0;) {
    ScheduledSeq* s = waiting_[j];
    if (s->leader != nullptr && !s->leader->PromptComputed()) {
      ++j;  // its prompt will be in the prefix cache once the leader's is computed
      continue;
    }
    const size_t cached = pool_.TakeCachedPrefix(s->blocks, s->tokens, s->tokens.size() - 1);
    s->computed = cached;
    const size_t k = std::min(s->tokens.size() - cached, prefill_budget);
    if (!pool_.Grow(s->blocks, s->computed + k)) {
      pool_.Release(s->blocks);
      s->computed = 0;
      break;  // in order: nothing behind it jumps the queue for blocks
    }
    if (!s->admitted_once) {
      s->admitted_once = true;
      s->cached_tokens = std::min(cached, s->prompt_len);
      admitted_.push_back(s);
    }
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(j));
    running_.push_back(s);
    prefill_budget -= k;
    work_.push_back({s, s->computed, k, s->computed + k == s->tokens.size()});
  }
  return work_;
}

void Scheduler::Complete() {
  for (const ScheduledWork& w : work_) {
    w.seq->computed = w.start + w.count;
    pool_.CommitFull(w.seq->blocks, w.seq->tokens, w.seq->computed);
  }
  work_.clear();
}

}  // namespace qwen3
