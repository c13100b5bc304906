// The qwen3 tool end to end: replay of the shared references, make-checkpoint, bad input.
#include <gtest/gtest.h>

#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "tests/cli_util.h"

namespace qwen3::testing_cli {
namespace {

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
}

}  // namespace
}  // namespace qwen3::testing_cli
