#!/usr/bin/env bash
# The one ASan + UBSan build, in build-fuzz/, shared by `scripts/test.sh --sanitize` (the whole
# test suite) and `scripts/fuzz.sh` (the libFuzzer targets): clang; the parsers also carry
# libFuzzer's coverage instrumentation (-fsanitize=fuzzer-no-link, inert where libFuzzer is not
# linked; not the numeric code: fuzz/coverage-ignorelist.txt.in); asserts on (no NDEBUG:
# QW_DASSERT checks run); -O1 (the suite runs no slower than at -O2 here) and line tables (-g1:
# the reports' file:line; as fast to compile as -g with clang, binaries 40% smaller).
#   scripts/setup-sanitize.sh [TARGET]     (default: everything; scripts/fuzz.sh builds `fuzz`)
# Both callers configure the folder with these same arguments: the second builds nothing anew.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=clang++ QWEN3_BUILD_TARGET=${1:-} scripts/setup.sh build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DQWEN3_FUZZ=ON -DQWEN3_BUILD_TESTS=ON
