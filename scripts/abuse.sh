#!/usr/bin/env bash
# `qwen3 serve` under abuse at a large size (docs/RELIABILITY.md): builds, then runs
# qwen3-serve-abuse on the shared tiny-a model for thousands of client actions over several
# minutes and prints what the clients saw, the server's counts and memory; exit 1 if a request
# was lost or a check failed. The CI test (ServeAbuseTest, label "abuse") runs 800.
#   scripts/abuse.sh                      # 30000 actions (at most 600 s), 32 clients
#   REQUESTS=3000 CONCURRENCY=48 DURATION=120 scripts/abuse.sh [more qwen3-serve-abuse flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec build/bin/qwen3-serve-abuse --model ../shared/testdata/gguf/tiny-a.bf16.gguf \
  --requests "${REQUESTS:-30000}" --concurrency "${CONCURRENCY:-32}" --duration "${DURATION:-600}" \
  --seed "${SEED:-1}" "$@"
