#include "io/gguf.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>

#include "base/error.h"

namespace qwen3 {
namespace {

// gguf-py's GGML_QUANT_SIZES (checked against ggml-common.h's block structs).
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", 32, 18},
    {GgmlType::kQ4_1, "Q4_1", 32, 20},
    {GgmlType::kQ5_0, "Q5_0", 32, 22},
    {GgmlType::kQ5_1, "Q5_1", 32, 24},
    {GgmlType::kQ8_0, "Q8_0", 32, 34},
    {GgmlType::kQ8_1, "Q8_1", 32, 36},
    {GgmlType::kQ2_K, "Q2_K", 256, 84},
    {GgmlType::kQ3_K, "Q3_K", 256, 110},
    {GgmlType::kQ4_K, "Q4_K", 256, 144},
    {GgmlType::kQ5_K, "Q5_K", 256, 176},
    {GgmlType::kQ6_K, "Q6_K", 256, 210},
    {GgmlType::kQ8_K, "Q8_K", 256, 292},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", 256, 66},
    {GgmlType::kIQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", 256, 98},
    {GgmlType::kIQ1_S, "IQ1_S", 256, 50},
    {GgmlType::kIQ4_NL, "IQ4_NL", 32, 18},
    {GgmlType::kIQ3_S, "IQ3_S", 256, 110},
    {GgmlType::kIQ2_S, "IQ2_S", 256, 82},
    {GgmlType::kIQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::kI8, "I8", 1, 1},
    {GgmlType::kI16, "I16", 1, 2},
    {GgmlType::kI32, "I32", 1, 4},
    {GgmlType::kI64, "I64", 1, 8},
    {GgmlType::kF64, "F64", 1, 8},
    {GgmlType::kIQ1_M, "IQ1_M", 256, 56},
    {GgmlType::kBF16, "BF16", 1, 2},
    {GgmlType::kTQ1_0, "TQ1_0", 256, 54},
    {GgmlType::kTQ2_0, "TQ2_0", 256, 66},
    {GgmlType::kMXFP4, "MXFP4", 32, 17},
};

constexpr const char* kValueTypeNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                           "int32",  "float32", "bool",   "string", "array",
                                           "uint64", "int64",   "float64"};
constexpr uint32_t kValueTypes = std::size(kValueTypeNames);

// Bytes of a scalar value type; 0 for string and array.
size_t ScalarBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

double WidenFloat32(float f) {
  char buf[32];
  const auto printed = std::to_chars(buf, buf + sizeof(buf), f);
  double d = f;
  if (printed.ec == std::errc()) std::from_chars(buf, printed.ptr, d);
  return d;
}

// The scalar of type t at p.
GgufValue DecodeScalar(GgufValueType t, const uint8_t* p) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kBool:
      v.uint = *p;
      break;
    case GgufValueType::kInt8:
      v.sint = Load<int8_t>(p);
      break;
    case GgufValueType::kUint16:
      v.uint = Load<uint16_t>(p);
      break;
    case GgufValueType::kInt16:
      v.sint = Load<int16_t>(p);
      break;
    case GgufValueType::kUint32:
      v.uint = Load<uint32_t>(p);
      break;
    case GgufValueType::kInt32:
      v.sint = Load<int32_t>(p);
      break;
    case GgufValueType::kFloat32:
      v.real = WidenFloat32(Load<float>(p));
      break;
    case GgufValueType::kUint64:
      v.uint = Load<uint64_t>(p);
      break;
    case GgufValueType::kInt64:
      v.sint = Load<int64_t>(p);
      break;
    case GgufValueType::kFloat64:
      v.real = Load<double>(p);
      break;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      QW_ASSERT(false);
  }
  return v;
}

bool IsSigned(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}

bool IsInteger(GgufValueType t) {
  return IsSigned(t) || t == GgufValueType::kUint8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kUint32 || t == GgufValueType::kUint64;
}

// Bounds-checked little-endian reads; every failure names the file, the context (the key or
// tensor being read) and the byte.
class Reader {
 public:
  Reader(const uint8_t* base, size_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}

