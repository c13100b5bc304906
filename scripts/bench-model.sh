#!/usr/bin/env bash
# Regenerates the whole-model measurements of docs/PERFORMANCE.md: a synthetic Qwen3-0.6B
# checkpoint (HF layout, written once to out/qwen3-0.6b-synthetic, 1.2 GB), then
# qwen3-bench --model at batch 1 and 16 with every user at 64 and at 512 prompt tokens.
# Tables go to stdout, JSON to out/bench-model-ctx*.json. Extra arguments go to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p out
model=out/qwen3-0.6b-synthetic
[[ -f $model/model.safetensors ]] || build/bin/qwen3 make-checkpoint --preset 0.6b --seed 1 "$model"
for ctx in 64 512; do
  echo "== context $ctx"
  build/bin/qwen3-bench --model "$model" --context "$ctx" --steps 20 \
    --json "out/bench-model-ctx$ctx.json" "$@"
done
