#include "serve/stop_strings.h"

#include <algorithm>

namespace qwen3 {

size_t FindStopString(std::string_view text, size_t searched,
                      const std::vector<std::string>& stops) {
  size_t stop_at = std::string_view::npos;
  for (const std::string& stop : stops) {
    // A match starting before `from` would end inside text[0, searched), found earlier.
    const size_t from = searched >= stop.size() - 1 ? searched - (stop.size() - 1) : 0;
    const size_t at = text.find(stop, from);
    if (at != std::string_view::npos) stop_at = std::min(stop_at, at);
  }
  return stop_at;
}

size_t StopHeldBack(std::string_view text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops) {
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k) {
      if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace qwen3
