// The GGUF container: llama.cpp's own files (../shared/testdata/gguf), every value type, and
// every malformed-file check, on files written here (tests/gguf_writer.h).
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tests/checkpoint_util.h"
#include "tests/error_matchers.h"
#include "tests/gguf_writer.h"

namespace qwen3 {
namespace {

using testing_gguf::CopyOf;
using testing_gguf::GgufWriter;
using testing_gguf::Num;
using testing_gguf::Pod;
using testing_gguf::Str;
using VT = GgufValueType;

const std::string kGgufDir = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/";
const std::string kHfDir = std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3/tiny-a/";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class GgufTest : public testing::Test {
 protected:
  std::string Path(const std::string& name) const { return scratch_.Sub(name); }

  // A small valid file: a few keys and two F32 tensors.
  static GgufWriter Small() {
    GgufWriter w;
    w.AddString("general.architecture", "qwen3");
    w.AddString("general.name", "small");
    w.AddUint32("qwen3.block_count", 2);
    w.AddTensor("a", Num(GgmlType::kF32), {8, 2});
    w.AddTensor("b", Num(GgmlType::kF32), {4});
    return w;
  }
  const testing_ck::ScratchDir scratch_{
      testing::UnitTest::GetInstance()->current_test_info()->name()};
};

struct SharedFile {
  std::string name;
  std::map<std::string, int> types;  // README's counts
};

const std::vector<SharedFile>& SharedFiles() {
  static const std::vector<SharedFile> files = {
      {"tiny-a.bf16.gguf", {{"BF16", 30}, {"F32", 17}}},
      {"tiny-a.q8_0.gguf", {{"Q8_0", 30}, {"F32", 17}}},
      {"tiny-a.q4_k_m.gguf", {{"Q4_K", 25}, {"Q6_K", 5}, {"F32", 17}}},
      {"tiny-a.q4_0.gguf", {{"Q4_0", 29}, {"Q6_K", 1}, {"F32", 17}}},
  };
  return files;
}

TEST_F(GgufTest, OpensLlamaCppFiles) {
  for (const SharedFile& sf : SharedFiles()) {
    SCOPED_TRACE(sf.name);
    const std::string path = kGgufDir + sf.name;
    const auto f = GgufFile::Open(path);
    EXPECT_EQ(f->path(), path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), 32u);
    EXPECT_EQ(f->data_offset() % 32, 0u);
    EXPECT_EQ(f->metadata().size(), 24u);
    ASSERT_EQ(f->tensors().size(), 47u);
    std::map<std::string, int> types;
    for (const GgufTensor& t : f->tensors()) {
      ++types[ToString(t.type)];
      EXPECT_EQ(t.file, &f->path());
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << t.name;
      const GgmlTypeInfo* info = FindGgmlType(Num(t.type));
      ASSERT_NE(info, nullptr);
      EXPECT_EQ(t.bytes, t.Elements() / info->block_elems * info->block_bytes) << t.name;
    }
    EXPECT_EQ(types, sf.types);
    const GgufTensor& embed = f->Get("token_embd.weight");
    EXPECT_EQ(embed.DimsString(), "[256, 2048]");
    EXPECT_EQ(embed.Elements(), 256u * 2048u);
    EXPECT_EQ(f->Get("blk.0.ffn_down.weight").DimsString(), "[768, 256]");
    EXPECT_EQ(f->Get("blk.3.attn_k_norm.weight").type, GgmlType::kF32);
    EXPECT_EQ(f->Find("blk.4.attn_q.weight"), nullptr);
    EXPECT_TRUE(ThrowsError([&] { f->Get("nope"); }, {"tensor nope", "not in", path}));
    EXPECT_EQ(f->Get("output.weight").Where(), "tensor output.weight in " + path);

    EXPECT_EQ(f->GetString("general.architecture"), "qwen3");
    EXPECT_EQ(f->TypeOf("general.architecture"), "string");
    EXPECT_EQ(f->GetUint("qwen3.block_count"), 4u);
    EXPECT_EQ(f->TypeOf("qwen3.block_count"), "uint32");
    EXPECT_EQ(f->GetInt("qwen3.embedding_length"), 256);
    EXPECT_EQ(f->GetUint("qwen3.attention.head_count_kv"), 2u);
    EXPECT_EQ(f->GetFloat("qwen3.rope.freq_base"), 1e6);
    // A float32 reads as its shortest decimal: 1e-6, as config.json says.
    EXPECT_EQ(f->TypeOf("qwen3.attention.layer_norm_rms_epsilon"), "float32");
    EXPECT_EQ(f->GetFloat("qwen3.attention.layer_norm_rms_epsilon"), 1e-6);
    EXPECT_EQ(f->GetFloat("qwen3.context_length"), 4096.0);
    EXPECT_FALSE(f->GetBool("tokenizer.ggml.add_bos_token"));
    EXPECT_EQ(f->TypeOf("tokenizer.ggml.tokens"), "array of string");
    const std::vector<std::string> tokens = f->GetStringArray("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 2048u);
    EXPECT_EQ(tokens[0], "!");
    EXPECT_EQ(tokens[2040], "<|im_start|>");
    EXPECT_EQ(f->TypeOf("tokenizer.ggml.token_type"), "array of int32");
    const std::vector<int64_t> types_of = f->GetIntArray("tokenizer.ggml.token_type");
    ASSERT_EQ(types_of.size(), 2048u);
    EXPECT_EQ(types_of[2041], 3);
    EXPECT_EQ(f->GetStringArray("tokenizer.ggml.merges").size(), 1783u);
    EXPECT_EQ(f->GetStringArray("tokenizer.ggml.merges")[0], "Ġ Ġ");
    EXPECT_EQ(f->GetUint("tokenizer.ggml.eos_token_id"), 2041u);
    EXPECT_NE(f->GetString("tokenizer.chat_template").find("<|im_start|>"), std::string::npos);
    EXPECT_FALSE(f->Has("general.alignment"));
    EXPECT_EQ(f->TypeOf("no.such.key"), "");
  }
}

// Parsed contents are complete: laid out again, they are the file byte for byte.
TEST_F(GgufTest, RewritingAParsedFileGivesItsBytes) {
  for (const SharedFile& sf : SharedFiles()) {
    const std::string path = kGgufDir + sf.name;
    EXPECT_TRUE(CopyOf(*GgufFile::Open(path)).Bytes() == ReadAll(path)) << sf.name;
  }
}

// The BF16 file holds the HF checkpoint's bf16 weights bit for bit, in the same row-major
// layout (ggml dims are the HF shape reversed).
TEST_F(GgufTest, Bf16TensorsAreTheHfWeights) {
  const auto g = GgufFile::Open(kGgufDir + "tiny-a.bf16.gguf");
  const auto st = SafetensorsFile::Open(kHfDir + "model.safetensors");
  const std::map<std::string, std::string> pairs = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output.weight", "lm_head.weight"},
      {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"},
      {"blk.2.attn_k.weight", "model.layers.2.self_attn.k_proj.weight"},
  };
  for (const auto& [gname, hname] : pairs) {
    const GgufTensor& t = g->Get(gname);
    const TensorView& h = st->Get(hname);
    ASSERT_EQ(t.type, GgmlType::kBF16) << gname;
    ASSERT_EQ(t.dims.size(), h.shape.size());
    EXPECT_EQ(t.dims[0], h.shape[1]);
    EXPECT_EQ(t.dims[1], h.shape[0]);
    ASSERT_EQ(t.bytes, h.bytes);
    EXPECT_EQ(std::memcmp(t.data, h.data, t.bytes), 0) << gname;
  }
}

TEST_F(GgufTest, TypeTable) {
  EXPECT_EQ(ToString(GgmlType::kQ4_K), "Q4_K");
  EXPECT_EQ(ToString(GgmlType::kBF16), "BF16");
  EXPECT_EQ(ToString(static_cast<GgmlType>(99)), "type 99");
  EXPECT_EQ(FindGgmlType(4), nullptr);  // Q4_2, removed from ggml
  const std::map<GgmlType, std::pair<uint32_t, uint32_t>> sizes = {
      {GgmlType::kF32, {1, 4}},      {GgmlType::kF16, {1, 2}},      {GgmlType::kBF16, {1, 2}},
      {GgmlType::kQ4_0, {32, 18}},   {GgmlType::kQ4_1, {32, 20}},   {GgmlType::kQ5_0, {32, 22}},
      {GgmlType::kQ5_1, {32, 24}},   {GgmlType::kQ8_0, {32, 34}},   {GgmlType::kQ8_1, {32, 36}},
      {GgmlType::kQ2_K, {256, 84}},  {GgmlType::kQ3_K, {256, 110}}, {GgmlType::kQ4_K, {256, 144}},
      {GgmlType::kQ5_K, {256, 176}}, {GgmlType::kQ6_K, {256, 210}}, {GgmlType::kQ8_K, {256, 292}},
      {GgmlType::kI8, {1, 1}},       {GgmlType::kI16, {1, 2}},      {GgmlType::kI32, {1, 4}},
      {GgmlType::kI64, {1, 8}},      {GgmlType::kF64, {1, 8}},
  };
  for (const auto& [type, size] : sizes) {
    const GgmlTypeInfo* info = FindGgmlType(Num(type));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->block_elems, size.first) << info->name;
    EXPECT_EQ(info->block_bytes, size.second) << info->name;
  }
  // A tensor of every known type: 2 blocks x 3 rows.
  GgufWriter w;
  std::vector<const GgmlTypeInfo*> known;
  for (uint32_t n = 0; n < 64; ++n) {
    if (const GgmlTypeInfo* info = FindGgmlType(n)) {
      known.push_back(info);
      w.AddTensor(info->name, n, {2ull * info->block_elems, 3});
    }
  }
  EXPECT_EQ(known.size(), 32u);
  const auto f = GgufFile::Open(w.Write(Path("types.gguf")));
  for (const GgmlTypeInfo* info : known) {
    EXPECT_EQ(f->Get(info->name).bytes, 6u * info->block_bytes) << info->name;
    EXPECT_EQ(f->Get(info->name).type, info->type);
  }
}

