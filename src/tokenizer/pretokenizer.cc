#include "tokenizer/pretokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace qwen3 {

const char* const kQwen2SplitPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

struct Decoded {
  std::vector<char32_t> cp;
  std::vector<uint8_t> cls;
  std::vector<size_t> off;  // byte offset of each code point, plus the end
};

char32_t Lower(char32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// End (code point index) of the match starting at i; the alternatives in the pattern's order.
size_t MatchAt(const Decoded& d, size_t i) {
  const size_t n = d.cp.size();
  const auto is = [&](size_t k, uint8_t cls) { return k < n && (d.cls[k] & cls) != 0; };
  const auto other = [&](size_t k) { return k < n && (d.cls[k] & (kLetter | kNumber | kSpace)) == 0; };
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (d.cp[i] == '\'' && i + 1 < n) {
    const char32_t a = Lower(d.cp[i + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < n) {
      const char32_t b = Lower(d.cp[i + 2]);
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  size_t j = i;
  if (!is(i, kLetter) && !is(i, kLineBreak) && !is(i, kNumber) && is(i + 1, kLetter)) j = i + 1;
  if (is(j, kLetter)) {
    while (is(j, kLetter)) ++j;
    return j;
  }
  // \p{N}
  if (is(i, kNumber)) return i + 1;
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  j = d.cp[i] == ' ' && other(i + 1) ? i + 1 : i;
  if (other(j)) {
    while (other(j)) ++j;
    while (is(j, kLineBreak)) ++j;
    return j;
  }
  // Whitespace: \s*[\r\n]+ ends after the run's last line break; else \s+(?!\S) leaves the
  // run's last space to the next piece when a non-space follows; else \s+.
  size_t q = i;
  size_t last_break = SIZE_MAX;
  while (is(q, kSpace)) {
    if (is(q, kLineBreak)) last_break = q;
    ++q;
  }
  if (q == i) return i + 1;  // unreachable: every code point is in some class above
  if (last_break != SIZE_MAX) return last_break + 1;
  if (q < n && q - i >= 2) return q - 1;
  return q;
}

}  // namespace

void SplitQwen2(std::string_view text, std::vector<std::string_view>& out) {
  thread_local Decoded d;
  d.cp.clear();
  d.cls.clear();
  d.off.clear();
  for (size_t i = 0; i < text.size();) {
    d.off.push_back(i);
    const char32_t c = NextCodePoint(text, i);
    d.cp.push_back(c);
    d.cls.push_back(ClassOf(c));
  }
  d.off.push_back(text.size());
  for (size_t i = 0; i < d.cp.size();) {
    const size_t j = MatchAt(d, i);
    out.push_back(text.substr(d.off[i], d.off[j] - d.off[i]));
    i = j;
  }
}

}  // namespace qwen3
