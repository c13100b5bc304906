// qwen3-tokenizer-bench: loading tokenizer.json and encoding mixed text, median of repeated
// runs (issue 5: load < 0.5 s, encode >= 5 MB/s on this machine).
//
//   qwen3-tokenizer-bench --tokenizer tokenizer.json [--mb 8] [--reps 5]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "tokenizer/tokenizer.h"
#include "tools/summary.h"
#include "tools/tool_main.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Mixed text: English prose, code, numbers, CJK, Cyrillic, Arabic, emoji, whitespace runs.
std::string MixedText(size_t bytes, uint64_t seed) {
  static const char* const kParts[] = {
      "The quick brown fox jumps over the lazy dog. ", "It's what they've said: we'll see.\n",
      "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\n", "    return x;\n\n",
      "Числа 12345 и 678.9 — это пример. ", "大规模语言模型的推理需要内存带宽。", "日本語のテキストも混ざります。",
      "مرحبا بالعالم ", "emoji 😀👍🏽 👨‍👩‍👧‍👦 ok ", "\t\tindent\r\n", "http://example.com/a?b=c&d=e ",
      "naïve café résumé ", "  multiple   spaces   here  ", "def f(x):\n    return x ** 2\n"};
  const CounterRng rng(seed, 1);
  std::string s;
  for (uint64_t i = 0; s.size() < bytes; ++i) {
    s += kParts[rng.Int(i, 0, static_cast<int64_t>(std::size(kParts)) - 1)];
  }
  return s;
}

int Main(int argc, char** argv) {
  std::string path;
  double mb = 8;
  size_t reps = 5;
  CLI::App app{"qwen3-tokenizer-bench: tokenizer load time and encode throughput"};
  app.add_option("--tokenizer", path, "tokenizer.json")->required();
  app.add_option("--mb", mb, "MB of mixed text to encode (default 8)");
  app.add_option("--reps", reps, "repetitions (default 5)");
  CLI11_PARSE(app, argc, argv);
  std::vector<double> load;
  for (size_t r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    const Tokenizer t = Tokenizer::FromFile(path);
    load.push_back(Since(t0));
  }
  const Tokenizer tok = Tokenizer::FromFile(path);
  const std::string text = MixedText(static_cast<size_t>(mb * 1e6), 7);
  std::vector<double> rate;
  size_t tokens = 0;
  for (size_t r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    tokens = tok.Encode(text).size();
    rate.push_back(static_cast<double>(text.size()) / 1e6 / Since(t0));
  }
  const Summary l = Summarize(load), e = Summarize(rate);
  std::printf("load   %.3f s (min %.3f, max %.3f) over %zu runs\n", l.median, l.min, l.max, reps);
  std::printf("encode %.2f MB/s (min %.2f, max %.2f): %.2f MB -> %zu tokens (%.2f bytes/token)\n",
              e.median, e.min, e.max, text.size() / 1e6, tokens,
              static_cast<double>(text.size()) / static_cast<double>(tokens));
  return 0;
}

}  // namespace
}  // namespace qwen3

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3-tokenizer-bench", argc, argv, qwen3::Main);
}
