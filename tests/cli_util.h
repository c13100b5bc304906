// Helpers for tests that run the project's executables: a per-process temp dir, and running a
// tool from QWEN3_BIN_DIR with its exit code, stdout and stderr captured.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace qwen3::testing_cli {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("qwen3_cli_test_" + std::to_string(getpid()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline const TempDir& Dir() {
  static const TempDir dir;
  return dir;
}

// Group 5 like 14B, head_dim 128, vocab 1000 (not a multiple of 64).
inline const std::string& SmallConfig() {
  static const std::string path =
      Dir().Write("config.json",
                  R"({"model_type": "qwen3", "hidden_act": "silu", "hidden_size": 320,)"
                  R"( "intermediate_size": 864, "num_hidden_layers": 1, "num_attention_heads": 10,)"
                  R"( "num_key_value_heads": 2, "head_dim": 128, "vocab_size": 1000})");
  return path;
}

struct RunResult {
  int code = -1;
  std::string out, err;
  std::vector<std::string> ErrLines() const {
    std::vector<std::string> lines;
    std::istringstream s(err);
    for (std::string line; std::getline(s, line);) lines.push_back(line);
    return lines;
  }
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs the tool with args (a shell fragment), an optional environment prefix, and stdin from
// a file (default: none).
inline RunResult RunTool(const std::string& tool, const std::string& args,
                         const std::string& env = "", const std::string& stdin_file = "/dev/null") {
  const std::string bin = std::string(QWEN3_BIN_DIR) + "/" + tool;
  const std::string out = Dir().File("stdout.txt"), err = Dir().File("stderr.txt");
  const std::string cmd = env + (env.empty() ? "" : " ") + "'" + bin + "' " + args + " >'" + out +
                          "' 2>'" + err + "' <'" + stdin_file + "'";
  RunResult r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

}  // namespace qwen3::testing_cli
