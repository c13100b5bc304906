// Stop strings over text that grows a token at a time (the engine's Emit, one call per token):
// where the first stop string starts, and how much of the tail to hold back from the stream
// because the next token may complete a stop string. Split out of the engine so the fuzz
// target fuzz/stream_fuzz.cc drives exactly the engine's code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3 {

// Where the earliest stop string starts in text, or npos. text[0, searched) was searched by
// an earlier call and held none, so only matches ending past it are looked for. Stop strings
// are non-empty (the engine refuses empty ones).
size_t FindStopString(std::string_view text, size_t searched,
                      const std::vector<std::string>& stops);

// Length of the longest suffix of text that is a proper prefix of some stop string.
size_t StopHeldBack(std::string_view text, const std::vector<std::string>& stops);

}  // namespace qwen3
