// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the raw little-endian data. Files are mapped read-only; tensors are views into the map.
// Opening validates the whole header (lengths, JSON, dtypes, shapes against byte ranges,
// ranges inside the data and not overlapping, no duplicated name) and throws Error naming the
// file and tensor, so a view is always in bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "base/f16.h"
#include "io/mapped_file.h"

namespace qwen3 {

enum class DType { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kI64, kU64, kF64 };
const char* ToString(DType dtype);
size_t DTypeBytes(DType dtype);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<size_t> shape;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  const std::string* file = nullptr;  // the file it lives in, for messages

  size_t Elements() const;
  std::string ShapeString() const;  // "[4, 8]"
  // Where it is, for messages: "tensor NAME in FILE".
  std::string Where() const;
  // Throws Error unless dtype/shape are as expected.
  void Expect(DType dtype, const std::vector<size_t>& shape) const;
  void ExpectShape(const std::vector<size_t>& shape) const;

  // Element conversions (any float dtype; other dtypes throw). The copy is owned.
  AlignedBuffer<bf16> ToBf16() const;   // RNE from F32; exact from F16 where bf16 can hold it
  AlignedBuffer<float> ToF32() const;
  std::vector<int32_t> ToI32() const;   // from I32 or I64 (range-checked)
};

class SafetensorsFile {
 public:
  // Maps and validates path; throws Error naming it.
  static std::unique_ptr<SafetensorsFile> Open(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* Find(const std::string& name) const;
  // Throws Error "tensor NAME: not in FILE" when absent.
  const TensorView& Get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;

  std::string path_;
  MappedFile map_;
  std::vector<TensorView> tensors_;  // sorted by name
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file from tensors whose bytes are produced on demand, so a multi-GB
// checkpoint is written without holding it in memory. The file appears complete or not at
// all: data goes to PATH.partial, renamed at the end (and removed on error).
class SafetensorsWriter {
 public:
  // fill(dst) writes the tensor's bytes (Elements() * DTypeBytes) into dst.
  using Fill = std::function<void(uint8_t* dst)>;

  void Add(const std::string& name, DType dtype, const std::vector<size_t>& shape, Fill fill);
  // Copies bytes at Add time.
  void AddCopy(const std::string& name, DType dtype, const std::vector<size_t>& shape,
               const void* data);
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  size_t data_bytes() const { return data_bytes_; }
  size_t size() const { return entries_.size(); }
  void Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<size_t> shape;
    size_t begin, end;
    Fill fill;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  size_t data_bytes_ = 0;
};

}  // namespace qwen3
