#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t bytes;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},   {DType::kU16, "U16", 2},   {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4},   {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},   {DType::kI64, "I64", 8},   {DType::kU64, "U64", 8},
    {DType::kF64, "F64", 8},
};

const DTypeInfo& Info(DType d) {
  for (const DTypeInfo& i : kDTypes) {
    if (i.dtype == d) return i;
  }
  QW_ASSERT(false);
}

// Header lengths past this are corrupt, not big (the reference implementation's limit).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// memcpy of a tensor's bytes: an empty tensor's buffer is nullptr, which memcpy may not take
// even for 0 bytes (UBSan, fuzz/regressions/safetensors/).
void CopyBytes(void* dst, const void* src, size_t n) {
  if (n > 0) std::memcpy(dst, src, n);
}

}  // namespace

const char* ToString(DType dtype) { return Info(dtype).name; }
size_t DTypeBytes(DType dtype) { return Info(dtype).bytes; }

size_t TensorView::Elements() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string TensorView::Where() const {
  return "tensor " + name + (file ? " in " + *file : std::string());
}

void TensorView::ExpectShape(const std::vector<size_t>& want) const {
  if (shape != want) {
    TensorView w;
    w.shape = want;
    throw Error(Where() + ": shape " + ShapeString() + ", expected " + w.ShapeString());
  }
}

void TensorView::Expect(DType want_dtype, const std::vector<size_t>& want) const {
  if (dtype != want_dtype) {
    throw Error(Where() + ": dtype " + ToString(dtype) + ", expected " + ToString(want_dtype));
  }
  ExpectShape(want);
}

AlignedBuffer<float> TensorView::ToF32() const {
  const size_t n = Elements();
  AlignedBuffer<float> out(n);
  switch (dtype) {
    case DType::kF32:
      CopyBytes(out.data(), data, n * 4);
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) out[i] = Bf16ToF32(Load<uint16_t>(data + 2 * i));
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = F16ToF32(Load<uint16_t>(data + 2 * i));
      break;
    case DType::kF64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(Load<double>(data + 8 * i));
      break;
    default:
      throw Error(Where() + ": dtype " + ToString(dtype) + ", expected BF16, F16, F32 or F64");
  }
  return out;
}

AlignedBuffer<bf16> TensorView::ToBf16() const {
  const size_t n = Elements();
  if (dtype == DType::kBF16) {
    AlignedBuffer<bf16> out(n);
    CopyBytes(out.data(), data, n * 2);
    return out;
  }
  const AlignedBuffer<float> f = ToF32();
  AlignedBuffer<bf16> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = F32ToBf16(f[i]);
  return out;
}

