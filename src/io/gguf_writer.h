// Writes GGUF files (version 3, little-endian, alignment 32) as llama.cpp reads them: the
// metadata, then each tensor's bytes produced by a callback at write time, so a file far larger
// than memory is written one tensor at a time. The synthetic checkpoints of make-checkpoint
// --gguf use it; GgufFile (gguf.h) reads what it writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace qwen3 {

class GgufWriter {
 public:
  // fill(dst) writes the tensor's bytes (bytes of them) into dst.
  using Fill = std::function<void(uint8_t* dst)>;

  void AddString(const std::string& key, const std::string& value);
  void AddUint32(const std::string& key, uint32_t value);
  void AddInt32(const std::string& key, int32_t value);
  void AddFloat32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddStringArray(const std::string& key, const std::vector<std::string>& values);
  void AddInt32Array(const std::string& key, const std::vector<int32_t>& values);
  // dims ne0 first; the byte size follows from type's block size (Error when ne0 is not a
  // whole number of blocks).
  void AddTensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& dims,
                 Fill fill);
  // Writes path.partial, then renames it to path: a failed write leaves no file. Returns the
  // bytes written.
  size_t Write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> dims;
    size_t bytes;
    Fill fill;
  };
  void Key(const std::string& key, GgufValueType type);  // a pair's key and type tag
  std::string kv_;  // the encoded key-value pairs
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace qwen3
