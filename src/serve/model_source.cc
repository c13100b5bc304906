#include "serve/model_source.h"

#include <filesystem>
#include <vector>

#include "base/error.h"
#include "io/gguf_checkpoint.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace qwen3 {

namespace fs = std::filesystem;

ModelSource ModelSource::Resolve(const std::string& model) {
  ModelSource s;
  s.path_ = model;
  std::error_code ec;
  if (fs::is_regular_file(model, ec)) {
    if (fs::path(model).extension() != ".gguf") {
      throw Error("--model " + model + ": expected a Hugging Face model directory or a .gguf file");
    }
    s.gguf_file_ = model;
    return s;  // dir_ empty: the file alone
  }
  if (!fs::is_directory(model, ec)) {
    throw Error("--model " + model + ": no such file or directory");
  }
  s.dir_ = model;
  if (fs::exists(fs::path(model) / "config.json")) return s;
  std::vector<std::string> ggufs;
  for (const fs::directory_entry& e : fs::directory_iterator(model, ec)) {
    if (e.is_regular_file() && e.path().extension() == ".gguf") ggufs.push_back(e.path().string());
  }
  if (ggufs.size() == 1) s.gguf_file_ = ggufs.front();
  if (ggufs.size() > 1) {
    throw Error("model directory " + model + ": " + std::to_string(ggufs.size()) +
                " .gguf files and no config.json: pass --model FILE.gguf");
  }
  return s;  // an HF directory without config.json fails in HfCheckpoint::Open, naming it
}

std::unique_ptr<Tokenizer> ModelSource::OpenTokenizer(const std::string& override) const {
  if (!override.empty()) return std::make_unique<Tokenizer>(Tokenizer::FromFile(override));
  if (!dir_.empty() && fs::exists(fs::path(dir_) / "tokenizer.json")) {
    return std::make_unique<Tokenizer>(Tokenizer::FromFile((fs::path(dir_) / "tokenizer.json").string()));
  }
  if (!gguf()) {
    throw Error("model directory " + dir_ +
                ": no tokenizer.json: pass --tokenizer FILE (a Qwen3 tokenizer.json)");
  }
  const GgufCheckpoint ck = GgufCheckpoint::Open(gguf_file_);
  const GgufTokenizerData& t = ck.tokenizer();
  if (t.tokens.empty()) {
    throw Error("file " + gguf_file_ +
                ": no tokenizer.ggml.tokens: pass --tokenizer FILE (a Qwen3 tokenizer.json)");
  }
  return std::make_unique<Tokenizer>(
      Tokenizer::FromVocab(t.tokens, t.token_types, t.merges, gguf_file_));
}

void ModelSource::CheckChatTemplate() const {
  if (!dir_.empty() && fs::exists(fs::path(dir_) / "tokenizer_config.json")) {
    CheckQwen3ChatTemplate((fs::path(dir_) / "tokenizer_config.json").string());
    return;
  }
  if (!gguf()) return;
  const GgufCheckpoint ck = GgufCheckpoint::Open(gguf_file_);
  if (!ck.chat_template().empty()) CheckQwen3ChatTemplateText(ck.chat_template(), gguf_file_);
}

}  // namespace qwen3