  std::string context;

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  [[noreturn]] void Fail(const std::string& what) const {
    throw Error("file " + path_ + ": " + context + ": " + what);
  }
  const uint8_t* Take(uint64_t n, const char* what) {
    if (n > left()) {
      Fail(std::string(what) + " at byte " + std::to_string(pos_) + ": " + std::to_string(n) +
           " bytes past the end of the file (" + std::to_string(left()) + " bytes left)");
    }
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T Pod(const char* what) {
    return Load<T>(Take(sizeof(T), what));
  }
  std::string_view String(const char* what) {
    const uint64_t n = Pod<uint64_t>(what);
    if (n > left()) {
      Fail(std::string(what) + " at byte " + std::to_string(pos_ - 8) + ": length " +
           std::to_string(n) + " past the end of the file (" + std::to_string(left()) +
           " bytes left)");
    }
    return {reinterpret_cast<const char*>(Take(n, what)), n};
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

GgufValueType ReadValueType(Reader& r, const char* what) {
  const uint32_t t = r.Pod<uint32_t>(what);
  if (t >= kValueTypes) {
    r.Fail("unknown " + std::string(what) + " " + std::to_string(t) + " (expected 0 to " +
           std::to_string(kValueTypes - 1) + ")");
  }
  return static_cast<GgufValueType>(t);
}

// A value of type t; depth counts the arrays around it.
GgufValue ReadValue(Reader& r, GgufValueType t, int depth) {
  if (t == GgufValueType::kString) {
    GgufValue v;
    v.type = t;
    v.string = r.String("string");
    return v;
  }
  if (t != GgufValueType::kArray) {
    const size_t at = r.pos();
    GgufValue v = DecodeScalar(t, r.Take(ScalarBytes(t), ToString(t)));
    if (t == GgufValueType::kBool && v.uint > 1) {
      r.Fail("bool at byte " + std::to_string(at) + " is " + std::to_string(v.uint) +
             ": expected 0 or 1");
    }
    return v;
  }
  GgufValue v;
  v.type = t;
  v.elem_type = ReadValueType(r, "array element type");
  if (v.elem_type == GgufValueType::kArray && depth + 1 >= GgufFile::kMaxArrayDepth) {
    r.Fail("arrays nested deeper than " + std::to_string(GgufFile::kMaxArrayDepth));
  }
  v.count = r.Pod<uint64_t>("array length");
  // The smallest an element can be: a scalar's bytes, a string's length, an array's header.
  const size_t min_bytes = v.elem_type == GgufValueType::kString  ? 8
                           : v.elem_type == GgufValueType::kArray ? 12
                                                                  : ScalarBytes(v.elem_type);
  if (v.count > r.left() / min_bytes) {
    r.Fail("array of " + std::to_string(v.count) + " " + ToString(v.elem_type) + " at byte " +
           std::to_string(r.pos()) + " cannot fit in the " + std::to_string(r.left()) +
           " bytes left");
  }
  if (v.elem_type == GgufValueType::kString) {
    v.strings.reserve(v.count);
    for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(r.String("string"));
  } else if (v.elem_type == GgufValueType::kArray) {
    for (uint64_t i = 0; i < v.count; ++i) {
      v.arrays.push_back(ReadValue(r, GgufValueType::kArray, depth + 1));
    }
  } else {
    const size_t at = r.pos();
    v.elems = r.Take(v.count * min_bytes, "array");
    if (v.elem_type == GgufValueType::kBool) {
      for (uint64_t i = 0; i < v.count; ++i) {
        if (v.elems[i] > 1) {
          r.Fail("bool at byte " + std::to_string(at + i) + " is " + std::to_string(v.elems[i]) +
                 ": expected 0 or 1");
        }
      }
    }
  }
  return v;
}

}  // namespace

const GgmlTypeInfo* FindGgmlType(uint32_t number) {
  for (const GgmlTypeInfo& i : kGgmlTypes) {
    if (static_cast<uint32_t>(i.type) == number) return &i;
  }
  return nullptr;
}

std::string ToString(GgmlType type) {
  const GgmlTypeInfo* info = FindGgmlType(static_cast<uint32_t>(type));
  return info ? info->name : "type " + std::to_string(static_cast<uint32_t>(type));
}

const char* ToString(GgufValueType type) {
  const auto t = static_cast<uint32_t>(type);
  return t < kValueTypes ? kValueTypeNames[t] : "unknown";
}

uint64_t GgufTensor::Elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

std::string GgufTensor::DimsString() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string GgufTensor::Where() const {
  return "tensor " + name + (file ? " in " + *file : std::string());
}

bool GgufValue::IsInteger() const { return qwen3::IsInteger(type); }

std::string GgufValue::TypeName() const {
  if (type != GgufValueType::kArray) return ToString(type);
  return std::string("array of ") + ToString(elem_type);
}

GgufValue GgufValue::Element(uint64_t i) const {
  QW_ASSERT(type == GgufValueType::kArray && i < count);
  if (elem_type == GgufValueType::kArray) return arrays[i];
  if (elem_type == GgufValueType::kString) {
    GgufValue v;
    v.type = GgufValueType::kString;
    v.string = strings[i];
    return v;
  }
  return DecodeScalar(elem_type, elems + i * ScalarBytes(elem_type));
}

std::unique_ptr<GgufFile> GgufFile::Open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = MappedFile::Open(path);
  const uint8_t* base = f->map_.data();
  const size_t size = f->map_.size();
  Reader r(base, size, f->path_);
  r.context = "header";
  if (size < 4 || std::memcmp(base, "GGUF", 4) != 0) {
    std::string magic;
    for (size_t i = 0; i < std::min<size_t>(size, 4); ++i) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", base[i]);
      magic += base[i] >= 0x20 && base[i] < 0x7f ? std::string(1, static_cast<char>(base[i])) : hex;
    }
    r.Fail("magic \"" + magic + "\": expected \"GGUF\" (not a GGUF file)");
  }
  r.Take(4, "magic");
  f->version_ = r.Pod<uint32_t>("version");
  if (f->version_ != 2 && f->version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(f->version_);
    r.Fail(
        "GGUF version " + std::to_string(f->version_) + ": expected 2 or 3" +
        (swapped == 2 || swapped == 3 ? " (a big-endian file? only little-endian is read)" : ""));
  }
  const uint64_t tensor_count = r.Pod<uint64_t>("tensor_count");
  const uint64_t kv_count = r.Pod<uint64_t>("kv_count");
  // Bound the counts by the smallest entries (key + type + 1 byte; name + 1 dim + type +
  // offset) before reserving anything for them.
  constexpr uint64_t kMinKvBytes = 8 + 4 + 1, kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
  if (kv_count > r.left() / kMinKvBytes) {
    r.Fail("kv_count " + std::to_string(kv_count) + ": the " + std::to_string(r.left()) +
           " bytes after the header hold at most " + std::to_string(r.left() / kMinKvBytes) +
           " metadata entries");
  }
  const uint64_t info_bytes = r.left() - kv_count * kMinKvBytes;
  if (tensor_count > info_bytes / kMinTensorInfoBytes) {
    r.Fail("tensor_count " + std::to_string(tensor_count) + ": the " + std::to_string(r.left()) +
           " bytes after the header (with " + std::to_string(kv_count) +
           " metadata entries) hold at most " + std::to_string(info_bytes / kMinTensorInfoBytes) +
           " tensor infos");
  }

