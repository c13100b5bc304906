#!/usr/bin/env bash
# Prints a SHA-256 of the logits of a fixed set of replays, per CPU path this machine runs:
# the refactors that must not change a bit (issue 18) compare these lines before and after.
#   scripts/logit-hashes.sh [BIN_DIR] [PATH...]    (default: build/bin, every path that runs here)
# Each line: path, run, the hash of every step's logits (qwen3 replay --out, fp32 bytes in
# safetensors; the file holds nothing else). Two workers, as the split choice reads the count.
# docs/logit-hashes/ keeps a machine's lines from before a refactor.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin}
shift || true
shared=../shared/testdata
paths=("$@")
((${#paths[@]})) || paths=(amx avx512bf16 avx512 avx2 scalar)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

runs=(
  "tiny-a|$shared/hf-qwen3/tiny-a|$shared/hf-qwen3/tiny-a/reference.safetensors|"
  "tiny-b|$shared/hf-qwen3/tiny-b|$shared/hf-qwen3/tiny-b/reference.safetensors|"
  "tiny-a-q4_0|$shared/hf-qwen3/tiny-a|$shared/hf-qwen3/tiny-a/reference.safetensors|q4_0"
  "tiny-b-q8_0|$shared/hf-qwen3/tiny-b|$shared/hf-qwen3/tiny-b/reference.safetensors|q8_0"
)
for t in bf16 q8_0 q4_0 q4_k_m; do
  runs+=("gguf-$t|$shared/gguf/tiny-a.$t.gguf|$shared/gguf/tiny-a.$t.reference.safetensors|")
done

for path in "${paths[@]}"; do
  for run in "${runs[@]}"; do
    IFS='|' read -r name model ref quant <<<"$run"
    args=(replay --model "$model" --reference "$ref" --out "$out/logits.safetensors" --tol 1)
    [ -n "$quant" ] && args+=(--quantize "$quant")
    # A quantized replay may fail its accuracy bound (exit 1): the logits are written anyway.
    rm -f "$out/logits.safetensors"
    QWEN3_CPU_PATH=$path "$bin/qwen3" --threads 2 "${args[@]}" >"$out/log" 2>&1 || true
    if [ ! -s "$out/logits.safetensors" ]; then
      if grep -q "does not support" "$out/log"; then
        echo "$path $name (path not on this CPU)"
        break
      fi
      cat "$out/log" >&2
      exit 1
    fi
    echo "$path $name $(sha256sum "$out/logits.safetensors" | cut -c1-16)"
  done
done
