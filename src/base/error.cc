#include "base/error.h"

#include <cstdio>
#include <cstdlib>

namespace qwen3 {

void AssertFail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "Bug: assertion '%s' failed at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace qwen3
