// qwen3-bench as a user runs it: the table, the --json schema of issue 3 (read bandwidth,
// path, threads, total, stages with bytes / ms / GB/s / % of bandwidth / oneDNN GB/s, the
// variants) with issue 10's roofline (peak dot rate; per stage and in total FLOPs, roofline ms,
// % of roofline, bound), --model's schema on a tiny checkpoint, the --trace file (a track per
// worker, a slice per SPMD block named by its stage), and bad arguments. Timings are checked
// for presence and sign only: tests never assert on time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/cli_util.h"

namespace qwen3 {
namespace {

using namespace testing_cli;
using nlohmann::json;

const char* const kStages[] = {"input_rmsnorm", "qkv_proj", "qk_norm_rope_cache", "attention",
                               "attention_merge", "out_proj_residual", "post_rmsnorm",
                               "gate_up_silu", "down_proj_residual", "final_rmsnorm", "lm_head"};
const std::set<std::string> kPeerStages = {"qkv_proj", "out_proj_residual", "gate_up_silu",
                                           "down_proj_residual", "lm_head"};

// The roofline fields of a stage or the total.
void ExpectRoofline(const json& s, const std::string& name) {
  EXPECT_GT(s.at("flops").get<double>(), 0.0) << name;
  EXPECT_GT(s.at("roofline_ms").get<double>(), 0.0) << name;
  EXPECT_GT(s.at("pct_roofline").get<double>(), 0.0) << name;
  EXPECT_GT(s.at("pct_roofline_min").get<double>(), 0.0) << name;
  EXPECT_GE(s.at("pct_roofline_max").get<double>(), s.at("pct_roofline_min").get<double>())
      << name;
  const std::string bound = s.at("bound");
  EXPECT_TRUE(bound == "memory" || bound == "compute") << name << ": " << bound;
}

// Every worker has a named track with slices named by stage; the dispatch track has one
// slice per Spmd call.
void ExpectTrace(const std::string& path, size_t threads) {
  const json t = json::parse(ReadFile(path));
  std::set<size_t> named, sliced;
  std::set<std::string> names;
  for (const json& e : t.at("traceEvents")) {
    if (e.at("ph") == "M") {
      named.insert(e.at("tid").get<size_t>());
      continue;
    }
    ASSERT_EQ(e.at("ph"), "X");
    EXPECT_GE(e.at("dur").get<double>(), 0.0);
    const size_t tid = e.at("tid").get<size_t>();
    ASSERT_LE(tid, threads);
    sliced.insert(tid);
    names.insert(e.at("name").get<std::string>());
  }
  EXPECT_EQ(named.size(), threads + 1);  // workers + dispatch
  EXPECT_TRUE(sliced.count(0));           // the caller is worker 0
  EXPECT_TRUE(sliced.count(threads));     // the dispatch track
  for (const char* stage : kStages) EXPECT_TRUE(names.count(stage)) << stage;
}

TEST(Qwen3BenchCli, JsonTableAndTrace) {
  const std::string json_path = Dir().File("bench.json"), trace = Dir().File("bench_trace.json");
  const RunResult r = RunTool("qwen3-bench", "--config '" + SmallConfig() +
                                                 "' -b 4 --max-len 512 --max-seq --steps 10 "
                                                 "--warmup 1 --bw-gib 2 --json '" +
                                                 json_path + "' --trace '" + trace + "'");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  for (const char* stage : kStages) EXPECT_NE(r.out.find(stage), std::string::npos) << stage;
  EXPECT_NE(r.out.find("read bandwidth:"), std::string::npos);
  EXPECT_NE(r.out.find("peak dot rate:"), std::string::npos);
  EXPECT_NE(r.out.find("%roof"), std::string::npos);
  EXPECT_NE(r.out.find("unfused_epilogues"), std::string::npos);

  const json j = json::parse(ReadFile(json_path));
  EXPECT_GT(j.at("read_bw_gbs").get<double>(), 0.0);
  EXPECT_GT(j.at("peak_gflops").get<double>(), 0.0);
  EXPECT_FALSE(j.at("path").get<std::string>().empty());
  const size_t threads = j.at("threads").get<size_t>();
  EXPECT_GE(threads, 1u);
  const json& total = j.at("total");
  EXPECT_GT(total.at("bytes").get<double>(), 0.0);
  EXPECT_GT(total.at("ms").get<double>(), 0.0);
  EXPECT_GT(total.at("pct_bw").get<double>(), 0.0);
  ExpectRoofline(total, "total");
  double sum_bytes = 0, sum_flops = 0;
  std::set<std::string> seen;
  for (const json& s : j.at("stages")) {
    const std::string name = s.at("name");
    seen.insert(name);
    sum_bytes += s.at("bytes").get<double>();
    sum_flops += s.at("flops").get<double>();
    ExpectRoofline(s, name);
    EXPECT_GT(s.at("ms").get<double>(), 0.0) << name;
    EXPECT_GT(s.at("gbs").get<double>(), 0.0) << name;
    EXPECT_GT(s.at("pct_bw").get<double>(), 0.0) << name;
    if (kPeerStages.count(name)) {
      EXPECT_GT(s.at("peer_gbs").get<double>(), 0.0) << name;
    } else {
      EXPECT_TRUE(s.at("peer_gbs").is_null()) << name;
    }
  }
  EXPECT_EQ(seen.size(), std::size(kStages));
  EXPECT_NEAR(sum_bytes, total.at("bytes").get<double>(), 1.0);
  EXPECT_NEAR(sum_flops, total.at("flops").get<double>(), 1.0);
  const json& v = j.at("variants");
  for (const char* key : {"engine", "unfused_epilogues", "attention_per_user",
                          "pages_per_split_1", "pages_per_split_8"}) {
    EXPECT_GT(v.at(key).at("total").at("ms").get<double>(), 0.0) << key;
    EXPECT_GT(v.at(key).at("attention").at("pct_bw").get<double>(), 0.0) << key;
    EXPECT_GT(v.at(key).at("total").at("pct_roofline").get<double>(), 0.0) << key;
  }
  ExpectTrace(trace, threads);
}

// --model on a tiny synthetic checkpoint: the whole-model schema (decode per batch with % of
// roofline, the first batch's prefill with % of the peak dot rate) and the table.
TEST(Qwen3BenchCli, ModelJsonSchema) {
  const std::string dir = Dir().File("bench_model"), json_path = Dir().File("bench_model.json");
  const RunResult mk = RunTool("qwen3", "make-checkpoint --preset 0.6b --layers 2 --hidden 64 "
                                        "--intermediate 128 --heads 4 --kv-heads 2 --head-dim 32 "
                                        "--seed 5 '" + dir + "'");
  ASSERT_EQ(mk.code, 0) << mk.err;
  const RunResult r = RunTool("qwen3-bench", "--model '" + dir +
                                                 "' --batches 1,3 --context 24 --steps 10 "
                                                 "--bw-gib 2 --threads 2 --json '" + json_path +
                                                 "'");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("peak dot rate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("%roof"), std::string::npos) << r.out;

  const json j = json::parse(ReadFile(json_path));
  EXPECT_GT(j.at("read_bw_gbs").get<double>(), 0.0);
  EXPECT_GT(j.at("peak_gflops").get<double>(), 0.0);
  EXPECT_GT(j.at("kernel_peak_gflops").get<double>(), 0.0);
  EXPECT_FALSE(j.at("path").get<std::string>().empty());
  EXPECT_EQ(j.at("threads").get<size_t>(), 2u);
  const json& d = j.at("decode");
  ASSERT_EQ(d.size(), 2u);
  for (size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].at("batch").get<size_t>(), i == 0 ? 1u : 3u);
    EXPECT_EQ(d[i].at("context").get<size_t>(), 24u);
    EXPECT_GT(d[i].at("ms").get<double>(), 0.0);
    EXPECT_GT(d[i].at("tok_s").get<double>(), 0.0);
    EXPECT_GT(d[i].at("pct_roofline").get<double>(), 0.0);
    const std::string bound = d[i].at("bound");
    EXPECT_TRUE(bound == "memory" || bound == "compute") << bound;
  }
  const json& p = j.at("prefill");
  EXPECT_EQ(p.at("tokens").get<double>(), 24.0);  // the first batch (1 user) x --context
  for (const char* key : {"ms", "tok_s", "gflops", "pct_peak"}) {
    EXPECT_GT(p.at(key).get<double>(), 0.0) << key;
  }
}

// An MoE model's roofline counts the experts a step routes to, not all of them: at batch 1
// exactly experts_used per layer (tiny-moe-a: 2 of 8, every layer MoE).
TEST(Qwen3BenchCli, ModelMoeRooflineCountsTheRoutedExperts) {
  const std::string json_path = Dir().File("bench_moe.json"), trace = Dir().File("moe_trace.json");
  const RunResult r = RunTool(
      "qwen3-bench", "--model " + std::string(QWEN3_SHARED_DIR) +
                         "/testdata/gguf/tiny-moe-a.q8_0.gguf --batches 1,4 --context 16 "
                         "--steps 10 --bw-gib 2 --threads 2 --json '" + json_path +
                         "' --trace '" + trace + "'");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // --trace with --model: two batch-1 steps, the MoE stages on both workers' tracks.
  std::set<std::pair<size_t, std::string>> slices;
  const json t = json::parse(ReadFile(trace));
  for (const json& e : t.at("traceEvents")) {
    if (e.at("ph") == "X") slices.insert({e.at("tid").get<size_t>(), e.at("name").get<std::string>()});
  }
  for (const char* stage : {"moe_router", "moe_experts", "lm_head"}) {
    EXPECT_TRUE(slices.count({2, stage})) << stage;  // the dispatch track
    EXPECT_TRUE(slices.count({0, stage}) && slices.count({1, stage})) << stage;
  }
  const json j = json::parse(ReadFile(json_path));
  const double dense = j.at("weights_bytes").get<double>(), experts = j.at("expert_bytes").get<double>();
  EXPECT_GT(experts, dense);  // the experts are most of the model
  const json& d = j.at("decode");
  ASSERT_EQ(d.size(), 2u);
  const double routed1 = d[0].at("bytes").get<double>() - d[0].at("kv_bytes").get<double>() - dense;
  EXPECT_NEAR(routed1, experts * 2 / 8, experts * 1e-9);
  const double routed4 = d[1].at("bytes").get<double>() - d[1].at("kv_bytes").get<double>() - dense;
  EXPECT_GE(routed4, routed1 - experts * 1e-9);
  EXPECT_LE(routed4, experts * (1 + 1e-9));
  EXPECT_GT(d[0].at("stage_ms").at("moe_experts").get<double>(), 0.0);
}

TEST(Qwen3BenchCli, LayerTraceHasEveryStage) {
  const std::string trace = Dir().File("layer_trace.json");
  const RunResult r = RunTool("qwen3-layer", "--config '" + SmallConfig() +
                                                 "' -b 3 --max-len 512 --threads 2 --trace '" +
                                                 trace + "'");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  ExpectTrace(trace, 2);
}

TEST(Qwen3BenchCli, AttentionBenchPrintsEveryPath) {
  const RunResult r = RunTool("qwen3-attention-bench", "--reps 4 --pool-mib 64 --head-dim 64");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("q.K^T tsc"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("scalar"), std::string::npos) << r.out;
  const RunResult bad = RunTool("qwen3-attention-bench", "--group 17");
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.ErrLines().size(), 1u) << bad.err;
}

TEST(Qwen3BenchCli, BadArgumentsExit2WithOneLine) {
  for (const std::string args : {"--steps 5", "--bw-gib 1", "--lm-head bogus", "-b 0",
                                 "--json /nonexistent/dir/b.json",
                                 "--trace /nonexistent/dir/t.json"}) {
    const RunResult r = RunTool("qwen3-bench", "--config '" + SmallConfig() + "' " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_EQ(r.ErrLines().size(), 1u) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("qwen3-bench: error: "), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace qwen3