TEST_F(GgufTest, ReadsEveryValueType) {
  GgufWriter w;
  w.Add("u8", Num(VT::kUint8), Pod<uint8_t>(200));
  w.Add("i8", Num(VT::kInt8), Pod<int8_t>(-100));
  w.Add("u16", Num(VT::kUint16), Pod<uint16_t>(60000));
  w.Add("i16", Num(VT::kInt16), Pod<int16_t>(-30000));
  w.Add("u32", Num(VT::kUint32), Pod<uint32_t>(4000000000u));
  w.Add("i32", Num(VT::kInt32), Pod<int32_t>(-2000000000));
  w.Add("f32", Num(VT::kFloat32), Pod<float>(0.1f));
  w.Add("bool", Num(VT::kBool), Pod<uint8_t>(1));
  w.Add("str", Num(VT::kString), Str("héllo"));
  w.Add("u64", Num(VT::kUint64), Pod<uint64_t>(std::numeric_limits<uint64_t>::max()));
  w.Add("i64", Num(VT::kInt64), Pod<int64_t>(std::numeric_limits<int64_t>::min()));
  w.Add("f64", Num(VT::kFloat64), Pod<double>(0.1));
  w.Add("ints", Num(VT::kArray),
        Pod<uint32_t>(Num(VT::kInt16)) + Pod<uint64_t>(3) + Pod<int16_t>(-1) + Pod<int16_t>(7) +
            Pod<int16_t>(300));
  w.Add("floats", Num(VT::kArray),
        Pod<uint32_t>(Num(VT::kFloat64)) + Pod<uint64_t>(2) + Pod(1.5) + Pod(-2.0));
  w.AddStrings("strs", {"a", "", "c d"});
  w.Add("empty", Num(VT::kArray), Pod<uint32_t>(Num(VT::kUint8)) + Pod<uint64_t>(0));
  // Arrays nested 4 deep (the limit): [[[[5]]]] of uint8.
  std::string nested = Pod<uint32_t>(Num(VT::kUint8)) + Pod<uint64_t>(1) + Pod<uint8_t>(5);
  for (int i = 0; i < 3; ++i) nested = Pod<uint32_t>(Num(VT::kArray)) + Pod<uint64_t>(1) + nested;
  w.Add("nested", Num(VT::kArray), nested);
  const std::string path = w.Write(Path("values.gguf"));
  const auto f = GgufFile::Open(path);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->GetUint("u8"), 200u);
  EXPECT_EQ(f->GetInt("i8"), -100);
  EXPECT_EQ(f->GetUint("u16"), 60000u);
  EXPECT_EQ(f->GetInt("i16"), -30000);
  EXPECT_EQ(f->GetUint("u32"), 4000000000u);
  EXPECT_EQ(f->GetInt("u32"), 4000000000);
  EXPECT_EQ(f->GetInt("i32"), -2000000000);
  EXPECT_EQ(f->GetFloat("f32"), 0.1);
  EXPECT_EQ(static_cast<float>(f->GetFloat("f32")), 0.1f);
  EXPECT_TRUE(f->GetBool("bool"));
  EXPECT_EQ(f->GetString("str"), "héllo");
  EXPECT_EQ(f->GetUint("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f->GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->GetFloat("f64"), 0.1);
  EXPECT_EQ(f->GetFloat("i16"), -30000.0);
  EXPECT_EQ(f->GetIntArray("ints"), (std::vector<int64_t>{-1, 7, 300}));
  EXPECT_EQ(f->GetStringArray("strs"), (std::vector<std::string>{"a", "", "c d"}));
  EXPECT_TRUE(f->GetIntArray("empty").empty());
  const GgufValue& floats = f->Value("floats");
  ASSERT_EQ(floats.count, 2u);
  EXPECT_EQ(floats.Element(1).real, -2.0);
  const GgufValue* v = &f->Value("nested");
  for (int depth = 0; depth < 3; ++depth) {
    EXPECT_EQ(v->TypeName(), "array of array");
    ASSERT_EQ(v->count, 1u);
    v = &v->arrays[0];
  }
  EXPECT_EQ(v->Element(0).uint, 5u);
  const std::map<std::string, std::string> names = {{"u8", "uint8"},
                                                    {"i8", "int8"},
                                                    {"u16", "uint16"},
                                                    {"i16", "int16"},
                                                    {"u32", "uint32"},
                                                    {"i32", "int32"},
                                                    {"f32", "float32"},
                                                    {"bool", "bool"},
                                                    {"str", "string"},
                                                    {"u64", "uint64"},
                                                    {"i64", "int64"},
                                                    {"f64", "float64"},
                                                    {"ints", "array of int16"},
                                                    {"strs", "array of string"},
                                                    {"nested", "array of array"}};
  for (const auto& [key, name] : names) EXPECT_EQ(f->TypeOf(key), name) << key;
  // The metadata keeps the file's order.
  EXPECT_EQ(f->metadata().front().first, "u8");
  EXPECT_EQ(f->metadata().back().first, "nested");
  EXPECT_TRUE(CopyOf(*f).Bytes() == ReadAll(path));
}

TEST_F(GgufTest, WrongTypedAccessNamesFileAndKey) {
  GgufWriter w;
  w.AddString("s", "text");
  w.Add("neg", Num(VT::kInt32), Pod<int32_t>(-3));
  w.Add("big", Num(VT::kUint64), Pod<uint64_t>(std::numeric_limits<uint64_t>::max()));
  w.Add("byte", Num(VT::kUint8), Pod<uint8_t>(1));
  w.Add("big_ints", Num(VT::kArray),
        Pod<uint32_t>(Num(VT::kUint64)) + Pod<uint64_t>(1) + Pod<uint64_t>(1ull << 63));
  w.AddStrings("strs", {"a"});
  const std::string path = w.Write(Path("typed.gguf"));
  const auto f = GgufFile::Open(path);
  const auto err = [&](auto fn, std::initializer_list<std::string_view> parts) {
    EXPECT_TRUE(ThrowsError(fn, {path})) << *parts.begin();
    EXPECT_TRUE(ThrowsError(fn, parts));
  };
  err([&] { f->GetUint("s"); }, {"metadata key s: expected an unsigned integer, got string"});
  err([&] { f->GetUint("neg"); }, {"metadata key neg", "got int32 -3"});
  err([&] { f->GetInt("big"); }, {"metadata key big", "got uint64 18446744073709551615"});
  err([&] { f->GetFloat("s"); }, {"metadata key s: expected a number, got string"});
  err([&] { f->GetBool("byte"); }, {"metadata key byte: expected bool, got uint8 1"});
  err([&] { f->GetString("neg"); }, {"metadata key neg: expected string, got int32"});
  err([&] { f->GetStringArray("big_ints"); },
      {"metadata key big_ints: expected array of string, got array of uint64"});
  err([&] { f->GetIntArray("strs"); },
      {"metadata key strs: expected array of integers, got array of string"});
  err([&] { f->GetIntArray("big_ints"); }, {"metadata key big_ints", "element 0"});
  err([&] { f->GetUint("absent"); }, {"metadata key absent: missing"});
}

TEST_F(GgufTest, Version2IsReadLikeVersion3) {
  GgufWriter w = Small();
  w.version = 2;
  const auto f = GgufFile::Open(w.Write(Path("v2.gguf")));
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->tensors().size(), 2u);
}

