// A GGUF file built field by field, for the GGUF tests: valid files, and files with any one
// field broken (counts, types, lengths, offsets can all be set to lies). CopyOf(file) holds
// everything a parsed file has, so a real file can be edited and rewritten.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/gguf.h"

namespace qwen3::testing_gguf {

template <typename T>
std::string Pod(T v) {
  std::string s(sizeof(T), '\0');
  std::memcpy(s.data(), &v, sizeof(T));
  return s;
}
inline std::string Str(std::string_view s) { return Pod<uint64_t>(s.size()) + std::string(s); }
inline uint32_t Num(GgufValueType t) { return static_cast<uint32_t>(t); }
inline uint32_t Num(GgmlType t) { return static_cast<uint32_t>(t); }

// A value's bytes after its type tag (the inverse of GgufFile's reading).
inline std::string EncodeValue(const GgufValue& v) {
  using T = GgufValueType;
  switch (v.type) {
    case T::kUint8:
    case T::kBool:
      return Pod<uint8_t>(static_cast<uint8_t>(v.uint));
    case T::kInt8:
      return Pod<int8_t>(static_cast<int8_t>(v.sint));
    case T::kUint16:
      return Pod<uint16_t>(static_cast<uint16_t>(v.uint));
    case T::kInt16:
      return Pod<int16_t>(static_cast<int16_t>(v.sint));
    case T::kUint32:
      return Pod<uint32_t>(static_cast<uint32_t>(v.uint));
    case T::kInt32:
      return Pod<int32_t>(static_cast<int32_t>(v.sint));
    case T::kFloat32:
      return Pod<float>(static_cast<float>(v.real));
    case T::kUint64:
      return Pod<uint64_t>(v.uint);
    case T::kInt64:
      return Pod<int64_t>(v.sint);
    case T::kFloat64:
      return Pod<double>(v.real);
    case T::kString:
      return Str(v.string);
    case T::kArray: {
      std::string s = Pod<uint32_t>(Num(v.elem_type)) + Pod<uint64_t>(v.count);
      for (uint64_t i = 0; i < v.count; ++i) s += EncodeValue(v.Element(i));
      return s;
    }
  }
  return {};
}

struct GgufWriter {
  struct Kv {
    std::string key;
    uint32_t type;
    std::string value;  // encoded, after the type tag
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::string data;
    std::optional<uint64_t> offset;  // default: after the previous tensor, aligned
  };

  std::string magic = "GGUF";
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count, kv_count;  // default: the real counts
  uint32_t alignment = 32;  // of the layout; say so with general.alignment if not 32
  std::vector<Kv> kvs;
  std::vector<Tensor> tensors;

  void Add(const std::string& key, uint32_t type, std::string value) {
    kvs.push_back({key, type, std::move(value)});
  }
  void AddUint32(const std::string& key, uint32_t v) {
    Add(key, Num(GgufValueType::kUint32), Pod(v));
  }
  void AddString(const std::string& key, const std::string& v) {
    Add(key, Num(GgufValueType::kString), Str(v));
  }
  void AddStrings(const std::string& key, const std::vector<std::string>& v) {
    std::string s = Pod<uint32_t>(Num(GgufValueType::kString)) + Pod<uint64_t>(v.size());
    for (const std::string& e : v) s += Str(e);
    Add(key, Num(GgufValueType::kArray), s);
  }
  // Replaces the value of key (it must be there).
  void Set(const std::string& key, uint32_t type, std::string value) {
    for (Kv& kv : kvs) {
      if (kv.key == key) {
        kv.type = type;
        kv.value = std::move(value);
        return;
      }
    }
    ADD_FAILURE() << "no key " << key;
  }
  void Remove(const std::string& key) {
    std::erase_if(kvs, [&](const Kv& kv) { return kv.key == key; });
  }
  // data: zeros of the type table's size when empty (and the type is known).
  void AddTensor(const std::string& name, uint32_t type, const std::vector<uint64_t>& dims,
                 std::string data = {}) {
    if (data.empty()) {
      if (const GgmlTypeInfo* info = FindGgmlType(type)) {
        uint64_t n = 1;
        for (uint64_t d : dims) n *= d;
        data.assign(n / info->block_elems * info->block_bytes, '\0');
      }
    }
    tensors.push_back({name, dims, type, std::move(data), std::nullopt});
  }
  Tensor* FindTensor(const std::string& name) {
    for (Tensor& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  void RemoveTensor(const std::string& name) {
    std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; });
  }

  uint64_t Align(uint64_t n) const { return (n + alignment - 1) / alignment * alignment; }
  std::vector<uint64_t> Offsets() const {
    std::vector<uint64_t> out;
    uint64_t next = 0;
    for (const Tensor& t : tensors) {
      out.push_back(t.offset ? *t.offset : next);
      next = Align(out.back() + t.data.size());
    }
    return out;
  }
  // Header, metadata and tensor infos, unpadded.
  std::string Infos() const {
    std::string s = magic + Pod(version) + Pod<uint64_t>(tensor_count.value_or(tensors.size())) +
                    Pod<uint64_t>(kv_count.value_or(kvs.size()));
    for (const Kv& kv : kvs) s += Str(kv.key) + Pod(kv.type) + kv.value;
    const std::vector<uint64_t> offsets = Offsets();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const Tensor& t = tensors[i];
      s += Str(t.name) + Pod<uint32_t>(static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) s += Pod(d);
      s += Pod(t.type) + Pod(offsets[i]);
    }
    return s;
  }
  // The whole file: the data section at the aligned end of the infos, each tensor padded to
  // the alignment with zeros (as llama.cpp writes it).
  std::string Bytes() const {
    std::string s = Infos();
    s.resize(Align(s.size()), '\0');
    const size_t data = s.size();
    const std::vector<uint64_t> offsets = Offsets();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const size_t end = data + offsets[i] + tensors[i].data.size();
      if (s.size() < Align(end)) s.resize(Align(end), '\0');
      std::copy(tensors[i].data.begin(), tensors[i].data.end(), s.begin() + data + offsets[i]);
    }
    return s;
  }
  std::string Write(const std::string& path) const {
    std::ofstream(path, std::ios::binary) << Bytes();
    return path;
  }
};

// Everything in f, laid out afresh: for a file as llama.cpp writes it (tensors in info order,
// each padded to the alignment), Bytes() is that file again.
inline GgufWriter CopyOf(const GgufFile& f) {
  GgufWriter w;
  w.version = f.version();
  w.alignment = f.alignment();
  for (const auto& [key, v] : f.metadata()) w.Add(key, Num(v.type), EncodeValue(v));
  for (const GgufTensor& t : f.tensors()) {
    w.tensors.push_back({t.name, t.dims, Num(t.type),
                         std::string(reinterpret_cast<const char*>(t.data), t.bytes),
                         std::nullopt});
  }
  return w;
}

}  // namespace qwen3::testing_gguf
