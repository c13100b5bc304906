#!/usr/bin/env bash
# Regenerates the measurements of docs/PERFORMANCE.md: qwen3-bench (read bandwidth, every stage
# vs it, the oneDNN peer, the fused/flat variants) on the 14B layer + LM head with every user
# at 4096 tokens, at batch 16, 8, 4 and 1. Tables go to stdout, JSON to out/bench-b*.json.
# Extra arguments go to every qwen3-bench run (e.g. --threads 2, --steps 30).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p out
for b in 16 8 4 1; do
  echo "== batch $b"
  build/bin/qwen3-bench -b "$b" --max-seq --steps 20 --json "out/bench-b$b.json" "$@"
done
