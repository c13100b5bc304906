#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan + UBSan, in build-fuzz/: the build that
# scripts/test.sh --sanitize runs the tests in, scripts/setup-sanitize.sh) and runs each for
# SECONDS (default 60) on its corpus, one target per core at a time (FUZZ_JOBS=N to change);
# exits non-zero if any target finds a crash, hang, leak, excessive allocation or UB (the input
# is left in build-fuzz/findings/<target>/, the output in build-fuzz/logs/<target>.log).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: every target)
# New inputs accumulate in build-fuzz/corpus/<target>/ (seeded from fuzz/corpus/ and
# fuzz/regressions/, which are read only); docs/RELIABILITY.md says how to keep a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true

scripts/npm-deps.sh  # the real tokenizer.json the tokenizer targets load
scripts/setup-sanitize.sh fuzz  # build-fuzz/, shared with scripts/test.sh --sanitize

# Target and the longest input worth mutating (the seeds' sizes: GGUF metadata of a real
# file is 64 KB, a small tokenizer.json 17 KB).
declare -A max_len=([safetensors]=8192 [gguf]=70000 [config]=4096 [tokenizer_load]=20000
                    [tokenizer_encode]=4096 [chat_template]=4096 [openai_request]=4096
                    [stream]=2048)
targets=("$@")
((${#targets[@]})) || targets=(safetensors gguf config tokenizer_load tokenizer_encode
                                chat_template openai_request stream)

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build-fuzz/logs
# One target: its exit code in build-fuzz/logs/<target>.rc, its output in <target>.log.
run_target() {
  local t=$1 rc=0
  local work=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  mkdir -p "$work" "$findings" fuzz/regressions/$t
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb also caps single allocations.
  build-fuzz/bin/${t}_fuzz "$work" fuzz/corpus/$t fuzz/regressions/$t \
    -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"build-fuzz/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"build-fuzz/logs/$t.rc"
}
# FUZZ_JOBS targets at a time (default: one per core), each one process.
parallel=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz: unknown target $t" >&2; exit 2; }
done
for t in "${targets[@]}"; do
  rm -f "build-fuzz/logs/$t.rc"
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  run_target "$t" &
done
wait

failed=()
printf "%-18s %8s %12s %8s %8s  %s\n" target seconds execs cov ft result
for t in "${targets[@]}"; do
  log=build-fuzz/logs/$t.log findings=build-fuzz/findings/$t
  rc=$(cat "build-fuzz/logs/$t.rc" 2>/dev/null || echo "?")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo "?")
  result=ok
  if [ "$rc" != 0 ]; then
    result="FOUND (exit $rc): $(ls -t "$findings" | head -1), see $log"
    failed+=("$t")
  fi
  printf "%-18s %8s %12s %8s %8s  %s\n" "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}: fix them, keep each input in fuzz/regressions/<target>/" >&2
  exit 1
fi
