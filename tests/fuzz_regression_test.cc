// Replays every committed fuzz input (fuzz/corpus/<target>/ and fuzz/regressions/<target>/)
// through the same entry functions libFuzzer runs (fuzz/fuzz_targets.h), built here with the
// project's compiler: each finding stays fixed, and the seeds keep passing. An input that
// fails aborts the test binary with the FUZZ_CHECK message (run ctest --output-on-failure).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.h"

namespace qwen3::fuzz {
namespace {

namespace fs = std::filesystem;

struct Target {
  const char* name;
  int (*entry)(const uint8_t*, size_t);
};

constexpr Target kTargets[] = {
    {"safetensors", FuzzSafetensors},
    {"gguf", FuzzGguf},
    {"config", FuzzConfig},
    {"tokenizer_load", FuzzTokenizerLoad},
    {"tokenizer_encode", FuzzTokenizerEncode},
    {"chat_template", FuzzChatTemplate},
    {"openai_request", FuzzOpenaiRequest},
    {"stream", FuzzStream},
};

// ctest shows the parameter: its name, not its bytes.
void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }

class FuzzReplay : public ::testing::TestWithParam<Target> {};

size_t Replay(const Target& t, const std::string& kind) {
  const fs::path dir = fs::path(QWEN3_SOURCE_DIR) / "fuzz" / kind / t.name;
  if (!fs::is_directory(dir)) return 0;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(f.string());
    t.entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  return files.size();
}

TEST_P(FuzzReplay, CorpusAndRegressions) {
  const size_t seeds = Replay(GetParam(), "corpus");
  const size_t regressions = Replay(GetParam(), "regressions");
  std::printf("%s: %zu corpus inputs, %zu regressions\n", GetParam().name, seeds, regressions);
  EXPECT_GT(seeds, 0u) << "no corpus for " << GetParam().name;
}

TEST(FuzzReplay, EmptyAndTinyInputs) {
  const uint8_t bytes[] = {0, 1, 2, 3, '{', '}', 0x1e, 0xff};
  for (const Target& t : kTargets) {
    for (size_t n = 0; n <= sizeof(bytes); ++n) t.entry(bytes, n);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(kTargets),
                         [](const ::testing::TestParamInfo<Target>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace qwen3::fuzz
