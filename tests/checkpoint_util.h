// Tiny Qwen3 configs and checkpoint rewriting for the loading and model tests.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "io/synthetic_checkpoint.h"
#include "model/config.h"

namespace qwen3::testing_ck {

namespace fs = std::filesystem;

// 2 layers, group 2, head_dim 32, vocab 100 (padded to 112 in the packed LM head).
inline Qwen3Config TinyConfig(bool tied) {
  Qwen3Config c;
  c.name = tied ? "tiny-tied" : "tiny";
  c.hidden = 64;
  c.intermediate = 128;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 32;
  c.vocab = 100;
  c.tied_embeddings = tied;
  c.max_position_embeddings = 4096;
  return c;
}

// A fresh directory under the temp dir, removed at destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = fs::temp_directory_path() / ("qwen3_ck_" + std::to_string(getpid()) + "_" + tag);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Rewrites dir/model.safetensors: edit(view, writer) adds what should replace the tensor
// (nothing = drop it); extra(writer) may add more.
inline void RewriteSingleFile(
    const std::string& dir,
    const std::function<void(const TensorView&, SafetensorsWriter&)>& edit,
    const std::function<void(SafetensorsWriter&)>& extra = nullptr) {
  const std::string path = dir + "/model.safetensors";
  SafetensorsWriter w;
  {
    const auto f = SafetensorsFile::Open(path);
    for (const TensorView& t : f->tensors()) edit(t, w);
  }
  if (extra) extra(w);
  w.Write(path);
}

inline void Keep(const TensorView& t, SafetensorsWriter& w) {
  w.AddCopy(t.name, t.dtype, t.shape, t.data);
}

}  // namespace qwen3::testing_ck
