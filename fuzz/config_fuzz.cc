// A Hugging Face config.json -> Qwen3Config (ParseHfConfig + ValidateConfig), then what
// opening a checkpoint derives from the config before it reads any tensor: the expected
// tensor sets (HF and GGUF names) and the KV cache bytes per token.
#include <string>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "io/gguf_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "model/config.h"

namespace qwen3::fuzz {

int FuzzConfig(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Qwen3Config c;
  try {
    c = ParseHfConfig(text, "fuzz.json");
  } catch (const Error& e) {
    const std::string what = e.what();
    FUZZ_CHECK(what.find('\n') == std::string::npos, "a multi-line error: " + what);
    return 0;
  }
  FUZZ_CHECK(c.GroupSize() >= 1 && c.GroupSize() <= 16,
             "group size " + std::to_string(c.GroupSize()));
  FUZZ_CHECK(c.KvBytesPerToken() > 0, "no KV bytes per token");
  const auto hf = ExpectedTensors(c);
  const auto gguf = ExpectedGgufTensors(c);
  FUZZ_CHECK(hf.size() == gguf.size(), "HF and GGUF tensor sets differ in size");
  for (const auto& [name, shape] : hf) {
    for (size_t d : shape) FUZZ_CHECK(d > 0, "tensor " + name + " has a zero dimension");
  }
  return 0;
}

}  // namespace qwen3::fuzz
