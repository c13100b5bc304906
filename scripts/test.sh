#!/usr/bin/env bash
# Builds and runs the whole test suite.
#   scripts/test.sh              Release build in build/
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/npm-deps.sh  # the reference tokenizer and chat-template engine the tests compare with
if [ "${1:-}" = "--sanitize" ]; then
  # Asserts stay on (no NDEBUG); -O2 keeps the 14B-dims tests within minutes.
  scripts/setup.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" -DQWEN3_SANITIZE=ON
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir build-asan --output-on-failure
else
  scripts/setup.sh build
  ctest --test-dir build --output-on-failure
fi
