#!/usr/bin/env bash
# The main job: set up, build, then one Qwen3-14B decode layer + full LM head at batch 16 with
# every user at 4096 tokens, on synthetic weights, checked against the golden reference.
# Extra arguments go to qwen3-layer (e.g. --bench 10, -b 4, --lm-head single).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec build/bin/qwen3-layer --max-seq --lm-head full --check "$@"
