// A GGUF model's weights (io/gguf_weights.cc) against llama.cpp's files and their references
// (../shared/testdata/gguf): every quantized tensor held exactly as gguf-py dequantizes it, and
// each file's logits replayed on every kernel path within the tolerance of its activations'
// rounding (bf16: 3.5e-2; int8 activations in blocks of 16: 8e-2, the bound).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "io/gguf_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "io/load_weights.h"
#include "io/safetensors.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/quant_blocks.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "tests/executor_util.h"
#include "tools/replay.h"

namespace qwen3 {
namespace {

const std::string kGguf = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/";

ThreadPool& Pool() {
  static ThreadPool pool(2);
  return pool;
}

// A CPU executor for the shared files' config (tiny-a), packing on Pool().
Executor& X(const Qwen3Config& c) {
  static std::unique_ptr<cpu::CpuExecutor> x = MakeCpuExecutor(c, Pool());
  return *x;
}

// Every element of a [rows][cols] reference equals at(row, col) (+0 and -0 alike).
template <typename At>
void ExpectEqualsReference(const SafetensorsFile& ref, const std::string& name, At at) {
  const TensorView& t = ref.Get("dequantized." + name + ".weight");
  ASSERT_EQ(t.shape.size(), 2u) << name;
  const AlignedBuffer<float> want = t.ToF32();
  const size_t rows = t.shape[0], cols = t.shape[1];
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      ASSERT_TRUE(at(r, c) == want[r * cols + c])
          << name << " [" << r << ", " << c << "]: " << at(r, c) << " vs " << want[r * cols + c];
    }
  }
}

class GgufFileTest : public testing::TestWithParam<std::string> {};

TEST_P(GgufFileTest, WeightsAreGgufPysDequantization) {
  const std::string file = kGguf + "tiny-a." + GetParam() + ".gguf";
  const GgufCheckpoint ck = GgufCheckpoint::Open(file);
  const ModelWeights w = LoadModelWeights(ck, X(ck.config()));
  const auto ref = SafetensorsFile::Open(kGguf + "tiny-a." + GetParam() + ".reference.safetensors");
  const size_t h = w.config.hidden;
  ExpectEqualsReference(*ref, "token_embd", [&](size_t token, size_t k) {
    const cpu::CpuWeight& e = cpu::AsCpu(*w.embed);
    return e.matrix.n() ? e.matrix.At(k, token) : Bf16ToF32(e.table[token * h + k]);
  });
  ExpectEqualsReference(*ref, "blk.0.attn_q", [&](size_t o, size_t k) { return cpu::MatrixOf(*w.layers[0].wq).At(k, o); });
  ExpectEqualsReference(*ref, "blk.0.ffn_down", [&](size_t o, size_t k) { return cpu::MatrixOf(*w.layers[0].w_down).At(k, o); });
  ExpectEqualsReference(*ref, "blk.1.ffn_gate", [&](size_t o, size_t k) {  // interleaved by 32
    return cpu::MatrixOf(*w.layers[1].w_gate_up).At(k, o / 32 * 64 + o % 32);
  });
}

TEST_P(GgufFileTest, HoldsTheFilesTypes) {
  const GgufCheckpoint ck = GgufCheckpoint::Open(kGguf + "tiny-a." + GetParam() + ".gguf");
  const ModelWeights w = LoadModelWeights(ck, X(ck.config()));
  const std::map<std::string, std::string> want = {
      {"bf16", "bf16"}, {"q8_0", "q8_0"}, {"q4_k_m", "q4_k+q6_k"}, {"q4_0", "q4_0+q6_k"}};
  EXPECT_EQ(w.weight_type(), want.at(GetParam()));
  EXPECT_FALSE(w.config.tied_embeddings);
  // Memory: the file's bytes for Q8_0 and Q4_0 (fp16 d, as the file); Q4_K and Q6_K hold fp32
  // scales and biases (6 and 12 bits per weight where the file has 4.5 and 6.56).
  const double ratio = static_cast<double>(w.bytes()) / static_cast<double>(ck.bytes());
  EXPECT_LT(ratio, GetParam() == "q8_0" || GetParam() == "bf16" ? 1.001 : 1.5) << ratio;
}

