// The scheduler without a model: decode rows before prefill chunks within the token budget,
// admission in order up to max_running, preemption of the most recently admitted sequence
// when blocks run out (and its recompute), n-choice followers waiting for the leader's prompt.
#include "serve/scheduler.h"

#include <gtest/gtest.h>

#include <memory>
#include <numeric>

#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

std::unique_ptr<ScheduledSeq> Seq(size_t prompt, int32_t first) {
  auto s = std::make_unique<ScheduledSeq>();
  s->tokens.resize(prompt);
  std::iota(s->tokens.begin(), s->tokens.end(), first);
  s->prompt_len = prompt;
  return s;
}

// One step as the engine runs it: schedule, "forward", complete, sample a token for each
// sequence that wanted logits (its id: 1000 + its count). Returns the work.
std::vector<ScheduledWork> Step(Scheduler& s) {
  std::vector<ScheduledWork> work = s.Schedule();
  s.Complete();
  for (const ScheduledWork& w : work) {
    if (w.wants_logits) w.seq->tokens.push_back(static_cast<int32_t>(1000 + w.seq->tokens.size()));
  }
  return work;
}

TEST(SchedulerTest, DecodeRowsFirstThenChunksWithinTheBudget) {
  KvBlockPool pool(64, 4);
  Scheduler sch(pool, {.max_running = 4, .max_batch_tokens = 8, .idle_prefill_tokens = 0});
  auto a = Seq(3, 0), b = Seq(2, 100), c = Seq(30, 200);
  sch.Add(a.get());
  sch.Add(b.get());
  auto w = Step(sch);  // both prompts in one step
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].count + w[1].count, 5u);
  sch.Add(c.get());
  w = Step(sch);  // 2 decode rows, then 6 rows of c's prompt
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].seq, a.get());
  EXPECT_EQ(w[0].count, 1u);
  EXPECT_TRUE(w[0].wants_logits);
  EXPECT_EQ(w[1].count, 1u);
  EXPECT_EQ(w[2].seq, c.get());
  EXPECT_EQ(w[2].count, 6u);
  EXPECT_FALSE(w[2].wants_logits);
  w = Step(sch);  // c continues its prompt after the decodes
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[2].start, 6u);
  EXPECT_EQ(w[2].count, 6u);
  for (int i = 0; i < 10; ++i) Step(sch);
  EXPECT_GT(c->tokens.size(), 30u) << "c's prompt never finished";
  sch.Remove(a.get());
  sch.Remove(b.get());
  sch.Remove(c.get());
  EXPECT_TRUE(sch.empty());
  EXPECT_EQ(pool.NumFree(), 64u);
  pool.CheckConsistency();
}

// With nothing decoding there is no latency to protect: a whole prompt runs in one step.
TEST(SchedulerTest, IdleStepsPrefillWholePrompts) {
  KvBlockPool pool(64, 4);
  Scheduler sch(pool, {.max_running = 4, .max_batch_tokens = 8, .idle_prefill_tokens = 100});
  auto a = Seq(40, 0), b = Seq(70, 100);
  sch.Add(a.get());
  sch.Add(b.get());
  auto w = Step(sch);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].count, 40u);
  EXPECT_EQ(w[1].count, 60u) << "the idle budget caps the step";
  w = Step(sch);  // a decodes now: the ordinary budget (8 - 1 decode row)
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].count, 1u);
  EXPECT_EQ(w[1].count, 7u);
  sch.Remove(a.get());
  sch.Remove(b.get());
}

TEST(SchedulerTest, AdmitsInOrderUpToMaxRunning) {
  KvBlockPool pool(64, 4);
  Scheduler sch(pool, {.max_running = 2, .max_batch_tokens = 16});
  auto a = Seq(2, 0), b = Seq(2, 10), c = Seq(2, 20);
  sch.Add(a.get());
  sch.Add(b.get());
  sch.Add(c.get());
  Step(sch);
  EXPECT_EQ(sch.num_running(), 2u);
  EXPECT_EQ(sch.num_waiting(), 1u);
  EXPECT_EQ(sch.admitted().size(), 2u);
  sch.Remove(a.get());
  Step(sch);
  EXPECT_EQ(sch.num_running(), 2u);
  EXPECT_EQ(sch.num_waiting(), 0u);
  sch.Remove(b.get());
  sch.Remove(c.get());
}

// 3 sequences that each grow to 3 blocks in a pool of 6: someone must be preempted; the victim
// is the most recently admitted, it is recomputed later (from the prefix cache), and all end.
TEST(SchedulerTest, PreemptsTheMostRecentAndRecomputes) {
  KvBlockPool pool(6, 4);
  Scheduler sch(pool, {.max_running = 3, .max_batch_tokens = 16});
  std::vector<std::unique_ptr<ScheduledSeq>> seqs;
  for (int i = 0; i < 3; ++i) {
    seqs.push_back(Seq(4, 100 * i));
    sch.Add(seqs.back().get());
  }
  size_t preempted = 0, steps = 0;
  ScheduledSeq* first_victim = nullptr;
  while (!sch.empty() && steps++ < 200) {
    Step(sch);
    for (ScheduledSeq* p : sch.preempted()) {
      if (!first_victim) first_victim = p;
      ++preempted;
    }
    for (auto& s : seqs) {
      if (s && s->tokens.size() >= 12) {  // 8 generated: 3 blocks at the end
        sch.Remove(s.get());
        s->tokens.clear();
      }
    }
    pool.CheckConsistency();
  }
  EXPECT_TRUE(sch.empty());
  EXPECT_GT(preempted, 0u);
  EXPECT_EQ(first_victim, seqs[2].get()) << "the most recently admitted goes first";
  EXPECT_GT(seqs[2]->preemptions, 0u);
  EXPECT_EQ(pool.NumFree(), 6u);
}

TEST(SchedulerTest, FollowersWaitForTheLeadersPrompt) {
  KvBlockPool pool(64, 4);
  Scheduler sch(pool, {.max_running = 4, .max_batch_tokens = 4, .idle_prefill_tokens = 0});
  auto leader = Seq(10, 0), follower = Seq(10, 0);
  follower->leader = leader.get();
  sch.Add(leader.get());
  sch.Add(follower.get());
  Step(sch);  // leader: 4 rows; the follower waits
  EXPECT_EQ(sch.num_running(), 1u);
  Step(sch);
  EXPECT_EQ(sch.num_running(), 1u);
  Step(sch);  // leader's last 2 rows; its prompt is computed now
  Step(sch);  // follower admitted: 8 of its 10 tokens cached
  EXPECT_EQ(sch.num_running(), 2u);
  EXPECT_EQ(follower->cached_tokens, 8u);
  sch.Remove(leader.get());
  sch.Remove(follower.get());
  EXPECT_EQ(pool.NumFree(), 64u);
}

TEST(SchedulerTest, BadOptionsAreErrors) {
  KvBlockPool pool(4, 4);
  EXPECT_TRUE(ThrowsError([&] { Scheduler(pool, {.max_running = 0, .max_batch_tokens = 4}); },
                          {"max_running = 0"}));
  EXPECT_TRUE(ThrowsError([&] { Scheduler(pool, {.max_running = 8, .max_batch_tokens = 4}); },
                          {"max_batch_tokens = 4", "max_running = 8"}));
}

}  // namespace
}  // namespace qwen3