TEST_F(GgufTest, AlignmentKeyMovesTheDataSection) {
  GgufWriter w = Small();
  w.alignment = 256;
  w.AddUint32("general.alignment", 256);
  const auto f = GgufFile::Open(w.Write(Path("a256.gguf")));
  EXPECT_EQ(f->alignment(), 256u);
  EXPECT_EQ(f->data_offset() % 256, 0u);
  EXPECT_EQ(f->Get("b").offset, 256u);
}

struct BadCase {
  const char* tag;
  std::function<void(GgufWriter&)> spoil;
  std::vector<std::string> parts;
};

TEST_F(GgufTest, BadFilesAreOneLineErrorsNamingTheFile) {
  const auto array_of = [](VT elem, uint64_t count, const std::string& elems) {
    return Pod<uint32_t>(Num(elem)) + Pod<uint64_t>(count) + elems;
  };
  const std::vector<BadCase> cases = {
      {"magic", [](GgufWriter& w) { w.magic = "GGML"; }, {"magic \"GGML\": expected \"GGUF\""}},
      {"magic-binary",
       [](GgufWriter& w) {
         w.magic = std::string(
             "\x7f"
             "ELF",
             4);
       },
       {"magic \"\\x7fELF\""}},
      {"version1", [](GgufWriter& w) { w.version = 1; }, {"GGUF version 1: expected 2 or 3"}},
      {"version4", [](GgufWriter& w) { w.version = 4; }, {"GGUF version 4: expected 2 or 3"}},
      {"big-endian", [](GgufWriter& w) { w.version = 0x03000000; }, {"big-endian"}},
      {"tensor-count",
       [](GgufWriter& w) { w.tensor_count = 1000; },
       {"tensor_count 1000", "hold at most"}},
      {"tensor-count-huge",
       [](GgufWriter& w) { w.tensor_count = ~0ull; },
       {"tensor_count 18446744073709551615"}},
      {"kv-count",
       [](GgufWriter& w) { w.kv_count = 1ull << 40; },
       {"kv_count 1099511627776", "hold at most"}},
      {"string-length",
       [](GgufWriter& w) { w.Set("general.name", Num(VT::kString), Pod<uint64_t>(1000) + "abc"); },
       {"metadata key general.name", "length 1000 past the end of the file"}},
      {"value-type",
       [](GgufWriter& w) { w.Add("k", 13, ""); },
       {"metadata key k", "unknown value type 13"}},
      {"elem-type",
       [&](GgufWriter& w) { w.Add("k", Num(VT::kArray), array_of(VT(77), 0, "")); },
       {"metadata key k", "unknown array element type 77"}},
      {"array-count",
       [&](GgufWriter& w) { w.Add("k", Num(VT::kArray), array_of(VT::kUint32, 1ull << 40, "")); },
       {"metadata key k", "array of 1099511627776 uint32", "cannot fit"}},
      {"string-array-count",
       [&](GgufWriter& w) { w.Add("k", Num(VT::kArray), array_of(VT::kString, 1ull << 60, "")); },
       {"metadata key k", "array of 1152921504606846976 string"}},
      {"too-deep",
       [&](GgufWriter& w) {
         std::string v = array_of(VT::kUint8, 0, "");
         for (int i = 0; i < 4; ++i) v = array_of(VT::kArray, 1, v);
         w.Add("deep", Num(VT::kArray), v);
       },
       {"metadata key deep", "arrays nested deeper than 4"}},
      {"bool",
       [](GgufWriter& w) { w.Add("flag", Num(VT::kBool), Pod<uint8_t>(2)); },
       {"metadata key flag", "bool", "is 2: expected 0 or 1"}},
      {"bool-array",
       [&](GgufWriter& w) {
         w.Add("flags", Num(VT::kArray), array_of(VT::kBool, 2, std::string("\x01\x07", 2)));
       },
       {"metadata key flags", "is 7: expected 0 or 1"}},
      {"alignment-pow2",
       [](GgufWriter& w) { w.AddUint32("general.alignment", 48); },
       {"metadata key general.alignment", "48: expected a power of two"}},
      {"alignment-zero",
       [](GgufWriter& w) { w.AddUint32("general.alignment", 0); },
       {"metadata key general.alignment", "0: expected a power of two"}},
      {"alignment-type",
       [](GgufWriter& w) { w.Add("general.alignment", Num(VT::kUint64), Pod<uint64_t>(32)); },
       {"metadata key general.alignment", "expected uint32, got uint64"}},
      {"duplicate-key",
       [](GgufWriter& w) { w.AddString("general.name", "again"); },
       {"metadata key general.name", "appears twice"}},
      {"duplicate-tensor",
       [](GgufWriter& w) { w.AddTensor("a", 0, {4}); },
       {"tensor a", "appears twice"}},
      {"n-dims-0",
       [](GgufWriter& w) { w.tensors[0].dims.clear(); },
       {"tensor a", "n_dims 0: expected 1 to 4"}},
      {"n-dims-5",
       [](GgufWriter& w) {
         w.tensors[0].dims = {1, 1, 1, 1, 16};
       },
       {"tensor a", "n_dims 5: expected 1 to 4"}},
      {"dim-0",
       [](GgufWriter& w) {
         w.tensors[0].dims = {8, 0};
       },
       {"tensor a", "dims[1] = 0: expected at least 1"}},
      {"elements-overflow",
       [](GgufWriter& w) {
         w.tensors[0].dims = {1ull << 32, 1ull << 32};
       },
       {"tensor a", "dims[1] = 4294967296", "more than 2^63 - 1 elements"}},
      {"bytes-overflow",
       [](GgufWriter& w) {
         w.tensors[0] = {"a", {1ull << 62}, Num(GgmlType::kF64), "", {}};
       },
       {"tensor a", "[4611686018427387904] of F64: the byte size overflows"}},
      {"block",
       [](GgufWriter& w) {
         w.tensors[0] = {"a", {100, 2}, Num(GgmlType::kQ4_K), "", {}};
       },
       {"tensor a", "ne0 = 100 is not a multiple of Q4_K's block of 256 elements"}},
      {"tensor-type",
       [](GgufWriter& w) { w.tensors[0].type = 99; },
       {"tensor a", "unknown ggml type 99"}},
      {"tensor-type-removed",
       [](GgufWriter& w) { w.tensors[0].type = 4; },
       {"tensor a", "unknown ggml type 4"}},
      {"offset",
       [](GgufWriter& w) { w.tensors[1].offset = 80; },
       {"tensor b", "offset 80 is not a multiple of the alignment 32"}},
      {"offset-alignment-key",
       [](GgufWriter& w) {
         w.AddUint32("general.alignment", 128);  // data laid out for 32
       },
       {"tensor b", "offset 64 is not a multiple of the alignment 128"}},
      {"data-past-end",
       [](GgufWriter& w) { w.tensors[1].data.clear(); },  // b's 16 bytes
       {"tensor b", "offset 64 + 16 bytes past the end of the data section (64 bytes)",
        "truncated"}},
      {"overlap", [](GgufWriter& w) { w.tensors[1].offset = 32; }, {"tensors a and b overlap"}},
      {"overlap-same", [](GgufWriter& w) { w.tensors[1].offset = 0; }, {"tensors", "overlap"}},
  };
  for (const BadCase& bc : cases) {
    GgufWriter w = Small();
    bc.spoil(w);
    const std::string path = w.Write(Path(std::string(bc.tag) + ".gguf"));
    EXPECT_TRUE(ThrowsError([&] { GgufFile::Open(path); }, {path})) << bc.tag;
    for (const std::string& part : bc.parts) {
      EXPECT_TRUE(ThrowsError([&] { GgufFile::Open(path); }, {part})) << bc.tag;
    }
  }
}

