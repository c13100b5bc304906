#!/usr/bin/env bash
# Regenerates docs/ACCURACY.md's tables: qwen3 replay of every shared GGUF file against its own
# (dequantized-weights) reference and against transformers' bf16-weight reference of tiny-a,
# and --quantize q8_0|q4_0 of tiny-a and tiny-b. Extra arguments go to every replay.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
g=../shared/testdata/gguf
h=../shared/testdata/hf-qwen3
steps() { grep -E '^ +[0-9]+ ' | awk '{printf "%s (%s)  ", $2, $4} END {print ""}'; }
for t in bf16 q8_0 q4_k_m q4_0; do
  echo "tiny-a.$t.gguf vs its own reference:    $(build/bin/qwen3 replay --model $g/tiny-a.$t.gguf \
    --reference $g/tiny-a.$t.reference.safetensors --tol 8e-2 "$@" | steps)"
  echo "tiny-a.$t.gguf vs transformers (bf16):  $(build/bin/qwen3 replay --model $g/tiny-a.$t.gguf \
    --reference $h/tiny-a/reference.safetensors --tol 10 "$@" | steps)"
done
for m in tiny-a tiny-b; do
  for q in q8_0 q4_0; do
    echo "$m --quantize $q vs transformers:     $(build/bin/qwen3 replay --model $h/$m \
      --reference $h/$m/reference.safetensors --quantize $q --tol 10 "$@" | steps)"
  done
done
