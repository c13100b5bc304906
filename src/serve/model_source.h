// Where a model comes from: a Hugging Face directory (config.json + safetensors) or a GGUF
// file (llama.cpp's format), given as the file or as a directory holding exactly one .gguf and
// no config.json. A GGUF carries its tokenizer and chat template; a tokenizer.json and
// tokenizer_config.json beside it win where present.
#pragma once

#include <memory>
#include <string>

namespace qwen3 {

class GgufCheckpoint;
class Tokenizer;
struct ModelWeights;
class ThreadPool;
struct LoadOptions;

class ModelSource {
 public:
  // Throws Error naming `model` when it is neither.
  static ModelSource Resolve(const std::string& model);

  const std::string& path() const { return path_; }  // as given
  bool gguf() const { return !gguf_file_.empty(); }
  const std::string& gguf_file() const { return gguf_file_; }
  // The directory whose tokenizer.json / tokenizer_config.json apply (the GGUF's own when
  // given as a file: its directory's files are not assumed to belong to it).
  const std::string& dir() const { return dir_; }

  // The tokenizer: `override` if given, else dir()/tokenizer.json, else the GGUF's metadata.
  std::unique_ptr<Tokenizer> OpenTokenizer(const std::string& override) const;
  // Throws Error unless the chat template (dir()/tokenizer_config.json, else the GGUF's) is
  // Qwen3's; a model with neither passes (the built-in template is Qwen3's).
  void CheckChatTemplate() const;

 private:
  std::string path_, dir_, gguf_file_;
};

}  // namespace qwen3
