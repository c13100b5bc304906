// Encode of arbitrary bytes and decode of arbitrary ids with Qwen3's real tokenizer. The first
// byte's bit 1 picks the surface, bit 0 parse_special; the rest is the input.
//   text: ids are in range, decode(encode(s)) is NFC(s) (s with invalid UTF-8 replaced by
//         U+FFFD first, as Encode does; with parse_special, NFC of the text between added
//         tokens, which are matched first, leftmost-longest), and streaming decode equals it.
//   ids:  little-endian u32s, some past the vocabulary (Decode must refuse those with Error);
//         streaming decode of the valid ones equals the whole decode, and every piece it emits
//         is valid UTF-8.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3::fuzz {
namespace {

// The added tokens' texts, longest first (found through the public API, independently of
// the tokenizer's own table).
const std::vector<std::string>& AddedTexts(const Tokenizer& tok) {
  static const std::vector<std::string> added = [&] {
    std::vector<std::string> a;
    for (size_t id = 0; id < tok.size(); ++id) {
      if (tok.IsAdded(static_cast<int32_t>(id)))
        a.push_back(tok.TokenBytes(static_cast<int32_t>(id)));
    }
    std::stable_sort(a.begin(), a.end(), [](const std::string& x, const std::string& y) {
      return x.size() > y.size();
    });
    return a;
  }();
  return added;
}

std::string Expected(const Tokenizer& tok, const std::string& valid, bool special) {
  if (!special) return NormalizeNfc(valid);
  std::string out;
  size_t begin = 0;
  for (size_t i = 0; i < valid.size();) {
    const std::string* hit = nullptr;
    for (const std::string& a : AddedTexts(tok)) {
      if (valid.compare(i, a.size(), a) == 0) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    out += NormalizeNfc(valid.substr(begin, i - begin)) + *hit;
    i += hit->size();
    begin = i;
  }
  return out + NormalizeNfc(valid.substr(begin));
}

std::string Streamed(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  StreamDecoder dec(tok);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = dec.Push(id);
    FUZZ_CHECK(SanitizeUtf8(piece) == piece, "StreamDecoder emitted invalid UTF-8");
    out += piece;
  }
  const std::string rest = dec.Flush();
  FUZZ_CHECK(SanitizeUtf8(rest) == rest, "StreamDecoder::Flush emitted invalid UTF-8");
  return out + rest;
}

void FuzzText(const Tokenizer& tok, std::string_view text, bool special) {
  const std::vector<int32_t> ids = tok.Encode(text, special);
  for (int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < tok.size(), "id " + std::to_string(id));
  }
  const std::string decoded = tok.Decode(ids);
  const std::string want = Expected(tok, SanitizeUtf8(text), special);
  FUZZ_CHECK(decoded == want, "decode(encode(s)) = \"" + decoded + "\", expected \"" + want + "\"");
  FUZZ_CHECK(Streamed(tok, ids) == decoded, "streamed decode differs from Decode");
}

void FuzzIds(const Tokenizer& tok, std::string_view bytes) {
  std::vector<int32_t> ids;
  bool out_of_range = false;
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + i, 4);
    // Mostly ids of the vocabulary, sometimes just past it, rarely anything (negative too).
    const int32_t id = v >> 30 == 3   ? static_cast<int32_t>(v << 2)
                       : v >> 28 == 2 ? static_cast<int32_t>(tok.size() + (v & 15))
                                      : static_cast<int32_t>(v % tok.size());
    out_of_range |= id < 0 || static_cast<size_t>(id) >= tok.size();
    ids.push_back(id);
  }
  std::string decoded;
  try {
    decoded = tok.Decode(ids);
  } catch (const Error&) {
    FUZZ_CHECK(out_of_range, "Decode refused ids that are all in range");
    return;
  }
  FUZZ_CHECK(!out_of_range, "Decode took an id out of range");
  FUZZ_CHECK(SanitizeUtf8(decoded) == decoded, "Decode returned invalid UTF-8");
  FUZZ_CHECK(Streamed(tok, ids) == decoded, "streamed decode differs from Decode");
}

}  // namespace

int FuzzTokenizerEncode(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Tokenizer& tok = RealTokenizer();
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 2) {
    FuzzIds(tok, rest);
  } else {
    FuzzText(tok, rest, data[0] & 1);
  }
  return 0;
}

}  // namespace qwen3::fuzz
