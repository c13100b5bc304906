#!/usr/bin/env bash
# Builds and runs the whole test suite.
#   scripts/test.sh              Release build (g++) in build/
#   scripts/test.sh --sanitize   the same suite under ASan + UBSan: clang, in build-fuzz/, the
#                                build scripts/fuzz.sh runs the fuzz targets of (one build for both:
#                                scripts/setup-sanitize.sh)
#   scripts/test.sh --tsan       ThreadSanitizer build (g++) in build-tsan/: the concurrency tests
# Tests run one per core at a time (CTEST_PARALLEL_LEVEL=N to change); those marked RUN_SERIAL in
# tests/CMakeLists.txt (the servers' timeouts) run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/npm-deps.sh  # the reference tokenizer and chat-template engine the tests compare with
parallel=${CTEST_PARALLEL_LEVEL:-$(nproc)}
if [ "${1:-}" = "--tsan" ]; then
  # Only the tests labelled `concurrency` (tests/CMakeLists.txt), and only what they need is
  # built; -O2 -g1 with asserts on (docs/RELIABILITY.md). Reports go to files, also those of the
  # `qwen3` children that the serve and CLI tests start: any report fails the run, even where a
  # test does not check a child's exit code.
  QWEN3_BUILD_TARGET=concurrency_tests scripts/setup.sh build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1" -DQWEN3_TSAN=ON
  reports="$PWD/build-tsan/tsan-reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  # ignore_noninstrumented_modules: the memory accesses that uninstrumented libraries (Debian's
  # compiled cpp-httplib, libstdc++, ICU) make through interceptors are not checked; their
  # locks still are, and so is every access of our code. Else their own function-local statics
  # read as races (docs/RELIABILITY.md).
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1 log_path=$reports/tsan"
  status=0
  ctest --test-dir build-tsan -L concurrency --no-tests=error --output-on-failure \
    --parallel "$parallel" || status=$?
  if compgen -G "$reports/tsan*" >/dev/null; then
    cat "$reports"/tsan*
    echo "test.sh --tsan: ThreadSanitizer reports above (also in $reports)" >&2
    exit 1
  fi
  exit "$status"
elif [ "${1:-}" = "--sanitize" ]; then
  # Asserts on (no NDEBUG), line tables for the reports' file:line; the parsers also carry
  # libFuzzer's coverage instrumentation, unused here (scripts/setup-sanitize.sh).
  scripts/setup-sanitize.sh
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The whole-model replays on the scalar path are left out here (~30 s each under ASan, where
  # the vector paths' take ~3 s): the scalar kernels still run under ASan in kernels_test and
  # quant_test (every path against its scalar twin), and the replays run in the Release suite.
  ctest --test-dir build-fuzz --output-on-failure --parallel "$parallel" -E 'ReplayTest\..*_scalar( |$)'
else
  scripts/setup.sh build
  ctest --test-dir build --output-on-failure --parallel "$parallel"
fi
