// qwen3-layer as a user runs it (spec §5, README): --check prints PASS and the error numbers,
// --bench prints the stage table, bad arguments exit 2 with one line on stderr naming the
// value, a check that fails exits 1 with FAIL, and the 14B main job passes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "exec/cpu/cpu_path.h"
#include "tests/cli_util.h"
#include "model/decode_layer.h"

namespace qwen3 {
namespace {

using namespace testing_cli;

RunResult RunLayer(const std::string& args, const std::string& env = "") {
  return RunTool("qwen3-layer", args, env);
}

std::string Show(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

bool Has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Exit 2, nothing on stdout, exactly one line on stderr containing every part.
void ExpectUsageError(const RunResult& r, std::initializer_list<std::string_view> parts) {
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  const std::vector<std::string> lines = r.ErrLines();
  ASSERT_EQ(lines.size(), 1u) << Show(r);
  EXPECT_TRUE(Has(lines[0], "qwen3-layer: error: ")) << lines[0];
  for (std::string_view part : parts)
    EXPECT_TRUE(Has(lines[0], part)) << "no '" << part << "' in: " << lines[0];
}

TEST(Qwen3LayerCli, BinaryExists) {
  const std::string bin = std::string(QWEN3_BIN_DIR) + "/qwen3-layer";
  ASSERT_TRUE(fs::exists(bin)) << bin;
}

TEST(Qwen3LayerCli, CheckPassesAndPrintsErrors) {
  const RunResult r =
      RunLayer("--config '" + SmallConfig() + "' --vocab 1000 -b 5 --check --max-len 512");
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_TRUE(Has(r.out, "max_abs_err")) << Show(r);
  EXPECT_TRUE(Has(r.out, "max_rel_err")) << Show(r);
  EXPECT_TRUE(Has(r.out, "mismatches 0/5000")) << Show(r);  // out [5 x 1000]
  EXPECT_TRUE(Has(r.out, "mismatches 0/1600")) << Show(r);  // next_hidden [5 x 320]
  EXPECT_TRUE(Has(r.out, "batch 5")) << Show(r);
  EXPECT_TRUE(Has(r.out, "\nPASS\n")) << Show(r);
  EXPECT_FALSE(Has(r.out, "FAIL")) << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
}

TEST(Qwen3LayerCli, CheckPassesOnEveryPath) {
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    const std::string name = cpu::ToString(path);
    SCOPED_TRACE(name);
    const RunResult r = RunLayer("--config '" + SmallConfig() +
                                     "' -b 17 --kv-blocks 80 --max-len 512 --check --seed 3 "
                                     "--seq-lens 1,127,128,129,512,1,2,3,4,5,6,7,8,9,10,11,500",
                                 "QWEN3_CPU_PATH=" + name);
    EXPECT_EQ(r.code, 0) << Show(r);
    EXPECT_TRUE(Has(r.out, "path " + name + ",")) << Show(r);
    EXPECT_TRUE(Has(r.out, "\nPASS\n")) << Show(r);
  }
}

// An even head_dim that is not a multiple of 32 (pages and q tiles padded to 64 inside);
// q_dim 288 and kv_dim 96 are not whole 64-column groups.
TEST(Qwen3LayerCli, CheckPassesWithHeadDim48OnEveryPath) {
  const std::string config =
      Dir().Write("head_dim_48.json",
                  R"({"model_type": "qwen3", "hidden_act": "silu", "hidden_size": 192,)"
                  R"( "intermediate_size": 512, "num_hidden_layers": 1, "num_attention_heads": 6,)"
                  R"( "num_key_value_heads": 2, "head_dim": 48, "vocab_size": 500})");
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    const std::string name = cpu::ToString(path);
    SCOPED_TRACE(name);
    const RunResult r = RunLayer("--config '" + config +
                                     "' -b 3 --max-len 300 --check --seed 5 "
                                     "--seq-lens 1,129,300",
                                 "QWEN3_CPU_PATH=" + name);
    EXPECT_EQ(r.code, 0) << Show(r);
    EXPECT_TRUE(Has(r.out, "hidden 192 q 6x48 kv 2")) << Show(r);
    EXPECT_TRUE(Has(r.out, "path " + name + ",")) << Show(r);
    EXPECT_TRUE(Has(r.out, "mismatches 0/1500")) << Show(r);  // out [3 x 500]
    EXPECT_TRUE(Has(r.out, "\nPASS\n")) << Show(r);
  }
}

TEST(Qwen3LayerCli, BenchPrintsEveryStage) {
  const RunResult r = RunLayer("--config '" + SmallConfig() + "' -b 5 --max-len 512 --bench 3");
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
  EXPECT_TRUE(Has(r.out, "stage")) << Show(r);
  EXPECT_TRUE(Has(r.out, "GB/s")) << Show(r);
  for (size_t s = 0; s < kNumStages; ++s) {
    const std::string name = ToString(static_cast<Stage>(s));
    EXPECT_TRUE(Has(r.out, "\n" + name + " ")) << "no row for " << name << "\n" << Show(r);
  }
  for (const char* name : {"input_rmsnorm", "qkv_proj", "attention", "lm_head"}) {
    EXPECT_TRUE(Has(r.out, std::string("\n") + name + " ")) << name;
  }
  EXPECT_TRUE(Has(r.out, "\ntotal ")) << Show(r);
  EXPECT_TRUE(Has(r.out, "median of 3 steps")) << Show(r);
  EXPECT_FALSE(Has(r.out, "PASS")) << "no --check, no verdict";
}

TEST(Qwen3LayerCli, BenchSkipHasNoLmHeadRow) {
  const RunResult r =
      RunLayer("--config '" + SmallConfig() + "' -b 2 --max-len 256 --bench 2 --lm-head skip");
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_FALSE(Has(r.out, "\nlm_head ")) << Show(r);
  EXPECT_TRUE(Has(r.out, "\nfinal_rmsnorm ")) << Show(r);
}

TEST(Qwen3LayerCli, ArgumentErrorsExit2WithOneLine) {
  ExpectUsageError(RunLayer("-b 0"), {"batch 0"});
  ExpectUsageError(RunLayer("-b 17 --kv-blocks 512"), {"batch 17", "544", "512", "--kv-blocks"});
  ExpectUsageError(RunLayer("-b 1 --seq-lens 5000"), {"seq_lens[0] = 5000", "1..4096"});
  ExpectUsageError(RunLayer("-b 2 --seq-lens 1,2,3"), {"--seq-lens has 3 values"});
  ExpectUsageError(RunLayer("--lm-head bogus"), {"'bogus'", "full, skip or single"});
  ExpectUsageError(RunLayer("--config /nonexistent/config.json"), {"/nonexistent/config.json"});
  const std::string bad = Dir().Write("malformed.json", "{\"hidden_size\": 320,\n");
  ExpectUsageError(RunLayer("--config '" + bad + "'"), {bad, "malformed JSON"});
  const std::string not_qwen = Dir().Write("llama.json", R"({"model_type": "llama"})");
  ExpectUsageError(RunLayer("--config '" + not_qwen + "'"), {"model_type 'llama'"});
  ExpectUsageError(RunLayer("--config 99b"), {"'99b'"});
  ExpectUsageError(RunLayer("--config '" + SmallConfig() + "' --max-len 512 --pages-per-split 65"),
                   {"pages_per_split = 65"});
  ExpectUsageError(RunLayer("--config '" + SmallConfig() + "' --block-size 100"),
                   {"block size 100"});
}

TEST(Qwen3LayerCli, UnknownFlagFails) {
  const RunResult r = RunLayer("--no-such-flag");
  EXPECT_NE(r.code, 0) << Show(r);
  EXPECT_FALSE(Has(r.out, "PASS"));
}

TEST(Qwen3LayerCli, TinyToleranceFails) {
  const RunResult r =
      RunLayer("--config '" + SmallConfig() + "' -b 5 --max-len 512 --check --tol 1e-12");
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_TRUE(Has(r.out, "\nFAIL\n")) << Show(r);
  EXPECT_FALSE(Has(r.out, "PASS")) << Show(r);
  EXPECT_TRUE(Has(r.out, "worst element")) << Show(r);
  EXPECT_FALSE(Has(r.out, "mismatches 0/5000")) << Show(r);
}

TEST(Qwen3LayerCli, BogusCpuPathFails) {
  const RunResult r =
      RunLayer("--config '" + SmallConfig() + "' -b 1 --max-len 256", "QWEN3_CPU_PATH=bogus");
  EXPECT_NE(r.code, 0) << Show(r);
  const std::vector<std::string> lines = r.ErrLines();
  ASSERT_EQ(lines.size(), 1u) << Show(r);
  EXPECT_TRUE(Has(lines[0], "bogus")) << lines[0];
  EXPECT_EQ(r.out, "");
}

// The README's main job: 14B dims, batch 16, every user at 4096, the seed's vocab 152064
// (one 64-column LM head chunk keeps it light).
TEST(Qwen3LayerCli, MainJob14BMaxSeqSinglePasses) {
  const RunResult r = RunLayer("--max-seq --lm-head single --check", "env -u QWEN3_CPU_PATH");
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_TRUE(Has(r.out, "hidden 5120 q 40x128 kv 8 inter 17408 vocab 152064")) << Show(r);
  EXPECT_TRUE(Has(r.out, "batch 16, all seq_lens = max")) << Show(r);
  EXPECT_TRUE(Has(r.out, "lm-head single")) << Show(r);
  EXPECT_TRUE(Has(r.out, "mismatches 0/2433024")) << Show(r);  // out [16 x 152064]
  EXPECT_TRUE(Has(r.out, "mismatches 0/81920")) << Show(r);    // next_hidden [16 x 5120]
  EXPECT_TRUE(Has(r.out, "\nPASS\n")) << Show(r);
}

}  // namespace
}  // namespace qwen3
