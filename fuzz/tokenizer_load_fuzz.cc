// tokenizer.json -> Tokenizer (FromJson: the one-pass SAX load of vocab and merges, the DOM of
// the rest, the pipeline checks, Build's id and merge checks); a tokenizer that loads must
// then encode and decode a fixed text back to itself.
#include <string>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace qwen3::fuzz {

int FuzzTokenizerLoad(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const Tokenizer tok = Tokenizer::FromJson(text, "fuzz.json");
    // Valid NFC text round-trips whatever the vocab and merges, unless an added token restates
    // a vocab entry that BPE then produces (it decodes as its text, as the JS reference does).
    const std::string s = "Hello, w\xc3\xb6rld! 123 <think>\n\xe4\xbd\xa0\xe5\xa5\xbd  \t x";
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = tok.Encode(s, special);
      bool added = false;
      for (int32_t id : ids) {
        FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < tok.size(), "id " + std::to_string(id));
        added |= tok.IsAdded(id);
      }
      const std::string back = tok.Decode(ids);
      if (!special && !added) FUZZ_CHECK(back == s, "decode(encode(s)) = \"" + back + "\"");
    }
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace qwen3::fuzz