  f->metadata_.reserve(kv_count);
  for (uint64_t i = 0; i < kv_count; ++i) {
    r.context = "metadata key #" + std::to_string(i);
    std::string key(r.String("key name"));
    r.context = "metadata key " + key;
    if (f->key_index_.count(key)) r.Fail("appears twice");
    const GgufValueType type = ReadValueType(r, "value type");
    GgufValue v = ReadValue(r, type, 0);
    f->key_index_[key] = f->metadata_.size();
    f->metadata_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f->FindValue("general.alignment")) {
    r.context = "metadata key general.alignment";
    if (a->type != GgufValueType::kUint32) r.Fail("expected uint32, got " + a->TypeName());
    if (a->uint == 0 || (a->uint & (a->uint - 1)) != 0) {
      r.Fail(std::to_string(a->uint) + ": expected a power of two");
    }
    f->alignment_ = static_cast<uint32_t>(a->uint);
  }

  f->tensors_.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    r.context = "tensor info #" + std::to_string(i);
    GgufTensor t;
    t.name = r.String("tensor name");
    r.context = "tensor " + t.name;
    if (f->index_.count(t.name)) r.Fail("appears twice");
    const uint32_t n_dims = r.Pod<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > 4) r.Fail("n_dims " + std::to_string(n_dims) + ": expected 1 to 4");
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = r.Pod<uint64_t>("dims");
      const std::string which = "dims[" + std::to_string(d) + "] = " + std::to_string(dim);
      if (dim == 0) r.Fail(which + ": expected at least 1");
      if (elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) {
        r.Fail(which + ": more than 2^63 - 1 elements");
      }
      elems *= dim;
      t.dims.push_back(dim);
    }
    const uint32_t type = r.Pod<uint32_t>("type");
    const GgmlTypeInfo* info = FindGgmlType(type);
    if (info == nullptr) r.Fail("unknown ggml type " + std::to_string(type));
    t.type = info->type;
    if (t.dims[0] % info->block_elems != 0) {
      r.Fail("ne0 = " + std::to_string(t.dims[0]) + " is not a multiple of " + info->name +
             "'s block of " + std::to_string(info->block_elems) + " elements");
    }
    const uint64_t blocks = elems / info->block_elems;
    if (blocks > std::numeric_limits<size_t>::max() / info->block_bytes) {
      r.Fail(t.DimsString() + " of " + info->name + ": the byte size overflows");
    }
    t.bytes = blocks * info->block_bytes;
    t.offset = r.Pod<uint64_t>("offset");
    if (t.offset % f->alignment_ != 0) {
      r.Fail("offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(f->alignment_));
    }
    t.file = &f->path_;
    f->index_[t.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(t));
  }

  // The data section starts at the aligned end of the tensor infos.
  const size_t infos_end = r.pos();
  f->data_offset_ = (infos_end + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  r.context = "data section";
  if (!f->tensors_.empty() && f->data_offset_ > size) {
    r.Fail("starts at byte " + std::to_string(f->data_offset_) + " (the tensor infos end at " +
           std::to_string(infos_end) + "), past the end of the file (" + std::to_string(size) +
           " bytes): truncated file?");
  }
  const size_t data_bytes = f->data_offset_ <= size ? size - f->data_offset_ : 0;
  std::vector<const GgufTensor*> by_offset;
  by_offset.reserve(f->tensors_.size());
  for (GgufTensor& t : f->tensors_) {
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) {
      r.context = "tensor " + t.name;
      r.Fail("offset " + std::to_string(t.offset) + " + " + std::to_string(t.bytes) +
             " bytes past the end of the data section (" + std::to_string(data_bytes) +
             " bytes): truncated file?");
    }
    t.data = base + f->data_offset_ + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor& prev = *by_offset[i - 1];
    if (by_offset[i]->offset < prev.offset + prev.bytes) {
      r.Fail("tensors " + prev.name + " and " + by_offset[i]->name + " overlap");
    }
  }
  return f;
}

