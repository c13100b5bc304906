// `qwen3 serve` under abuse, at CI size (tools/serve_abuse.h; scripts/abuse.sh runs 30000
// actions): well-formed and hostile clients at once above --max-running + --max-queue,
// then a drain under load; no request lost, nothing left held, counts and memory add up.
#include "tools/serve_abuse.h"

#include <gtest/gtest.h>

#include <iostream>

#include "tests/tsan_util.h"

namespace qwen3 {
namespace {

TEST(ServeAbuseTest, HostileClientsLoseNoRequest) {
  AbuseOptions o;
  o.model = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-a.bf16.gguf";
  o.requests = testing_tsan::Size(800, 240);
  o.concurrency = 16;  // above max_running 4 + max_queue 8, and above 12 HTTP threads
  o.http_threads = 12;
  o.log = &std::cerr;
  const AbuseReport r = RunAbuse(o);
  std::cerr << r.Summary();
  EXPECT_TRUE(r.ok()) << r.Summary();
  EXPECT_EQ(r.lost, 0u);
  EXPECT_GT(r.outcomes.count("ok") ? r.outcomes.at("ok") : 0, 20u);
}

}  // namespace
}  // namespace qwen3
