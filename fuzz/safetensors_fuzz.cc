// safetensors files and a checkpoint's model.safetensors.index.json. The first byte picks the
// surface (the rest is the input):
//   even: a safetensors file, opened (header length, JSON header, dtypes, shapes, offsets) and
//         every tensor converted as the loader would (ToF32, ToBf16, ToI32);
//   odd:  an index JSON in a model directory holding tiny-a's config.json and two real files
//         (a.safetensors = tiny-a's weights, b.safetensors = its reference outputs), opened as
//         a checkpoint (HfCheckpoint::Open: weight_map, shards, the tensor set vs the config).
#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"

namespace qwen3::fuzz {
namespace {

namespace fs = std::filesystem;

void FuzzFile(const uint8_t* data, size_t size) {
  std::unique_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::Open(MemFile(data, size));
  } catch (const Error&) {
    return;
  }
  for (const TensorView& t : f->tensors()) {
    FUZZ_CHECK(t.bytes == t.Elements() * DTypeBytes(t.dtype),
               t.Where() + ": bytes " + std::to_string(t.bytes) + " != elements x dtype");
    FUZZ_CHECK(f->Find(t.name) == &t, t.Where() + ": Find returns another tensor");
    try {
      const AlignedBuffer<float> v = t.ToF32();
      FUZZ_CHECK(v.size() == t.Elements(), t.Where() + ": ToF32 size");
      const AlignedBuffer<bf16> b = t.ToBf16();
      FUZZ_CHECK(b.size() == t.Elements(), t.Where() + ": ToBf16 size");
    } catch (const Error&) {
    }
    try {
      FUZZ_CHECK(t.ToI32().size() == t.Elements(), t.Where() + ": ToI32 size");
    } catch (const Error&) {
    }
  }
}

// The model directory, made once per process.
const std::string& ModelDir() {
  static const std::string dir = [] {
    const fs::path d = fs::path(ScratchDir()) / "model";
    fs::create_directories(d);
    const fs::path tiny = fs::path(SharedDir()) / "testdata/hf-qwen3/tiny-a";
    fs::copy_file(tiny / "config.json", d / "config.json", fs::copy_options::overwrite_existing);
    fs::create_symlink(tiny / "model.safetensors", d / "a.safetensors");
    fs::create_symlink(tiny / "reference.safetensors", d / "b.safetensors");
    return d.string();
  }();
  return dir;
}

void FuzzIndex(const uint8_t* data, size_t size) {
  const std::string& dir = ModelDir();
  {
    std::ofstream out(dir + "/model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const HfCheckpoint ck = HfCheckpoint::Open(dir);
    // Open checked the whole tensor set: every expected name is there with its shape.
    for (const auto& [name, shape] : ExpectedTensors(ck.config())) {
      FUZZ_CHECK(ck.Has(name) && ck.Get(name).shape == shape,
                 "tensor " + name + " not as expected");
    }
  } catch (const Error&) {
  }
}

}  // namespace

int FuzzSafetensors(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    FuzzFile(data + 1, size - 1);
  } else {
    FuzzIndex(data + 1, size - 1);
  }
  return 0;
}

}  // namespace qwen3::fuzz
