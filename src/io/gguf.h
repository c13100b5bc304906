// GGUF files (llama.cpp's model format; ggml docs/gguf.md), versions 2 and 3, little-endian:
//   "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x {string key, u32 value type, value},
//   tensor_count x {string name, u32 n_dims, u64 dims[n_dims] (ne0 first), u32 ggml type,
//                   u64 offset into the data section},
//   padding to general.alignment (default 32), the data section.
// A string is a u64 length and that many bytes (no NUL); an array is a u32 element type, a
// u64 count and the elements. Files are mapped read-only; tensors are views into the map.
// Opening validates everything first (counts and lengths against the bytes left, known value
// and tensor types, unique keys and names, dims, byte sizes from the type table, aligned
// offsets, ranges inside the file and disjoint) and throws Error naming the file and the key
// or tensor, so a view is always in bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/mapped_file.h"

namespace qwen3 {

// ggml's type numbers (ggml.h enum ggml_type); gaps are types ggml removed.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

// A type's storage: blocks of block_elems elements in block_bytes bytes (gguf-py's
// GGML_QUANT_SIZES).
struct GgmlTypeInfo {
  GgmlType type;
  const char* name;  // "Q4_K", "BF16", ...
  uint32_t block_elems;
  uint32_t block_bytes;
};
// nullptr for a number this table does not know.
const GgmlTypeInfo* FindGgmlType(uint32_t number);
// "Q4_K"; "type N" for a number the table does not know.
std::string ToString(GgmlType type);

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<uint64_t> dims;  // ne0 first: dims[0] is the contiguous (innermost) dimension
  uint64_t offset = 0;         // into the data section
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  const std::string* file = nullptr;  // the file it lives in, for messages

  uint64_t Elements() const;
  std::string DimsString() const;  // "[256, 2048]", ne0 first
  // Where it is, for messages: "tensor NAME in FILE".
  std::string Where() const;
};

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* ToString(GgufValueType type);  // "uint32", "string", ...

// One metadata value. Scalars are decoded into the field of their kind; an array keeps its
// elements where they lie in the map (scalars) or as views into it (strings), so a 150k-token
// vocabulary costs no copies until asked for.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  uint64_t uint = 0;  // kUint8/16/32/64, kBool (0 or 1)
  int64_t sint = 0;   // kInt8/16/32/64
  // kFloat32/64. A float32 is widened through its shortest decimal form (1e-6f reads as 1e-6,
  // not 9.99999997e-7): the value its writer meant, and it narrows back to the same float.
  double real = 0;
  std::string string;  // kString

  GgufValueType elem_type = GgufValueType::kUint8;  // kArray
  uint64_t count = 0;                               // kArray: elements
  const uint8_t* elems = nullptr;                   // kArray of scalars: count packed values
  std::vector<std::string_view> strings;            // kArray of strings
  std::vector<GgufValue> arrays;                    // kArray of arrays

  bool IsInteger() const;  // a scalar integer type
  // "uint32", "string", "array of string", "array of array of int32".
  std::string TypeName() const;
  // Element i < count of an array, as a value.
  GgufValue Element(uint64_t i) const;
};

class GgufFile {
 public:
  // Arrays nested deeper than this are refused (real files nest none).
  static constexpr int kMaxArrayDepth = 4;

  // Maps and validates path; throws Error naming it.
  static std::unique_ptr<GgufFile> Open(const std::string& path);
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // where the data section starts
  size_t size() const { return map_.size(); }
  // In file order.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const GgufTensor* Find(const std::string& name) const;
  // Throws Error "tensor NAME: not in FILE" when absent.
  const GgufTensor& Get(const std::string& name) const;

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  bool Has(const std::string& key) const { return FindValue(key) != nullptr; }
  const GgufValue* FindValue(const std::string& key) const;
  // Throws Error "file FILE: metadata key KEY: missing" when absent.
  const GgufValue& Value(const std::string& key) const;
  // The value's TypeName(); "" when absent.
  std::string TypeOf(const std::string& key) const;

  // Typed reads; each throws Error naming the file and key when it is missing or of another
  // type ("file F: metadata key qwen3.block_count: expected an unsigned integer, got string").
  uint64_t GetUint(const std::string& key) const;  // any integer type, non-negative
  int64_t GetInt(const std::string& key) const;    // any integer type that fits
  double GetFloat(const std::string& key) const;   // float32, float64 or any integer type
  bool GetBool(const std::string& key) const;
  const std::string& GetString(const std::string& key) const;
  std::vector<std::string> GetStringArray(const std::string& key) const;
  std::vector<int64_t> GetIntArray(const std::string& key) const;  // of any integer type

 private:
  GgufFile() = default;
  [[noreturn]] void BadKey(const std::string& key, const std::string& expected,
                           const GgufValue& got) const;

  std::string path_;
  MappedFile map_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> key_index_;
};

}  // namespace qwen3
