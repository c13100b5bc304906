// One main for every tool. A tool's body parses its flags (CLI11_PARSE returns CLI11's own
// exit code: 0 for --help, CLI11's code for a bad flag) and returns its exit code; whatever it
// throws ends the tool here with one line on stderr and exit code 2, never std::terminate
// (a core dump):
//
//   NAME: error: MESSAGE      qwen3::Error (bad input: the message names the value and the fix)
//   NAME: error: out of memory                                       std::bad_alloc
//   NAME: error: MESSAGE      any other std::exception (std::system_error, ...): its what()
//
//   namespace { int Main(int argc, char** argv) { ...; return 0; } }
//   int main(int argc, char** argv) { return qwen3::RunToolMain("qwen3-x", argc, argv, Main); }
#pragma once

#include <cstdio>
#include <exception>
#include <new>

#include "base/error.h"

namespace qwen3 {

inline int RunToolMain(const char* name, int argc, char** argv, int (*body)(int, char**)) {
  try {
    return body(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
  } catch (...) {  // not a std::exception: nothing to say but that it happened
    std::fprintf(stderr, "%s: error: unknown exception\n", name);
  }
  return 2;
}

}  // namespace qwen3
