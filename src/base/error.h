// Errors: qwen3::Error for bad input (a one-line message naming the value and what was
// expected); QW_ASSERT for invariants (a bug, never a user error).
#pragma once

#include <stdexcept>
#include <string>

namespace qwen3 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

[[noreturn]] void AssertFail(const char* expr, const char* file, int line);

}  // namespace qwen3

#define QW_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::qwen3::AssertFail(#cond, __FILE__, __LINE__))

#ifdef NDEBUG
#define QW_DASSERT(cond) static_cast<void>(0)
#else
#define QW_DASSERT(cond) QW_ASSERT(cond)
#endif