TEST_F(GgufTest, TruncatedFilesAreErrors) {
  const GgufWriter w = Small();
  const std::string bytes = w.Bytes();
  const auto cut = [&](size_t n) {
    const std::string path = Path("cut" + std::to_string(n) + ".gguf");
    std::ofstream(path, std::ios::binary) << bytes.substr(0, n);
    return path;
  };
  // Inside the header, the tensor infos, the padding, the last tensor's data.
  const size_t infos = w.Infos().size();
  ASSERT_GT(w.Align(infos), infos + 1) << "no padding after the infos: rename a tensor";
  const auto full = GgufFile::Open(cut(bytes.size()));
  const size_t b_end = full->data_offset() + full->Get("b").offset + full->Get("b").bytes;
  const std::vector<std::pair<size_t, std::vector<std::string>>> cases = {
      {0, {"magic \"\""}},
      {10, {"header", "tensor_count at byte 8: 8 bytes past the end of the file (2 bytes left)"}},
      {infos - 3, {"tensor b", "offset at byte"}},
      {infos + 1, {"data section", "past the end of the file", "truncated"}},
      {b_end - 1, {"tensor b", "past the end of the data section", "truncated"}},
  };
  for (const auto& [n, parts] : cases) {
    const std::string path = cut(n);
    EXPECT_TRUE(ThrowsError([&] { GgufFile::Open(path); }, {path})) << n;
    for (const std::string& part : parts) {
      EXPECT_TRUE(ThrowsError([&] { GgufFile::Open(path); }, {part})) << n;
    }
  }
  // A key name whose length runs past the end.
  const std::string key = Path("key.gguf");
  std::ofstream(key, std::ios::binary) << "GGUF" + Pod<uint32_t>(3) + Pod<uint64_t>(0) +
                                              Pod<uint64_t>(1) + Pod<uint64_t>(1000) + "abcdefgh";
  EXPECT_TRUE(ThrowsError([&] { GgufFile::Open(key); },
                          {key, "metadata key #0", "key name", "length 1000 past the end"}));
  EXPECT_TRUE(
      ThrowsError([&] { GgufFile::Open(Path("missing.gguf")); }, {"missing.gguf", "No such file"}));
  EXPECT_TRUE(ThrowsError([&] { GgufFile::Open(Path("")); }, {"not a regular file"}));
}

}  // namespace
}  // namespace qwen3
