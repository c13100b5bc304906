#include "io/gguf_writer.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "base/error.h"

namespace qwen3 {
namespace {

constexpr size_t kAlignment = 32;

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

size_t Padded(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

void GgufWriter::Key(const std::string& key, GgufValueType type) {
  PutString(kv_, key);
  Put(kv_, static_cast<uint32_t>(type));
  ++kv_count_;
}

void GgufWriter::AddString(const std::string& key, const std::string& value) {
  Key(key, GgufValueType::kString);
  PutString(kv_, value);
}

void GgufWriter::AddUint32(const std::string& key, uint32_t value) {
  Key(key, GgufValueType::kUint32);
  Put(kv_, value);
}

void GgufWriter::AddInt32(const std::string& key, int32_t value) {
  Key(key, GgufValueType::kInt32);
  Put(kv_, value);
}

void GgufWriter::AddFloat32(const std::string& key, float value) {
  Key(key, GgufValueType::kFloat32);
  Put(kv_, value);
}

void GgufWriter::AddBool(const std::string& key, bool value) {
  Key(key, GgufValueType::kBool);
  Put<uint8_t>(kv_, value ? 1 : 0);
}

void GgufWriter::AddStringArray(const std::string& key, const std::vector<std::string>& values) {
  Key(key, GgufValueType::kArray);
  Put(kv_, static_cast<uint32_t>(GgufValueType::kString));
  Put<uint64_t>(kv_, values.size());
  for (const std::string& v : values) PutString(kv_, v);
}

void GgufWriter::AddInt32Array(const std::string& key, const std::vector<int32_t>& values) {
  Key(key, GgufValueType::kArray);
  Put(kv_, static_cast<uint32_t>(GgufValueType::kInt32));
  Put<uint64_t>(kv_, values.size());
  for (int32_t v : values) Put(kv_, v);
}

void GgufWriter::AddTensor(const std::string& name, GgmlType type,
                           const std::vector<uint64_t>& dims, Fill fill) {
  const GgmlTypeInfo* info = FindGgmlType(static_cast<uint32_t>(type));
  QW_ASSERT(info != nullptr && !dims.empty());
  if (dims[0] % info->block_elems != 0) {
    throw Error("tensor " + name + ": " + std::to_string(dims[0]) + " elements per row: expected " +
                "a multiple of " + std::to_string(info->block_elems) + " for " + info->name);
  }
  uint64_t elements = 1;
  for (uint64_t d : dims) elements *= d;
  tensors_.push_back({name, type, dims, elements / info->block_elems * info->block_bytes,
                      std::move(fill)});
}

size_t GgufWriter::Write(const std::string& path) const {
  std::string head = "GGUF";
  Put<uint32_t>(head, 3);
  Put<uint64_t>(head, tensors_.size());
  Put<uint64_t>(head, kv_count_);
  head += kv_;
  size_t offset = 0;
  for (const Tensor& t : tensors_) {
    PutString(head, t.name);
    Put<uint32_t>(head, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) Put(head, d);
    Put(head, static_cast<uint32_t>(t.type));
    Put<uint64_t>(head, offset);
    offset += Padded(t.bytes);
  }
  head.resize(Padded(head.size()), '\0');

  const std::string partial = path + ".partial";
  struct Closer {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<FILE, Closer> f(std::fopen(partial.c_str(), "wb"));
  if (!f) throw Error("file " + partial + ": cannot create");
  size_t written = 0;
  const auto write = [&](const void* p, size_t n) {
    if (std::fwrite(p, 1, n, f.get()) != n) {
      f.reset();
      std::remove(partial.c_str());
      throw Error("file " + partial + ": write failed (disk full?)");
    }
    written += n;
  };
  write(head.data(), head.size());
  std::vector<uint8_t> buf;
  for (const Tensor& t : tensors_) {
    buf.assign(Padded(t.bytes), 0);
    t.fill(buf.data());
    write(buf.data(), buf.size());
  }
  if (std::fclose(f.release()) != 0) {
    std::remove(partial.c_str());
    throw Error("file " + partial + ": close failed");
  }
  std::filesystem::rename(partial, path);
  return written;
}

}  // namespace qwen3
