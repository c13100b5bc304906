// GGUF files: the container (GgufFile::Open: header, metadata, tensor infos, data section),
// every metadata value read back through the typed getters, the qwen3.* hyperparameters ->
// Qwen3Config (ReadGgufConfig), the whole checkpoint check (GgufCheckpoint::Open: tensor set,
// tokenizer.ggml.*, chat template) and the tokenizer built from its arrays (FromVocab), as
// loading a model does.
#include <string>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "io/gguf.h"
#include "io/gguf_checkpoint.h"
#include "model/config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace qwen3::fuzz {
namespace {

// Every getter on every key: each returns or throws Error, never anything else.
void ReadAllMetadata(const GgufFile& f) {
  for (const auto& entry : f.metadata()) {
    const std::string& key = entry.first;  // clang 14 cannot capture structured bindings
    const GgufValue& v = entry.second;
    FUZZ_CHECK(f.FindValue(key) == &v, "metadata key " + key + ": FindValue returns another value");
    FUZZ_CHECK(f.TypeOf(key) == v.TypeName(), "metadata key " + key + ": TypeOf");
    const auto attempt = [](auto&& get) {
      try {
        get();
      } catch (const Error&) {
      }
    };
    attempt([&] { f.GetUint(key); });
    attempt([&] { f.GetInt(key); });
    attempt([&] { f.GetFloat(key); });
    attempt([&] { f.GetBool(key); });
    attempt([&] { f.GetString(key); });
    attempt([&] {
      const auto s = f.GetStringArray(key);
      FUZZ_CHECK(s.size() == v.count, "metadata key " + key + ": string array size");
    });
    attempt([&] {
      const auto a = f.GetIntArray(key);
      FUZZ_CHECK(a.size() == v.count, "metadata key " + key + ": int array size");
    });
    if (v.type == GgufValueType::kArray) {
      for (uint64_t i = 0; i < v.count && i < 64; ++i) v.Element(i).TypeName();
    }
  }
}

}  // namespace

int FuzzGguf(const uint8_t* data, size_t size) {
  const std::string path = MemFile(data, size);
  std::unique_ptr<GgufFile> f;
  try {
    f = GgufFile::Open(path);
  } catch (const Error&) {
    return 0;
  }
  for (const GgufTensor& t : f->tensors()) {
    FUZZ_CHECK(t.offset + t.bytes <= f->size() - f->data_offset(), t.Where() + ": past the data");
    FUZZ_CHECK(f->Find(t.name) == &t, t.Where() + ": Find returns another tensor");
  }
  ReadAllMetadata(*f);
  try {
    const Qwen3Config c = ReadGgufConfig(*f);
    ValidateConfig(c);  // ReadGgufConfig's result is always valid
  } catch (const Error&) {
    return 0;
  }
  try {
    const GgufCheckpoint ck = GgufCheckpoint::Open(path);
    const GgufTokenizerData& d = ck.tokenizer();
    if (!d.tokens.empty()) {
      FUZZ_CHECK(d.tokens.size() == static_cast<size_t>(ck.config().vocab), "tokens != vocab");
      const Tokenizer tok = Tokenizer::FromVocab(d.tokens, d.token_types, d.merges, path);
      FUZZ_CHECK(tok.size() == d.tokens.size(), "tokenizer size != tokens");
      tok.Decode(tok.Encode("Hello, world! <|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd"));
    }
    if (!ck.chat_template().empty()) CheckQwen3ChatTemplateText(ck.chat_template(), path);
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace qwen3::fuzz
