#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qwen3_st_" + std::to_string(getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file with the given header text and data bytes; header_len overrides the length field.
  std::string Raw(const std::string& header, size_t data_bytes, int64_t header_len = -1) {
    const std::string path = (dir_ / "raw.safetensors").string();
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = header_len < 0 ? header.size() : static_cast<uint64_t>(header_len);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header;
    out << std::string(data_bytes, '\0');
    return path;
  }
  fs::path dir_;
};

TEST_F(SafetensorsTest, RoundTripsDtypesShapesAndMetadata) {
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.0f};
  const std::vector<bf16> b = {F32ToBf16(1.0f), F32ToBf16(-0.5f), F32ToBf16(3.75f)};
  const std::vector<int32_t> ids = {7, -3, 151643};
  SafetensorsWriter w;
  w.AddCopy("a.f32", DType::kF32, {2, 3}, f32.data());
  w.AddCopy("b.bf16", DType::kBF16, {3}, b.data());
  w.AddCopy("ids", DType::kI32, {1, 3}, ids.data());
  w.Add("empty", DType::kF32, {0, 4}, nullptr);
  w.SetMetadata("format", "pt");
  const std::string path = (dir_ / "x.safetensors").string();
  w.Write(path);
  EXPECT_FALSE(fs::exists(path + ".partial"));

  const auto f = SafetensorsFile::Open(path);
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const TensorView& a = f->Get("a.f32");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.ShapeString(), "[2, 3]");
  const AlignedBuffer<float> av = a.ToF32();
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(av[i], f32[i]);
  const AlignedBuffer<bf16> ab = a.ToBf16();
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(ab[i], F32ToBf16(f32[i]));
  const AlignedBuffer<float> bv = f->Get("b.bf16").ToF32();
  EXPECT_EQ(bv[2], 3.75f);
  EXPECT_EQ(f->Get("ids").ToI32(), ids);
  EXPECT_EQ(f->Get("empty").Elements(), 0u);
  EXPECT_EQ(f->Find("nope"), nullptr);
  EXPECT_TRUE(ThrowsError([&] { f->Get("nope"); }, {"tensor nope", "not in", path}));
  // Data starts 8-byte aligned after the header.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->Get("a.f32").data) % 8, 0u);
}

TEST_F(SafetensorsTest, F16ConvertsExactly) {
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(F16ToF32(0x7c00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
  EXPECT_EQ(std::signbit(F16ToF32(0x8000)), true);
}

TEST_F(SafetensorsTest, ConversionsRejectOtherDtypes) {
  const std::vector<int32_t> ids = {1, 2};
  SafetensorsWriter w;
  w.AddCopy("ids", DType::kI32, {2}, ids.data());
  const std::string path = (dir_ / "i.safetensors").string();
  w.Write(path);
  const auto f = SafetensorsFile::Open(path);
  EXPECT_TRUE(ThrowsError([&] { f->Get("ids").ToF32(); }, {"tensor ids", "dtype I32"}));
  EXPECT_TRUE(ThrowsError([&] { f->Get("ids").Expect(DType::kF32, {2}); },
                          {"dtype I32, expected F32"}));
  EXPECT_TRUE(ThrowsError([&] { f->Get("ids").ExpectShape({3}); },
                          {"shape [2], expected [3]"}));
}

TEST_F(SafetensorsTest, BadFilesAreOneLineErrorsNamingTheFile) {
  const std::string ok = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  struct Case {
    std::string header;
    size_t data;
    int64_t header_len;
    std::vector<std::string_view> parts;
  };
  const std::vector<Case> cases = {
      {ok, 8, 1 << 20, {"header length 1048576 past the end"}},
      {ok, 8, int64_t{1} << 40, {"past the end"}},
      {"{\"t\": [1, 2", 8, -1, {"not valid JSON"}},
      {"[1, 2]", 0, -1, {"not a JSON object"}},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
       16, -1, {"tensor t appears twice"}},
      {R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8, -1, {"tensor t", "unknown dtype Q4"}},
      {R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, -1,
       {"tensor t", "shape [3] of F32 needs 12 bytes"}},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, -1,
       {"tensor t", "past the end of the data", "truncated"}},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, -1, {"tensors a and b overlap"}},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, -1, {"decrease"}},
      {R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, -1, {"non-negative integer"}},
      {R"({"t":{"dtype":"F32","shape":[2]}})", 8, -1, {"dtype, shape and data_offsets"}},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, -1, {"[begin, end]"}},
      {R"({"__metadata__":{"k":1}})", 0, -1, {"__metadata__.k is not a string"}},
  };
  for (const Case& c : cases) {
    const std::string path = Raw(c.header, c.data, c.header_len);
    EXPECT_TRUE(ThrowsError([&] { SafetensorsFile::Open(path); }, {path})) << c.header;
    for (std::string_view part : c.parts) {
      EXPECT_TRUE(ThrowsError([&] { SafetensorsFile::Open(path); }, {part})) << c.header;
    }
  }
  // Shorter than the length field, and missing.
  const std::string tiny = (dir_ / "tiny").string();
  std::ofstream(tiny) << "abc";
  EXPECT_TRUE(ThrowsError([&] { SafetensorsFile::Open(tiny); }, {tiny, "3 bytes"}));
  EXPECT_TRUE(ThrowsError([&] { SafetensorsFile::Open((dir_ / "missing").string()); },
                          {"missing", "No such file"}));
}

TEST_F(SafetensorsTest, AFailedWriteLeavesNoFile) {
  SafetensorsWriter w;
  w.Add("t", DType::kF32, {4}, [](uint8_t*) { throw std::runtime_error("generator failed"); });
  const std::string path = (dir_ / "never.safetensors").string();
  EXPECT_THROW(w.Write(path), std::runtime_error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".partial"));
}

}  // namespace
}  // namespace qwen3
