// A file mapped read-only for the model readers (safetensors, GGUF): tensors are views into
// the map, so it lives as long as the reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qwen3 {

// Drops the pages of [p, p + n) (inside a MappedFile) from this process's mapping: a loader
// that has copied a tensor into its own layout calls it so the file is not held twice (the
// pages stay in the page cache, reclaimable, and fault back in if read again).
void DropMappedPages(const void* p, size_t n);

class MappedFile {
 public:
  MappedFile() = default;
  // Throws Error "file PATH: ..." when path cannot be opened, is not a regular file, or cannot
  // be mapped. An empty file maps to no bytes (data() == nullptr).
  static MappedFile Open(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return static_cast<const uint8_t*>(map_); }
  size_t size() const { return size_; }

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qwen3
