// Test sizes for the ThreadSanitizer build (scripts/test.sh --tsan), where every memory access
// is checked and a test runs ~10x slower: the concurrent paths stay, the repetitions shrink.
//   const size_t n = testing_tsan::Size(32, 8);  // 32 requests, 8 under TSan
#pragma once

#include <cstddef>

namespace qwen3::testing_tsan {

#if defined(__SANITIZE_THREAD__)  // GCC
inline constexpr bool kEnabled = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)  // Clang
inline constexpr bool kEnabled = true;
#else
inline constexpr bool kEnabled = false;
#endif
#else
inline constexpr bool kEnabled = false;
#endif

// n in other builds, tsan_n under ThreadSanitizer.
constexpr size_t Size(size_t n, size_t tsan_n) { return kEnabled ? tsan_n : n; }

}  // namespace qwen3::testing_tsan