const GgufTensor* GgufFile::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::Get(const std::string& name) const {
  const GgufTensor* t = Find(name);
  if (t == nullptr) throw Error("tensor " + name + ": not in " + path_);
  return *t;
}

const GgufValue* GgufFile::FindValue(const std::string& key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::Value(const std::string& key) const {
  const GgufValue* v = FindValue(key);
  if (v == nullptr) throw Error("file " + path_ + ": metadata key " + key + ": missing");
  return *v;
}

std::string GgufFile::TypeOf(const std::string& key) const {
  const GgufValue* v = FindValue(key);
  return v ? v->TypeName() : std::string();
}

void GgufFile::BadKey(const std::string& key, const std::string& expected,
                      const GgufValue& got) const {
  std::string value;
  if (got.IsInteger())
    value = " " + (IsSigned(got.type) ? std::to_string(got.sint) : std::to_string(got.uint));
  throw Error("file " + path_ + ": metadata key " + key + ": expected " + expected + ", got " +
              got.TypeName() + value);
}

uint64_t GgufFile::GetUint(const std::string& key) const {
  const GgufValue& v = Value(key);
  if (!v.IsInteger() || (IsSigned(v.type) && v.sint < 0)) BadKey(key, "an unsigned integer", v);
  return IsSigned(v.type) ? static_cast<uint64_t>(v.sint) : v.uint;
}

int64_t GgufFile::GetInt(const std::string& key) const {
  const GgufValue& v = Value(key);
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!v.IsInteger() || (!IsSigned(v.type) && v.uint > kMax)) BadKey(key, "a 64-bit integer", v);
  return IsSigned(v.type) ? v.sint : static_cast<int64_t>(v.uint);
}

double GgufFile::GetFloat(const std::string& key) const {
  const GgufValue& v = Value(key);
  if (v.type == GgufValueType::kFloat32 || v.type == GgufValueType::kFloat64) return v.real;
  if (!v.IsInteger()) BadKey(key, "a number", v);
  return IsSigned(v.type) ? static_cast<double>(v.sint) : static_cast<double>(v.uint);
}

bool GgufFile::GetBool(const std::string& key) const {
  const GgufValue& v = Value(key);
  if (v.type != GgufValueType::kBool) BadKey(key, "bool", v);
  return v.uint != 0;
}

const std::string& GgufFile::GetString(const std::string& key) const {
  const GgufValue& v = Value(key);
  if (v.type != GgufValueType::kString) BadKey(key, "string", v);
  return v.string;
}

std::vector<std::string> GgufFile::GetStringArray(const std::string& key) const {
  const GgufValue& v = Value(key);
  if (v.type != GgufValueType::kArray || v.elem_type != GgufValueType::kString) {
    BadKey(key, "array of string", v);
  }
  return std::vector<std::string>(v.strings.begin(), v.strings.end());
}

std::vector<int64_t> GgufFile::GetIntArray(const std::string& key) const {
  const GgufValue& v = Value(key);
  if (v.type != GgufValueType::kArray || !IsInteger(v.elem_type)) {
    BadKey(key, "array of integers", v);
  }
  std::vector<int64_t> out;
  out.reserve(v.count);
  for (uint64_t i = 0; i < v.count; ++i) {
    const GgufValue e = v.Element(i);
    if (!IsSigned(e.type) && e.uint > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw Error("file " + path_ + ": metadata key " + key + ": element " + std::to_string(i) +
                  " = " + std::to_string(e.uint) + ": expected a 64-bit integer");
    }
    out.push_back(IsSigned(e.type) ? e.sint : static_cast<int64_t>(e.uint));
  }
  return out;
}

}  // namespace qwen3