std::vector<int32_t> TensorView::ToI32() const {
  const size_t n = Elements();
  std::vector<int32_t> out(n);
  if (dtype == DType::kI32) {
    CopyBytes(out.data(), data, n * 4);
  } else if (dtype == DType::kI64) {
    for (size_t i = 0; i < n; ++i) {
      const int64_t v = Load<int64_t>(data + 8 * i);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        throw Error(Where() + ": element " + std::to_string(i) + " = " + std::to_string(v) +
                    ": expected a 32-bit integer");
      }
      out[i] = static_cast<int32_t>(v);
    }
  } else {
    throw Error(Where() + ": dtype " + ToString(dtype) + ", expected I32 or I64");
  }
  return out;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const auto fail = [&](const std::string& what) { throw Error("file " + path + ": " + what); };

  f->map_ = MappedFile::Open(path);
  const size_t size = f->map_.size();
  if (size < 8) fail(std::to_string(size) + " bytes: expected at least the 8-byte header length");
  const uint8_t* base = f->map_.data();

  const uint64_t header_len = Load<uint64_t>(base);
  if (header_len > size - 8 || header_len > kMaxHeaderBytes) {
    fail("header length " + std::to_string(header_len) + " past the end of the file (" +
         std::to_string(size) + " bytes)");
  }
  const std::string_view text(reinterpret_cast<const char*>(base + 8), header_len);
  const uint8_t* data = base + 8 + header_len;
  const size_t data_bytes = size - 8 - header_len;

  // nlohmann keeps the last of duplicated keys; the callback sees every top-level key.
  std::set<std::string> keys;
  json header;
  try {
    header = json::parse(text, [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth == 1 && event == json::parse_event_t::key) {
        const std::string key = parsed.get<std::string>();
        if (!keys.insert(key).second) fail("tensor " + key + " appears twice in the header");
      }
      return true;
    });
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");

  struct Range {
    size_t begin, end, index;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail("__metadata__ is not an object");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__." + m.key() + " is not a string");
        f->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const auto bad = [&](const std::string& what) { fail("tensor " + name + ": " + what); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets")) {
      bad("expected an object with dtype, shape and data_offsets");
    }
    TensorView v;
    v.name = name;
    if (!e["dtype"].is_string()) bad("dtype is not a string");
    const std::string dt = e["dtype"].get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const DTypeInfo& i : kDTypes) {
      if (dt == i.name) info = &i;
    }
    if (info == nullptr) bad("unknown dtype " + dt);
    v.dtype = info->dtype;
    if (!e["shape"].is_array()) bad("shape is not an array");
    size_t elems = 1;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned()) bad("shape has a value that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && elems > std::numeric_limits<size_t>::max() / dim) bad("shape overflows");
      elems *= dim;
      v.shape.push_back(dim);
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      bad("data_offsets is not [begin, end]");
    }
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en) bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] decrease");
    if (en > data_bytes) {
      bad("data_offsets end " + std::to_string(en) + " past the end of the data (" +
          std::to_string(data_bytes) + " bytes): truncated file");
    }
    if (elems > std::numeric_limits<size_t>::max() / info->bytes ||
        en - b != elems * info->bytes) {
      bad("shape " + v.ShapeString() + " of " + dt + " needs " +
          std::to_string(elems * info->bytes) + " bytes, data_offsets give " +
          std::to_string(en - b));
    }
    v.data = data + b;
    v.bytes = en - b;
    v.file = &f->path_;
    ranges.push_back({b, en, f->tensors_.size()});
    f->index_[name] = f->tensors_.size();
    f->tensors_.push_back(std::move(v));
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      fail("tensors " + f->tensors_[ranges[i - 1].index].name + " and " +
           f->tensors_[ranges[i].index].name + " overlap in the data");
    }
  }
  return f;
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorView& SafetensorsFile::Get(const std::string& name) const {
  const TensorView* v = Find(name);
  if (v == nullptr) throw Error("tensor " + name + ": not in " + path_);
  return *v;
}

void SafetensorsWriter::Add(const std::string& name, DType dtype, const std::vector<size_t>& shape,
                            Fill fill) {
  for (const Entry& e : entries_) QW_ASSERT(e.name != name);
  size_t n = DTypeBytes(dtype);
  for (size_t d : shape) n *= d;
  entries_.push_back({name, dtype, shape, data_bytes_, data_bytes_ + n, std::move(fill)});
  data_bytes_ += n;
}

void SafetensorsWriter::AddCopy(const std::string& name, DType dtype,
                                const std::vector<size_t>& shape, const void* data) {
  size_t n = DTypeBytes(dtype);
  for (size_t d : shape) n *= d;
  auto bytes = std::make_shared<std::vector<uint8_t>>(n);
  std::memcpy(bytes->data(), data, n);
  Add(name, dtype, shape, [bytes](uint8_t* dst) { std::memcpy(dst, bytes->data(), bytes->size()); });
}

void SafetensorsWriter::Write(const std::string& path) const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", ToString(e.dtype)}, {"shape", e.shape},
                      {"data_offsets", {e.begin, e.end}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::string partial = path + ".partial";
  std::FILE* out = std::fopen(partial.c_str(), "wb");
  if (out == nullptr) throw Error("file " + path + ": cannot write: " + std::strerror(errno));
  bool ok = true;
  try {
    uint8_t len[8];
    const uint64_t n = text.size();
    std::memcpy(len, &n, 8);
    ok = std::fwrite(len, 1, 8, out) == 8 && std::fwrite(text.data(), 1, n, out) == n;
    std::vector<uint8_t> buf;
    for (const Entry& e : entries_) {
      if (!ok) break;
      buf.assign(e.end - e.begin, 0);
      if (e.fill) e.fill(buf.data());
      ok = std::fwrite(buf.data(), 1, buf.size(), out) == buf.size();
    }
  } catch (...) {
    std::fclose(out);
    std::filesystem::remove(partial);
    throw;
  }
  ok = std::fclose(out) == 0 && ok;
  if (!ok) {
    std::filesystem::remove(partial);
    throw Error("file " + path + ": write failed: " + std::strerror(errno));
  }
  std::filesystem::rename(partial, path);
}

}  // namespace qwen3
