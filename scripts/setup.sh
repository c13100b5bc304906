#!/usr/bin/env bash
# Installs the Debian packages the build needs (only those missing) and builds the project.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]    (default BUILD_DIR: build)
#   QWEN3_BUILD_TARGET=T scripts/setup.sh ...              builds only target T and what it needs
#   CXX=clang++ scripts/setup.sh ...                        with clang (and its sanitizer runtimes)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true

packages=(cmake ninja-build g++ pkg-config libgtest-dev nlohmann-json3-dev libcli11-dev libdnnl-dev libicu-dev
          libcpp-httplib-dev)
# clang: the sanitizer runtimes and libFuzzer, and OpenMP for qwen3-bench's oneDNN peer.
if [[ "${CXX:-}" == clang++* ]]; then
  packages+=(clang libclang-rt-14-dev libomp-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3_WERROR=ON "$@" >/dev/null
cmake --build "$build_dir" ${QWEN3_BUILD_TARGET:+--target "$QWEN3_BUILD_TARGET"}
