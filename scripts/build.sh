#!/usr/bin/env bash
# Configures and builds into build/ (or $TAU_BUILD_DIR). Extra arguments go to cmake's configure step,
# e.g. scripts/build.sh -DTAU_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${TAU_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${TAU_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
