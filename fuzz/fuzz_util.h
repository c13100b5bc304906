// Helpers shared by the fuzz targets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3 {
class Tokenizer;
}

namespace qwen3::fuzz {

// A property a target checks: prints what failed and aborts (libFuzzer keeps the input; the
// replay test dies), in every build (not an assert that NDEBUG would remove).
[[noreturn]] void CheckFailed(const char* cond, const char* file, int line,
                              const std::string& what);
#define FUZZ_CHECK(cond, what) \
  ((cond) ? static_cast<void>(0) : ::qwen3::fuzz::CheckFailed(#cond, __FILE__, __LINE__, (what)))

// Writes bytes to this process's one in-memory file and returns a path that opens it (the
// readers take paths and map them; a memfd keeps that real without touching the disk).
// The file is rewritten by the next call.
std::string MemFile(const uint8_t* data, size_t size);

// A directory of this process (removed at exit) for targets that need several files.
const std::string& ScratchDir();

// The shared test data (../shared/testdata) and the reference tokenizer (tests/npm).
std::string SharedDir();
// Qwen3's real tokenizer.json (151k tokens), loaded once per process. Aborts with a message
// when the file is missing (scripts/npm-deps.sh installs it).
const Tokenizer& RealTokenizer();

// Splits data at each byte equal to sep.
std::vector<std::string_view> SplitRecords(std::string_view data, char sep);

}  // namespace qwen3::fuzz
