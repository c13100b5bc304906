// libFuzzer's entry point for one target: compiled once per target with
// -DQWEN3_FUZZ_ENTRY=FuzzXxx (fuzz/CMakeLists.txt), and -DQWEN3_FUZZ_TOKENIZER for the targets
// that use the real tokenizer, loaded once before the first input.
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"

#ifdef QWEN3_FUZZ_TOKENIZER
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  qwen3::fuzz::RealTokenizer();
  return 0;
}
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return qwen3::fuzz::QWEN3_FUZZ_ENTRY(data, size);
}
