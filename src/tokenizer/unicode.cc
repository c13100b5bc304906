#include "tokenizer/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/bytestream.h>

#include <array>

#include "base/error.h"

namespace qwen3 {

void AppendUtf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

namespace {

// The sequence at s[i]: its length when valid; else `bad` bytes form its maximal subpart (the
// WHATWG decoder's unit of one U+FFFD), and `cut` says the input ended inside a valid prefix.
struct Sequence {
  size_t len = 0, bad = 0;
  bool cut = false;
};

Sequence SequenceAt(std::string_view s, size_t i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  size_t len;
  if (c < 0x80) return {1, 0, false};
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
  } else {
    return {0, 1, false};
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) return {0, k, true};
    const uint8_t t = static_cast<uint8_t>(s[i + k]);
    uint8_t lo = 0x80, hi = 0xbf;  // the second byte's range excludes overlongs, surrogates,
    if (k == 1) {                  // and code points past U+10FFFF
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    }
    if (t < lo || t > hi) return {0, k, false};
  }
  return {len, 0, false};
}

}  // namespace

size_t ValidUtf8Prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const Sequence q = SequenceAt(s, i);
    if (q.len == 0) break;
    i += q.len;
  }
  return i;
}

char32_t NextCodePoint(std::string_view s, size_t& i) {
  const Sequence q = SequenceAt(s, i);
  if (q.len == 0) {
    ++i;
    return 0xfffd;
  }
  static constexpr uint8_t kLeadMask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
  char32_t cp = static_cast<uint8_t>(s[i]) & kLeadMask[q.len];
  for (size_t k = 1; k < q.len; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3f);
  i += q.len;
  return cp;
}

size_t TakeCompleteUtf8(std::string_view text, size_t from, size_t limit, bool done,
                        std::string& out) {
  while (from < limit) {
    const std::string_view rest = text.substr(from, limit - from);
    const size_t ok = ValidUtf8Prefix(rest);
    out.append(rest.substr(0, ok));
    from += ok;
    if (from == limit) break;
    const Sequence q = SequenceAt(text.substr(0, limit), from);
    if (q.cut && !done) break;
    out += "\xEF\xBF\xBD";
    from += q.bad;
  }
  return from;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Sequence q = SequenceAt(s, i);
    if (q.len == 0) {
      AppendUtf8(0xfffd, out);
      i += q.bad;
    } else {
      out.append(s.substr(i, q.len));
      i += q.len;
    }
  }
  return out;
}

std::string NormalizeNfc(std::string_view s) {
  bool ascii = true;
  for (char ch : s) ascii &= static_cast<uint8_t>(ch) < 0x80;
  if (ascii) return std::string(s);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw Error(std::string("ICU NFC unavailable: ") + u_errorName(status));
  const icu::StringPiece piece(s.data(), static_cast<int32_t>(s.size()));
  if (nfc->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return std::string(s);
  status = U_ZERO_ERROR;
  std::string out;
  out.reserve(s.size() + 16);
  icu::StringByteSink<std::string> sink(&out);
  nfc->normalizeUTF8(0, piece, sink, nullptr, status);
  if (U_FAILURE(status)) throw Error(std::string("NFC normalization failed: ") + u_errorName(status));
  return out;
}

uint8_t ClassOf(char32_t c) {
  static const std::array<uint8_t, 128> ascii = [] {
    std::array<uint8_t, 128> t{};
    for (int i = 0; i < 128; ++i) {
      if ((i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z')) t[i] = kLetter;
      if (i >= '0' && i <= '9') t[i] = kNumber;
      if (i == ' ' || (i >= 0x09 && i <= 0x0d)) t[i] = kSpace;
    }
    t['\r'] |= kLineBreak;
    t['\n'] |= kLineBreak;
    return t;
  }();
  if (c < 128) return ascii[c];
  switch (c) {  // ECMAScript WhiteSpace and LineTerminator beyond ASCII
    case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
    case 0xfeff:
      return kSpace;
    default:
      if (c >= 0x2000 && c <= 0x200a) return kSpace;
  }
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_UPPERCASE_LETTER: case U_LOWERCASE_LETTER: case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER: case U_OTHER_LETTER:
      return kLetter;
    case U_DECIMAL_DIGIT_NUMBER: case U_LETTER_NUMBER: case U_OTHER_NUMBER:
      return kNumber;
    default:
      return 0;
  }
}

}  // namespace qwen3
