// The Unicode the tokenizer needs: UTF-8 decoding/encoding, NFC (ICU), and the character
// classes of the Qwen2 pre-tokenizer pattern with JavaScript's meaning (the reference
// tokenizer is @lenml/tokenizers, a JS regex with the u flag): \p{L}, \p{N} by general
// category, \s as ECMAScript WhiteSpace + LineTerminator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qwen3 {

// Decodes the code point at s[i] and advances i; invalid bytes decode as U+FFFD, one byte each.
char32_t NextCodePoint(std::string_view s, size_t& i);
void AppendUtf8(char32_t c, std::string& out);
// Length of the longest prefix of s that is complete, valid UTF-8 (a trailing incomplete
// sequence is left out; an invalid byte ends the prefix too).
size_t ValidUtf8Prefix(std::string_view s);
// Appends to out the part of text[from, limit) that later bytes cannot change, as
// SanitizeUtf8 would render it (valid sequences as they are, U+FFFD per invalid subpart);
// stops before a sequence cut at limit unless `done` (then it is U+FFFD too). Returns the
// new `from`. Streaming decoders emit text with it.
size_t TakeCompleteUtf8(std::string_view text, size_t from, size_t limit, bool done,
                        std::string& out);
// s with each maximal invalid subpart replaced by one U+FFFD (as a JS TextDecoder does).
std::string SanitizeUtf8(std::string_view s);

// NFC of valid UTF-8 (ASCII and already-normalized text come back unchanged, cheaply).
std::string NormalizeNfc(std::string_view s);

enum CharClass : uint8_t {
  kLetter = 1,      // \p{L}
  kNumber = 2,      // \p{N}
  kSpace = 4,       // \s (JS)
  kLineBreak = 8,   // \r or \n
};
uint8_t ClassOf(char32_t c);

}  // namespace qwen3