// The reference executor against gguf-py's dequantized float32 references: within 1e-4, so the
// int8 kernels' ~5e-2 is the cost of their recipe, not of reading the files.
TEST_P(GgufFileTest, ReferenceExecutorReplaysWithin1e4) {
  ReplayOptions o;
  o.model_dir = kGguf + "tiny-a." + GetParam() + ".gguf";
  o.reference = kGguf + "tiny-a." + GetParam() + ".reference.safetensors";
  o.device = "reference";
  o.threads = 2;
  o.max_rows = 48;
  o.max_rel_l2 = 1e-4;
  const ReplayResult r = RunReplay(o);
  EXPECT_TRUE(r.pass);
  ASSERT_GE(r.steps.size(), 5u);
  for (const ReplayStep& s : r.steps) EXPECT_LE(s.rel_l2, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Files, GgufFileTest, testing::Values("bf16", "q8_0", "q4_k_m", "q4_0"));

// Every file on every path, with the KV cache in bf16 and in 8 bits (q8_0: its own bound,
// docs/ACCURACY.md).
class GgufReplayTest
    : public testing::TestWithParam<std::tuple<std::string, std::string, cpu::CpuPath>> {};

TEST_P(GgufReplayTest, MatchesTheDequantizedReferenceWithinTolerance) {
  const auto& [type, kv_type, path] = GetParam();
  if (!cpu::IsSupported(path)) GTEST_SKIP() << cpu::ToString(path) << " not supported here";
  ReplayOptions o;
  o.model_dir = kGguf + "tiny-a." + type + ".gguf";
  o.reference = kGguf + "tiny-a." + type + ".reference.safetensors";
  o.max_rows = 48;
  o.kv_type = kv_type;
  o.max_rel_l2 = kv_type == "q8_0" ? 1e-1 : type == "bf16" ? 3.5e-2 : 8e-2;
  const ReplayResult r = RunReplay(o, cpu::GetCpuKernels(path), Pool());
  EXPECT_TRUE(r.pass);
  ASSERT_GE(r.steps.size(), 5u);
  for (const ReplayStep& s : r.steps) {
    EXPECT_LE(s.rel_l2, o.max_rel_l2);
    EXPECT_EQ(s.guarded_mismatches, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, GgufReplayTest,
    testing::Combine(testing::Values("bf16", "q8_0", "q4_k_m", "q4_0"),
                     testing::Values("bf16", "q8_0"),
                     testing::Values(cpu::CpuPath::kAmx, cpu::CpuPath::kAvx512Bf16,
                                     cpu::CpuPath::kAvx512, cpu::CpuPath::kAvx2,
                                     cpu::CpuPath::kScalar)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_kv_" + std::get<1>(info.param) + "_" +
             cpu::ToString(std::get<2>(info.param));
    });

// --quantize writes what llama-quantize wrote: the Q8_0 and Q4_0 files' blocks, byte for byte,
// from the BF16 file's weights.
TEST(GgufQuantizeTest, QuantizersMatchLlamaQuantizeByteForByte) {
  const GgufCheckpoint bf = GgufCheckpoint::Open(kGguf + "tiny-a.bf16.gguf");
  for (const auto& [file, type] : {std::pair{"q8_0", cpu::WeightType::kQ8_0},
                                   std::pair{"q4_0", cpu::WeightType::kQ4_0}}) {
    const GgufCheckpoint q = GgufCheckpoint::Open(kGguf + "tiny-a." + file + ".gguf");
    for (const std::string name : {"blk.0.attn_q.weight", "blk.3.ffn_up.weight"}) {
      const GgufTensor& src = bf.Get(name);
      const GgufTensor& want = q.Get(name);
      ASSERT_EQ(want.bytes, src.Elements() / 32 * cpu::BlockBytes(type)) << file << " " << name;
      std::vector<uint8_t> block(cpu::BlockBytes(type));
      for (size_t b = 0; b < src.Elements() / 32; ++b) {
        float x[32];
        for (size_t i = 0; i < 32; ++i) {
          bf16 v;
          std::memcpy(&v, src.data + 2 * (b * 32 + i), 2);
          x[i] = Bf16ToF32(v);
        }
        type == cpu::WeightType::kQ8_0 ? cpu::QuantizeBlockQ8_0(x, block.data())
                                       : cpu::QuantizeBlockQ4_0(x, block.data());
        ASSERT_EQ(std::memcmp(block.data(), want.data + b * block.size(), block.size()), 0)
            << file << " " << name << " block " << b;
      }
    }
  }
}

// The BF16 file holds tiny-a's safetensors bit for bit, so quantizing either at load gives the
// same matrices: the same bits of every weight.
TEST(GgufQuantizeTest, QuantizingTheBf16FileEqualsQuantizingTheHfCheckpoint) {
  LoadOptions o;
  o.quantize = cpu::WeightType::kQ4_0;
  const GgufCheckpoint ga = GgufCheckpoint::Open(kGguf + "tiny-a.bf16.gguf");
  const ModelWeights a = LoadModelWeights(ga, X(ga.config()), o);
  const ModelWeights b = LoadModelWeights(
      HfCheckpoint::Open(std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3/tiny-a"),
      X(ga.config()), o);
  EXPECT_EQ(a.weight_type(), "q4_0");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const cpu::QuantMatrix& x = cpu::MatrixOf(*a.layers[i].w_gate_up).quant();
    const cpu::QuantMatrix& y = cpu::MatrixOf(*b.layers[i].w_gate_up).quant();
    ASSERT_EQ(x.bytes(), y.bytes());
    for (size_t n = 0; n < x.n(); n += 7) {
      for (size_t k = 0; k < x.k(); k += 5) ASSERT_EQ(x.At(k, n), y.At(k, n)) << i << " " << k << " " << n;
    }
  }
}

}  // namespace
}  // namespace qwen3
